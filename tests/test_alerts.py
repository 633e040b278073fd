"""The alerts view and ``swr-etl check``: a world built by hand, with the answers worked out by hand.

Policies (all scheduled unless said otherwise), times relative to now:
- 1 "recovered": execution 10 (26 h ago) failed tag app:1.0; execution 11 (2 h ago) replicated it. Healthy.
- 2 "broken": execution 20 (3 days ago) succeeded; execution 21 (1 h ago) failed 1 of 2 tasks, its tag
  app:2.0 never reached the destination. Failing since 21, stale since 20, one missing tag.
- 3 "disabled": like 2, but the policy is disabled. Never alerts.
- 4 "by hand": a manual policy whose only (manual) run failed. Never alerts.
- 5 "running": execution 50 is still running: a task failed, another started 8 hours ago. Not failing (the
  execution has not ended) but stuck; its last success, execution 49 (5 h ago), keeps it fresh.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import clean_env, run_cli
from test_transform_golden import D1, D2, resource
from test_views import build, execution, select, t

NOW = datetime.now(UTC)


def ago(hours: float) -> str:
    return (NOW - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def policy(
    pid: int,
    name: str,
    *,
    trigger: str = "scheduled",
    enabled: bool = True,
    cron: str | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """A policy as the API lists it; a scheduled one fires at 02:00 UTC unless ``cron`` says otherwise."""
    cron = cron if cron is not None else "0 0 2 * * *" if trigger == "scheduled" else ""
    return {
        "id": pid,
        "name": name,
        "src_registry": {"id": 0},
        "dest_registry": {"id": 1},
        "trigger": {"type": trigger, "trigger_settings": {"cron": cron}},
        "enabled": enabled,
        "created_at": created or ago(24 * 30),
    }


def copy(task_id: int, eid: int, tag: str, digest: str, *, reached: bool, status: str, hours: float) -> dict[str, Any]:
    art = {"type": "IMAGE", "digest": digest, "labels": None, "tags": [tag]}
    dst = resource("mirror/app", [art] if reached else [])
    return t(task_id, eid, status, start=ago(hours), src=resource("team/app", [art]), dst=dst)


def run(eid: int, pid: int, status: str, hours: float, trigger: str = "scheduled") -> dict[str, Any]:
    return execution(eid, ago(hours), policy_id=pid, status=status, trigger=trigger, updated_at=ago(hours - 0.1))


WORLD = [
    (run(10, 1, "Failed", 26), [copy(100, 10, "1.0", D1, reached=False, status="Failed", hours=26)]),
    (run(11, 1, "Succeed", 2), [copy(110, 11, "1.0", D1, reached=True, status="Succeed", hours=2)]),
    (run(20, 2, "Succeed", 72), [copy(200, 20, "1.0", D1, reached=True, status="Succeed", hours=72)]),
    (
        run(21, 2, "Failed", 1),
        [
            copy(210, 21, "1.0", D1, reached=True, status="Succeed", hours=1),
            copy(211, 21, "2.0", D2, reached=False, status="Failed", hours=1),
        ],
    ),
    (run(30, 3, "Failed", 1), [copy(300, 30, "2.0", D2, reached=False, status="Failed", hours=1)]),
    (run(40, 4, "Failed", 1, trigger="manual"), [copy(400, 40, "2.0", D2, reached=False, status="Failed", hours=1)]),
    (run(49, 5, "Succeed", 5), [copy(490, 49, "1.0", D1, reached=True, status="Succeed", hours=5)]),
    (
        run(50, 5, "InProgress", 9),
        [
            copy(500, 50, "2.0", D2, reached=False, status="Failed", hours=9),
            t(501, 50, "InProgress", start=ago(8), src=resource("team/app", []), dst=resource("mirror/app", [])),
        ],
    ),
]
POLICIES = [
    policy(1, "recovered"),
    policy(2, "broken"),
    policy(3, "disabled", enabled=False),
    policy(4, "by hand", trigger="manual"),
    policy(5, "running"),
]


def test_the_alerts_of_a_world_worked_out_by_hand(tmp_path: Path, connections: list[Any]) -> None:
    db = build(tmp_path, WORLD, policies=POLICIES)
    connections.append(db)
    rows = select(db, "SELECT policy_id, policy_name, kind, since, value FROM alerts")
    found = {(r["policy_id"], r["kind"]): r for r in rows}
    assert sorted(found) == [(2, "failing"), (2, "missing_tags"), (2, "stale"), (5, "stuck")]
    assert found[(2, "failing")]["value"] == 0.5
    assert found[(2, "failing")]["since"] == datetime.fromisoformat(ago(1).replace("Z", "+00:00"))
    assert found[(2, "stale")]["since"] == datetime.fromisoformat(ago(72 - 0.1).replace("Z", "+00:00"))
    assert found[(2, "missing_tags")]["value"] == 1
    assert found[(5, "stuck")]["value"] == 1
    (missing,) = select(db, "SELECT detail FROM alerts WHERE kind = 'missing_tags'")
    assert missing["detail"].endswith("e.g. team/app:2.0")


def test_thresholds_change_the_answer(tmp_path: Path, connections: list[Any]) -> None:
    db = build(tmp_path, WORLD, policies=POLICIES)
    connections.append(db)
    lenient = """SELECT policy_id, kind FROM alerts_over(max_failure_rate := 0.5, max_success_age := INTERVAL 100 HOUR,
                 stuck_after := INTERVAL 10 HOUR, max_missing_tags := 1)"""
    assert db.sql(lenient).fetchall() == []
    strict = "SELECT policy_id, kind FROM alerts_over(max_success_age := INTERVAL 90 MINUTE) ORDER BY ALL"
    assert (1, "stale") in db.sql(strict).fetchall()  # its last success was 2 hours ago


def test_check_exits_1_with_one_line_per_alert_0_when_healthy_2_on_misuse(
    tmp_path: Path, connections: list[Any]
) -> None:
    connections.append(build(tmp_path, WORLD, policies=POLICIES))
    env = clean_env(SWR_ETL_DATA_DIR=str(tmp_path))

    alerting = run_cli(["check"], env)
    assert alerting.returncode == 1, alerting.stderr
    lines = alerting.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("ALERT ") for line in lines)
    assert "ALERT failing: policy broken (2) of instance inst-1 since " in alerting.stdout
    assert alerting.stderr.strip().startswith("error: 4 alerts (failing 1, missing_tags 1, stale 1, stuck 1)")

    healthy = run_cli(
        [
            "check",
            "--format",
            "json",
            "--max-failure-rate",
            "0.5",
            "--max-success-age-hours",
            "100",
            "--stuck-hours",
            "10",
            "--max-missing-tags",
            "1",
        ],
        env,
    )
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["status"] == "ok"

    as_json = run_cli(["check", "--format", "json", "--log-format", "json"], env)
    assert as_json.returncode == 1
    payload = json.loads(as_json.stdout)
    assert payload["status"] == "alerts" and {a["kind"] for a in payload["alerts"]} == {
        "failing",
        "missing_tags",
        "stale",
        "stuck",
    }
    assert json.loads(as_json.stderr.splitlines()[-1])["exit_code"] == 1

    for bad in (["--max-failure-rate", "1.5"], ["--stuck-hours", "0"], ["--max-missing-tags", "-1"]):
        misuse = run_cli(["check", *bad], env)
        assert misuse.returncode == 2, (bad, misuse.stderr)
        assert misuse.stderr.startswith("error: --"), misuse.stderr


def test_check_reads_its_thresholds_from_the_environment_and_the_config_file(
    tmp_path: Path, connections: list[Any]
) -> None:
    connections.append(build(tmp_path / "data", WORLD, policies=POLICIES))
    config = tmp_path / "swr-etl.toml"
    config.write_text("max_failure_rate = 0.5\nmax_success_age_hours = 100\nmax_missing_tags = 1\n")
    env = clean_env(SWR_ETL_DATA_DIR=str(tmp_path / "data"), SWR_ETL_STUCK_HOURS="10", SWR_ETL_CONFIG=str(config))
    result = run_cli(["check"], env)
    assert (result.returncode, result.stdout) == (0, "check: no alerts\n"), result.stderr


def test_no_lake_is_an_error_not_a_healthy_answer(tmp_path: Path) -> None:
    result = run_cli(["check", "--data-dir", str(tmp_path)], clean_env())
    assert result.returncode == 1 and "no lake" in result.stderr, result.stderr


def test_last_success_per_policy_and_per_destination_registry(tmp_path: Path, connections: list[Any]) -> None:
    db = build(tmp_path, WORLD, policies=POLICIES)
    connections.append(db)
    rows = select(
        db,
        "SELECT scope, policy_id, dest_registry_id, policies, executions, last_execution_status, "
        "last_success_execution_id, last_success_at, hours_since_success FROM last_success",
    )
    by_policy = {r["policy_id"]: r for r in rows if r["scope"] == "policy"}
    # policy: (executions, newest status, last success execution, its end: updated_at, 0.1 h after its start)
    expected = {1: (2, "Succeed", 11, 2), 2: (2, "Failed", 20, 72), 3: (1, "Failed", None, None)}
    expected |= {4: (1, "Failed", None, None), 5: (2, "Succeed", 49, 5)}  # 50 started before 49
    for pid, (executions, status, success, hours) in expected.items():
        row = by_policy[pid]
        assert (row["executions"], row["last_execution_status"], row["last_success_execution_id"]) == (
            executions,
            status,
            success,
        ), pid
        if hours is None:
            assert row["last_success_at"] is None and row["hours_since_success"] is None
        else:
            assert row["last_success_at"] == datetime.fromisoformat(ago(hours - 0.1).replace("Z", "+00:00"))
            assert abs(row["hours_since_success"] - (hours - 0.1)) < 0.05
    (registry,) = [r for r in rows if r["scope"] == "registry"]
    assert (registry["dest_registry_id"], registry["policies"], registry["executions"]) == (1, 5, 8)
    assert registry["last_success_execution_id"] == 11  # the newest success of any policy copying there


def test_pipeline_check_answers_as_the_command_does(tmp_path: Path, connections: list[Any]) -> None:
    import pipeline

    connections.append(build(tmp_path, WORLD, policies=POLICIES))
    found = pipeline.check(pipeline.settings(data_dir=tmp_path, need_api=False))
    assert sorted((a.policy_id, a.kind) for a in found) == [
        (2, "failing"),
        (2, "missing_tags"),
        (2, "stale"),
        (5, "stuck"),
    ]
    lenient = pipeline.settings(data_dir=tmp_path, need_api=False, max_failure_rate=0.5, max_success_age_hours=100)
    assert sorted((a.policy_id, a.kind) for a in pipeline.check(lenient)) == [(2, "missing_tags"), (5, "stuck")]

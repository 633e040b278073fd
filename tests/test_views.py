"""The analytics views of sql/, each on a small hand-made landing whose right answer was worked out by hand."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import ROOT
from test_transform_golden import ARTS, D1, D2, D3, EXECUTION, IID, land, land_listing, resource, task

import pipeline.warehouse.warehouse
from pipeline.load import load_lake
from pipeline.warehouse.warehouse import sql_views

LISTED_RUN = "20261102T000000000Z-bbbbbb"  # after the run ``land`` uses: this listing wins
VIEWS = {
    "alerts",
    "alerts_over",
    "daily_throughput",
    "execution_summary",
    "failure_reasons",
    "failures",
    "last_success",
    "policy_health",
    "policy_targets",
    "repository_failures",
    "repository_replication",
    "silent_schedules",
    "stuck_tasks",
    "stuck_tasks_over",
    "tag_attempts",
    "tag_status",
    "tag_drift",
}
MACROS = {"alerts_over", "stuck_tasks_over"}


def execution(eid: int, created_at: str = "2026-11-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    counters = {"total": 0, "succeed": 0, "failed": 0, "in_progress": 0, "stopped": 0}
    return {**EXECUTION, "id": eid, "status": "Succeed", "created_at": created_at, **counters, **extra}


def t(
    task_id: int,
    eid: int,
    status: str = "Succeed",
    start: str = "2026-11-01T08:00:00Z",
    end: str | None = None,
    src: Any = None,
    dst: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """A task of execution ``eid``; ``end`` defaults to ten seconds after ``start`` once finished."""
    if end is None:
        finished = status in ("Succeed", "Failed", "Stopped") and start
        end = iso(utc(start) + timedelta(seconds=10)) if finished else ""
    src = resource("team/app", []) if src is None else src
    dst = resource("mirror/app", []) if dst is None else dst
    return task(task_id, src, dst, execution_id=eid, status=status, start_time=start, end_time=end, **extra)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build(
    data_dir: Path,
    executions: list[tuple[dict[str, Any], list[dict[str, Any]] | None]],
    *,
    instances: list[dict[str, Any]] | None = None,
    policies: list[dict[str, Any]] | None = None,
    listed_run: str = LISTED_RUN,
) -> duckdb.DuckDBPyConnection:
    """Land the executions (``None``: its tasks were never fetched), load the lake, build the warehouse.
    ``listed_run``: the run whose listings these are (:func:`run_id_at` for one made at a given time)."""
    for listed, tasks in executions:
        if tasks is not None:
            land(data_dir, [tasks], listed)
    land_listing(data_dir, "executions", listed_run, [e for e, _ in executions], instance_id=IID)
    if instances is not None:
        land_listing(data_dir, "instances", listed_run, instances)
    if policies is not None:
        land_listing(data_dir, "policies", listed_run, policies, instance_id=IID)
    load_lake(data_dir, version="20261102T000001000Z-cccccc")
    pipeline.warehouse.warehouse.build(data_dir)
    db = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    db.execute("SET TimeZone = 'UTC'")
    return db


def run_id_at(moment: datetime) -> str:
    """A run id as swr-etl makes them, for a run at ``moment``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")[:-3] + "Z-dddddd"


def select(db: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    result = db.sql(sql)
    names = [c[0] for c in result.description]
    return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


# --- every view ----------------------------------------------------------------------------------------------


def test_every_view_file_states_its_question_grain_and_columns_and_selects_explicit_columns() -> None:
    views = {v.name: v for v in sql_views()}
    assert set(views) == VIEWS
    for view in views.values():
        text = (ROOT / "sql" / f"{view.name}.sql").read_text(encoding="utf-8")
        assert text.startswith("-- "), f"{view.name}: must open with a comment"
        assert "Grain:" in view.question and "Columns:" in view.question, view.name
        assert "?" in view.question, f"{view.name}: the opening comment asks the question"
        assert not re.search(r"select\s+\*", view.sql, re.IGNORECASE), f"{view.name}: explicit columns only"
        assert view.is_macro == (view.name in MACROS)


def test_every_view_runs_on_a_lake_without_tasks(tmp_path: Path, connections: list[Any]) -> None:
    land_listing(tmp_path, "executions", LISTED_RUN, [execution(1, total=2)], instance_id=IID)
    load_lake(tmp_path, version="20261102T000001000Z-cccccc")
    pipeline.warehouse.warehouse.build(tmp_path)
    db = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    connections.append(db)
    assert db.sql("SELECT count(*) FROM tasks").fetchall() == [(0,)]
    counts = {}
    for name in sorted(VIEWS):
        source = f"{name}()" if name in MACROS else name
        counts[name] = db.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    # the execution is listed, so it has a summary and a day of policy health; nothing else has rows
    assert counts == {name: 1 if name in ("execution_summary", "policy_health") else 0 for name in VIEWS}
    (summary,) = select(db, "SELECT tasks, success_rate, api_total, counters_disagree FROM execution_summary")
    assert summary == {"tasks": 0, "success_rate": None, "api_total": 2, "counters_disagree": True}


# --- execution_summary ---------------------------------------------------------------------------------------


def test_execution_summary(tmp_path: Path, connections: list[Any]) -> None:
    instance = {"id": IID, "name": "prod", "status": "Running", "spec": "swr.ee.basic", "version": "v2"}
    policy = {"id": 3, "name": "to-mirror", "trigger": {"type": "manual"}, "override": True, "enabled": True}
    # the API says 5 tasks: 3 succeeded, 1 failed, 1 stopped; we hold 2 succeeded, 1 failed, 2 still running
    disagreeing = execution(7, status="InProgress", total=5, succeed=3, failed=1, stopped=1, in_progress=0)
    agreeing = execution(8, total=2, succeed=2, trigger="scheduled")
    empty = execution(9)  # no task at all, and the API agrees
    unfetched = execution(10, policy_id=4, total=3, in_progress=3, status="InProgress")  # tasks never fetched
    db = build(
        tmp_path,
        [
            (
                disagreeing,
                [
                    t(1, 7, start="2026-11-01T08:00:00Z", end="2026-11-01T08:00:10Z"),
                    t(2, 7, start="2026-11-01T08:01:00Z", end="2026-11-01T08:02:00Z"),
                    t(3, 7, "Failed", start="2026-11-01T08:00:30Z", end="2026-11-01T08:05:00.5Z"),
                    t(4, 7, "InProgress", start="2026-11-01T08:03:00Z"),
                    t(5, 7, "Pending", start=""),
                ],
            ),
            (agreeing, [t(11, 8), t(12, 8)]),
            (empty, []),
            (unfetched, None),
        ],
        instances=[instance],
        policies=[policy],
    )
    connections.append(db)
    got = select(db, "SELECT * EXCLUDE (instance_id) FROM execution_summary ORDER BY execution_id")
    named = {"instance_name": "prod", "policy_id": 3, "policy_name": "to-mirror", "trigger": "manual"}
    nothing = {"first_start": None, "last_end": None, "wall_duration_s": None, "success_rate": None}
    zero = {"tasks": 0, "succeeded": 0, "failed": 0, "stopped": 0, "in_progress": 0}
    assert got == [
        {**named, "execution_id": 7, "status": "InProgress", "tasks": 5, "succeeded": 2, "failed": 1, "stopped": 0,
         "in_progress": 2, "success_rate": pytest.approx(2 / 3), "first_start": utc("2026-11-01T08:00:00Z"),
         "last_end": utc("2026-11-01T08:05:00.5Z"), "wall_duration_s": pytest.approx(300.5), "api_total": 5,
         "api_succeed": 3, "api_failed": 1, "api_stopped": 1, "api_in_progress": 0, "counters_disagree": True},
        {**named, "execution_id": 8, "status": "Succeed", "trigger": "scheduled", "tasks": 2, "succeeded": 2,
         "failed": 0, "stopped": 0, "in_progress": 0, "success_rate": 1.0, "first_start": utc("2026-11-01T08:00:00Z"),
         "last_end": utc("2026-11-01T08:00:10Z"), "wall_duration_s": pytest.approx(10.0), "api_total": 2,
         "api_succeed": 2, "api_failed": 0, "api_stopped": 0, "api_in_progress": 0, "counters_disagree": False},
        {**named, **zero, **nothing, "execution_id": 9, "status": "Succeed", "api_total": 0, "api_succeed": 0,
         "api_failed": 0, "api_stopped": 0, "api_in_progress": 0, "counters_disagree": False},
        {**named, **zero, **nothing, "execution_id": 10, "policy_id": 4, "policy_name": None, "status": "InProgress",
         "api_total": 3, "api_succeed": 0, "api_failed": 0, "api_stopped": 0, "api_in_progress": 3,
         "counters_disagree": True},
    ]  # fmt: skip


# --- policy_health -------------------------------------------------------------------------------------------


def test_policy_health(tmp_path: Path, connections: list[Any]) -> None:
    two_tags = [ARTS[0], ARTS[1]]  # D1 tagged 1.0 and latest, D2 untagged: 2 artifacts, 2 tags
    one_tag = [{"type": "IMAGE", "digest": D3, "tags": ["x"]}]

    def to(arts: list[dict[str, Any]]) -> dict[str, Any]:
        return resource("mirror/app", arts)

    def timed(task_id: int, eid: int, status: str, seconds: float, **extra: Any) -> dict[str, Any]:
        start = utc("2026-11-01T08:00:00Z")
        return t(task_id, eid, status, iso(start), iso(start + timedelta(seconds=seconds)), **extra)

    db = build(
        tmp_path,
        [
            (
                execution(11, "2026-11-01T01:00:00Z"),
                [
                    timed(1, 11, "Succeed", 10, dst=to(two_tags)),  # counts 2 artifacts, 2 tags
                    timed(2, 11, "Succeed", 20, dst=to(ARTS[:1])),  # counts 1 artifact, 2 tags
                    timed(3, 11, "Failed", 30, dst=to(two_tags)),  # failed: nothing replicated
                    timed(4, 11, "Succeed", 40, dst=to(two_tags), operation="deletion"),  # not a copy
                ],
            ),
            (
                # 04:00 on 2 November in +08:00 is still 1 November in UTC
                execution(12, "2026-11-02T04:00:00+08:00"),
                [timed(5, 12, "Succeed", 100, dst=to(one_tag)), t(6, 12, "InProgress", dst=to(one_tag))],
            ),
            (execution(13, "2026-11-02T00:30:00Z"), []),
            (execution(14, "2026-11-01T02:00:00Z", policy_id=5), [timed(7, 14, "Stopped", 5, dst=to(two_tags))]),
        ],
        policies=[{"id": 3, "name": "to-mirror"}],
    )
    connections.append(db)
    got = select(db, "SELECT * EXCLUDE (instance_id) FROM policy_health ORDER BY policy_id, day")
    assert got == [
        # durations 10, 20, 30, 40, 100: p50 30; p95 at position 0.95 * 4 = 3.8, 40 + 0.8 * (100 - 40) = 88
        {"policy_id": 3, "policy_name": "to-mirror", "day": date(2026, 11, 1), "executions": 2, "tasks": 6,
         "finished_tasks": 5, "task_success_rate": pytest.approx(4 / 5), "p50_duration_s": pytest.approx(30.0),
         "p95_duration_s": pytest.approx(88.0), "artifacts_replicated": 4, "tags_replicated": 5},
        {"policy_id": 3, "policy_name": "to-mirror", "day": date(2026, 11, 2), "executions": 1, "tasks": 0,
         "finished_tasks": 0, "task_success_rate": None, "p50_duration_s": None, "p95_duration_s": None,
         "artifacts_replicated": 0,
         "tags_replicated": 0},
        {"policy_id": 5, "policy_name": None, "day": date(2026, 11, 1), "executions": 1, "tasks": 1,
         "finished_tasks": 1, "task_success_rate": 0.0, "p50_duration_s": pytest.approx(5.0),
         "p95_duration_s": pytest.approx(5.0),
         "artifacts_replicated": 0, "tags_replicated": 0},
    ]  # fmt: skip


# --- repository_replication ----------------------------------------------------------------------------------


def test_repository_replication(tmp_path: Path, connections: list[Any]) -> None:
    def on(repo: str, dst: str = "mirror/a", arts: Any = ()) -> dict[str, Any]:
        return {"src": resource(repo, list(arts)), "dst": resource(dst, list(arts))}

    db = build(
        tmp_path,
        [
            (
                execution(21),
                [
                    # team/a: S, F, F (across two executions), then a task still running: 2 in a row
                    t(1, 21, "Succeed", "2026-11-01T08:00:00Z", **on("team/a", arts=ARTS)),
                    # team/b: F then S: 0
                    t(5, 21, "Failed", "2026-11-01T08:00:00Z", **on("team/b")),
                    t(6, 21, "Succeed", "2026-11-01T09:00:00Z", **on("team/b", arts=ARTS[:1])),
                    # team/d: same start time, the higher task id is the newer: S then F, 1 in a row
                    t(9, 21, "Succeed", "2026-11-01T08:00:00Z", **on("team/d")),
                    t(10, 21, "Failed", "2026-11-01T08:00:00Z", **on("team/d")),
                    # a failed copy carries tags that were not replicated
                    t(11, 21, "Failed", "2026-11-01T07:00:00Z", **on("team/e", arts=ARTS)),
                ],
            ),
            (
                execution(22),
                [
                    t(2, 22, "Failed", "2026-11-01T09:00:00Z", **on("team/a", dst="mirror/b")),
                    t(3, 22, "Stopped", "2026-11-01T10:00:00Z", **on("team/a")),
                    t(4, 22, "InProgress", "2026-11-01T11:00:00Z", **on("team/a", dst="mirror/c")),
                    # team/c: never succeeded; the stopped task has no end time
                    t(7, 22, "Failed", "2026-11-01T08:00:00Z", **on("team/c")),
                    t(8, 22, "Stopped", "2026-11-01T09:00:00Z", end="", **on("team/c")),
                ],
            ),
        ],
    )
    connections.append(db)
    got = select(db, "SELECT * EXCLUDE (instance_id) FROM repository_replication ORDER BY src_repository")
    assert got == [
        {"src_repository": "team/a", "last_success": utc("2026-11-01T08:00:10Z"),
         "last_failure": utc("2026-11-01T10:00:10Z"), "failures_in_a_row": 2, "tags_replicated": 2,
         "destinations": ["mirror/a", "mirror/b", "mirror/c"], "tasks": 4},
        {"src_repository": "team/b", "last_success": utc("2026-11-01T09:00:10Z"),
         "last_failure": utc("2026-11-01T08:00:10Z"), "failures_in_a_row": 0, "tags_replicated": 2,
         "destinations": ["mirror/a"], "tasks": 2},
        {"src_repository": "team/c", "last_success": None, "last_failure": utc("2026-11-01T09:00:00Z"),
         "failures_in_a_row": 2, "tags_replicated": 0, "destinations": ["mirror/a"], "tasks": 2},
        {"src_repository": "team/d", "last_success": utc("2026-11-01T08:00:10Z"),
         "last_failure": utc("2026-11-01T08:00:10Z"), "failures_in_a_row": 1, "tags_replicated": 0,
         "destinations": ["mirror/a"], "tasks": 2},
        {"src_repository": "team/e", "last_success": None, "last_failure": utc("2026-11-01T07:00:10Z"),
         "failures_in_a_row": 1, "tags_replicated": 0, "destinations": ["mirror/a"], "tasks": 1},
    ]  # fmt: skip


# --- failures ------------------------------------------------------------------------------------------------


def test_failures_newest_first_with_sorted_distinct_digests_and_tags(tmp_path: Path, connections: list[Any]) -> None:
    arts = [
        {"type": "IMAGE", "digest": D2, "tags": ["v2", "latest"]},
        {"type": "IMAGE", "digest": D1, "tags": ["v1", "latest"]},
        {"type": "IMAGE", "digest": D2, "tags": ["v2"]},
    ]
    db = build(
        tmp_path,
        [
            (
                execution(31),
                [
                    t(1, 31, "Failed", "2026-11-01T08:00:00Z", src=resource("team/a", arts)),
                    t(2, 31, "Stopped", "2026-11-01T09:00:00Z", src=resource("team/b", []), operation="deletion"),
                    t(3, 31, "Succeed", "2026-11-01T10:00:00Z", src=resource("team/a", arts)),
                    t(4, 31, "InProgress", "2026-11-01T10:00:00Z", src=resource("team/a", arts)),
                ],
            ),
            # the newest failure's source resource could not be read: no repository, no digests
            (execution(32, "2026-11-02T00:00:00Z"), [t(5, 32, "Failed", "2026-11-02T08:00:00Z", src="{oops")]),
        ],
    )
    connections.append(db)
    got = select(db, "SELECT * EXCLUDE (instance_id, policy_id) FROM failures")
    assert got == [
        {"execution_id": 32, "task_id": 5, "status": "Failed", "operation": "copy", "src_repository": None,
         "dst_repository": "mirror/app", "digests": [], "tags": [], "start_time": utc("2026-11-02T08:00:00Z"),
         "end_time": utc("2026-11-02T08:00:10Z")},
        {"execution_id": 31, "task_id": 2, "status": "Stopped", "operation": "deletion", "src_repository": "team/b",
         "dst_repository": "mirror/app", "digests": [], "tags": [], "start_time": utc("2026-11-01T09:00:00Z"),
         "end_time": utc("2026-11-01T09:00:10Z")},
        {"execution_id": 31, "task_id": 1, "status": "Failed", "operation": "copy", "src_repository": "team/a",
         "dst_repository": "mirror/app", "digests": [D1, D2], "tags": ["latest", "v1", "v2"],
         "start_time": utc("2026-11-01T08:00:00Z"), "end_time": utc("2026-11-01T08:00:10Z")},
    ]  # fmt: skip
    assert {r[0] for r in db.sql("SELECT DISTINCT instance_id FROM failures").fetchall()} == {IID}


# --- tag_drift -----------------------------------------------------------------------------------------------


def test_tag_drift_missing_and_moved(tmp_path: Path, connections: list[Any]) -> None:
    before = [{"type": "IMAGE", "digest": D1, "tags": ["1.0", "latest"]}, {"type": "IMAGE", "digest": D2, "tags": None}]
    after = [{"type": "IMAGE", "digest": D3, "tags": ["latest"]}, {"type": "IMAGE", "digest": D1, "tags": ["1.0"]}]
    lost = [{"type": "IMAGE", "digest": D1, "tags": ["1.0"]}]

    def rc(digest: str) -> list[dict[str, Any]]:
        return [{"type": "IMAGE", "digest": digest, "tags": ["rc"]}]

    first, second = "2026-11-01T08:00:00Z", "2026-11-02T08:00:00Z"
    db = build(
        tmp_path,
        [
            (
                execution(41),
                [
                    # the destination lacks tag latest of D1 and the untagged D2
                    t(1, 41, src=resource("team/app", before), dst=resource("mirror/app", lost), start=first),
                    # the destination could not be read: nothing can be said to be missing
                    t(2, 41, src=resource("team/other", before), dst="not json", start=first),
                    # a deletion is not a copy: nothing missing
                    t(3, 41, src=resource("team/gone", before), operation="deletion", start=first),
                ],
            ),
            (
                execution(42, "2026-11-02T00:00:00Z"),
                [
                    # latest now points at D3 (it moved), 1.0 still at D1; the destination has everything
                    t(4, 42, src=resource("team/app", after), dst=resource("mirror/app", after), start=second),
                    # rc changes digest inside one execution, first listed here: not a move between executions
                    t(5, 42, src=resource("team/app", rc(D2)), dst=resource("mirror/app", rc(D2)), start=second),
                    t(6, 42, src=resource("team/app", rc(D3)), dst=resource("mirror/app", rc(D3)), start=second),
                ],
            ),
            (
                # rc stays where execution 42 left it (D3), latest too: nothing moved
                execution(43, "2026-11-03T00:00:00Z"),
                [t(7, 43, src=resource("team/app", rc(D3) + after[:1]), dst=resource("mirror/app", rc(D3) + after[:1]),
                   start="2026-11-03T08:00:00Z")],
            ),
        ],
    )  # fmt: skip
    connections.append(db)
    got = select(db, "SELECT * EXCLUDE (instance_id) FROM tag_drift ORDER BY kind, execution_id, tag NULLS LAST")
    assert got == [
        {"kind": "missing", "src_repository": "team/app", "dst_repository": "mirror/app", "tag": "latest",
         "digest": D1, "previous_digest": None, "execution_id": 41, "task_id": 1, "seen_at": utc(first)},
        {"kind": "missing", "src_repository": "team/app", "dst_repository": "mirror/app", "tag": None,
         "digest": D2, "previous_digest": None, "execution_id": 41, "task_id": 1, "seen_at": utc(first)},
        {"kind": "moved", "src_repository": "team/app", "dst_repository": None, "tag": "latest", "digest": D3,
         "previous_digest": D1, "execution_id": 42, "task_id": 4, "seen_at": utc(second)},
    ]  # fmt: skip


# --- stuck_tasks ---------------------------------------------------------------------------------------------


def test_stuck_tasks_with_the_default_threshold_and_another(tmp_path: Path, connections: list[Any]) -> None:
    now = datetime.now(UTC)
    ten_hours_ago, an_hour_ago = iso(now - timedelta(hours=10)), iso(now - timedelta(hours=1))
    db = build(
        tmp_path,
        [
            (
                execution(51, iso(now - timedelta(hours=11)), status="InProgress"),
                [
                    t(1, 51, "InProgress", ten_hours_ago, src=resource("team/slow", [])),
                    t(2, 51, "Pending", an_hour_ago),
                    t(3, 51, "Succeed", ten_hours_ago),  # finished: never stuck
                    t(4, 51, "Initialized", ""),  # no start time: cannot tell
                ],
            )
        ],
    )
    connections.append(db)
    (stuck,) = select(db, "SELECT * FROM stuck_tasks")  # the view: 6 hours
    assert {k: v for k, v in stuck.items() if k not in ("running_for", "running_hours")} == {
        "instance_id": IID,
        "execution_id": 51,
        "task_id": 1,
        "status": "InProgress",
        "src_repository": "team/slow",
        "start_time": utc(ten_hours_ago),
    }
    assert stuck["running_hours"] == pytest.approx(10, abs=0.05)
    assert stuck["running_for"] == pytest.approx(timedelta(hours=10), abs=timedelta(minutes=3))
    assert select(db, "SELECT * EXCLUDE (running_for, running_hours) FROM stuck_tasks_over()") == [
        {k: v for k, v in stuck.items() if k not in ("running_for", "running_hours")}
    ]  # the macro's default is the view's threshold
    shorter = db.sql("SELECT task_id, status FROM stuck_tasks_over(threshold := INTERVAL 30 MINUTE)").fetchall()
    assert shorter == [(1, "InProgress"), (2, "Pending")]  # longest running first
    assert db.sql("SELECT count(*) FROM stuck_tasks_over(threshold := INTERVAL 11 HOUR)").fetchall() == [(0,)]


# --- daily_throughput ----------------------------------------------------------------------------------------


def test_daily_throughput_counts_source_side_rows_per_utc_day(tmp_path: Path, connections: list[Any]) -> None:
    mirror = resource("mirror/app", ARTS)  # destination rows are not counted
    db = build(
        tmp_path,
        [
            (
                execution(61),
                [
                    t(1, 61, "Succeed", "2026-11-01T08:00:00Z", src=resource("a", ARTS), dst=mirror),  # 2, 2
                    t(2, 61, "Succeed", "2026-11-01T09:00:00Z", src=resource("a", ARTS[:1]), dst=mirror),  # 1, 2
                    t(3, 61, "Failed", "2026-11-01T10:00:00Z", src=resource("a", []), dst=mirror),  # 0, 0
                    # 00:30 on 2 November in +08:00 is 16:30 on 1 November in UTC
                    t(4, 61, "Succeed", "2026-11-02T00:30:00+08:00", src=resource("a", ARTS[1:]), dst=mirror),
                ],
            ),
            (
                execution(62, "2026-11-02T00:00:00Z"),
                [
                    t(5, 62, "Succeed", "2026-11-02T01:00:00Z", src=resource("a", ARTS), dst=mirror),  # 2, 2
                    t(6, 62, "Succeed", "2026-11-02T02:00:00Z", src=resource("a", ARTS[1:]), operation="deletion"),
                    t(7, 62, "Failed", "2026-11-02T03:00:00Z", src="{bad", dst=mirror),  # rejected: 0, 0
                ],
            ),
        ],
    )
    connections.append(db)
    got = db.sql("SELECT day, operation, status, tasks, artifacts, tags FROM daily_throughput ORDER BY ALL")
    nov1, nov2 = date(2026, 11, 1), date(2026, 11, 2)
    assert got.fetchall() == [
        (nov1, "copy", "Failed", 1, 0, 0),
        (nov1, "copy", "Succeed", 3, 4, 4),
        (nov2, "copy", "Failed", 1, 0, 0),
        (nov2, "copy", "Succeed", 1, 2, 2),
        (nov2, "deletion", "Succeed", 1, 1, 0),
    ]


# --- repository_failures -------------------------------------------------------------------------------------


def test_repository_failures(tmp_path: Path, connections: list[Any]) -> None:
    def on(repo: str) -> dict[str, Any]:
        return {"src": resource(repo, []), "dst": resource("mirror/x", [])}

    db = build(
        tmp_path,
        [
            (
                execution(21),
                [
                    t(1, 21, "Succeed", "2026-11-01T01:00:00Z", **on("team/a")),
                    t(2, 21, "Failed", "2026-11-01T02:00:00Z", **on("team/a")),
                    t(3, 21, "Stopped", "2026-11-01T03:00:00Z", **on("team/a")),
                    t(4, 21, "InProgress", "2026-11-01T04:00:00Z", **on("team/a")),  # not finished: not counted
                    t(5, 21, "Succeed", "2026-11-01T05:00:00Z", **on("team/b")),
                ],
            )
        ],
    )
    connections.append(db)
    got = select(db, "SELECT * EXCLUDE (instance_id) FROM repository_failures ORDER BY src_repository")
    assert got == [
        {"src_repository": "team/a", "tasks": 4, "failed": 1, "stopped": 1, "failure_rate": pytest.approx(2 / 3),
         "last_failure": utc("2026-11-01T03:00:00Z"), "finished": 3},
        {"src_repository": "team/b", "tasks": 1, "failed": 0, "stopped": 0, "failure_rate": 0.0,
         "last_failure": None, "finished": 1},
    ]  # fmt: skip


def test_a_view_that_does_not_run_is_named_not_the_macro_that_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.warehouse.warehouse import SqlView

    land_listing(tmp_path, "executions", LISTED_RUN, [execution(1)], instance_id=IID)
    load_lake(tmp_path, version="20261102T000001000Z-cccccc")
    reads_b = SqlView("a_over", "CREATE MACRO a_over() AS TABLE SELECT x FROM b_view", "?")
    broken = SqlView("b_view", "SELECT x FROM no_such_table", "?")
    monkeypatch.setattr(pipeline.warehouse.warehouse, "sql_views", lambda: [reads_b, broken])
    with pytest.raises(
        pipeline.warehouse.warehouse.WarehouseError, match=r"sql/b_view\.sql does not run.*no_such_table"
    ):
        pipeline.warehouse.warehouse.build(tmp_path)

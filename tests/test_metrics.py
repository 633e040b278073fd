"""The Prometheus metrics: the health families on the hand-built world of test_alerts (answers worked out by hand,
and the same as swr-etl check's), the ETL family of a run, where they are written, and what is never a label.

The real promtool, node_exporter and Prometheus read them in tests/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pytest
from conftest import ROOT, clean_env, run_cli, sandbox_env
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from test_alerts import POLICIES, WORLD, ago
from test_views import build, select

import pipeline
from pipeline.errors import ConfigError
from pipeline.report import metrics
from pipeline.report.metrics_run import RunFigures, RunWatch, etl_families, load_state, record
from pipeline.sandbox import SandboxConfig, SandboxServer

RULES = ROOT / "docs" / "monitoring" / "alert-rules.yml"
DASHBOARD = ROOT / "docs" / "monitoring" / "grafana-dashboard.json"
LABELS = {"instance_id", "policy_id", "policy_name", "trigger", "enabled", "dest_registry", "status", "stage", "state"}
LABELS |= {"kind", "version", "dest_registry_id"}
METRIC_NAME = re.compile(r"\bswr_[a-z0-9_]+\b")


def by_name(families: list[Metric]) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every family's series: name -> {labels (sorted pairs) -> value}."""
    return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples} for f in families}


def per_policy(series: dict[tuple[tuple[str, str], ...], float], **fixed: str) -> dict[int, float]:
    """policy_id -> value of the series whose other labels are ``fixed``."""
    out = {}
    for labels, value in series.items():
        named = dict(labels)
        if all(named.get(k) == v for k, v in fixed.items()):
            out[int(named["policy_id"])] = value
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("world")
    build(data_dir, WORLD, policies=POLICIES).close()
    yield data_dir


def settings(data_dir: Path, **values: Any) -> pipeline.Settings:
    return pipeline.settings(data_dir=data_dir, need_api=False, **values)


def figures(exit_status: int = 0, *, rejects: dict[str, int] | None = None) -> RunFigures:
    watch = RunWatch("20261101T000000000Z-aaaaaa", clock=iter([100.0, 160.0]).__next__)
    extract = {"elapsed_s": 20.5, "requests": 40, "retries": 3, "throttled": 2, "pages": 12, "tasks": 1100}
    extract |= {"subtasks": 7, "executions_complete": 4, "executions_failed": 1}
    watch.summary("extract", extract)
    watch.summary("load", {"elapsed_s": 30.0, "tasks": 1000, "executions_loaded": 4, "rejects": rejects or {}})
    return watch.figures(exit_status, None)


# --- the replication's health -----------------------------------------------------------------------------------


def test_the_health_of_the_hand_built_world(world: Path) -> None:
    families, problem = metrics.read_health(settings(world))
    assert problem is None
    found = by_name(families)
    assert found["swr_warehouse_up"] == {(): 1.0}
    assert [f.name for f in families[1:]] == [h.name for h in metrics.HEALTH]

    info = {int(dict(k)["policy_id"]): dict(k) for k in found["swr_policy_info"]}
    assert sorted(info) == [1, 2, 3, 4, 5]
    assert info[3]["enabled"] == "false" and info[1]["enabled"] == "true"
    assert info[4]["trigger"] == "manual" and info[1]["trigger"] == "scheduled"
    assert info[2]["policy_name"] == "broken" and info[2]["instance_id"] == "inst-1"
    assert info[2]["dest_registry"] == "1"  # no registry listed: its id

    status = found["swr_policy_last_execution_status"]
    # the newest by start: policy 5's is execution 49 (5 hours ago), not the running 50 (9 hours ago)
    assert per_policy(status, status="Succeed") == {1: 1, 2: 0, 3: 0, 4: 0, 5: 1}
    assert per_policy(status, status="Failed") == {1: 0, 2: 1, 3: 1, 4: 1, 5: 0}
    assert per_policy(status, status="InProgress") == {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}
    started = per_policy(found["swr_policy_last_execution_timestamp_seconds"])
    assert started[2] == pytest.approx(datetime.fromisoformat(ago(1)).timestamp(), abs=0.01)
    assert started[5] == pytest.approx(datetime.fromisoformat(ago(5)).timestamp(), abs=0.01)
    succeeded = per_policy(found["swr_policy_last_success_timestamp_seconds"])
    assert sorted(succeeded) == [1, 2, 5]  # 3 and 4 never succeeded
    assert succeeded[2] == pytest.approx(datetime.fromisoformat(ago(72 - 0.1)).timestamp(), abs=0.01)

    # judged as swr-etl check judges: enabled policies, runs not started by hand, the newest finished one
    assert per_policy(found["swr_policy_last_execution_task_success_ratio"]) == {1: 1.0, 2: 0.5, 5: 1.0}
    assert per_policy(found["swr_policy_last_execution_failed_tasks"]) == {1: 0, 2: 1, 5: 0}
    assert per_policy(found["swr_policy_stuck_tasks"]) == {1: 0, 2: 0, 4: 0, 5: 1}
    assert per_policy(found["swr_policy_missing_tags"]) == {1: 0, 2: 1, 4: 0, 5: 0}

    # tasks that started in the last 24 hours (execution 10's, 26 hours ago, and 20's are older)
    tasks = found["swr_policy_tasks_24h"]
    assert per_policy(tasks, status="Succeed") == {1: 1, 2: 1, 5: 1}
    assert per_policy(tasks, status="Failed") == {2: 1, 3: 1, 4: 1, 5: 1}
    assert per_policy(tasks, status="InProgress") == {5: 1}
    assert per_policy(found["swr_policy_task_success_ratio_24h"]) == {1: 1.0, 2: 0.5, 3: 0.0, 4: 0.0, 5: 0.5}


def test_the_health_alerts_where_swr_etl_check_does(world: Path, connections: list[Any]) -> None:
    """The rules' thresholds are check's defaults: the policies over them are the ones the alerts view names."""
    found = by_name(metrics.read_health(settings(world))[0])
    db = duckdb.connect(str(world / "warehouse.duckdb"), read_only=True)
    connections.append(db)
    alerts = {(r["kind"], r["policy_id"]) for r in select(db, "SELECT kind, policy_id FROM alerts")}
    ratio = per_policy(found["swr_policy_last_execution_task_success_ratio"])
    assert {p for p, v in ratio.items() if v < 0.9} == {p for k, p in alerts if k == "failing"}
    stuck = per_policy(found["swr_policy_stuck_tasks"])
    assert {p for p, v in stuck.items() if v > 0} == {p for k, p in alerts if k == "stuck"}
    missing = per_policy(found["swr_policy_missing_tags"])
    assert {p for p, v in missing.items() if v > 0} == {p for k, p in alerts if k == "missing_tags"}


def test_stuck_follows_the_stuck_hours_setting(world: Path) -> None:
    found = by_name(metrics.read_health(settings(world, stuck_hours=9))[0])
    assert per_policy(found["swr_policy_stuck_tasks"])[5] == 0  # its task started 8 hours ago


def test_no_label_is_a_repository_a_tag_or_a_digest(world: Path) -> None:
    families = [*etl_families(figures(rejects={"task": 2})), *metrics.read_health(settings(world))[0]]
    names = {label for f in families for s in f.samples for label in s.labels}
    assert names <= LABELS, names - LABELS
    assert not names & {"instance", "job", "repository", "tag", "digest"}
    values = {value for f in families for s in f.samples for value in s.labels.values()}
    for forbidden in ("team/app", "mirror/app", "1.0", "2.0"):
        assert forbidden not in values
    assert not any(value.startswith("sha256:") for value in values)
    assert all(f.name.startswith("swr_") for f in families)


def test_no_warehouse_is_swr_warehouse_up_0(tmp_path: Path) -> None:
    families, problem = metrics.read_health(settings(tmp_path))
    assert by_name(families) == {"swr_warehouse_up": {(): 0.0}}
    assert problem is not None and "no lake" in str(problem)


# --- the ETL's own ----------------------------------------------------------------------------------------------


def test_the_etl_family_of_a_run() -> None:
    found = by_name(etl_families(figures(rejects={"task": 2, "listing": 1})))
    assert found["swr_etl_build_info"] == {(("version", pipeline.__version__),): 1.0}
    assert found["swr_etl_last_run_timestamp_seconds"] == {(): 160.0}
    assert found["swr_etl_last_success_timestamp_seconds"] == {(): 160.0}
    assert found["swr_etl_last_run_exit_status"] == {(): 0.0}
    assert found["swr_etl_last_run_duration_seconds"] == {
        (("stage", "extract"),): 20.5,
        (("stage", "load"),): 30.0,
        (("stage", "run"),): 60.0,
    }
    assert found["swr_etl_last_run_requests"] == {(): 40.0}
    assert found["swr_etl_last_run_retries"] == {(): 3.0}
    assert found["swr_etl_last_run_throttled_requests"] == {(): 2.0}
    assert found["swr_etl_last_run_pages"] == {(): 12.0}
    assert found["swr_etl_last_run_tasks"] == {(("stage", "extract"),): 1100.0, (("stage", "load"),): 1000.0}
    assert found["swr_etl_last_run_executions"][(("state", "failed"),)] == 1.0
    assert found["swr_etl_last_run_rejects"] == {(("kind", "listing"),): 1.0, (("kind", "task"),): 2.0}
    assert found["swr_etl_last_run_rejected_records"] == {(): 3.0}


def test_the_last_success_advances_only_on_a_successful_run(tmp_path: Path) -> None:
    clock = iter([0.0, 10.0, 20.0, 30.0, 40.0, 50.0]).__next__

    def ends(exit_status: int) -> RunFigures:
        return record(tmp_path, RunWatch("r", clock=clock), exit_status)

    failed = ends(1)  # no success yet: no series at all
    assert failed.last_success_at is None
    assert "swr_etl_last_success_timestamp_seconds" not in by_name(etl_families(failed))
    assert ends(0).last_success_at == 30.0
    after = ends(3)  # rejects with --strict is not a success either
    assert (after.last_success_at, after.finished_at, after.exit_status) == (30.0, 50.0, 3)
    assert load_state(tmp_path) == after
    found = by_name(etl_families(load_state(tmp_path)))
    assert found["swr_etl_last_success_timestamp_seconds"] == {(): 30.0}
    assert found["swr_etl_last_run_timestamp_seconds"] == {(): 50.0}
    assert "swr_etl_last_run_requests" not in found  # no stage reported: no figure is made up


def test_an_unreadable_record_is_no_record(tmp_path: Path) -> None:
    (tmp_path / "etl-metrics.json").write_text("{not json")
    assert load_state(tmp_path) is None
    assert [f.name for f in etl_families(None)] == ["swr_etl_build_info"]


# --- where they go -------------------------------------------------------------------------------------------


def test_swr_etl_metrics_writes_the_file_and_keeps_the_last_runs_figures(world: Path, tmp_path: Path) -> None:
    record(world, RunWatch("r", clock=iter([0.0, 5.0]).__next__), 0)
    target = tmp_path / "textfile" / "swr-etl.prom"  # its folder is made
    env = clean_env(SWR_ETL_DATA_DIR=str(world), SWR_ETL_METRICS_FILE=str(target))
    result = run_cli(["metrics"], env)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"metrics: \d+ series written to {re.escape(str(target))}\n", result.stdout)
    written = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert written["swr_etl_last_success_timestamp_seconds"].samples[0].value == 5.0
    assert {h.name for h in metrics.HEALTH} <= set(written)
    assert [p.name for p in target.parent.iterdir()] == ["swr-etl.prom"]  # no temporary file left

    printed = run_cli(["metrics", "--data-dir", str(world)], clean_env())  # nowhere to write: stdout
    assert printed.returncode == 0, printed.stderr
    assert "swr_policy_missing_tags{" in printed.stdout


def test_swr_etl_metrics_without_a_lake_writes_warehouse_up_0_and_exits_1(tmp_path: Path) -> None:
    target = tmp_path / "swr-etl.prom"
    result = run_cli(["metrics", "--data-dir", str(tmp_path / "data"), "--metrics-file", str(target)], clean_env())
    assert result.returncode == 1
    assert result.stderr.startswith("error: no lake at ")
    written = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert written["swr_warehouse_up"].samples[0].value == 0.0


def test_a_run_writes_them_whatever_its_outcome_and_a_failed_write_leaves_its_exit_status(tmp_path: Path) -> None:
    target = tmp_path / "swr-etl.prom"

    def written() -> dict[str, float]:
        return {f.name: f.samples[0].value for f in text_string_to_metric_families(target.read_text()) if f.samples}

    with SandboxServer(SandboxConfig(seed=7, scale=0.2)) as sandbox:
        env = sandbox_env(sandbox, tmp_path / "data", SWR_ETL_METRICS_FILE=str(target))
        ok = run_cli(["run", "-q"], env)
        assert ok.returncode == 0, ok.stderr
        first = written()
        assert first["swr_etl_last_run_exit_status"] == 0 and first["swr_warehouse_up"] == 1
        assert first["swr_etl_last_success_timestamp_seconds"] == first["swr_etl_last_run_timestamp_seconds"]

        refused = run_cli(["run", "-q"], {**env, "SWR_AUTH_TOKEN": "not-the-token"})
        assert refused.returncode == 1 and refused.stderr.startswith("error: HTTP 401 "), refused.stderr
        then = written()
        assert then["swr_etl_last_run_exit_status"] == 1
        assert then["swr_etl_last_run_timestamp_seconds"] > first["swr_etl_last_run_timestamp_seconds"]
        assert then["swr_etl_last_success_timestamp_seconds"] == first["swr_etl_last_success_timestamp_seconds"]
        assert then["swr_etl_last_run_requests"] == 1 and then["swr_warehouse_up"] == 1  # the lake is still there

        blocker = tmp_path / "a-file"
        blocker.write_text("")
        unwritable = run_cli(["run", "-q", "--metrics-file", str(blocker / "swr-etl.prom")], env)
    assert unwritable.returncode == 0, unwritable.stderr  # the run's own outcome
    (line,) = unwritable.stderr.splitlines()
    assert (
        f"ERROR   pipeline.report.metrics: metrics: could not write the metrics to {blocker / 'swr-etl.prom'}" in line
    )
    assert line.endswith("(the run's exit status is unchanged)")
    assert load_state(tmp_path / "data").exit_status == 0  # kept for swr-etl metrics all the same


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"metrics_file": "/tmp/swr.txt"}, "must end in .prom"),
        ({"pushgateway": "ftp://gateway:9091"}, "is not an http(s) URL"),
        ({"pushgateway": "http://user:secret-word@gateway:9091"}, "a URL with credentials is not supported"),
    ],
)
def test_bad_metrics_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        pipeline.settings(need_api=False, **values)
    assert "secret-word" not in str(caught.value)


def test_the_settings_come_from_flag_environment_and_config_file(tmp_path: Path) -> None:
    from pipeline.config import resolve_settings

    config = tmp_path / "swr-etl.toml"
    config.write_text('metrics-file = "/from/file.prom"\npushgateway = "http://file:9091"\n')
    env = {"SWR_ETL_METRICS_FILE": "/from/env.prom"}
    got = resolve_settings({}, env, config, need_api=False)
    assert (got.metrics_file, got.pushgateway) == (Path("/from/env.prom"), "http://file:9091")
    got = resolve_settings({"metrics_file": Path("/from/flag.prom")}, env, config, need_api=False)
    assert got.metrics_file == Path("/from/flag.prom")


class _Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_metrics_are_pushed_with_pushadd_in_a_group_of_their_own(world: Path, tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        chosen = settings(world, pushgateway=url, metrics_file=tmp_path / "swr.prom")
        families = [*etl_families(figures()), *metrics.read_health(chosen)[0]]
        assert metrics.publish(chosen, families) == [str(tmp_path / "swr.prom"), url]
    finally:
        server.shutdown()
    ((method, path, body),) = _Gateway.received
    assert method == "POST"  # pushadd: the group keeps the metrics this push does not name
    assert path.startswith("/metrics/job/swr-etl/") and "/data_dir@base64/" in path and "/instance/" in path
    assert b"swr_policy_missing_tags{" in body and b"swr_etl_last_run_requests 40.0" in body


def test_a_destination_that_fails_is_named_after_trying_the_other(world: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    chosen = settings(world, metrics_file=blocker / "swr.prom", pushgateway="http://127.0.0.1:9")
    with pytest.raises(pipeline.errors.RunError) as caught:
        metrics.publish(chosen, etl_families(None))
    assert str(caught.value).startswith(f"could not write the metrics to {blocker / 'swr.prom'}: ")
    assert "could not push the metrics to http://127.0.0.1:9: " in str(caught.value)


# --- the rules and the dashboard -------------------------------------------------------------------------------


def written_names(world: Path) -> set[str]:
    families = [*etl_families(figures(rejects={"task": 1})), *metrics.read_health(settings(world))[0]]
    return {f.name for f in families}


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    return [t["expr"] for p in panels for t in p["targets"]]


def test_every_query_of_the_dashboard_names_a_metric_written(world: Path) -> None:
    known = written_names(world)
    queries = dashboard_queries()
    for expr in queries:
        named = set(METRIC_NAME.findall(expr))
        assert named, f"{expr!r} reads no swr_ metric"
        assert named <= known, f"{expr!r} reads {named - known}, which nothing writes"
    board = json.loads(DASHBOARD.read_text())
    for variable in board["templating"]["list"]:
        assert set(METRIC_NAME.findall(variable["definition"])) <= known


def test_every_rule_reads_a_metric_written(world: Path) -> None:
    known = written_names(world)
    exprs = re.findall(r"^\s+expr: (.+)$", RULES.read_text(), re.MULTILINE)
    assert len(exprs) == 7
    for expr in exprs:
        assert set(METRIC_NAME.findall(expr)) <= known, expr


def test_silent_schedules_and_the_last_success_of_each_destination_registry(tmp_path: Path) -> None:
    """On the world of tests/test_silent_schedules.py, whose answers are worked out there by hand."""
    import test_silent_schedules as silent

    build(tmp_path, silent.WORLD, policies=silent.POLICIES, listed_run=silent.LISTED).close()
    families, problem = metrics.read_health(settings(tmp_path))
    assert problem is None
    found = by_name(families)
    # policy 6: its cron does not read, no series
    assert per_policy(found["swr_policy_silent_schedule"]) == {1: 0, 2: 1, 5: 0, 7: 1, 8: 1, 9: 1}
    assert per_policy(found["swr_policy_missed_runs"]) == {1: 0, 2: 4, 5: 1, 7: 3, 8: 3, 9: silent.LONG_GONE}
    (registry,) = found["swr_registry_last_success_timestamp_seconds"].items()
    newest = max(silent.HOUR_FIRE, silent.NOW - timedelta(hours=1))  # execution 11, or 71 (manual): any trigger
    assert dict(registry[0]) == {"instance_id": "inst-1", "dest_registry_id": "1", "dest_registry": "1"}
    assert registry[1] == pytest.approx((newest + timedelta(minutes=5)).timestamp(), abs=0.01)  # its updated_at

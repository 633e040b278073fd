"""The metrics as Prometheus reads them: promtool checks the file and the rules, node_exporter's textfile
collector serves the file, Prometheus scrapes it and evaluates docs/monitoring/alert-rules.yml, and its HTTP API
answers with the values the warehouse holds, the alerts firing for the sandbox world's failing policies, and a
result for every query of the Grafana dashboard.

Needs Debian's ``prometheus`` (with ``promtool``) and ``prometheus-node-exporter``, which .ci/run installs; each
runs from here on a free loopback port with its folders under the test's own, and is stopped by its process.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import ROOT, run_cli, sandbox_env
from test_metrics import LABELS, METRIC_NAME

from pipeline.sandbox import SandboxConfig, SandboxServer

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
RULES = ROOT / "docs" / "monitoring" / "alert-rules.yml"
DASHBOARD = ROOT / "docs" / "monitoring" / "grafana-dashboard.json"

pytestmark = pytest.mark.skipif(
    not (PROMTOOL and PROMETHEUS and NODE_EXPORTER),
    reason="needs promtool, prometheus and node_exporter: Debian's prometheus and prometheus-node-exporter "
    "packages, which .ci/run installs",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server of ours, its output in ``log``; stopped (by its own process) when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        payload = json.loads(answer.read())
    assert payload["status"] == "success", payload
    return payload["data"]


def query(base: str, expr: str) -> dict[tuple[str, int], float]:
    """An instant query's vector, by (instance_id, policy_id) when the series have them."""
    out = {}
    for item in api(base, "/api/v1/query", query=expr)["result"]:
        labels = item["metric"]
        key = (labels.get("instance_id", ""), int(labels.get("policy_id", -1)))
        out[key] = float(item["value"][1])
    return out


def wait_for(what: str, found: Callable[[], Any], log: Path, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = found()
        except OSError:  # not listening yet
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s; the server said:\n{log.read_text()[-3000:]}")


def test_prometheus_scrapes_the_metrics_and_fires_the_alerts(tmp_path: Path) -> None:
    textfiles, data_dir = tmp_path / "textfile", tmp_path / "data"
    metrics_file = textfiles / "swr-etl.prom"
    with SandboxServer(SandboxConfig(seed=7, scale=0.2)) as sandbox:
        result = run_cli(["run", "-q", "--metrics-file", str(metrics_file)], sandbox_env(sandbox, data_dir))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    assert PROMTOOL is not None and PROMETHEUS is not None and NODE_EXPORTER is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=metrics_file.read_bytes(), capture_output=True, timeout=60, check=False
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b""), checked
    rules = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, timeout=60, check=False)
    assert rules.returncode == 0 and b"SUCCESS: 7 rules found" in rules.stdout, rules

    # the answers, from the warehouse: what swr-etl check pages on, with the thresholds the rules use
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        rows = db.sql("SELECT kind, instance_id, policy_id, value FROM alerts").fetchall()
        loaded = db.sql("SELECT count(*) FROM tasks").fetchall()[0][0]
    alerts: dict[str, dict[tuple[str, int], float]] = {}
    for kind, instance_id, policy_id, value in rows:
        alerts.setdefault(kind, {})[(instance_id, policy_id)] = value
    assert alerts["failing"] and alerts["stuck"] and alerts["missing_tags"]  # a world with failures

    exporter_port, prometheus_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n  - job_name: node\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    exporter_log, prometheus_log = tmp_path / "node_exporter.log", tmp_path / "prometheus.log"
    exporter = [
        NODE_EXPORTER,
        f"--web.listen-address=127.0.0.1:{exporter_port}",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfiles}",
    ]
    prometheus = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    base = f"http://127.0.0.1:{prometheus_port}"
    with serving(exporter, exporter_log), serving(prometheus, prometheus_log):
        wait_for("a scrape", lambda: query(base, "swr_etl_last_run_exit_status"), prometheus_log)

        # the ETL's own
        assert query(base, "swr_etl_last_run_exit_status") == {("", -1): 0.0}
        assert query(base, "swr_warehouse_up") == {("", -1): 1.0}
        assert query(base, 'swr_etl_last_run_tasks{stage="load"}') == {("", -1): loaded}
        (success,) = query(base, "time() - swr_etl_last_success_timestamp_seconds").values()
        assert 0 <= success < 300

        # the replication: the policies over the rules' thresholds are those the alerts view names
        ratios = query(base, "swr_policy_last_execution_task_success_ratio < 0.9")
        assert set(ratios) == set(alerts["failing"])
        for key, ratio in ratios.items():
            assert ratio == pytest.approx(1 - alerts["failing"][key])
        assert query(base, "swr_policy_stuck_tasks > 0") == alerts["stuck"]
        assert query(base, "swr_policy_missing_tags > 0") == alerts["missing_tags"]

        # labels: the SWR instance is instance_id, and Prometheus' own instance and job are left alone
        series = api(base, "/api/v1/series", **{"match[]": '{__name__=~"swr_.+"}'})
        names = {label for s in series for label in s}
        assert names <= LABELS | {"__name__", "instance", "job"}, names
        assert {"instance_id", "policy_id", "policy_name", "dest_registry", "status", "stage"} <= names
        assert {s["instance"] for s in series} == {f"127.0.0.1:{exporter_port}"}

        def firing() -> dict[str, set[tuple[str, int]]] | None:
            found: dict[str, set[tuple[str, int]]] = {}
            for alert in api(base, "/api/v1/alerts")["alerts"]:
                if alert["state"] == "firing":
                    labels = alert["labels"]
                    key = (labels.get("instance_id", ""), int(labels.get("policy_id", -1)))
                    found.setdefault(labels["alertname"], set()).add(key)
            return found if "SwrPolicyFailing" in found else None

        fired = wait_for("SwrPolicyFailing firing", firing, prometheus_log)
        assert fired["SwrPolicyFailing"] == set(alerts["failing"])
        assert fired["SwrTasksStuck"] == set(alerts["stuck"])
        assert fired["SwrTagsMissing"] == set(alerts["missing_tags"])
        assert not {"SwrEtlNotSucceeded", "SwrEtlMetricsAbsent", "SwrEtlWarehouseDown"} & set(fired)

        # every query of the dashboard is valid PromQL, and has series unless it reads one of the last 24 hours
        # (the sandbox's world is dated 2024)
        empty = {"swr_policy_tasks_24h", "swr_policy_task_success_ratio_24h"}
        board = json.loads(DASHBOARD.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$instance_id", ".*")
                answer = api(base, "/api/v1/query", query=expr)
                if not set(METRIC_NAME.findall(expr)) & empty:
                    assert answer["result"], f"{panel['title']}: {expr} has no series"

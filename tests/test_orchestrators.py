"""The orchestrator examples of docs/examples/: the Dagster definitions materialized in-process by Dagster
itself against the sandbox API, and the Airflow DAG loaded with stand-ins for Airflow's classes, its commands
then run in order as its workers would run them (Airflow itself is not installed: it is too large for CI)."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
import types
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bi_helpers import SCALE, SEED
from conftest import ROOT, clean_env, run_cli, sandbox_env

from pipeline.sandbox import SandboxConfig, SandboxServer, World

EXAMPLES = ROOT / "docs" / "examples"
LENIENT = {  # thresholds under which the sandbox's world, dated 2024, raises fewer alerts
    "SWR_ETL_MAX_SUCCESS_AGE_HOURS": "1000000",
    "SWR_ETL_STUCK_HOURS": "1000000",
    "SWR_ETL_MAX_MISSING_TAGS": "1000000",
    "SWR_ETL_MAX_FAILURE_RATE": "1",
}


def load_example(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"swr_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sandbox_world() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=SEED, scale=SCALE)) as server:
        yield server


def only_these_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The process's environment holds the test's settings and none of the developer's."""
    for key in list(os.environ):
        if key.startswith(("SWR_", "CLOUD_SDK_", "AWS_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("SWR_", "CLOUD_SDK_", "AWS_")):
            monkeypatch.setenv(key, value)


def check_as_json(data_dir: Path, **env: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(["check", "--format", "json"], clean_env(SWR_ETL_DATA_DIR=str(data_dir), **env))
    return result.returncode, json.loads(result.stdout)


# -- Dagster ---------------------------------------------------------------------------------------------------


def test_dagster_materializes_the_assets_and_checks_the_lake(
    sandbox_world: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dg = pytest.importorskip("dagster", reason="dagster (the test extras) is not installed")
    only_these_settings(monkeypatch, sandbox_env(sandbox_world, tmp_path))
    example = load_example("dagster_defs")
    dg.Definitions.validate_loadable(example.defs)
    assert example.defs.resolve_job_def("swr_nightly") is not None

    resources = {"swr": example.SwrEtl(data_dir=str(tmp_path))}
    every = [example.swr_raw_landing, example.swr_lake, example.swr_alerts]
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(every, resources=resources, instance=instance)
    assert result.success

    tasks = World(seed=SEED, scale=SCALE).truth()["totals"]["tasks"]
    (landed,) = result.asset_materializations_for_node("swr_raw_landing")
    assert (landed.metadata["status"].value, landed.metadata["tasks"].value) == ("ok", tasks)
    (loaded,) = result.asset_materializations_for_node("swr_lake")
    assert loaded.metadata["rows"].value["tasks"] == tasks
    assert (tmp_path / "warehouse.duckdb").is_file()

    # the check says what `swr-etl check` says: the sandbox's world, dated 2024, has stale and stuck policies
    (evaluation,) = result.get_asset_check_evaluations()
    code, cli = check_as_json(tmp_path)
    assert code == 1 and cli["status"] == "alerts"
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["alerts"].value == len(cli["alerts"]) > 0
    assert evaluation.metadata["by_kind"].value == dict(Counter(a["kind"] for a in cli["alerts"]))

    # the check's thresholds come from the environment, as the command's do
    for key, value in LENIENT.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.ephemeral() as instance:
        again = dg.materialize(
            [example.swr_lake, example.swr_alerts],
            resources=resources,
            instance=instance,
            selection=dg.AssetSelection.checks(example.swr_alerts),
        )
    (evaluation,) = again.get_asset_check_evaluations()
    code, lenient = check_as_json(tmp_path, **LENIENT)
    assert evaluation.metadata["alerts"].value == len(lenient["alerts"]) < len(cli["alerts"])
    assert evaluation.passed is (code == 0)


def test_dagster_does_not_retry_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit status 2 of the command, which would fail the same way again: not retried (a retry would wait ten
    minutes here)."""
    dg = pytest.importorskip("dagster", reason="dagster (the test extras) is not installed")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    only_these_settings(
        monkeypatch, {"SWR_ENDPOINT": "http://127.0.0.1:9", "SWR_PROJECT_ID": "p", "SWR_AUTH_TOKEN": "t"}
    )
    example = load_example("dagster_defs")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [example.swr_raw_landing],
            resources={"swr": example.SwrEtl(data_dir=str(not_a_folder))},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    events = result.all_node_events
    assert [e.event_type_value for e in events if e.is_step_failure or e.is_step_up_for_retry] == ["STEP_FAILURE"]
    (failure,) = [e for e in events if e.is_step_failure]
    assert "is a file, not a folder" in str(failure.event_specific_data.error.message)


# -- Airflow ---------------------------------------------------------------------------------------------------


class Operator:
    """Stands in for BashOperator: keeps its arguments and the tasks downstream of it."""

    made: ClassVar[list[Operator]] = []

    def __init__(self, *, task_id: str, bash_command: str, **kwargs: Any) -> None:
        self.task_id, self.bash_command, self.kwargs = task_id, bash_command, kwargs
        self.downstream: list[Operator] = []
        Operator.made.append(self)

    def __rshift__(self, other: Operator) -> Operator:
        self.downstream.append(other)
        return other


class Dag:
    """Stands in for DAG: a context manager that keeps its arguments."""

    made: ClassVar[list[Dag]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        Dag.made.append(self)

    def __enter__(self) -> Dag:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def airflow_dag(monkeypatch: pytest.MonkeyPatch) -> tuple[Dag, list[Operator]]:
    """docs/examples/airflow_dag.py, loaded with Airflow 3's modules replaced by the stand-ins."""
    names = ["airflow", "airflow.sdk", "airflow.providers", "airflow.providers.standard"]
    names += ["airflow.providers.standard.operators", "airflow.providers.standard.operators.bash"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(sys.modules[names[1]], "DAG", Dag, raising=False)
    monkeypatch.setattr(sys.modules[names[-1]], "BashOperator", Operator, raising=False)
    Dag.made, Operator.made = [], []
    load_example("airflow_dag")
    (dag,) = Dag.made
    return dag, Operator.made


def test_the_airflow_dag_runs_then_checks(airflow_dag: tuple[Dag, list[Operator]]) -> None:
    dag, (run, check) = airflow_dag
    assert dag.kwargs["max_active_runs"] == 1 and dag.kwargs["catchup"] is False
    assert run.downstream == [check] and check.downstream == []
    assert run.kwargs["retries"] == 2 and run.kwargs["retry_delay"] == timedelta(minutes=10)
    assert check.kwargs["retries"] == 0 and check.kwargs["trigger_rule"] == "all_done"
    assert shlex.split(run.bash_command)[:4] == ["swr-etl", "--log-format", "json", "run"]
    assert shlex.split(check.bash_command)[:4] == ["swr-etl", "--log-format", "json", "check"]
    assert run.kwargs["append_env"] is True
    assert set(run.kwargs["env"]) == {"SWR_ENDPOINT", "SWR_PROJECT_ID", "SWR_AUTH_TOKEN"}


def test_the_airflow_dags_commands_run_as_its_workers_would(
    airflow_dag: tuple[Dag, list[Operator]], sandbox_world: SandboxServer, tmp_path: Path
) -> None:
    """Each task's command, its data directory moved to the test's: run exits 0 with JSON summaries, then
    check exits 1 with the sandbox's alerts as JSON, which fails the task as Airflow is meant to."""
    _, (run, check) = airflow_dag
    env = sandbox_env(sandbox_world, tmp_path)
    env.pop("SWR_ETL_DATA_DIR")  # the command names it

    def worker(command: str) -> Any:
        argv = shlex.split(command.replace("/srv/swr-lake", str(tmp_path)))
        assert argv[0] == "swr-etl"
        return run_cli(argv[1:], env)

    ran = worker(run.bash_command)
    assert ran.returncode == 0, ran.stderr
    stages = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(s["event"], s["stage"], s["status"]) for s in stages] == [
        ("summary", "extract", "ok"),
        ("summary", "load", "ok"),
    ]
    assert all(json.loads(line)["run_id"] for line in ran.stderr.splitlines())  # JSON lines only

    checked = worker(check.bash_command)
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["status"] == "alerts"
    error = json.loads(checked.stderr.splitlines()[-1])
    assert (error["event"], error["exit_code"]) == ("error", 1)

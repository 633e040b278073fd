"""The Python API the CLI wraps: ``pipeline.run``, ``extract``, ``rebuild``, ``connect`` and ``settings``, called
directly against a sandbox API started by the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from conftest import ROOT, clean_env

import pipeline
from pipeline.errors import ConfigError, RejectsFound
from pipeline.sandbox import Faults, SandboxConfig, SandboxServer, World


def _settings(server: SandboxServer, data_dir: Path, **more: Any) -> pipeline.Settings:
    config = server.config
    return pipeline.settings(
        endpoint=server.url, project_id=config.project_id, token=config.token, data_dir=data_dir, **more
    )


class Heard:
    """Hooks that write down what they hear."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.counts: dict[str, dict[str, Any]] = {}

    def hooks(self) -> pipeline.Hooks:
        def summary(stage: str, line: str, counts: dict[str, Any]) -> None:
            self.events.append(("summary", stage))
            self.counts[stage] = counts

        return pipeline.Hooks(stage=lambda name: self.events.append(("stage", name)), summary=summary)


def test_run_then_connect_gives_pandas_frames(sandbox: SandboxServer, tmp_path: Path) -> None:
    truth = World(seed=7, scale=0.5).truth()
    heard = Heard()
    result = pipeline.run(_settings(sandbox, tmp_path), hooks=heard.hooks())

    assert result.status == "ok" and result.failure is None
    assert result.extract is not None and result.extract.tasks == truth["totals"]["tasks"]
    assert result.load is not None and result.load.rows["tasks"] == truth["totals"]["tasks"]
    assert heard.events == [("stage", "extract"), ("summary", "extract"), ("stage", "load"), ("summary", "load")]
    assert heard.counts["load"]["lake_rows"]["tasks"] == truth["totals"]["tasks"]
    result.raise_for_failure()  # nothing to raise

    db = pipeline.connect(tmp_path)
    frame = db.sql("SELECT count(*) AS n FROM tasks").df()
    assert isinstance(frame, pd.DataFrame) and int(frame["n"][0]) == truth["totals"]["tasks"]
    views = {row[0] for row in db.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert {"tasks", "policy_health", "stuck_tasks", "failures"} <= views
    with pytest.raises(duckdb.Error):  # read-only: a notebook cannot change the warehouse by mistake
        db.execute("CREATE TABLE scratch AS SELECT 1")
    db.close()


def test_a_second_run_fetches_only_what_changed(sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = _settings(sandbox, tmp_path)
    first = pipeline.run(settings)
    second = pipeline.run(settings)
    assert first.extract is not None and second.extract is not None
    finished = second.extract.executions_unchanged
    assert finished > 0 and second.extract.tasks < first.extract.tasks
    assert second.load is not None and second.load.rows["tasks"] == first.load.rows["tasks"]  # type: ignore[union-attr]


def test_extract_then_rebuild(sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = _settings(sandbox, tmp_path)
    summary = pipeline.extract(settings)
    assert summary.status == "ok" and summary.tasks > 0
    assert (tmp_path / "raw").is_dir() and not (tmp_path / "lake").exists()
    record = json.loads(next((tmp_path / "raw" / "runs").glob("*.json")).read_text())
    assert (record["stage"], record["status"], record["tasks"]) == ("extract", "ok", summary.tasks)

    heard = Heard()
    rebuilt = pipeline.rebuild(settings, hooks=heard.hooks())
    assert rebuilt.extract is None and rebuilt.load is not None
    assert rebuilt.load.rows["tasks"] == summary.tasks
    assert heard.events == [("stage", "rebuild"), ("summary", "rebuild")]


def test_strict_makes_rejected_records_a_failure(tmp_path: Path) -> None:
    faults = Faults(rate_bad_resource=0.05)
    with SandboxServer(SandboxConfig(seed=3, scale=0.3, faults=faults)) as server:
        lenient = pipeline.run(_settings(server, tmp_path / "a"))
        strict = pipeline.run(_settings(server, tmp_path / "b", strict=True))
    assert lenient.rejected > 0 and lenient.rejected == strict.rejected
    lenient.raise_for_failure()
    with pytest.raises(RejectsFound) as caught:
        strict.raise_for_failure()
    assert caught.value.count == strict.rejected


def test_setup_mistakes_are_config_errors_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        pipeline.settings(endpoint="https://swr.example", project_id="p", token="t", concurrency=0)
    not_a_landing = tmp_path / "file"
    not_a_landing.write_text("x")
    settings = pipeline.settings(endpoint="https://127.0.0.1:9", project_id="p", token="t", data_dir=not_a_landing)
    with pytest.raises(ConfigError):
        pipeline.run(settings)


def test_import_is_cheap_and_changes_nothing() -> None:
    """``import pipeline`` loads no heavy dependency and leaves the environment alone: the CLI sets Arrow's
    allocator for its own process (docs/decisions/0006), a notebook keeps its own."""
    code = (
        "import os, sys, pipeline; "
        "print(sorted(m for m in ('pyarrow', 'duckdb', 'pandas', 'requests') if m in sys.modules)); "
        "print(os.environ.get('ARROW_DEFAULT_MEMORY_POOL')); print(callable(pipeline.run))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:3] == ["[]", "None", "True"]

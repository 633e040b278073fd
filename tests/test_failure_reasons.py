"""The failure_reasons view puts each failed tag's status_text in the class the sandbox drew it from."""

from __future__ import annotations

from pathlib import Path

import duckdb
import requests
from conftest import run_cli, sandbox_env

from pipeline.sandbox import SandboxServer


def test_every_failed_tag_is_classed_as_the_sandbox_drew_it(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(["run", "--subtasks", "all"], sandbox_env(sandbox, tmp_path))
    assert result.returncode == 0, result.stderr
    truth = requests.get(f"{sandbox.url}/_sandbox/subtask-truth", timeout=30).json()["totals"]["by_class"]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        found = dict(db.sql("SELECT reason, sum(failed_tags)::INTEGER FROM failure_reasons GROUP BY ALL").fetchall())
        unnamed = db.sql("SELECT count(*) FROM failure_reasons WHERE policy_name IS NULL").fetchall()
    assert found == {k: v for k, v in truth.items() if v}
    assert set(found) >= {"auth", "not_found", "network", "quota", "destination"}
    assert unnamed == [(0,)]

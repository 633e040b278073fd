"""docs/examples/notebook.py, the notebook example of docs/python-api.md, runs as a script on a lake built from
the sandbox API, and prints what the warehouse holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bi_helpers import sandbox_data_dir
from conftest import ROOT, clean_env

import pipeline

NOTEBOOK = ROOT / "docs" / "examples" / "notebook.py"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sandbox_data_dir(tmp_path_factory.mktemp("notebook"))


def run_notebook(args: list[str], **env: str) -> str:
    result = subprocess.run(
        [sys.executable, str(NOTEBOOK), *args],
        env=clean_env(**env), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_the_notebook_runs_as_a_script_on_a_sandbox_lake(data_dir: Path) -> None:
    out = run_notebook([str(data_dir)])
    db = pipeline.connect(data_dir)
    try:
        recent = "SELECT DISTINCT policy_name FROM policy_health WHERE day > (SELECT max(day) FROM policy_health) - 30"
        policies = {row[0] for row in db.sql(recent).fetchall()}
        kinds = {row[0] for row in db.sql("SELECT kind FROM alerts").fetchall()}
        worst = db.sql(
            "SELECT src_repository FROM repository_failures WHERE finished >= 5 AND failed + stopped > 0 "
            "ORDER BY failure_rate DESC, failed + stopped DESC, src_repository LIMIT 1"
        ).fetchall()[0][0]
    finally:
        db.close()
    assert policies and all(name in out for name in policies if name)
    assert kinds and all(kind in out for kind in kinds)
    assert worst in out
    assert "Succeed" in out  # the pivot's columns are the statuses


def test_the_data_directory_comes_from_the_environment_too(data_dir: Path) -> None:
    assert run_notebook([], SWR_ETL_DATA_DIR=str(data_dir)) == run_notebook([str(data_dir)])


def test_the_example_is_made_of_cells_and_shown_in_the_python_api_page() -> None:
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert text.count("\n# %%") >= 5
    assert "(examples/notebook.py)" in (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")

"""The first hour of a new user (issue 17): the demo never deletes a real landing, the config file reaches every
command, setup mistakes are said as such before the first request, and read-only copies can be queried.

Every test runs the real CLI. Tests run as root here, and root ignores permission bits: a read-only folder is
then shown to the CLI through a read-only bind mount in a mount namespace of its own (what a BI host mounting
a copy read-only does), else made immutable with ``chattr``; another user gets the write bits taken away.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, S3Server, clean_env, run_cli, sandbox_env

from pipeline.load.storage import open_store
from pipeline.sandbox import SandboxConfig, SandboxServer

Runner = Callable[[list[str], Mapping[str, str]], subprocess.CompletedProcess[str]]
MARKER = ".swr-etl-demo"
SMALL = ["--scale", "0.1"]  # a demo world of a few executions: enough to query, quick to make


def one_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single ``error:`` line of a failed command, which must not call a setup mistake a bug."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "a bug" not in lines[0] and "unexpected" not in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and a digest of its bytes: what a command must leave as it was."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- 1. the demo writes only into a folder of its own ------------------------------------------------------


def test_the_demo_refuses_a_data_directory_it_did_not_make_and_leaves_it_whole(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    assert run_cli(["run"], sandbox_env(sandbox, real)).returncode == 0
    before = tree(real)
    assert any(name.startswith("raw/") for name in before) and any(name.startswith("lake/") for name in before)
    for extra in ([], ["--no-clean"], ["--clean"]):
        line = one_error(run_cli(["demo", "--data-dir", str(real), *SMALL, *extra], clean_env()))
        assert str(real) in line and "--data-dir" in line, line
        assert tree(real) == before, f"demo {extra} changed a real data directory"
    # any folder that holds something: nothing written into it, not even the lock file
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine\n")
    one_error(run_cli(["demo", "--data-dir", str(notes), *SMALL], clean_env()))
    assert sorted(p.name for p in notes.iterdir()) == ["todo.txt"]


def test_the_demo_cleans_its_own_folder_run_after_run_and_nothing_else_in_it(tmp_path: Path) -> None:
    """The default ``data/demo`` (relative to where it is run) and an explicit folder: marked, cleaned, kept."""
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "demo", *SMALL],
            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "data" / "demo" / MARKER).is_file()
    folder = tmp_path / "mine" / "demo"
    assert run_cli(["demo", "--data-dir", str(folder), *SMALL], clean_env()).returncode == 0
    assert (folder / MARKER).is_file()
    (folder / "report.html").write_text("the user's own file")
    stale = next((folder / "raw" / "tasks").rglob("_manifest.json")).parent.parent / "run_id=old"
    stale.mkdir()
    result = run_cli(["demo", "--data-dir", str(folder), *SMALL], clean_env())
    assert result.returncode == 0, result.stderr
    assert not stale.exists(), "--clean (the default) empties the demo's own landing"
    assert (folder / "report.html").read_text() == "the user's own file"
    # and the demo's folder is not a place for real data: run and extract refuse it before any request
    with SandboxServer(SandboxConfig(seed=7, scale=0.1)) as server:
        for command in ("run", "extract"):
            line = one_error(run_cli([command], sandbox_env(server, folder)))
            assert "swr-etl demo" in line, line
        assert server.stats()["requests"] == 0


# -- 2. the config file and the environment reach every command --------------------------------------------


def test_the_config_file_reaches_query_report_rebuild_and_the_demo(sandbox: SandboxServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert run_cli(["run"], sandbox_env(sandbox, data_dir)).returncode == 0
    config = tmp_path / "swr-etl.toml"
    config.write_text(f'[swr-etl]\ndata-dir = "{data_dir}"\nworkers = 2\n')
    count = "SELECT count(*) AS n FROM tasks"
    for env, flag in ((clean_env(), ["--config", str(config)]), (clean_env(SWR_ETL_CONFIG=str(config)), [])):
        result = run_cli(["query", count, "--format", "csv", *flag], env)
        assert result.returncode == 0, result.stderr
        assert int(result.stdout.splitlines()[1]) > 0
        result = run_cli(["report", "--format", "json", *flag], env)
        assert result.returncode == 0, result.stderr
        result = run_cli(["rebuild", *flag], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("rebuild: ") and not result.stdout.startswith("rebuild: 0 executions")
    # the demo takes the machine's settings (here: transform lanes) from the environment, never a location
    line = one_error(run_cli(["demo", "--data-dir", str(tmp_path / "demo"), *SMALL], clean_env(SWR_ETL_WORKERS="0")))
    assert "workers" in line
    before = tree(data_dir)
    env = clean_env(SWR_ETL_DATA_DIR=str(data_dir), SWR_ETL_LAKE=str(data_dir / "lake"), SWR_ETL_CONFIG=str(config))
    assert run_cli(["demo", "--data-dir", str(tmp_path / "demo"), *SMALL], env).returncode == 0
    assert tree(data_dir) == before


def test_a_rebuild_without_a_landing_is_an_error_that_creates_nothing(s3_server: S3Server, tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    line = one_error(run_cli(["rebuild", "--data-dir", str(missing)], clean_env()))
    assert "landing" in line and str(missing) in line, line
    assert not missing.exists()
    empty = tmp_path / "empty"
    (empty / "raw" / "tasks").mkdir(parents=True)  # folders, but no complete fetch
    one_error(run_cli(["rebuild", "--data-dir", str(empty)], clean_env()))
    assert not (empty / "lake").exists() and not (empty / "warehouse.duckdb").exists()
    # a data directory in a store: its landing is looked for there (once pulled), and the lake stays unwritten
    remote = f"s3://{s3_server.bucket()}/empty"
    env = clean_env(SWR_ETL_DATA_DIR=remote, SWR_ETL_WORK_DIR=str(tmp_path / "work"), **s3_server.env())
    line = one_error(run_cli(["rebuild"], env))
    assert f"{remote}/raw" in line, line
    assert open_store(remote, s3_server.env()).files(hidden=True) == []


# -- 3. setup mistakes: one line that says what to fix, before the first request ----------------------------


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("not a folder\n")
    return path


def _data_dir_with(tmp_path: Path, name: str, *, folder: bool) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if folder:
        (data_dir / name).mkdir()
    else:
        (data_dir / name).write_text("not a folder\n")
    return data_dir


SETUPS: dict[str, Callable[[Path], tuple[list[str], str]]] = {
    "run: --data-dir is a file": lambda t: (["run", "--data-dir", str(_file(t))], str(t / "afile")),
    "extract: --data-dir under a file": lambda t: (["extract", "--data-dir", str(_file(t) / "d")], str(t / "afile")),
    "rebuild: --data-dir is a file": lambda t: (["rebuild", "--data-dir", str(_file(t))], str(t / "afile")),
    "demo: --data-dir is a file": lambda t: (["demo", "--data-dir", str(_file(t))], str(t / "afile")),
    "run: --lake is a file": lambda t: (["run", "--lake", str(_file(t))], str(t / "afile")),
    "run: --lake under a file": lambda t: (["run", "--lake", str(_file(t) / "lake")], str(t / "afile")),
    "extract: DATA_DIR/raw is a file": lambda t: (
        ["extract", "--data-dir", str(_data_dir_with(t, "raw", folder=False))],
        str(t / "data" / "raw"),
    ),
    "run: DATA_DIR/warehouse.duckdb is a folder": lambda t: (
        ["run", "--data-dir", str(_data_dir_with(t, "warehouse.duckdb", folder=True))],
        str(t / "data" / "warehouse.duckdb"),
    ),
    "run: --work-dir is a file": lambda t: (
        ["run", "--data-dir", "s3://bucket/swr", "--work-dir", str(_file(t))],
        str(t / "afile"),
    ),
}


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_a_setup_mistake_is_one_error_line_before_the_first_request(
    setup: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    args, named = SETUPS[setup](tmp_path)
    s3 = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    env = sandbox_env(sandbox, tmp_path / "default", **s3)
    line = one_error(run_cli(args, env))
    assert named in line, line
    assert sandbox.stats()["requests"] == 0, "checked after the API was called"
    assert not (tmp_path / "default").exists()


@contextmanager
def read_only(folder: Path) -> Iterator[Runner]:
    """Make ``folder`` read-only for the CLI runs made through the runner it yields (see the module docstring);
    skips the test when this machine offers no way to."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for path, mode in modes.items():
            path.chmod(mode & ~0o222)
        try:
            yield run_cli
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mount = 'dir=$1; shift; mount --bind "$dir" "$dir" && mount -o remount,bind,ro "$dir" && exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", str(folder)]
    if shutil.which("unshare") and shutil.which("mount"):
        probe = subprocess.run(
            [*unshare, "sh", "-c", '! touch "$0/.probe" 2>/dev/null', str(folder)], capture_output=True, check=False
        )
        if probe.returncode == 0 and not (folder / ".probe").exists():

            def in_namespace(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
                command = [*unshare, sys.executable, "-m", "pipeline", *args]
                return subprocess.run(
                    command, env=dict(env), capture_output=True, text=True, timeout=240, cwd=ROOT, check=False
                )

            yield in_namespace
            return
    if (
        shutil.which("chattr")
        and subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True, check=False).returncode == 0
    ):
        try:
            yield run_cli
        finally:
            subprocess.run(["chattr", "-R", "-i", str(folder)], check=True)
        return
    pytest.skip("no way to make a folder read-only for root here (no mount namespace, no chattr)")


def test_a_read_only_data_directory_for_run_is_a_setup_mistake(sandbox: SandboxServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with read_only(data_dir) as run:
        line = one_error(run(["run"], sandbox_env(sandbox, data_dir)))
    assert str(data_dir) in line and "--data-dir" in line, line
    assert sandbox.stats()["requests"] == 0
    assert list(data_dir.iterdir()) == []


# -- 4. query and report on a read-only copy, whose warehouse is stale or missing ---------------------------


@pytest.mark.parametrize("warehouse", ["stale", "missing"])
def test_query_and_report_work_on_a_read_only_copy_and_write_nothing(warehouse: str, tmp_path: Path) -> None:
    original = tmp_path / "original"
    assert run_cli(["demo", "--data-dir", str(original), *SMALL], clean_env()).returncode == 0
    sql = "SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM tag_drift) AS drift"
    expected = run_cli(["query", sql, "--format", "csv", "--data-dir", str(original)], clean_env()).stdout
    assert expected.count("\n") == 2
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    shutil.rmtree(original)  # the copy's warehouse names a folder gone: stale, and only the copy can be read
    if warehouse == "missing":
        (copy / "warehouse.duckdb").unlink()
    before = tree(copy)
    env = clean_env(SWR_ETL_DATA_DIR=str(copy))
    with read_only(copy) as run:
        result = run(["query", sql, "--format", "csv"], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected
        assert result.stderr == "", "at most an info line, which the default verbosity does not show"
        result = run(["report", "--format", "json"], env)
        assert result.returncode == 0, result.stderr
        assert '"tasks"' in result.stdout
    assert tree(copy) == before
    assert not original.exists()

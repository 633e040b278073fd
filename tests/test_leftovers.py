"""What a killed or failed command leaves behind is removed by the next one, and a full disk is said as such."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, run_cli, sandbox_env

from pipeline.sandbox import SandboxServer


def test_temporary_files_of_a_killed_run_are_removed_by_the_next_extract(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["extract"], env).returncode == 0
    folder = next((tmp_path / "raw" / "tasks").rglob("_manifest.json")).parent
    leftover = folder / ".page-000000100.json.zst.4242.0badcafe.tmp"  # as atomic_write names them
    leftover.write_bytes(b"half a page")
    assert run_cli(["extract"], env).returncode == 0
    assert not leftover.exists()
    assert not list((tmp_path / "raw").rglob(".*.tmp"))


def test_a_full_disk_while_writing_the_views_is_said_as_such_and_leaves_no_temporary_file(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert run_cli(["run"], sandbox_env(sandbox, tmp_path)).returncode == 0
    dead = tmp_path / ".warehouse.duckdb.999999999.tmp"  # a build killed midway, its process long gone
    dead.write_bytes(b"x")

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "rebuild", "--views-only", "--data-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, preexec_fn=small_files, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: could not write {tmp_path / 'warehouse.duckdb'}: ")
    assert "sql/" not in line  # not blamed on a view
    assert line.endswith("(free some space or fix the folder's permissions, then run 'swr-etl rebuild --views-only')")
    assert sorted(p.name for p in tmp_path.glob(".warehouse*")) == []
    assert (
        run_cli(["rebuild", "--views-only", "--data-dir", str(tmp_path)], sandbox_env(sandbox, tmp_path)).returncode
        == 0
    )

"""A lake written by an older version, or shared with jobs not yet upgraded, holds small-table files with
fewer columns than the schema: the warehouse reads them, and the new columns are null there."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from conftest import run_cli, sandbox_env

from pipeline.sandbox import SandboxServer

NEW_INSTANCE_COLUMNS = ["description", "access_address", "vpc_name", "expires_at"]


def test_small_tables_with_fewer_columns_still_read(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    files = sorted(p for p in (tmp_path / "lake" / "instances").rglob("*.parquet") if "__none__" not in str(p))
    older = files[0]  # one instance's file as an older version wrote it
    table = pq.read_table(older)
    pq.write_table(table.drop_columns([c for c in NEW_INSTANCE_COLUMNS if c in table.column_names]), older)

    rebuilt = run_cli(["rebuild", "--views-only"], env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    query = "SELECT instance_id, name, description, access_address FROM instances ORDER BY instance_id"
    result = run_cli(["query", query, "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(files) and all(r["name"] for r in rows)
    old_id = older.parent.name.removeprefix("instance_id=")
    (old,) = [r for r in rows if r["instance_id"] == old_id]
    assert (old["description"], old["access_address"]) == (None, None)
    assert any(r["access_address"] for r in rows if r["instance_id"] != old_id)


def test_a_small_table_whose_files_all_predate_a_column(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    for path in (tmp_path / "lake" / "instances").rglob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns([c for c in NEW_INSTANCE_COLUMNS if c in table.column_names]), path)
    assert run_cli(["rebuild", "--views-only"], env).returncode == 0
    result = run_cli(
        ["query", "SELECT count(*) AS n, count(vpc_name) AS named FROM instances", "--format", "json"], env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": 2, "named": 0}]

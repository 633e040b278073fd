"""The real ``swr-etl run`` / ``rebuild`` / ``query`` against the sandbox: counts, idempotency, crashes."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import ROOT, all_landed_text, run_cli, sandbox_env

from pipeline.landing import decompress_page
from pipeline.load import load_lake
from pipeline.sandbox import Faults, SandboxConfig, SandboxServer
from pipeline.sandbox.tasks import REGISTRY_SECRET
from pipeline.schema import TABLES
from pipeline.transform import lanes
from pipeline.warehouse.warehouse import sql_views


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        return db.sql(sql).fetchall()


def snapshot(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, without the columns that say which run wrote it."""
    out = {}
    for name, table in TABLES.items():
        columns = [c for c in table.columns if c not in ("run_id", "first_seen_run", "last_seen_run", "tasks_run")]
        out[name] = query(data_dir, f"SELECT {', '.join(columns)} FROM {name} ORDER BY ALL")
    return out


@pytest.mark.parametrize("seed", [3, 19])
def test_counts_per_side_equal_the_sandbox_truth_and_every_bad_record_is_rejected(seed: int, tmp_path: Path) -> None:
    faults = Faults(rate_bad_resource=0.05, rate_object_resource=0.05)
    with SandboxServer(SandboxConfig(seed=seed, scale=0.6, faults=faults)) as server:
        result = run_cli(["run"], sandbox_env(server, tmp_path))
        assert result.returncode == 0, result.stderr
        truth = server.truth()
    totals = truth["totals"]
    assert totals["bad_sides"] > 10, "the world should hold bad records to test with"
    counts = dict(query(tmp_path, "SELECT side, count(*) FROM artifacts GROUP BY side"))
    assert counts == {"src": totals["src_artifacts"], "dst": totals["dst_artifacts"]}
    counts = dict(query(tmp_path, "SELECT side, count(*) FROM tags GROUP BY side"))
    assert counts == {"src": totals["src_tags"], "dst": totals["dst_tags"]}
    assert query(tmp_path, "SELECT count(*) FROM tasks") == [(totals["tasks"],)]
    bad = {
        (i["id"], e["id"], b["task_id"], b["side"])
        for i in truth["instances"]
        for e in i["executions"]
        for b in e["bad"]
    }
    rejected = query(
        tmp_path,
        "SELECT instance_id, execution_id, task_id, replace(field, '_resource', '') FROM rejects "
        "WHERE field IN ('src_resource', 'dst_resource')",
    )
    assert set(rejected) == bad
    assert len(rejected) == len(bad)
    assert query(
        tmp_path,
        "SELECT count(*) FROM rejects WHERE raw IS NULL AND error <> 'missing or null' AND field LIKE '%resource'",
    ) == [(0,)]
    # the summary line tells the same story
    load_line = result.stdout.strip().splitlines()[-1]
    assert load_line.startswith(f"load: {sum(len(i['executions']) for i in truth['instances'])} executions, ")
    assert REGISTRY_SECRET not in all_landed_text(tmp_path)
    # every string of every table, read through DuckDB (Parquet pages are compressed: grep would prove nothing)
    for name, table in TABLES.items():
        text_columns = [f.name for f in table.schema if str(f.type) == "string"]
        hits = query(
            tmp_path,
            f"SELECT count(*) FROM {name} WHERE "
            + " OR ".join(f"contains({c}, '{REGISTRY_SECRET}')" for c in text_columns),
        )
        assert hits == [(0,)], name


def test_run_twice_then_rebuild_gives_the_same_rows_and_unique_keys(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    first = snapshot(tmp_path)
    assert run_cli(["run"], env).returncode == 0
    second = snapshot(tmp_path)
    result = run_cli(["rebuild"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rebuild: ")
    third = snapshot(tmp_path)
    assert first == second == third
    assert first["tasks"], "nothing was loaded"
    assert query(tmp_path, "SELECT count(*) - count(DISTINCT (instance_id, execution_id, task_id)) FROM tasks") == [
        (0,)
    ]
    # two runs landed two fetches of every execution; the lake keeps one set of rows
    assert len(list((tmp_path / "raw" / "runs").glob("*.json"))) == 2


def test_a_landing_with_gzip_pages_from_earlier_versions_rebuilds_to_the_same_rows(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Landings written by earlier versions hold ``.json.gz`` pages: every other page of every fetch is turned back
    into one (the manifest names it), so single reads mix both codecs, and the rebuild must not notice."""
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    before = snapshot(tmp_path)
    turned = kept = 0
    for path in sorted((tmp_path / "raw").rglob("_manifest.json")):
        manifest = json.loads(path.read_bytes())
        for n, page in enumerate(manifest["pages"]):
            if n % 2:
                kept += 1
                continue
            zst = path.parent / page["file"]
            page["file"] = page["file"].removesuffix(".zst") + ".gz"
            (path.parent / page["file"]).write_bytes(gzip.compress(decompress_page(zst, zst.read_bytes()), mtime=0))
            zst.unlink()
            turned += 1
        path.write_text(json.dumps(manifest))
    assert turned > 10 and kept > 10
    result = run_cli(["rebuild"], env)
    assert result.returncode == 0, result.stderr
    assert snapshot(tmp_path) == before


def test_a_page_cut_short_or_corrupt_is_rejected_whole_and_the_rest_loads(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A landed page file damaged on disk (cut short, bytes flipped; zstd, or gzip from an earlier version):
    one ``page`` reject naming why, its file left as it is, every other page loaded, exit 0 (3 with --strict)."""
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    manifests = sorted((tmp_path / "raw" / "tasks").rglob("_manifest.json"))
    damaged = []
    for n, path in enumerate(m for m in manifests if len(json.loads(m.read_bytes())["pages"]) > 1):
        if n == 3:
            break
        manifest = json.loads(path.read_bytes())
        page = manifest["pages"][1]
        file = path.parent / page["file"]
        data = file.read_bytes()
        if n == 0:  # cut short
            data = data[: len(data) // 2]
        elif n == 1:  # corrupt in the middle
            data = data[:40] + bytes(b ^ 0x5A for b in data[40:80]) + data[80:]
        else:  # an older landing's gzip page, corrupt
            page["file"] = page["file"].removesuffix(".zst") + ".gz"
            body = bytearray(gzip.compress(decompress_page(file, data), mtime=0))
            body[30:60] = bytes(b ^ 0x5A for b in body[30:60])
            file.unlink()
            file, data = path.parent / page["file"], bytes(body)
            path.write_text(json.dumps(manifest))
        file.write_bytes(data)
        damaged.append((manifest["instance_id"], manifest["execution_id"], page["offset"], page["rows"], file, data))
    assert len(damaged) == 3
    result = run_cli(["rebuild"], env)
    assert result.returncode == 0, result.stderr
    rejects = query(
        tmp_path, "SELECT instance_id, execution_id, page_offset, error, raw FROM rejects WHERE field = 'page'"
    )
    assert sorted(r[:3] for r in rejects) == sorted(d[:3] for d in damaged)
    assert all(r[3].startswith("page could not be decompressed: ") and r[4] is None for r in rejects)
    for instance_id, execution_id, _offset, rows, file, data in damaged:
        assert file.read_bytes() == data  # kept as it is
        landed = query(
            tmp_path,
            f"SELECT count(*) FROM tasks WHERE instance_id = '{instance_id}' AND execution_id = {execution_id}",
        )[0][0]
        manifest = json.loads((file.parent / "_manifest.json").read_bytes())
        assert landed == sum(p["rows"] for p in manifest["pages"]) - rows  # every other page of it loaded
    assert run_cli(["rebuild", "--strict"], env).returncode == 3
    # in batches of 50 tasks the larger executions are loaded in parts, whose ids are settled page by page;
    # and so they are in batches of at most 64 KiB of pages, which cuts executions by their bytes alone
    whole = snapshot(tmp_path)
    load_lake(tmp_path, version="20261129T060000000Z-abcdef", batch_tasks=50, workers=2)
    assert snapshot(tmp_path) == whole
    planned: list[Any] = []
    monkeypatch.setattr("pipeline.load.loader.lanes", lambda *a: planned.append(lanes(*a)) or planned[-1])
    load_lake(tmp_path, version="20261129T060000001Z-abcdef", batch_bytes=64 << 10, workers=2)
    assert snapshot(tmp_path) == whole
    assert any(part.all_pages and part.bytes <= 64 << 10 for lane in planned[0] for batch in lane for part in batch)


def test_an_execution_fetched_again_replaces_its_rows_and_others_stay(tmp_path: Path) -> None:
    config = SandboxConfig(seed=5, scale=0.4, faults=Faults(rate_bad_resource=0.05))
    with SandboxServer(config) as server:
        env = sandbox_env(server, tmp_path)
        assert run_cli(["run"], env).returncode == 0
        before = snapshot(tmp_path)
        eid = max(e for (e,) in query(tmp_path, "SELECT execution_id FROM executions"))
        result = run_cli(["run", "--execution-id", str(eid)], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].startswith("load: 1 executions, ")
    assert snapshot(tmp_path) == before
    # the rows of that execution are the new fetch's, the others are still the first run's
    runs = dict(query(tmp_path, "SELECT execution_id = " + str(eid) + ", list(DISTINCT run_id) FROM tasks GROUP BY 1"))
    first_run, second_run = sorted(p.stem for p in (tmp_path / "raw" / "runs").glob("*.json"))
    assert runs == {True: [second_run], False: [first_run]}


def test_every_sql_view_runs_on_the_demo_data(tmp_path: Path) -> None:
    result = run_cli(["demo", "--data-dir", str(tmp_path)], {"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    views = sql_views()
    assert views
    for view in views:
        source = f"{view.name}()" if view.is_macro else view.name  # a view with parameters is a table macro
        assert query(tmp_path, f"SELECT count(*) FROM {source}")[0][0] >= 0
        assert not re.search(r"select\s+\*", view.sql, re.IGNORECASE), f"{view.name}: explicit columns only"
        assert view.question.endswith(".") or "?" in view.question
    assert query(tmp_path, "SELECT count(*) FROM tag_drift WHERE kind = 'missing'")[0][0] > 0
    assert query(tmp_path, "SELECT count(*) FROM repository_failures WHERE failed > 0")[0][0] > 0


def test_query_formats_and_a_bad_query(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    sql = "SELECT status, count(*) AS n FROM tasks GROUP BY status ORDER BY status"
    expected = query(tmp_path, sql)
    as_json = json.loads(run_cli(["query", sql, "--format", "json"], env).stdout)
    assert [(r["status"], r["n"]) for r in as_json] == expected
    as_csv = run_cli(["query", sql, "--format", "csv"], env).stdout.splitlines()
    assert as_csv == ["status,n", *(f"{s},{n}" for s, n in expected)]
    table = run_cli(["query", sql], env).stdout.splitlines()
    assert table[0].split() == ["status", "n"] and table[-1] == f"({len(expected)} rows)"
    bad = run_cli(["query", "SELECT nope FROM tasks"], env)
    assert bad.returncode == 2
    assert bad.stderr.startswith('error: Binder Error: Referenced column "nope" not found')


def test_strict_exits_3_when_records_were_rejected(tmp_path: Path) -> None:
    with SandboxServer(SandboxConfig(seed=2, scale=0.3, faults=Faults(rate_bad_resource=0.05))) as server:
        env = sandbox_env(server, tmp_path)
        result = run_cli(["run", "--strict"], env)
    assert result.returncode == 3
    assert "records were rejected (--strict)" in result.stderr
    assert query(tmp_path, "SELECT count(*) FROM rejects")[0][0] > 0  # loaded all the same
    assert run_cli(["rebuild"], env).returncode == 0  # without --strict rejects are not fatal


def test_the_warehouse_follows_a_moved_data_directory(sandbox: SandboxServer, tmp_path: Path) -> None:
    first = tmp_path / "a"
    assert run_cli(["run"], sandbox_env(sandbox, first)).returncode == 0
    count = query(first, "SELECT count(*) FROM tasks")
    moved = tmp_path / "b"
    shutil.move(first, moved)
    result = run_cli(["query", "SELECT count(*) AS n FROM tasks", "--format", "csv", "--data-dir", str(moved)], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == str(count[0][0])
    assert query(moved, "SELECT count(*) FROM tasks") == count  # and read-only clients see it too


def _kill_during_load(env: dict[str, str], data_dir: Path) -> bool:
    """Start ``swr-etl run``; SIGKILL it as soon as the load has written its first Parquet file."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = data_dir / "lake" / "_staging"
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if staging.exists() and next(staging.rglob("*.parquet"), None):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.002)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_run_killed_during_the_load_leaves_the_old_tables_and_the_next_run_repairs(tmp_path: Path) -> None:
    config = SandboxConfig(seed=8, scale=2.0, faults=Faults(rate_bad_resource=0.02))
    with SandboxServer(config) as server:
        env = sandbox_env(server, tmp_path)
        assert run_cli(["run"], env).returncode == 0
        before = snapshot(tmp_path)
        published = sorted((tmp_path / "lake" / "tasks").rglob("*.parquet"))
        assert _kill_during_load(env, tmp_path), "the run finished before it could be killed during the load"
        # readers still see the old tables, whole: nothing is published before everything is staged
        assert snapshot(tmp_path) == before
        assert sorted((tmp_path / "lake" / "tasks").rglob("*.parquet")) == published
        leftovers = list((tmp_path / "lake" / "_staging").iterdir())
        assert leftovers, "the killed load left nothing behind (so this test did not test a crash)"
        # the next run repairs on its own and its tables are exact
        result = run_cli(["run"], env)
        assert result.returncode == 0, result.stderr
        assert snapshot(tmp_path) == before
        assert not any(v.exists() for v in leftovers)
        truth = server.truth()["totals"]
    assert query(tmp_path, "SELECT count(*) FROM tasks") == [(truth["tasks"],)]


def test_the_parquet_folders_read_as_hive_datasets_outside_duckdb(sandbox: SandboxServer, tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow.dataset as ds

    assert run_cli(["run"], sandbox_env(sandbox, tmp_path)).returncode == 0
    (count,) = query(tmp_path, "SELECT count(*) FROM tags")[0]
    dataset = ds.dataset(tmp_path / "lake" / "tags", format="parquet", partitioning="hive")
    assert dataset.count_rows() == count
    frame = pd.read_parquet(tmp_path / "lake" / "tasks")
    assert {"instance_id", "execution_month", "task_id", "start_time"} <= set(frame.columns)
    assert str(frame["start_time"].dtype) == "datetime64[us, UTC]"
    assert len(frame) == query(tmp_path, "SELECT count(*) FROM tasks")[0][0]


def test_two_runs_never_write_one_data_directory_at_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from pipeline.load.lock import exclusive\n"
         "with exclusive(Path(sys.argv[1]), 'run'):\n    print('held', flush=True); time.sleep(60)", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # a run, not a rebuild: a rebuild refuses a folder with no landing before it takes the lock
        result = run_cli(["run"], sandbox_env(sandbox, tmp_path))
        assert result.returncode == 1
        assert sandbox.stats()["requests"] == 0
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(
            f"error: another swr-etl is writing in {tmp_path} (pid {holder.pid}, swr-etl run, started "
        )
    finally:
        holder.kill()
        holder.wait()
    # a lock whose holder died is simply free
    assert run_cli(["run"], sandbox_env(sandbox, tmp_path)).returncode == 0


def test_a_second_run_fetches_only_what_can_still_change(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    first = snapshot(tmp_path)
    running = {(i["id"], e["id"]) for i in sandbox.truth()["instances"] for e in i["executions"]
               if e["status"] not in ("Succeed", "Failed", "Stopped")}  # fmt: skip
    assert running, "the sandbox world has running executions"
    sandbox.reset_stats()
    result = run_cli(["run"], env)
    assert result.returncode == 0, result.stderr
    stats = sandbox.stats()
    fetched = {tuple(key.split("/")) for key in stats["tasks_pages"]}
    assert fetched == {(iid, str(eid)) for iid, eid in running}  # finished executions: no task request at all
    executions = len(query(tmp_path, "SELECT 1 FROM executions"))
    assert f"({len(running)} complete, {executions - len(running)} finished and already landed)" in result.stdout
    assert snapshot(tmp_path) == first
    # --full asks for everything again
    sandbox.reset_stats()
    assert run_cli(["run", "--full"], env).returncode == 0
    assert len(sandbox.stats()["tasks_pages"]) == executions
    assert snapshot(tmp_path) == first


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_disk_that_fills_up_during_the_load_leaves_the_lake_as_it_was(tmp_path: Path, workers: str) -> None:
    """Files may not grow past 64 KiB in the second run (RLIMIT_FSIZE): the raw pages fit, Parquet does not.
    With one lane, its writes are done behind it by a thread of their own: the failure comes back all the same."""
    import resource

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    with SandboxServer(SandboxConfig(seed=9, scale=0.5)) as server:
        env = sandbox_env(server, tmp_path, SWR_ETL_WORKERS=workers)
        assert run_cli(["run"], env).returncode == 0
        before = snapshot(tmp_path)
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "rebuild"], env=env, cwd=ROOT, capture_output=True, text=True,
            preexec_fn=small_files, timeout=240, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert line.startswith(f"error: could not write the lake in {tmp_path / 'lake'}: ")
        assert "nothing was half-written" in line
        assert snapshot(tmp_path) == before
        assert not list((tmp_path / "lake" / "_staging").rglob("*")), "the failed load's staging was not removed"
        assert run_cli(["rebuild"], env).returncode == 0  # room again: all is well
    assert snapshot(tmp_path) == before


def test_the_incremental_state_comes_back_from_the_lake_when_the_raw_landing_is_gone(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    before = snapshot(tmp_path)
    shutil.rmtree(tmp_path / "raw")  # pruned, or lost
    sandbox.reset_stats()
    result = run_cli(["run"], env)
    assert result.returncode == 0, result.stderr
    finished = query(tmp_path, "SELECT count(*) FROM executions WHERE tasks_status IN ('Succeed', 'Failed', 'Stopped')")
    assert f"{finished[0][0]} finished and already landed" in result.stdout
    assert len(sandbox.stats()["tasks_pages"]) == len(query(tmp_path, "SELECT 1 FROM executions")) - finished[0][0]
    assert snapshot(tmp_path) == before  # the lake keeps what the API no longer has to send

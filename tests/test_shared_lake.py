"""One lake, many writers: each load owns its instances' partitions, stages everything, then publishes.

Runs for different instances write one lake at the same time; a load cut short while publishing leaves whole
partition files and the next run finishes the job; a lake of version 0.1 (a symlink to versions) moves once.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, clean_env, run_cli, sandbox_env
from test_load_e2e import query, snapshot

from pipeline.load import load_lake
from pipeline.load.storage import LakeStore
from pipeline.sandbox import SandboxConfig, SandboxServer
from pipeline.schema import TABLES


def instance_ids(server: SandboxServer) -> list[str]:
    return sorted(i["id"] for i in server.truth()["instances"])


def only(rows: dict[str, list[tuple[Any, ...]]], instances: set[str]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of some instances (every table's first column is instance_id)."""
    assert all(t.columns[0] == "instance_id" for t in TABLES.values())
    return {name: [r for r in table if r[0] in instances] for name, table in rows.items()}


def crash_after_moves(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The next load publishes ``n`` files, then stops as if killed (KeyboardInterrupt: nothing is cleaned)."""
    moves = 0
    real_move = LakeStore.move

    def move(self: LakeStore, source: str, target: str) -> None:
        nonlocal moves
        if moves == n:
            raise KeyboardInterrupt
        moves += 1
        real_move(self, source, target)

    monkeypatch.setattr(LakeStore, "move", move)


def test_two_runs_for_two_instances_write_one_lake_at_once(tmp_path: Path) -> None:
    with SandboxServer(SandboxConfig(seed=5, scale=1.0)) as server:
        first, second = instance_ids(server)[:2]
        reference = tmp_path / "reference"
        assert run_cli(["run"], sandbox_env(server, reference)).returncode == 0
        lake = tmp_path / "shared-lake"
        jobs = [
            subprocess.Popen(
                [sys.executable, "-m", "pipeline", "run", "--instance-id", iid, "--lake", str(lake)],
                env=sandbox_env(server, tmp_path / f"job-{n}"),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n, iid in enumerate((first, second))
        ]
        outputs = [job.communicate(timeout=240) for job in jobs]
        for job, (out, err) in zip(jobs, outputs, strict=True):
            assert job.returncode == 0, err
            assert "of 1 instance;" in out
    expected = only(snapshot(reference), {first, second})
    assert all(expected[name] for name in ("tasks", "tags", "executions")), "the sandbox world is empty"
    # each job's warehouse reads the whole shared lake: both instances, exactly as one run wrote them
    for n in range(2):
        assert snapshot(tmp_path / f"job-{n}") == expected
    commits = sorted(p.name for p in (lake / "_commits").iterdir())
    assert commits == [f"instance_id={first}.json", f"instance_id={second}.json"]
    # a rebuild in one job's data directory owns that job's instance only: the other's rows stay
    result = run_cli(["rebuild", "--lake", str(lake)], clean_env(SWR_ETL_DATA_DIR=str(tmp_path / "job-0")))
    assert result.returncode == 0, result.stderr
    assert "of 1 instance;" in result.stdout
    assert snapshot(tmp_path / "job-1") == expected


def test_a_second_load_of_the_same_instance_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    with SandboxServer(SandboxConfig(seed=5, scale=0.3)) as server:
        iid = instance_ids(server)[0]
        lake = tmp_path / "lake-shared"
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\nfrom pipeline.load.lock import lake_instances\n"
             "from pipeline.load.storage import open_store\n"
             "with lake_instances(open_store(sys.argv[1]), {sys.argv[2]}):\n"
             "    print('held', flush=True); time.sleep(60)",
             str(lake), iid],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            result = run_cli(["run", "--instance-id", iid, "--lake", str(lake)], sandbox_env(server, tmp_path / "a"))
            assert result.returncode == 1
            assert f"error: another swr-etl is loading instance {iid} (pid {holder.pid}, " in result.stderr
            # another instance is free to load meanwhile
            other = instance_ids(server)[1]
            result = run_cli(["run", "--instance-id", other, "--lake", str(lake)], sandbox_env(server, tmp_path / "b"))
            assert result.returncode == 0, result.stderr
        finally:
            holder.kill()
            holder.wait()


def test_a_load_cut_short_while_publishing_leaves_whole_files_and_the_next_run_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SandboxServer(SandboxConfig(seed=6, scale=1.0)) as server:
        env = sandbox_env(server, tmp_path)
        assert run_cli(["run"], env).returncode == 0
        before = snapshot(tmp_path)
        shutil.rmtree(tmp_path / "lake")  # lost: the raw landing is all there is
        crash_after_moves(monkeypatch, 5)
        with pytest.raises(KeyboardInterrupt):
            load_lake(tmp_path, version="20261129T050000000Z-abcdef")
        monkeypatch.undo()
        published = sorted((tmp_path / "lake").rglob("*.parquet"))
        assert len(published) == 5, "the crash was not in the middle of publishing"
        for path in published:  # each published file is whole: readable, with its rows
            assert pq.ParquetFile(path).metadata.num_rows > 0
        assert not (tmp_path / "lake" / "executions").exists(), "executions are published last"
        result = run_cli(["run"], env)
        assert result.returncode == 0, result.stderr
        assert snapshot(tmp_path) == before
        total = server.truth()["totals"]["tasks"]
    assert query(tmp_path, "SELECT count(*) FROM tasks") == [(total,)]


def test_a_lake_of_version_0_1_moves_to_this_layout_once(tmp_path: Path) -> None:
    """Version 0.1: ``lake -> .lake/<version>``, and instances, policies and executions in one file each."""
    with SandboxServer(SandboxConfig(seed=7, scale=0.5)) as server:
        env = sandbox_env(server, tmp_path)
        assert run_cli(["run"], env).returncode == 0
        before = snapshot(tmp_path)
        old = tmp_path / ".lake" / "20261101T000000000Z-000000"
        old.parent.mkdir()
        shutil.move(tmp_path / "lake", old)
        shutil.rmtree(old / "_commits")
        for table in TABLES.values():
            for path in (old / table.name).rglob("*.parquet"):
                path.rename(path.with_name(f"part-{old.name}.parquet"))
            if table.partitioned:
                continue
            files = sorted((old / table.name).glob("instance_id=*/*.parquet"))
            parts = []
            for path in files:
                rows = pq.read_table(path)
                iid = path.parent.name.removeprefix("instance_id=")
                if iid != "__none__":
                    parts.append(rows.add_column(0, "instance_id", pc.cast([iid] * rows.num_rows, "string")))
                shutil.rmtree(path.parent)
            import pyarrow as pa

            pq.write_table(pa.concat_tables(parts).cast(table.schema), old / table.name / f"part-{old.name}.parquet")
        (tmp_path / "lake").symlink_to(old.relative_to(tmp_path))
        # a reader is told what to do; it does not move the lake itself
        result = run_cli(["query", "SELECT count(*) FROM tasks"], env)
        assert result.returncode == 1
        assert "has the layout of version 0.1: run 'swr-etl run' or 'swr-etl rebuild' once" in result.stderr
        result = run_cli(["run"], env)
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / "lake").is_symlink() and not (tmp_path / ".lake").exists()
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("mode", "workers"), [("rebuild", 1), ("update", 1), ("rebuild", 3), ("update", 3)])
def test_a_load_in_many_small_batches_gives_the_same_tables(mode: str, workers: int, tmp_path: Path) -> None:
    """Partitions finished batch by batch (a rebuild closes each file once its partition is complete) are all
    published, whether one lane does every batch or three lanes share the partitions: the batch size and
    the lanes change memory and speed, never rows (the run before used the default, a lane per core)."""
    with SandboxServer(SandboxConfig(seed=4, scale=1.0)) as server:
        assert run_cli(["run"], sandbox_env(server, tmp_path)).returncode == 0
        truth = server.truth()["totals"]
    before = snapshot(tmp_path)
    assert len(before["tasks"]) == truth["tasks"]
    executions = [(r[0], r[1]) for r in before["executions"]]
    summary = load_lake(
        tmp_path,
        version="20261129T060000000Z-abcdef",
        only=None if mode == "rebuild" else executions,
        batch_tasks=50,
        workers=workers,
    )
    assert summary.rows["tasks"] == truth["tasks"]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("mode", ["rebuild", "update"])
def test_partition_files_are_written_in_whole_row_groups_whatever_the_batches(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows wait in the writer until they fill a row group: small batches (50 tasks, chunks of a few hundred
    rows) still give files of whole row groups, only a partition's last one smaller (in an update, a
    partition's rows are also written out when its batches end, so as not to be held until the commit)."""
    from pipeline.load import writer as load

    with SandboxServer(SandboxConfig(seed=4, scale=1.0)) as server:
        assert run_cli(["run"], sandbox_env(server, tmp_path)).returncode == 0
    before = snapshot(tmp_path)
    executions = [(r[0], r[1]) for r in before["executions"]]
    monkeypatch.setattr(load, "ROW_GROUP_ROWS", 500)
    load_lake(
        tmp_path,
        version="20261129T060000000Z-abcdef",
        only=None if mode == "rebuild" else executions,
        batch_tasks=50,
        workers=1,
    )
    assert snapshot(tmp_path) == before
    largest = 0
    for name in ("tasks", "artifacts", "tags"):
        for path in sorted((tmp_path / "lake" / name).glob("instance_id=*/execution_month=*/*.parquet")):
            meta = pq.ParquetFile(path).metadata
            groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            largest = max(largest, meta.num_rows)
            assert all(n <= 500 for n in groups), (path, groups)
            if mode == "rebuild":
                assert all(n == 500 for n in groups[:-1]), (path, groups)
    assert largest > 1000  # files of several row groups were written


def test_an_execution_that_moves_partition_leaves_its_neighbours_rows_alone(tmp_path: Path) -> None:
    """Execution 20 first came without a creation time and with a page that is not JSON: its only rows are a
    reject in the ``unknown`` partition, beside execution 10's tasks. Fetched again with its time known, it
    moves to 2024-05: the rewrite of ``unknown`` must copy execution 10's tasks forward, not drop them."""
    from test_transform_golden import ARTS, EXECUTION, IID, land, resource, task

    from pipeline.warehouse import warehouse

    def rows(sql: str) -> list[tuple[Any, ...]]:
        warehouse.build(tmp_path)
        return query(tmp_path, sql)

    staying, moving = dict(EXECUTION, id=10, created_at=None), dict(EXECUTION, id=20, created_at=None)
    pair = (resource("team/app", ARTS), resource("mirror/app", ARTS))
    land(tmp_path, [[task(1, *pair, execution_id=10)]], execution=staying, run_id="20261101T000000000Z-aaaaaa")
    land(tmp_path, [b"<html>502</html>"], execution=moving, run_id="20261102T000000000Z-bbbbbb")
    load_lake(tmp_path, version="20261102T000001000Z-cccccc")
    assert rows("SELECT execution_id, execution_month FROM tasks") == [(10, "unknown")]
    assert rows("SELECT execution_id, execution_month FROM rejects") == [(20, "unknown")]
    moved = dict(moving, created_at="2024-05-01T00:00:00Z")
    land(tmp_path, [[task(2, *pair, execution_id=20)]], execution=moved, run_id="20261103T000000000Z-dddddd")
    load_lake(tmp_path, version="20261103T000001000Z-eeeeee", only=[(IID, 20)])
    assert rows("SELECT execution_id, execution_month FROM tasks ORDER BY ALL") == [(10, "unknown"), (20, "2024-05")]
    assert rows("SELECT execution_id FROM rejects") == []
    assert rows("SELECT count(*) FROM tags WHERE execution_id = 10") == [(4,)]


def test_a_job_with_a_new_landing_keeps_the_executions_history_of_the_lake(tmp_path: Path) -> None:
    """A job moved to a new machine starts with an empty landing, and the API has forgotten execution 10 by
    then: the lake must not forget it (nor when it was first seen)."""
    from test_transform_golden import ARTS, EXECUTION, IID, land, resource, task

    from pipeline.warehouse import warehouse

    lake = str(tmp_path / "lake-kept")
    pair = (resource("team/app", ARTS), resource("mirror/app", ARTS))
    old, new = tmp_path / "old-machine", tmp_path / "new-machine"
    land(old, [[task(1, *pair, execution_id=10)]], dict(EXECUTION, id=10), run_id="20261101T000000000Z-aaaaaa")
    load_lake(old, version="20261101T000001000Z-bbbbbb", lake_location=lake)
    land(new, [[task(2, *pair, execution_id=20)]], dict(EXECUTION, id=20), run_id="20261102T000000000Z-cccccc")
    load_lake(new, version="20261102T000001000Z-dddddd", only=[(IID, 20)], lake_location=lake)
    with warehouse.connect(new, lake) as db:
        executions = db.sql("SELECT execution_id, first_seen_run, tasks_run FROM executions ORDER BY 1").fetchall()
        tasks = db.sql("SELECT execution_id, task_id FROM tasks ORDER BY 1").fetchall()
    assert executions == [
        (10, "20261101T000000000Z-aaaaaa", "20261101T000000000Z-aaaaaa"),
        (20, "20261102T000000000Z-cccccc", "20261102T000000000Z-cccccc"),
    ]
    assert tasks == [(10, 1), (20, 2)]


def test_a_rebuild_cut_short_while_publishing_is_done_again_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SandboxServer(SandboxConfig(seed=6, scale=1.0)) as server:
        env = sandbox_env(server, tmp_path)
        assert run_cli(["run"], env).returncode == 0
        before = snapshot(tmp_path)
        # files only a rebuild removes: a partition the landing does not explain
        stray = tmp_path / "lake" / "tasks" / f"instance_id={instance_ids(server)[0]}" / "execution_month=1999-01"
        stray.mkdir()
        source = next((tmp_path / "lake" / "tasks").glob("instance_id=*/execution_month=2*/part-0.parquet"))
        shutil.copy(source, stray / "part-0.parquet")
        crash_after_moves(monkeypatch, 3)
        with pytest.raises(KeyboardInterrupt):
            load_lake(tmp_path, version="20261129T050000000Z-abcdef")
        monkeypatch.undo()
        assert (stray / "part-0.parquet").exists()
        result = run_cli(["run"], env)
        assert result.returncode == 0, result.stderr
    assert not (stray / "part-0.parquet").exists()
    assert snapshot(tmp_path) == before


def test_a_lanes_writes_behind_it_keep_their_order_and_their_first_error() -> None:
    """A lane alone hands its writes to a thread of their own: in order, the first failure raised in the
    lane (at its next write, or when it closes), and nothing more written after a failure or a discard."""
    from pipeline.load.lanes import _WriteBehind

    done: list[int] = []
    behind = _WriteBehind(depth=2)
    for n in range(50):
        behind.then(functools.partial(done.append, n))
    behind.close()
    assert done == list(range(50))

    def fail() -> None:
        raise OSError(28, "No space left on device")

    done.clear()
    behind = _WriteBehind(depth=2)
    behind.then(functools.partial(done.append, 1))
    behind.then(fail)
    deadline = time.monotonic() + 60
    with pytest.raises(OSError, match="No space left"):
        while time.monotonic() < deadline:  # raised at a later write, once the writer has met it
            behind.then(functools.partial(done.append, 2))
            time.sleep(0.001)
    assert isinstance(behind.close(discard=True), OSError)  # handed back: the lane weighs it against its own
    assert done == [1]

    gate = threading.Event()
    behind = _WriteBehind(depth=8)
    behind.then(gate.wait)  # the writer is busy with this one
    for n in range(5):
        behind.then(functools.partial(done.append, n))
    closing = threading.Thread(target=functools.partial(behind.close, discard=True))
    closing.start()  # the load is failing: what still waits is dropped
    while not behind._discard:
        time.sleep(0.001)
    gate.set()
    closing.join()
    assert done == [1]
    behind = _WriteBehind()
    behind.then(fail)
    with pytest.raises(OSError):
        behind.close()

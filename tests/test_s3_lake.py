"""The lake on an S3-compatible store (a real S3 server on loopback, moto's): the same tables, exactly, as a
local lake; concurrent runs per instance; crashes; and the store's credentials never printed or written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
from conftest import ROOT, S3Server, all_landed_text, clean_env, run_cli, sandbox_env
from test_load_e2e import snapshot as local_snapshot

from pipeline.load.storage import open_store
from pipeline.sandbox import Faults, SandboxConfig, SandboxServer
from pipeline.schema import TABLES
from pipeline.warehouse import warehouse


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The S3 variables, for the CLI's environment and for this process (which reads the lake back)."""
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


def snapshot(data_dir: Path, lake: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table through the warehouse's own views over the remote lake."""
    out = {}
    with warehouse.connect(data_dir, lake) as db:
        for name, table in TABLES.items():
            columns = [c for c in table.columns if c not in ("run_id", "first_seen_run", "last_seen_run", "tasks_run")]
            out[name] = db.sql(f"SELECT {', '.join(columns)} FROM {name} ORDER BY ALL").fetchall()
    return out


def objects(lake: str, *parts: str) -> list[str]:
    return open_store(lake).files(*parts)


def test_a_run_into_s3_gives_the_tables_of_a_local_run_and_reruns_are_exact(
    s3_server: S3Server, s3_env: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert run_cli(["run"], sandbox_env(sandbox, tmp_path / "local")).returncode == 0
    expected = local_snapshot(tmp_path / "local")
    lake = f"s3://{s3_server.bucket()}/swr/lake"
    env = sandbox_env(sandbox, tmp_path / "remote", SWR_ETL_LAKE=lake, **s3_env)
    result = run_cli(["run"], env)
    assert result.returncode == 0, result.stderr
    assert snapshot(tmp_path / "remote", lake) == expected
    assert not (tmp_path / "remote" / "lake").exists(), "the lake went to S3, not to the data directory"
    keys = objects(lake, "tasks")
    assert keys and all(k.startswith("tasks/instance_id=") and k.endswith("/part-0.parquet") for k in keys)
    # run again, then rebuild from the raw landing: the same rows, nothing left in staging
    assert run_cli(["run"], env).returncode == 0
    result = run_cli(["rebuild"], env)
    assert result.returncode == 0, result.stderr
    assert snapshot(tmp_path / "remote", lake) == expected
    assert objects(lake, "tasks") == keys
    fs, root = pafs.FileSystem.from_uri(lake.replace("s3://", "s3://", 1) + f"?endpoint_override={s3_server.endpoint}")
    staging = fs.get_file_info(pafs.FileSelector(f"{root}/_staging", recursive=True, allow_not_found=True))
    assert [i.path for i in staging if i.type == pafs.FileType.File] == []
    # the CLI's readers work on the remote lake too
    query = run_cli(["query", "SELECT count(*) AS n FROM tags", "--format", "csv"], env)
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1] == str(len(expected["tags"]))
    report = run_cli(["report", "--format", "json"], env)
    assert report.returncode == 0, report.stderr


def test_two_runs_for_two_instances_write_one_s3_lake_at_once(
    s3_server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    with SandboxServer(SandboxConfig(seed=5, scale=1.0)) as server:
        first, second = sorted(i["id"] for i in server.truth()["instances"])[:2]
        assert run_cli(["run"], sandbox_env(server, tmp_path / "reference")).returncode == 0
        lake = f"s3://{s3_server.bucket()}/shared"
        jobs = [
            subprocess.Popen(
                [sys.executable, "-m", "pipeline", "run", "--instance-id", iid],
                env=sandbox_env(server, tmp_path / f"job-{n}", SWR_ETL_LAKE=lake, **s3_env),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n, iid in enumerate((first, second))
        ]
        for job in jobs:
            _, err = job.communicate(timeout=240)
            assert job.returncode == 0, err
    reference = local_snapshot(tmp_path / "reference")
    expected = {name: [r for r in rows if r[0] in (first, second)] for name, rows in reference.items()}
    assert expected["tasks"] and expected["tags"]
    for n in range(2):
        assert snapshot(tmp_path / f"job-{n}", lake) == expected
    assert objects(lake, "_commits") == [f"_commits/instance_id={first}.json", f"_commits/instance_id={second}.json"]


def test_a_run_killed_before_publishing_leaves_the_s3_lake_as_it_was(
    s3_server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    config = SandboxConfig(seed=8, scale=2.0, faults=Faults(rate_bad_resource=0.02))
    lake = f"s3://{s3_server.bucket()}/k"
    store = open_store(lake)
    with SandboxServer(config) as server:
        env = sandbox_env(server, tmp_path, SWR_ETL_LAKE=lake, **s3_env)
        assert run_cli(["run", "--full"], env).returncode == 0
        before = snapshot(tmp_path, lake)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--full"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        staged: list[Any] = []
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not staged:
            selector = pafs.FileSelector(store.path("_staging"), recursive=True, allow_not_found=True)
            staged = [i for i in store.fs.get_file_info(selector) if i.type == pafs.FileType.File]
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert staged, "the run finished before it could be killed while staging"
        assert snapshot(tmp_path, lake) == before
        result = run_cli(["run"], env)  # repairs: the staging of the killed run is removed
        assert result.returncode == 0, result.stderr
        assert snapshot(tmp_path, lake) == before
        selector = pafs.FileSelector(store.path("_staging"), recursive=True, allow_not_found=True)
        assert [i for i in store.fs.get_file_info(selector) if i.type == pafs.FileType.File] == []


def test_s3_credentials_are_never_printed_or_written(
    s3_server: S3Server, s3_env: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    lake = f"s3://{s3_server.bucket()}/secret-check"
    env = sandbox_env(sandbox, tmp_path, SWR_ETL_LAKE=lake, **s3_env)
    outputs = []
    for args in (["-vvv", "run"], ["--log-format", "json", "-vv", "rebuild"], ["-vv", "query", "SELECT 1"]):
        result = run_cli(args, env)
        assert result.returncode == 0, result.stderr
        outputs += [result.stdout, result.stderr]
    # a bucket that is not there: a clear error, still without the secret (moto checks no signature, so a
    # refused key cannot be shown here; pyarrow's error messages carry the key id at most, never the secret)
    missing = dict(env, SWR_ETL_LAKE="s3://no-such-bucket/lake")
    result = run_cli(["-vv", "rebuild"], missing)
    outputs += [result.stdout, result.stderr]
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: could not write the lake in s3://no-such-bucket/lake: "), line
    written = all_landed_text(tmp_path)
    assert all(S3Server.SECRET_KEY not in text for text in outputs)
    assert S3Server.SECRET_KEY not in written  # raw landing, warehouse.duckdb, everything in the data directory
    remote = open_store(lake)
    for key in remote.files():
        assert S3Server.SECRET_KEY.encode() not in remote.read_bytes(key)


def test_locations_that_are_not_supported_are_refused_without_echoing_secrets(tmp_path: Path) -> None:
    result = run_cli(["rebuild", "--data-dir", "ftp://host/x"], {"PATH": os.environ["PATH"]})
    assert result.returncode == 2
    assert "a data directory is a local folder or s3://bucket/prefix" in result.stderr
    result = run_cli(["rebuild", "--lake", "s3://key:secret@bucket/x"], {"PATH": os.environ["PATH"]})
    assert result.returncode == 2
    assert "secret" not in result.stderr.replace("AWS_SECRET_ACCESS_KEY", "")
    result = run_cli(
        ["query", "SELECT 1", "--data-dir", "https://key:secret@obs.example/b"], {"PATH": os.environ["PATH"]}
    )
    assert result.returncode == 2
    assert "secret" not in result.stderr and "https://obs.example/b" in result.stderr
    for args, message in (
        (["--data-dir", "s3://"], "names no bucket"),
        (["--data-dir", "s3://b/x/../y"], "may not have empty, '.' or '..' segments"),
        (["--data-dir", str(tmp_path), "--work-dir", str(tmp_path / "w")], "--work-dir is the local folder of a"),
    ):
        result = run_cli(["rebuild", *args], {"PATH": os.environ["PATH"]})
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_data_directory_on_s3_is_all_a_machine_needs(
    s3_server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """``--data-dir s3://...``: the landing and the lake in the store, a local folder as a cache. A second
    machine (an empty work folder) rebuilds the same tables, and its next run is incremental."""
    data_dir = f"s3://{s3_server.bucket()}/swr"
    with SandboxServer(SandboxConfig(seed=7, scale=0.5)) as server:
        assert run_cli(["run"], sandbox_env(server, tmp_path / "reference")).returncode == 0
        expected = local_snapshot(tmp_path / "reference")
        first = sandbox_env(server, tmp_path, SWR_ETL_DATA_DIR=data_dir, SWR_ETL_WORK_DIR=str(tmp_path / "a"), **s3_env)
        result = run_cli(["run"], first)
        assert result.returncode == 0, result.stderr
        assert f"-> {data_dir}/raw" in result.stdout
        remote = objects(data_dir)
        assert any(k.startswith("raw/tasks/") and k.endswith(".json.zst") for k in remote)
        assert any(k.startswith("lake/tasks/") for k in remote)
        assert snapshot(tmp_path / "a", f"{data_dir}/lake") == expected
        # machine b: nothing local; a rebuild brings the landing back from the store and gives the same rows
        second = dict(first, SWR_ETL_WORK_DIR=str(tmp_path / "b"))
        result = run_cli(["rebuild"], second)
        assert result.returncode == 0, result.stderr
        assert snapshot(tmp_path / "b", f"{data_dir}/lake") == expected
        # machine c: its first run knows what is landed (manifests from the store), fetches only what can change
        server.reset_stats()
        result = run_cli(["run"], dict(first, SWR_ETL_WORK_DIR=str(tmp_path / "c")))
        assert result.returncode == 0, result.stderr
        running = {(i["id"], e["id"]) for i in server.truth()["instances"] for e in i["executions"]
                   if e["status"] not in ("Succeed", "Failed", "Stopped")}  # fmt: skip
        fetched = {tuple(key.split("/")) for key in server.stats()["tasks_pages"]}
        assert fetched == {(iid, str(eid)) for iid, eid in running}
        assert snapshot(tmp_path / "c", f"{data_dir}/lake") == expected
    pages = [p for p in (tmp_path / "c" / "raw" / "tasks").rglob("*.json.zst")]
    assert len(pages) < len([k for k in remote if k.startswith("raw/tasks/") and k.endswith(".json.zst")])
    # a laptop with nothing local at all: query and report work at once
    laptop = clean_env(SWR_ETL_DATA_DIR=data_dir, SWR_ETL_WORK_DIR=str(tmp_path / "laptop" / "w"), **s3_env)
    result = run_cli(["query", "SELECT count(*) AS n FROM tasks", "--format", "csv"], laptop)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == str(len(expected["tasks"]))
    assert run_cli(["report", "--format", "json"], laptop).returncode == 0


def test_a_work_folder_never_pushes_back_what_the_store_pruned_nor_serves_two_data_directories(
    s3_server: S3Server, s3_env: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    data_dir = f"s3://{s3_server.bucket()}/pruned"
    env = sandbox_env(sandbox, tmp_path, SWR_ETL_DATA_DIR=data_dir, SWR_ETL_WORK_DIR=str(tmp_path / "a"), **s3_env)
    assert run_cli(["run"], env).returncode == 0
    other = dict(env, SWR_ETL_WORK_DIR=str(tmp_path / "b"))
    assert run_cli(["rebuild"], other).returncode == 0  # b now holds copies of every fetch
    store = open_store(data_dir)
    manifests = [k for k in store.files(hidden=True) if k.startswith("raw/tasks/") and k.endswith("/_manifest.json")]
    pruned = manifests[0]
    store.delete(pruned)  # the landing in the store is pruned (a lifecycle rule, say)
    result = run_cli(["run"], other)
    assert result.returncode == 0, result.stderr
    assert not store.exists(pruned), "a copy of a pruned fetch was pushed back into the store"
    # a work folder is the copy of one data directory
    result = run_cli(["run"], dict(other, SWR_ETL_DATA_DIR=f"s3://{s3_server.bucket()}/another"))
    assert result.returncode == 2
    assert f"work folder {tmp_path / 'b'} is the copy of {data_dir}, not of s3://" in result.stderr


def test_a_failed_upload_stops_the_run_before_its_load_and_says_so(
    s3_env: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    server = S3Server()  # its own: it is stopped in the middle of the run
    data_dir = f"s3://{server.bucket()}/lost"
    env = sandbox_env(sandbox, tmp_path, SWR_ETL_DATA_DIR=data_dir, SWR_ETL_WORK_DIR=str(tmp_path / "w"),
                      **dict(s3_env, AWS_ENDPOINT_URL_S3=server.endpoint))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--max-attempts", "1"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "w" / "raw" / "tasks").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    server.stop()  # the store goes away while the extract lands pages
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    assert out.startswith("extract: "), "the extract's summary line comes first"
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: landed in {tmp_path / 'w' / 'raw'} but not copied to {data_dir}/raw: ")
    assert not (tmp_path / "w" / "warehouse.duckdb").exists(), "the load ran although the upload failed"


def test_a_remote_file_read_by_many_threads_at_once_gives_each_its_own_bytes() -> None:
    """DuckDB shares one handle between its threads (seek, then read): each thread keeps its own position."""
    import threading

    import pyarrow as pa

    from pipeline.load.storage import _SharedReader

    data = bytes(range(256)) * 4096  # 1 MiB, every offset recognisable
    reader = _SharedReader(pa.BufferReader(data))
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(300):
            offset = (n * 7919 + i * 104729) % (len(data) - 4096)
            reader.seek(offset)
            got = reader.read(4096)
            if got != data[offset : offset + 4096] or reader.tell() != offset + 4096:
                errors.append(f"thread {n} read {len(got)} bytes at {offset}: wrong")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reader.seek(-10, 2)
    assert reader.read() == data[-10:] and reader.read(5) == b""


def test_an_extract_killed_outright_has_uploaded_what_it_had_finished(
    s3_server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL (a lost machine) skips every clean-up: the uploads made while the extract ran are what is left,
    each a whole fetch (its manifest only after all its pages)."""
    data_dir = f"s3://{s3_server.bucket()}/killed"
    with SandboxServer(SandboxConfig(seed=3, scale=1.0, faults=Faults(latency_ms=80))) as server:
        env = sandbox_env(server, tmp_path, SWR_ETL_DATA_DIR=data_dir, SWR_ETL_WORK_DIR=str(tmp_path / "w"),
                          SWR_ETL_UPLOAD_EVERY_S="0.2", **s3_env)  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "extract", "--concurrency", "1", "--subtasks", "none"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(3.0)  # the extract takes at least 7 s: 90 requests of 80 ms, one at a time (no subtasks)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the extract ended before it could be killed"
    landed = list((tmp_path / "w" / "raw" / "tasks").rglob("_manifest.json"))
    store = open_store(data_dir)
    manifests = [k for k in store.files(hidden=True) if k.startswith("raw/tasks/") and k.endswith("_manifest.json")]
    assert len(manifests) >= 3, "nothing was uploaded while the extract ran"
    assert len(manifests) <= len(landed)
    import json

    keys = set(store.files(hidden=True))
    for manifest in manifests:
        folder = manifest.rsplit("/", 1)[0]
        pages = json.loads(store.read_bytes(manifest))["pages"]
        assert pages and all(f"{folder}/{p['file']}" in keys for p in pages)


def test_a_load_into_s3_makes_glibc_hand_large_freed_blocks_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer of an S3 lake sets glibc's mmap threshold (1 MiB) unless the user set it; a local lake, or a
    reader, does not. (What it saves is measured by ``bench.lake_bench``: peak RSS 1,273 against 640 MiB.)"""
    from pipeline.load import open_lake, storage

    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return 1

    monkeypatch.setattr(storage.ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(storage.sys, "platform", "linux")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    open_lake(tmp_path, writer=True)
    open_lake(tmp_path, "s3://bucket/lake")
    assert calls == []
    open_lake(tmp_path, "s3://bucket/lake", writer=True)
    assert calls == [(-3, 1 << 20)]
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    open_lake(tmp_path, "s3://bucket/lake", writer=True)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setattr(storage.sys, "platform", "win32")
    open_lake(tmp_path, "s3://bucket/lake", writer=True)
    assert calls == [(-3, 1 << 20)]

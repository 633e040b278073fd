"""Load: Arrow batches into the Parquet lake, one instance's partitions at a time, executions replaced
rather than appended. The lake is a local folder or ``s3://bucket/prefix`` (:mod:`pipeline.load.storage`).

Layout under the lake's root::

    <table>/instance_id=<I>/execution_month=<YYYY-MM>/part-0.parquet   tasks, artifacts, tags, rejects
    <table>/instance_id=<I>/part-0.parquet                             instances, policies, executions
    <table>/instance_id=__none__/.../part-0.parquet                    an empty file: every table has one
    _commits/instance_id=<I>.json                                      the instance's last load: run, files, rows
    _staging/<run id>/...                                              a load's files before they are published
    _locks/instance_id=<I>.lock                                        (a local lake) the flock of its writer

**Ownership.** A load owns the instances it loads (the run's ``--instance-id`` scope, or every instance in
its landing) and touches no other instance's files, so runs for different instances, on one machine or
many, write one lake at the same time. On a local lake each instance is flocked; on S3 there is no lock, and
the scheduler must run one job per instance (see the README).

**Stage, then publish.** Every file is first written under ``_staging/<run>/`` (hidden from readers, who read
``<table>/``). Nothing a reader sees changes until all of them are written: a crash or a full disk before
that leaves the lake as it was, and the next load removes the staging. Publishing then moves each staged file
onto its partition's one file: a rename locally, a server-side copy on S3. Each partition file is replaced
whole (a reader sees its old rows or its new ones, never a mix and never a row twice), partitions are
published one after another (tasks first, the ``executions`` files last), and the ``_commits`` record is
written at the very end. A run killed while publishing leaves some partitions new and some old; the
executions it had not published yet still say they need loading, so the next run loads them again, with no
manual step.

**Exact.** An update rewrites each partition that gets new rows, or that holds an execution being replaced,
as its old rows minus the replaced executions plus the new rows; other partitions are not touched at all. So
an execution fetched again replaces its earlier rows, and ``(instance_id, execution_id, task_id)`` stays
unique. A rebuild rewrites every partition of its instances from the raw landing and removes the others.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow.fs import FileSelector, FileType

from pipeline import names
from pipeline.errors import LandingError
from pipeline.extraction.landing import Landing, fsync_path
from pipeline.load import legacy
from pipeline.load.storage import LakeStore, open_store, return_large_frees
from pipeline.schema import EXECUTIONS, INSTANCES, PARTITION_COLUMNS, POLICIES, REJECTS, TABLES, Table
from pipeline.transform import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_TASKS,
    LANE_MEMORY_MB,
    MEMORY_MB,
    Fetch,
    Stopped,
    Transformer,
    TransformStats,
    lanes,
    partitions,
    plan,
)
from pipeline.transform.listings import LISTINGS_MONTH, small_tables

log = logging.getLogger(__name__)
_T = TypeVar("_T")

ROW_GROUP_ROWS = 128 * 1024
EMPTY = names.PLACEHOLDER  # the partition of a table's placeholder file (no id is ever encoded to it)
PART = "part-0.parquet"
STAGING = "_staging"
COMMITS = "_commits"
STALE_STAGING_S = 24 * 3600  # another writer's staging older than this is a dead run's


class LoadError(LandingError):
    """The lake could not be written. What readers see is unchanged (or, if publishing was cut short, each
    partition is whole and the next run finishes the job)."""

    hint = "free some space (or fix the permissions or credentials) and run again: nothing was half-written"


def partition_parts(table: Table, instance_id: str, month: str | None) -> list[str]:
    """The folders of one partition of ``table``: ``[table, instance_id=I, execution_month=M]``."""
    parts = [table.name, names.folder("instance_id", instance_id)]
    if table.partitioned:
        parts.append(f"execution_month={month}")
    return parts


def parse_partition(relative: str) -> dict[str, str]:
    """The hive keys of a path relative to the lake's root: ``{"instance_id": ..., "execution_month": ...}``."""
    keys = {}
    for part in relative.split("/")[1:-1]:
        name, sep, value = part.partition("=")
        if sep:
            keys[name] = names.decode(value)
    return keys


@dataclass
class _PartitionWriter:
    """One Parquet file of one partition, written in whole row groups of ``ROW_GROUP_ROWS`` rows: rows wait
    here until they fill one (at most a row group's worth per open file), and the last is written by
    :meth:`flush` or :meth:`close`. Row groups of the size scans want, whatever the size of the chunks handed
    in (measured on a 1.5M-row tags file: 20% faster to write and half the size of 20,000-row groups)."""

    store: LakeStore
    relative: str
    table: Table
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0
    closed: bool = False

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._write(whole_groups=True)

    def flush(self) -> None:
        """Write what waits, a smaller row group if it must be (the partition gets no more rows for now)."""
        if self.pending_rows:
            self._write(whole_groups=False)

    def _write(self, whole_groups: bool) -> None:
        rows = pa.concat_tables(self.pending)
        cut = rows.num_rows - rows.num_rows % ROW_GROUP_ROWS if whole_groups else rows.num_rows
        if self.writer is None:
            path = self.store.path(self.relative)
            if not self.store.remote:
                self.store.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            self.writer = pq.ParquetWriter(
                path, self.table.file_schema, filesystem=self.store.fs, **self.table.parquet_options
            )
        self.writer.write_table(rows.slice(0, cut), row_group_size=ROW_GROUP_ROWS)
        rest = rows.slice(cut)
        if rest.num_rows:  # a copy of its own: a slice would hold the whole chunk it came from
            rest = rest.take(pa.array(np.arange(rest.num_rows)))
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        if self.writer is not None:
            self.writer.close()
            if not self.store.remote:
                fsync_path(Path(self.store.path(self.relative)))
        self.closed = True


class Lake:
    """A lake's tables on its store, read and written one instance at a time."""

    def __init__(self, store: LakeStore) -> None:
        self.store = store

    def instance_files(self, table: Table, instance_id: str) -> list[str]:
        return [
            f for f in self.store.files(table.name, names.folder("instance_id", instance_id)) if f.endswith(".parquet")
        ]

    def open(self, path: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.store.fs.open_input_file(self.store.path(path)))

    def clear_staging(self, instances: set[str]) -> None:
        """Remove what killed loads left in ``_staging``: a run's staging whose instances are all ours (we own
        them, so no live writer is behind it), or that nobody touched for a day."""
        runs: dict[str, tuple[set[str], float]] = {}
        selector_root = self.store.path(STAGING)
        for info in self.store.fs.get_file_info(FileSelector(selector_root, recursive=True, allow_not_found=True)):
            if info.type != FileType.File:
                continue
            relative = info.path.removeprefix(selector_root + "/")
            run = relative.split("/", 1)[0]
            owners, newest = runs.get(run, (set(), 0.0))
            owners.add(parse_partition(relative.split("/", 1)[-1]).get("instance_id", ""))
            mtime = info.mtime.timestamp() if info.mtime else time.time()
            runs[run] = (owners, max(newest, mtime))
        if not self.store.remote:  # a run killed after its last move leaves empty folders
            for info in self.store.fs.get_file_info(FileSelector(selector_root, allow_not_found=True)):
                if info.type == FileType.Directory:
                    runs.setdefault(info.base_name, (set(), info.mtime.timestamp() if info.mtime else time.time()))
        for run, (owners, newest) in runs.items():
            age = time.time() - newest
            # an empty folder may be a live run's that has not written its first file yet: wait a little
            if (owners and owners <= instances) or (not owners and age > 600) or age > STALE_STAGING_S:
                log.info("removing %s/%s, left by a load that did not finish", STAGING, run)
                self.store.delete_dir(STAGING, run)

    def unfinished_rebuilds(self, instances: set[str]) -> list[str]:
        """Instances whose last load was a rebuild that did not finish publishing (its record says so)."""
        found = []
        for instance_id in sorted(instances):
            name = names.folder("instance_id", instance_id) + ".json"
            if not self.store.exists(COMMITS, name):
                continue
            try:
                record = json.loads(self.store.read_bytes(COMMITS, name))
            except ValueError:
                record = {"state": "publishing", "kind": "rebuild"}  # unreadable: assume the worst
            if record.get("state") == "publishing" and record.get("kind") == "rebuild":
                found.append(instance_id)
        return found

    def begin(self, run_id: str, *, instances: set[str], replace: Iterable[tuple[str, int]] | None) -> LakeLoad:
        """Start loading ``instances``. ``replace``: the executions being loaded; None rewrites them (rebuild)."""
        self.clear_staging(instances)
        return LakeLoad(self, run_id, instances, None if replace is None else set(replace))

    def rows(self, instances: Iterable[str]) -> dict[str, int]:
        """How many rows each table holds for these instances, from the files' footers."""
        rows = {}
        for table in TABLES.values():
            rows[table.name] = sum(
                self.open(f).metadata.num_rows for i in sorted(instances) for f in self.instance_files(table, i)
            )
        return rows


class LakeLoad:
    """One load of some instances: staged, then published by :meth:`commit`."""

    def __init__(self, lake: Lake, run_id: str, instances: set[str], replace: set[tuple[str, int]] | None) -> None:
        self.lake = lake
        self.store = lake.store
        self.run_id = run_id
        self.instances = instances
        self.replace = replace
        self.touched: set[tuple[str, str]] = set()  # (instance_id, execution_month) partitions rewritten
        self._writers: dict[tuple[str, str, str], _PartitionWriter] = {}
        self._staged: list[str] = []  # published paths (relative to the root) staged for the listed tables
        self._copied: set[str] = set()  # files whose rows an update copied into a staged file (or dropped)
        self._existing: set[str] = set()  # the owned instances' files when the commit began
        self._lock = threading.Lock()

    def _staging(self, relative: str) -> str:
        return f"{STAGING}/{self.run_id}/{relative}"

    def _writer(self, table: Table, instance_id: str, month: str) -> _PartitionWriter:
        key = (table.name, instance_id, month)
        if instance_id not in self.instances:
            raise LoadError(f"rows of instance {instance_id}, which this load does not own")
        with self._lock:  # lanes add writers side by side (each for its own partitions)
            writer = self._writers.get(key)
            if writer is not None and writer.closed:
                raise LoadError(f"rows for {key} arrived after its file was finished: batches out of order")
            if writer is None:
                relative = "/".join([*partition_parts(table, instance_id, month), PART])
                writer = _PartitionWriter(self.store, self._staging(relative), table)
                self._writers[key] = writer
        return writer

    def begin_batch(self, fetches: list[Fetch]) -> None:
        """A batch is about to be written: its partitions are rewritten, even those no new row lands in (the
        executions replaced there lose their old rows)."""
        self.touched.update(f.partition for f in fetches)

    def end_batch(self, fetches: list[Fetch], following: list[Fetch]) -> None:
        """A lane's batch is written. Its batches come in partition order and no other lane writes its
        partitions (see :func:`pipeline.transform.lanes`), so in a rebuild the partitions its next batch does
        not continue are complete: their files are finished now, which keeps memory flat whatever the size of
        the run. An update adds old rows at commit: every file stays open until then, its rows so far written
        out (memory stays flat too)."""
        done = {f.partition for f in fetches} - {f.partition for f in following}
        with self._lock:
            finished = [w for (_, i, m), w in self._writers.items() if (i, m) in done]
        for writer in finished:
            if self.replace is None:
                writer.close()  # its file stays staged: published with the others at commit
            else:
                writer.flush()

    def write_rows(self, table: Table, rows: pa.Table, partition: tuple[str, str] | None = None) -> None:
        """Append rows to the files of their partitions; or, with ``partition`` (instance, month), rows of that
        one partition without its columns (``table.file_schema``), as the transform hands artifacts and tags."""
        if partition is not None:
            self.touched.add(partition)
            self._writer(table, *partition).write(rows)
            return
        for (instance_id, month), part in partitions(rows):
            self.touched.add((instance_id, month))
            self._writer(table, instance_id, month).write(part.drop_columns(list(PARTITION_COLUMNS)))

    def _carry_over(self) -> None:
        """In an update, each partition being rewritten keeps its old rows, minus the replaced executions.

        A partition is rewritten when new rows land in it, or when any of its files (of any table) may hold a
        replaced execution: an execution can move partition (its created_at was unknown, then known). The
        set is settled first, across all tables, and then every file of those partitions is copied forward,
        so that no file is dropped unread."""
        if self.replace is None:
            return
        files: list[tuple[Table, str, str, str]] = []  # (table, instance, month, path)
        for old in sorted(self._existing):
            table, keys = TABLES[old.split("/", 1)[0]], parse_partition(old)
            if not table.partitioned:
                continue
            if "execution_month" not in keys:
                log.warning("ignoring %s: not in an execution_month partition", old)
                continue
            if keys["execution_month"] == LISTINGS_MONTH:  # the listings' rejects: staged whole with them
                continue
            files.append((table, keys["instance_id"], keys["execution_month"], old))
        for _, instance_id, month, old in files:
            if (instance_id, month) not in self.touched and _may_hold(self.lake.open(old), self._ids(instance_id)):
                self.touched.add((instance_id, month))
        for table, instance_id, month, old in files:
            if (instance_id, month) not in self.touched:
                continue
            replaced = pa.array(self._ids(instance_id), pa.int64())
            writer = self._writer(table, instance_id, month)
            for record_batch in self.lake.open(old).iter_batches(batch_size=ROW_GROUP_ROWS):
                keep = pc.invert(pc.is_in(record_batch.column("execution_id"), value_set=replaced))
                writer.write(pa.Table.from_batches([record_batch]).filter(keep))
            self._copied.add(old)

    def _ids(self, instance_id: str) -> list[int]:
        return sorted(e for i, e in self.replace or () if i == instance_id)

    def _stage_listed(self, listed: dict[str, pa.Table], listed_instances: set[str]) -> None:
        """The small tables, one file per owned instance. In an update the lake's rows that the landing no
        longer has (a new or pruned landing, a failed listing) stay: the landing's newest record wins per key,
        and ``first_seen_run`` is the earlier of the two. A rebuild is the landing's alone. The listings'
        rejects are written whole (an empty file too) for every instance the landing has listings of."""
        for name, rows in listed.items():
            table = TABLES[name]
            if table is REJECTS:
                self._stage_listing_rejects(rows, listed_instances)
                continue
            rows = rows.cast(table.schema)
            for instance_id in sorted(self.instances):
                mine = rows.filter(pc.equal(rows["instance_id"], instance_id)).drop_columns(["instance_id"])
                relative = "/".join([*partition_parts(table, instance_id, None), PART])
                if self.replace is not None and relative in self._existing:
                    mine = _merge_listed(table, self.lake.open(relative).read(), mine)
                if mine.num_rows:
                    writer = _PartitionWriter(self.store, self._staging(relative), table)
                    writer.write(mine)
                    writer.close()
                    self._staged.append(relative)

    def _stage_listing_rejects(self, rows: pa.Table, listed_instances: set[str]) -> None:
        rows = rows.cast(REJECTS.schema)
        for instance_id in sorted(self.instances & listed_instances):
            mine = rows.filter(pc.equal(rows["instance_id"], instance_id)).drop_columns(list(PARTITION_COLUMNS))
            relative = "/".join([*partition_parts(REJECTS, instance_id, LISTINGS_MONTH), PART])
            sink = pa.BufferOutputStream()
            pq.write_table(mine, sink, **REJECTS.parquet_options)
            self.store.write_bytes(sink.getvalue().to_pybytes(), self._staging(relative))
            self._staged.append(relative)

    def commit(self, listed: dict[str, pa.Table], listed_instances: Iterable[str] = ()) -> dict[str, int]:
        """Finish and stage every file, then publish: partitions, then the listed tables, then the record."""
        try:
            # what readers see now of the instances this load owns: listed once, for the copy and the publish
            self._existing = {
                f for t in TABLES.values() for i in self.instances for f in self.lake.instance_files(t, i)
            }
            self._carry_over()
            for writer in self._writers.values():
                writer.close()
            self._stage_listed(listed, set(listed_instances))
            self._publish()
        except OSError as exc:
            raise LoadError(f"could not write the lake at {self.store.url}: {exc}", path=self.store.url) from exc
        return self.lake.rows(self.instances)

    def _publish(self) -> None:
        staged = {
            w.relative.removeprefix(f"{STAGING}/{self.run_id}/") for w in self._writers.values() if w.writer is not None
        }
        existing = self._existing
        listed = set(self._staged)
        published = staged | listed
        # a rebuild: the staged files are the instances' whole tables; an update: the files it copied (and
        # filtered) that end with no row, and never a small table's
        stale = existing - published if self.replace is None else self._copied - published

        def small(path: str) -> bool:
            return not TABLES[path.split("/", 1)[0]].partitioned

        # Crash-safe order. Until the executions files are published, the executions being loaded still say
        # they need loading, so a cut-short update is finished by the next run (``_behind``); a cut-short
        # rebuild is told by its record below, and the next load of the instance is a rebuild.
        self._record("publishing", [])
        for relative in sorted(staged):
            self.store.move(self._staging(relative), relative)
        for relative in sorted(f for f in stale if not small(f)):
            self.store.delete(relative)
        for relative in sorted(listed, key=lambda f: (f.split("/", 1)[0] == EXECUTIONS.name, f)):
            self.store.move(self._staging(relative), relative)
        for relative in sorted(f for f in stale if small(f)):
            self.store.delete(relative)
        self._placeholders()
        self._record("committed", sorted((published | existing) - stale))
        self.store.delete_dir(STAGING, self.run_id)

    def _record(self, state: str, files: list[str]) -> None:
        """``_commits/instance_id=I.json``: what the last load of the instance did, or is doing."""
        for instance_id in sorted(self.instances):
            record = {
                "instance_id": instance_id,
                "run_id": self.run_id,
                "state": state,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "kind": "rebuild" if self.replace is None else "update",
                "files": [f for f in files if f"/{names.folder('instance_id', instance_id)}/" in f],
            }
            self.store.write_bytes(
                json.dumps(record, indent=1).encode(), COMMITS, names.folder("instance_id", instance_id) + ".json"
            )

    def _placeholders(self) -> None:
        """Every table always has one (empty) file, in a partition named ``__none__``, so that the warehouse
        views never depend on which files exist. Every writer writes the same bytes, so races are harmless."""
        for table in TABLES.values():
            keys = [f"{key}={EMPTY}" for key in table.partition_by]  # not encoded: no id's folder is named so
            relative = "/".join([table.name, *keys, PART])
            if not self.store.exists(relative):
                sink = pa.BufferOutputStream()
                pq.write_table(table.file_schema.empty_table(), sink, **table.parquet_options)
                self.store.write_bytes(sink.getvalue().to_pybytes(), relative)

    def abort(self) -> None:
        for writer in self._writers.values():
            if writer.writer is not None:
                with contextlib.suppress(OSError):
                    writer.writer.close()
        try:
            self.store.delete_dir(STAGING, self.run_id)
        except OSError as exc:
            log.warning("could not remove %s/%s: %s (the next load will)", STAGING, self.run_id, exc)


_LISTED_KEYS = {INSTANCES.name: (), POLICIES.name: ("policy_id",), EXECUTIONS.name: ("execution_id",)}


def _merge_listed(table: Table, old: pa.Table, new: pa.Table) -> pa.Table:
    """One instance's rows of a small table: the landing's (``new``) and the lake's (``old``) that the landing
    does not have; for a key in both, the earlier ``first_seen_run``."""
    keys = _LISTED_KEYS[table.name]
    old = old.select(new.column_names).cast(new.schema)
    if not keys:  # instances: one row per instance file
        if new.num_rows == 0:
            return old
        first = min(r for r in old["first_seen_run"].to_pylist() + new["first_seen_run"].to_pylist() if r)
        return new.set_column(new.schema.get_field_index("first_seen_run"), "first_seen_run", pa.array([first]))
    (key,) = keys
    first_seen = dict(zip(old[key].to_pylist(), old["first_seen_run"].to_pylist(), strict=True))
    merged = [
        min(r, first_seen.get(k) or r) if r else first_seen.get(k)
        for k, r in zip(new[key].to_pylist(), new["first_seen_run"].to_pylist(), strict=True)
    ]
    new = new.set_column(new.schema.get_field_index("first_seen_run"), "first_seen_run", pa.array(merged, pa.string()))
    kept = old.filter(pc.invert(pc.is_in(old[key], value_set=new[key])))
    return pa.concat_tables([new, kept]).sort_by([(key, "ascending")])


def _may_hold(parquet: pq.ParquetFile, execution_ids: list[int]) -> bool:
    """Whether a Parquet file may hold rows of these executions, by its row groups' min/max statistics."""
    if not execution_ids:
        return False
    meta = parquet.metadata
    column = meta.schema.to_arrow_schema().get_field_index("execution_id")
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return True
        if any(stats.min <= e <= stats.max for e in execution_ids):
            return True
    return False


@dataclass
class LoadSummary:
    """What one transform-and-load did, for the summary line and the run record."""

    executions_loaded: int = 0
    stats: TransformStats = field(default_factory=TransformStats)
    rows: dict[str, int] = field(default_factory=dict)
    version: str = ""
    elapsed_s: float = 0.0
    instances: list[str] = field(default_factory=list)

    def line(self, stage: str) -> str:
        s = self.stats
        rejects = ", ".join(f"{n} {name}" for name, n in sorted(s.rejects.items())) or "none"
        return (
            f"{stage}: {self.executions_loaded} executions, {s.tasks} tasks, {s.artifacts} artifacts, {s.tags} tags "
            f"loaded ({s.duplicates} duplicate tasks dropped); rejects: {rejects}; lake now holds "
            f"{self.rows.get('tasks', 0)} tasks in {self.rows.get('executions', 0)} executions of "
            f"{len(self.instances)} instance{'s' if len(self.instances) != 1 else ''}; {self.elapsed_s:.1f} s"
        )


def lake_fetches(lake: Lake, instances: Iterable[str] = ()) -> dict[tuple[str, int], tuple[str, str | None]]:
    """What the lake says it loaded for each execution of ``instances`` (none given: every instance): (run
    id, the execution's status then). Only those instances' files are read: other jobs may be replacing theirs."""
    wanted = set(instances)
    fetched: dict[tuple[str, int], tuple[str, str | None]] = {}
    folders = [names.folder("instance_id", i) for i in sorted(wanted)] if wanted else [""]
    paths = [f for folder in folders for f in lake.store.files(EXECUTIONS.name, *([folder] if folder else []))]
    for relative in paths:
        instance_id = parse_partition(relative).get("instance_id")
        if not relative.endswith(".parquet") or instance_id is None or f"/instance_id={EMPTY}/" in relative:
            continue
        parquet = lake.open(relative)
        present = parquet.schema_arrow.names
        columns = [c for c in ("execution_id", "tasks_run", "tasks_status") if c in present]
        for r in parquet.read(columns=columns).to_pylist():
            if r.get("tasks_run"):
                fetched[(str(instance_id), r["execution_id"])] = (r["tasks_run"], r.get("tasks_status"))
    return fetched


Loaded = dict[tuple[str, int], tuple[str, str | None]]  # what lake_fetches returns


def _loaded_fetches(loaded: Loaded, everything: list[Fetch]) -> Loaded:
    """After this load: the landing's newest fetches, and what the lake held for executions whose fetches
    are no longer in the landing (pruned or lost): that is how the incremental state survives."""
    merged = dict(loaded)
    for f in everything:
        status = f.execution.get("status") if f.complete else None  # an incomplete fetch is not done
        merged[f.key] = (f.run_id, status if isinstance(status, str) else None)
    return merged


def _behind(loaded: Loaded, everything: list[Fetch]) -> set[tuple[str, int]]:
    """Executions whose newest complete fetch is not the one the lake holds (a run killed after its extract,
    or a first load): loading them too makes the lake catch up with the landing, with no manual step."""
    return {f.key for f in everything if loaded.get(f.key, ("", None))[0] != f.run_id}


def open_lake(data_dir: Path, location: str | None = None, *, writer: bool = False) -> Lake:
    """The lake of a data directory: ``location`` (a path or ``s3://``), or ``DATA_DIR/lake`` by default.
    A ``writer`` (holding the data directory's lock) moves a lake of version 0.1 to this layout first."""
    if location is None:
        if (Path(data_dir) / "lake").is_symlink() or (Path(data_dir) / ".lake-0.2").exists():
            if not writer:
                raise LoadError(
                    f"the lake in {data_dir} has the layout of version 0.1: run 'swr-etl run' or 'swr-etl rebuild' "
                    "once, which moves it"
                )
            _migrate_versioned_layout(Path(data_dir))
        location = str(Path(data_dir) / "lake")
    store = open_store(location)
    if store.remote and writer:
        return_large_frees()
    return Lake(store)


def _migrate_versioned_layout(data_dir: Path) -> None:
    """Lakes written before version 0.2 were ``lake -> .lake/<version>`` (a symlink swapped by each load),
    with the small tables not partitioned. Move the current version into place as the lake, once.

    Resumable at every step: the version folder is reshaped in place while the symlink still points at it
    (each file written under a temporary name and renamed), then renamed to ``.lake-0.2``, which the next
    attempt finishes moving into place if this one is cut short."""
    link, ready = data_dir / "lake", data_dir / ".lake-0.2"
    if link.is_symlink() and not ready.exists():
        current = link.resolve()
        log.warning("moving the lake of %s to the layout of version 0.2 (once)", data_dir)
        for table in TABLES.values():
            folder = current / table.name
            for old in sorted(folder.glob("*.parquet")):  # a small table, not partitioned yet
                rows = pq.read_table(old)
                for instance_id in sorted(set(rows["instance_id"].to_pylist())):
                    target = folder / names.folder("instance_id", instance_id) / PART
                    target.parent.mkdir(parents=True, exist_ok=True)
                    mine = rows.filter(pc.equal(rows["instance_id"], instance_id)).drop_columns(["instance_id"])
                    tmp = target.with_name(f".{PART}.migrating")
                    pq.write_table(mine.cast(table.file_schema), tmp, **table.parquet_options)
                    os.replace(tmp, target)
                old.unlink()
            for old in sorted(folder.glob("instance_id=*/**/*.parquet")):
                if old.name != PART:
                    old.rename(old.with_name(PART))  # one file per partition, named as this version names it
        os.rename(current, ready)
    if ready.exists():
        if link.is_symlink():
            link.unlink()
        os.rename(ready, link)
        shutil.rmtree(data_dir / ".lake", ignore_errors=True)


def cores() -> int:
    """The cores this process may run on (its affinity, which a container or ``taskset`` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Lanes of a load when not configured (``--workers``): one per core, at most 4 (each holds a batch)."""
    return max(1, min(4, cores()))


class _WriteBehind:
    """A lane's writes, done in order by a thread of their own: the lane goes on transforming while its last
    chunks are compressed and written. Only with fewer lanes than cores (a load of one partition, say), since
    a lane per core keeps the cores busy already. At most ``depth`` chunks wait, so memory stays bounded."""

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._discard = False
        self._thread = threading.Thread(target=self._drain, name="lane-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if self._error is None and not self._discard:
                    job()
            except BaseException as exc:  # raised in the lane, at its next write or when it closes
                self._error = exc

    def then(self, job: Callable[[], object]) -> None:
        """Run ``job`` after every write queued before it."""
        if self._error is not None:
            raise self._error
        self._queue.put(job)

    def close(self, *, discard: bool = False) -> BaseException | None:
        """Finish the queued writes and raise the first error of a write; or, with ``discard`` (the lane is
        failing), drop them and return that error, if any, for the lane to weigh against its own."""
        self._discard = discard
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and not discard:
            raise self._error
        return self._error


def transform_lanes(
    work: list[list[list[Fetch]]], target: LakeLoad, meanwhile: Callable[[], _T]
) -> tuple[TransformStats, _T]:
    """Transform each lane's batches into ``target``, the lanes side by side in threads (DuckDB, Arrow and
    Parquet release the GIL), while this thread does ``meanwhile`` (the small tables). One lane gets every
    core; several get one DuckDB thread each. The first error (or Ctrl-C) stops every lane and is raised."""
    stop = threading.Event()
    transformers: list[Transformer] = []
    alone = len(work) == 1

    def run(lane: list[list[Fetch]]) -> TransformStats:
        stats = TransformStats()
        memory_mb = MEMORY_MB if alone else LANE_MEMORY_MB
        behind: _WriteBehind | None = None

        def later(job: Callable[[], object]) -> None:
            """``job`` now, or behind the lane after the writes queued before it."""
            if behind is None:
                job()
            else:
                behind.then(job)

        def write(table: Table, rows: pa.Table, partition: tuple[str, str] | None = None) -> None:
            later(functools.partial(target.write_rows, table, rows, partition))

        with Transformer(threads=cores() if alone else 1, memory_limit_mb=memory_mb) as transformer:
            transformers.append(transformer)
            if len(work) < cores():  # a core to spare
                behind = _WriteBehind()
            try:
                for k, group in enumerate(lane):
                    if stop.is_set():
                        break
                    target.begin_batch(group)
                    done = transformer.transform(group, write)
                    following = lane[k + 1] if k + 1 < len(lane) else []
                    later(functools.partial(target.end_batch, group, following))  # after the batch's writes
                    stats.add(done)
                    log.info("transformed %d executions (%d tasks)", len(group), done.tasks)
            except BaseException as exc:
                failed_write = behind.close(discard=True) if behind is not None else None
                if failed_write is not None and not isinstance(exc, (Stopped, KeyboardInterrupt)):
                    log.debug("the lane failed after its writer: %r", exc)
                    raise failed_write from None  # the first failure (a full disk, say) says what to do
                raise
            if behind is not None:
                behind.close()
        return stats

    total = TransformStats()
    with ThreadPoolExecutor(max(1, len(work)), thread_name_prefix="lane") as pool:
        futures = [pool.submit(run, lane) for lane in work]
        try:
            result = meanwhile()
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        except BaseException:
            stop.set()
            for transformer in list(transformers):
                transformer.interrupt()
            wait(futures)
            raise
    for future in futures:
        total.add(future.result())
    return total, result


def load_lake(
    data_dir: Path,
    *,
    version: str,
    only: Iterable[tuple[str, int]] | None = None,
    instances: Iterable[str] = (),
    lake_location: str | None = None,
    batch_tasks: int = DEFAULT_BATCH_TASKS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    prepare: Callable[[list[Fetch]], object] | None = None,
    workers: int | None = None,
) -> LoadSummary:
    """Transform the raw landing and load it: every execution (``only=None``: a rebuild) or just ``only``.

    The load owns ``instances`` (the run's scope) or, when none are given, every instance whose policies or
    executions the landing holds: it writes their partitions and nobody else's. ``prepare`` is handed the
    fetches about to be transformed (a remote data directory copies their pages). ``workers``: lanes that
    transform side by side (default: one per core, see :func:`default_workers`); ``batch_tasks`` and
    ``batch_bytes``: how large a lane's batches are (:func:`pipeline.transform.batches`)."""
    from pipeline.load.lock import lake_instances

    started = time.monotonic()
    landing = Landing(data_dir)
    scope = set(instances)
    everything = [f for f in plan(landing) if not scope or f.key[0] in scope]
    # Not every instance of the project's listing: a job that extracted one instance has them all in its
    # instances listing, and its rebuild must not take (and empty) the other jobs' instances.
    owned = scope or (
        {f.key[0] for f in everything}
        | {m["instance_id"] for kind in ("policies", "executions") for m in landing.manifests(kind)}
    )
    lake = open_lake(data_dir, lake_location, writer=True)
    with lake_instances(lake.store, owned):
        try:
            legacy.repair(lake.store, owned)  # folders an older version named with raw ids: readers fail on them
            cut_short = lake.unfinished_rebuilds(owned)
            if cut_short and only is not None:
                log.warning("a rebuild of %s was cut short while publishing: rebuilding them", ", ".join(cut_short))
                only = None
            loaded = lake_fetches(lake, owned)
            wanted = None if only is None else set(only) | _behind(loaded, everything)
            fetches = everything if wanted is None else [f for f in everything if f.key in wanted]
            replace = None if only is None else [f.key for f in fetches]
            target = lake.begin(version, instances=owned, replace=replace)
        except OSError as exc:
            raise LoadError(f"could not read the lake at {lake.store.url}: {exc}", path=lake.store.url) from exc
        summary = LoadSummary(executions_loaded=len(fetches), version=version)
        try:
            if prepare is not None:
                prepare(fetches)

            def listings() -> tuple[dict[str, pa.Table], set[str]]:
                try:
                    return small_tables(landing, _loaded_fetches(loaded, everything))
                except OSError as exc:  # not a lake write: said as what it is
                    raise LandingError(f"could not read the landing in {data_dir}: {exc}", path=str(data_dir)) from exc

            work = lanes(fetches, workers or default_workers(), batch_tasks, batch_bytes)
            summary.stats, (listed, listed_instances) = transform_lanes(work, target, listings)
            summary.rows = target.commit(listed, listed_instances)
            if listed[REJECTS.name].num_rows:
                summary.stats.rejects["listing"] = listed[REJECTS.name].num_rows
        except OSError as exc:  # a full disk, a file too large, a permission: the lake stays as it was
            target.abort()
            raise LoadError(f"could not write the lake in {lake.store.url}: {exc}", path=lake.store.url) from exc
        except BaseException:
            target.abort()
            raise
    summary.instances = sorted(owned)
    summary.elapsed_s = round(time.monotonic() - started, 3)
    return summary

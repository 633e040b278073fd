"""One load of some instances into the lake: every file staged, then published by :meth:`LakeLoad.commit`.

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
import json
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import names
from pipeline.errors import LoadError
from pipeline.load.lake import Lake
from pipeline.load.layout import COMMITS, EMPTY, PART, STAGING, parse_partition, partition_parts
from pipeline.load.listed import merge_listed
from pipeline.load.writer import ROW_GROUP_ROWS, PartitionWriter
from pipeline.schema import EXECUTIONS, PARTITION_COLUMNS, REJECTS, TABLES, Table
from pipeline.transform import Fetch, partitions
from pipeline.transform.listings import LISTINGS_MONTH

log = logging.getLogger(__name__)


class LakeLoad:
    """One load of some instances: staged, then published by :meth:`commit`."""

    def __init__(self, lake: Lake, run_id: str, instances: set[str], replace: set[tuple[str, int]] | None) -> None:
        self.lake = lake
        self.store = lake.store
        self.run_id = run_id
        self.instances = instances
        self.replace = replace
        self.touched: set[tuple[str, str]] = set()  # (instance_id, execution_month) partitions rewritten
        self._writers: dict[tuple[str, str, str], PartitionWriter] = {}
        self._staged: list[str] = []  # published paths (relative to the root) staged for the listed tables
        self._copied: set[str] = set()  # files whose rows an update copied into a staged file (or dropped)
        self._existing: set[str] = set()  # the owned instances' files when the commit began
        self._lock = threading.Lock()

    @classmethod
    def begin(
        cls, lake: Lake, run_id: str, *, instances: set[str], replace: Iterable[tuple[str, int]] | None
    ) -> LakeLoad:
        """Start loading ``instances``. ``replace``: the executions being loaded; None rewrites them (rebuild)."""
        lake.clear_staging(instances)
        return cls(lake, run_id, instances, None if replace is None else set(replace))

    def _staging(self, relative: str) -> str:
        return f"{STAGING}/{self.run_id}/{relative}"

    def _writer(self, table: Table, instance_id: str, month: str) -> PartitionWriter:
        key = (table.name, instance_id, month)
        if instance_id not in self.instances:
            raise LoadError(f"rows of instance {instance_id}, which this load does not own")
        with self._lock:  # lanes add writers side by side (each for its own partitions)
            writer = self._writers.get(key)
            if writer is not None and writer.closed:
                raise LoadError(f"rows for {key} arrived after its file was finished: batches out of order")
            if writer is None:
                relative = "/".join([*partition_parts(table, instance_id, month), PART])
                writer = PartitionWriter(self.store, self._staging(relative), table)
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
                    mine = merge_listed(table, self.lake.open(relative).read(), mine)
                if mine.num_rows:
                    writer = PartitionWriter(self.store, self._staging(relative), table)
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

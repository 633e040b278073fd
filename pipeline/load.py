"""Load: Arrow batches into the Parquet lake, atomically, with executions replaced rather than appended.

Layout::

    DATA_DIR/lake -> .lake/<version>          a relative symlink: the lake readers see
    DATA_DIR/.lake/<version>/<table>/instance_id=<I>/execution_month=<YYYY-MM>/part-<version>.parquet
    DATA_DIR/.lake/<version>/executions/part-<version>.parquet

Every load writes a new version and then swaps the ``lake`` symlink with one ``rename``: a reader, or a
crash at any moment, sees every table in its old state or in its new one, never a mix. Partitions the load
does not touch are hard links to the previous version's files (no copy); a partition that holds an execution
being loaded is rewritten as its old rows, minus the executions being replaced, plus the new rows. So an
execution fetched again replaces its earlier rows, and ``(instance_id, execution_id, task_id)`` stays unique.
A rebuild rewrites every partition from the raw landing. The previous version is kept until the next load,
for readers still inside it; anything else under ``.lake`` (a killed load's leftovers) is removed by the
next load, with no manual step.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import LandingError
from pipeline.landing import Landing, fsync_path
from pipeline.schema import EXECUTIONS, INSTANCES, PARTITION_COLUMNS, POLICIES, TABLES, Table
from pipeline.transform import (
    DEFAULT_BATCH_TASKS,
    Fetch,
    Transformer,
    TransformStats,
    batches,
    load_executions,
    load_instances,
    load_policies,
    partitions,
    plan,
)

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 128 * 1024
EMPTY = "__none__"  # the partition of a table's placeholder file when it has no rows
COMPRESSION = "zstd"


class LoadError(LandingError):
    """The lake could not be written. The previous version stays current."""

    hint = "free some space (or fix the permissions) and run again: nothing was half-written"


@dataclass
class _PartitionWriter:
    """One Parquet file of one partition, written chunk by chunk (a chunk is at most one row group)."""

    path: Path
    schema: pa.Schema
    writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, self.schema, compression=COMPRESSION)
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            fsync_path(self.path)


def _may_hold(path: Path, execution_ids: list[int]) -> bool:
    """Whether a Parquet file may hold rows of these executions, by its row groups' min/max statistics."""
    if not execution_ids:
        return False
    meta = pq.ParquetFile(path).metadata
    column = meta.schema.to_arrow_schema().get_field_index("execution_id")
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return True
        if any(stats.min <= e <= stats.max for e in execution_ids):
            return True
    return False


class Lake:
    """The ``lake`` symlink of a data directory and the versions behind it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.link = self.data_dir / "lake"
        self.versions = self.data_dir / ".lake"

    def current(self) -> Path | None:
        """The version folder readers see now, or None before the first load."""
        if self.link.is_symlink():
            return (self.link.parent / os.readlink(self.link)).resolve()
        if self.link.exists():
            raise LoadError(f"{self.link} exists and is not the lake's symlink: move it away", path=str(self.link))
        return None

    def repair(self) -> None:
        """Remove what a killed load left: versions that are neither current nor the one before, stray links."""
        current = self.current()
        for stray in self.data_dir.glob(".lake-link-*"):
            stray.unlink(missing_ok=True)
        if not self.versions.exists():
            return
        keep = {current.name} if current else set()
        previous = self.versions / ".previous"
        if previous.is_symlink():
            keep.add(os.readlink(previous))
        for folder in self.versions.iterdir():
            if folder.name in keep or folder.name == ".previous":
                continue
            if folder.is_symlink():  # a .previous link a killed commit did not rename into place
                folder.unlink()
                continue
            log.info("removing %s, left by an earlier load that did not finish or is superseded", folder)
            shutil.rmtree(folder, ignore_errors=True)

    def begin(self, version: str, *, replace: Iterable[tuple[str, int]] | None) -> LakeVersion:
        """Start a new version. ``replace``: the executions being loaded; None rewrites everything (rebuild)."""
        self.repair()
        return LakeVersion(self, version, self.current(), None if replace is None else set(replace))

    def commit(self, version: Path) -> None:
        """Make ``version`` the lake readers see, in one atomic rename; keep the one before it."""
        before = self.current()
        tmp = self.data_dir / f".lake-link-{secrets.token_hex(4)}"
        os.symlink(os.path.relpath(version, self.data_dir), tmp)
        os.replace(tmp, self.link)
        fsync_path(self.data_dir)
        previous = self.versions / ".previous"
        if before is not None and before != version:
            tmp_prev = self.versions / f".previous-{secrets.token_hex(4)}"
            os.symlink(before.name, tmp_prev)
            os.replace(tmp_prev, previous)
        self.repair()


class LakeVersion:
    """A version being written. Not visible to readers until :meth:`commit`."""

    def __init__(self, lake: Lake, version: str, base: Path | None, replace: set[tuple[str, int]] | None) -> None:
        self.lake = lake
        self.version = version
        self.path = lake.versions / version
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        self.base = base
        self.replace = replace
        self.touched: set[tuple[str, str]] = set()  # (instance_id, execution_month) partitions written here
        self._writers: dict[tuple[str, str, str], _PartitionWriter] = {}
        self._closed: set[tuple[str, str, str]] = set()

    def _writer(self, table: Table, instance_id: str, month: str) -> _PartitionWriter:
        key = (table.name, instance_id, month)
        if key in self._closed:
            raise LoadError(f"rows for {key} arrived after its file was finished: batches out of order")
        writer = self._writers.get(key)
        if writer is None:
            folder = self.path / table.name / f"instance_id={instance_id}" / f"execution_month={month}"
            schema = pa.schema([f for f in table.schema if f.name not in PARTITION_COLUMNS])
            writer = self._writers[key] = _PartitionWriter(folder / f"part-{self.version}.parquet", schema)
        return writer

    def begin_batch(self, fetches: list[Fetch]) -> None:
        """A batch is about to be written: its partitions are rewritten, even those no new row lands in (the
        executions replaced there lose their old rows). Batches come in partition order (see
        :func:`pipeline.transform.batches`), so in a rebuild the partitions before this batch's first are
        complete: their files are finished now, which keeps memory flat whatever the size of the run."""
        self.touched.update(f.partition for f in fetches)
        if self.replace is not None or not fetches:
            return  # an update adds old rows at commit: every file stays open until then
        first = min(f.partition for f in fetches)
        for key in [k for k in self._writers if (k[1], k[2]) < first]:
            self._writers.pop(key).close()
            self._closed.add(key)

    def write_rows(self, table: Table, rows: pa.Table) -> None:
        """Append rows to the files of their partitions."""
        for (instance_id, month), part in partitions(rows):
            self.touched.add((instance_id, month))
            self._writer(table, instance_id, month).write(part.drop_columns(list(PARTITION_COLUMNS)))

    def _carry_over(self) -> None:
        """Partitions not touched: hard links. Touched ones: their old rows, minus replaced executions."""
        if self.base is None or self.replace is None:
            return
        for name, table in TABLES.items():
            if not table.partitioned or not (self.base / name).exists():
                continue
            for old in sorted((self.base / name).glob("instance_id=*/execution_month=*/*.parquet")):
                instance_id = old.parent.parent.name.removeprefix("instance_id=")
                month = old.parent.name.removeprefix("execution_month=")
                if instance_id == EMPTY:
                    continue  # a placeholder: made again if still needed
                ids = sorted(e for i, e in self.replace if i == instance_id)
                # an execution can move partition (its created_at was unknown, then known): a file that may
                # hold a replaced execution is filtered even when no new row lands in its partition
                if (instance_id, month) not in self.touched and not _may_hold(old, ids):
                    target = self.path / old.relative_to(self.base)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(old, target)
                    continue
                replaced = pa.array(ids, pa.int64())
                writer = self._writer(table, instance_id, month)
                for record_batch in pq.ParquetFile(old).iter_batches(batch_size=ROW_GROUP_ROWS):
                    keep = pc.invert(pc.is_in(record_batch.column("execution_id"), value_set=replaced))
                    writer.write(pa.Table.from_batches([record_batch]).filter(keep))

    def commit(self, listed: dict[str, pa.Table]) -> dict[str, int]:
        """Finish every file, write the small tables built from the listings, and swap the lake."""
        try:
            self._carry_over()
            for writer in self._writers.values():
                writer.close()
            self._placeholders()
            for name, rows in listed.items():
                path = self.path / name / f"part-{self.version}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(rows.cast(TABLES[name].schema), path, compression=COMPRESSION)
                fsync_path(path)
        except OSError as exc:
            raise LoadError(
                f"could not write the lake at {self.path}: {exc.strerror or exc}", path=str(self.path)
            ) from exc
        rows = {name: 0 for name in TABLES}
        for part in self.path.rglob("*.parquet"):
            rows[part.relative_to(self.path).parts[0]] += pq.ParquetFile(part).metadata.num_rows
        self.lake.commit(self.path)
        return rows

    def _placeholders(self) -> None:
        """A partitioned table with no rows at all still gets one (empty) file, in a partition named
        ``__none__``: every table always has files, so the warehouse views never depend on which exist."""
        for table in TABLES.values():
            folder = self.path / table.name
            if table.partitioned and not any(folder.glob("*/*/*.parquet")):
                path = folder / f"instance_id={EMPTY}" / f"execution_month={EMPTY}" / "part-empty.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                schema = pa.schema([f for f in table.schema if f.name not in PARTITION_COLUMNS])
                pq.write_table(schema.empty_table(), path, compression=COMPRESSION)

    def abort(self) -> None:
        for writer in self._writers.values():
            if writer.writer is not None:
                writer.writer.close()
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class LoadSummary:
    """What one transform-and-load did, for the summary line and the run record."""

    executions_loaded: int = 0
    stats: TransformStats = field(default_factory=TransformStats)
    rows: dict[str, int] = field(default_factory=dict)
    version: str = ""
    elapsed_s: float = 0.0

    def line(self, stage: str) -> str:
        s = self.stats
        rejects = ", ".join(f"{n} {name}" for name, n in sorted(s.rejects.items())) or "none"
        return (
            f"{stage}: {self.executions_loaded} executions, {s.tasks} tasks, {s.artifacts} artifacts, {s.tags} tags "
            f"loaded ({s.duplicates} duplicate tasks dropped); rejects: {rejects}; lake now holds "
            f"{self.rows.get('tasks', 0)} tasks in {self.rows.get('executions', 0)} executions; {self.elapsed_s:.1f} s"
        )


def lake_fetches(lake: Lake) -> dict[tuple[str, int], tuple[str, str | None]]:
    """What the current lake says it loaded for each execution: (run id, the execution's status then)."""
    current = lake.current()
    folder = current / EXECUTIONS.name if current else None
    if folder is None or not any(folder.glob("*.parquet")):
        return {}
    columns = ["instance_id", "execution_id", "tasks_run", "tasks_status"]
    schema = pq.read_schema(next(folder.glob("*.parquet")))
    rows = pq.read_table(folder, columns=[c for c in columns if c in schema.names]).to_pylist()
    return {
        (r["instance_id"], r["execution_id"]): (r["tasks_run"], r.get("tasks_status")) for r in rows if r["tasks_run"]
    }


def _loaded_fetches(lake: Lake, everything: list[Fetch]) -> dict[tuple[str, int], tuple[str, str | None]]:
    """After this load: the landing's newest fetches, and what the lake held for executions whose fetches
    are no longer in the landing (pruned or lost): that is how the incremental state survives."""
    merged = lake_fetches(lake)
    for f in everything:
        status = f.execution.get("status")
        merged[f.key] = (f.run_id, status if isinstance(status, str) else None)
    return merged


def _behind(lake: Lake, everything: list[Fetch]) -> set[tuple[str, int]]:
    """Executions whose newest complete fetch is not the one the lake holds (a run killed after its extract,
    or a first load): loading them too makes the lake catch up with the landing, with no manual step."""
    loaded = lake_fetches(lake)
    return {f.key for f in everything if loaded.get(f.key, ("", None))[0] != f.run_id}


def load_lake(
    data_dir: Path,
    *,
    version: str,
    only: Iterable[tuple[str, int]] | None = None,
    batch_tasks: int = DEFAULT_BATCH_TASKS,
) -> LoadSummary:
    """Transform the raw landing and load it: every execution (``only=None``: a rebuild) or just ``only``."""
    started = time.monotonic()
    landing = Landing(data_dir)
    everything = plan(landing)
    lake = Lake(data_dir)
    wanted = None if only is None else set(only) | _behind(lake, everything)
    fetches = everything if wanted is None else [f for f in everything if f.key in wanted]
    target = lake.begin(version, replace=None if only is None else [f.key for f in fetches])
    summary = LoadSummary(executions_loaded=len(fetches), version=version)
    try:
        with Transformer() as transformer:
            for group in batches(fetches, batch_tasks):
                target.begin_batch(group)
                stats = transformer.transform(group, target.write_rows)
                summary.stats.add(stats)
                log.info("transformed %d executions (%d tasks)", len(group), stats.tasks)
        listed = {
            INSTANCES.name: load_instances(landing),
            POLICIES.name: load_policies(landing),
            EXECUTIONS.name: load_executions(landing, _loaded_fetches(lake, everything)),
        }
        summary.rows = target.commit(listed)
    except OSError as exc:  # a full disk, a file too large, a permission: the lake stays as it was
        target.abort()
        raise LoadError(f"could not write the lake in {data_dir}: {exc}", path=str(data_dir)) from exc
    except BaseException:
        target.abort()
        raise
    summary.elapsed_s = round(time.monotonic() - started, 3)
    return summary

"""The lake: its tables on a local folder or ``s3://bucket/prefix`` (:mod:`pipeline.load.storage`), read and
written one instance at a time, and what it says it has loaded.

**Ownership.** A load owns the instances it loads (the run's ``--instance-id`` scope, or every instance in
its landing) and touches no other instance's files, so runs for different instances, on one machine or
many, write one lake at the same time. On a local lake each instance is flocked; on S3 there is no lock, and
the scheduler must run one job per instance (see the README). The layout is in :mod:`pipeline.load.layout`,
how a load stages and publishes its files in :mod:`pipeline.load.lakeload`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq
from pyarrow.fs import FileSelector, FileType

from pipeline import names
from pipeline.errors import LoadError
from pipeline.load.layout import COMMITS, EMPTY, STAGING, parse_partition
from pipeline.load.migrate import migrate_versioned_layout
from pipeline.load.storage import LakeStore, open_store, return_large_frees
from pipeline.schema import EXECUTIONS, TABLES, Table

log = logging.getLogger(__name__)

STALE_STAGING_S = 24 * 3600  # another writer's staging older than this is a dead run's


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

    def rows(self, instances: Iterable[str]) -> dict[str, int]:
        """How many rows each table holds for these instances, from the files' footers."""
        rows = {}
        for table in TABLES.values():
            rows[table.name] = sum(
                self.open(f).metadata.num_rows for i in sorted(instances) for f in self.instance_files(table, i)
            )
        return rows


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
            migrate_versioned_layout(Path(data_dir))
        location = str(Path(data_dir) / "lake")
    store = open_store(location)
    if store.remote and writer:
        return_large_frees()
    return Lake(store)


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

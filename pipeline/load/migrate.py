"""The move of a lake written before version 0.2 (``lake -> .lake/<version>``) to the current layout."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import names
from pipeline.load.layout import PART
from pipeline.schema import TABLES

log = logging.getLogger(__name__)


def migrate_versioned_layout(data_dir: Path) -> None:
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

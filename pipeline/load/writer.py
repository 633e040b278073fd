"""One Parquet file of one partition, written in whole row groups whatever the size of the chunks handed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.landing import fsync_path
from pipeline.load.storage import LakeStore
from pipeline.schema import Table

ROW_GROUP_ROWS = 128 * 1024


@dataclass
class PartitionWriter:
    """One Parquet file of one partition, written in whole row groups of ``ROW_GROUP_ROWS`` rows: rows wait
    here until they fill one (at most a row group's worth per open file), and the last is written by
    :meth:`flush` or :meth:`close`. Row groups of the size scans want, whatever the size of the chunks handed
    in (docs/decisions/0014-whole-row-groups-whatever-the-chunks.md)."""

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

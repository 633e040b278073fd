"""Where the transform's rows go (:class:`Sink`), and rows cut and shaped as a partition's files hold them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import Table


class Sink(Protocol):
    """Where a transform's rows go: rows of ``table`` (all its columns); or, with ``partition`` (instance,
    month), rows of that one partition with only the columns of its files (``table.file_schema``)."""

    def __call__(self, table: Table, rows: pa.Table, partition: tuple[str, str] | None = None) -> None: ...


def partitions(rows: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """The rows of each partition in ``rows`` (a batch spans one partition or a few)."""
    if rows.num_rows == 0:
        return
    instances = pc.unique(rows["instance_id"]).to_pylist()
    months = pc.unique(rows["execution_month"]).to_pylist()
    if len(instances) == 1 and len(months) == 1:
        yield (instances[0], months[0]), rows
        return
    for instance_id in sorted(instances):
        mine = rows.filter(pc.equal(rows["instance_id"], instance_id)) if len(instances) > 1 else rows
        for month in sorted(pc.unique(mine["execution_month"]).to_pylist()):
            yield (instance_id, month), mine.filter(pc.equal(mine["execution_month"], month))


def file_rows(table: Table, rows: pa.Table) -> pa.Table:
    """``rows`` as a file of ``table`` holds them: its columns but the partition's, in order, of its types."""
    return rows.select(table.file_schema.names).cast(table.file_schema)

"""Where a load writes in the lake: the names of its partitions, staging, commit records and placeholders.

Layout under the lake's root::

    <table>/instance_id=<I>/execution_month=<YYYY-MM>/part-0.parquet   tasks, artifacts, tags, rejects
    <table>/instance_id=<I>/part-0.parquet                             instances, policies, executions
    <table>/instance_id=__none__/.../part-0.parquet                    an empty file: every table has one
    _commits/instance_id=<I>.json                                      the instance's last load: run, files, rows
    _staging/<run id>/...                                              a load's files before they are published
    _locks/instance_id=<I>.lock                                        (a local lake) the flock of its writer
"""

from __future__ import annotations

from pipeline import names
from pipeline.schema import Table

EMPTY = names.PLACEHOLDER  # the partition of a table's placeholder file (no id is ever encoded to it)
PART = "part-0.parquet"
STAGING = "_staging"
COMMITS = "_commits"


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

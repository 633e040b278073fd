"""Transform: raw task pages and listings into typed rows, bad records into rejects.

The names below are the package's contract with the load; the modules behind them are free to change.
"""

from pipeline.transform.transform import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_TASKS,
    LANE_MEMORY_MB,
    MEMORY_MB,
    Fetch,
    Sink,
    Stopped,
    Transformer,
    TransformStats,
    batches,
    cast_time,
    describe_invalid_json,
    execution_month,
    lanes,
    parse_time,
    partitions,
    plan,
)

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_TASKS",
    "LANE_MEMORY_MB",
    "MEMORY_MB",
    "Fetch",
    "Sink",
    "Stopped",
    "TransformStats",
    "Transformer",
    "batches",
    "cast_time",
    "describe_invalid_json",
    "execution_month",
    "lanes",
    "parse_time",
    "partitions",
    "plan",
]

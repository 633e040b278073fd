"""Transform: raw task pages and listings into typed rows, bad records into rejects.

The names below are the package's contract with the load; the modules behind them are free to change.
"""

from pipeline.errors import Stopped
from pipeline.transform.judge import describe_invalid_json
from pipeline.transform.plan import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_TASKS, Fetch, batches, lanes, plan
from pipeline.transform.sink import Sink, partitions
from pipeline.transform.times import cast_time, execution_month, parse_time
from pipeline.transform.transformer import LANE_MEMORY_MB, MEMORY_MB, Transformer, TransformStats

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

"""Load: the partitioned Parquet lake, local or on S3/OBS, and the locks that guard it.

The names below are what other packages use; the modules behind them are free to change. They are imported
on first use, so that importing :mod:`pipeline.load.storage` or :mod:`pipeline.load.lock` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.load.lake import Lake, lake_fetches, open_lake
    from pipeline.load.lanes import cores, default_workers
    from pipeline.load.loader import LoadSummary, load_lake

_EXPORTS = {
    "Lake": "pipeline.load.lake",
    "lake_fetches": "pipeline.load.lake",
    "open_lake": "pipeline.load.lake",
    "cores": "pipeline.load.lanes",
    "default_workers": "pipeline.load.lanes",
    "LoadSummary": "pipeline.load.loader",
    "load_lake": "pipeline.load.loader",
}

__all__ = ["Lake", "LoadSummary", "cores", "default_workers", "lake_fetches", "load_lake", "open_lake"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline.load' has no attribute {name!r}")

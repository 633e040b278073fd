"""swr-replication-etl: SWR Enterprise Edition replication tasks into a Parquet lake and a DuckDB warehouse.

The Python API (the CLI wraps it; see docs/python-api.md)::

    import pipeline

    settings = pipeline.settings(endpoint=..., project_id=..., token=..., data_dir="/srv/swr")
    result = pipeline.run(settings)  # or pipeline.extract(settings), pipeline.rebuild(settings)
    result.raise_for_failure()
    pipeline.connect("/srv/swr").sql("SELECT * FROM policy_health").df()
    pipeline.check(settings)  # the alerts of swr-etl check: [] when healthy

Names are imported on first use, so ``import pipeline`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pipeline.config import Settings, settings
    from pipeline.jobs import Hooks, RunResult, extract, rebuild, run
    from pipeline.report.check import check
    from pipeline.warehouse.warehouse import connect

_EXPORTS = {
    "Settings": "pipeline.config",
    "settings": "pipeline.config",
    "Hooks": "pipeline.jobs",
    "RunResult": "pipeline.jobs",
    "extract": "pipeline.jobs",
    "rebuild": "pipeline.jobs",
    "run": "pipeline.jobs",
    "connect": "pipeline.warehouse.warehouse",
    "check": "pipeline.report.check",
}

__all__ = [
    "Hooks",
    "RunResult",
    "Settings",
    "__version__",
    "check",
    "connect",
    "extract",
    "rebuild",
    "run",
    "settings",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")

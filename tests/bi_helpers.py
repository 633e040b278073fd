"""A data directory built by the real CLI from the sandbox API, for the tests of what reads it from outside:
BI tools through SQLAlchemy, the notebook example, the orchestrator examples."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli, sandbox_env

from pipeline.sandbox import SandboxConfig, SandboxServer
from pipeline.schema import TABLES
from pipeline.warehouse.warehouse import sql_views

SEED, SCALE = 7, 0.3  # about 3,700 tasks: every table but rejects, and every view, has rows


def sandbox_data_dir(data_dir: Path) -> Path:
    """``swr-etl run`` against a sandbox started for it, into ``data_dir``; returns ``data_dir``."""
    with SandboxServer(SandboxConfig(seed=SEED, scale=SCALE)) as server:
        result = run_cli(["run"], sandbox_env(server, data_dir))
    assert result.returncode == 0, result.stderr
    assert (data_dir / "warehouse.duckdb").is_file()
    return data_dir


def lake_tables() -> list[str]:
    """The views over the lake's tables."""
    return list(TABLES)


def analytics() -> list[str]:
    """The analytics views of ``sql/`` (the table macros left out: BI tools list views only)."""
    return [view.name for view in sql_views() if not view.is_macro]

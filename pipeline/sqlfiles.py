"""Where the SQL files are: ``sql/`` is installed as the package data ``pipeline/sql`` by a wheel, and lies
beside the package in a source checkout."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def sql_folder(*parts: str) -> Traversable:
    """``sql/`` (or a folder inside it, such as ``sql_folder("transform")``)."""
    try:
        found: Traversable = resources.files("pipeline.sql")
    except ModuleNotFoundError:
        found = Path(__file__).resolve().parent.parent / "sql"
    for part in parts:
        found = found / part
    return found

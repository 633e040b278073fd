"""Query results as text: an aligned table for people, CSV for spreadsheets, JSON for programs.

The table shows control characters escaped (:mod:`pipeline.text`); CSV and JSON carry every value exactly."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pipeline.text import dumps, terminal_safe


def plain(value: Any) -> Any:
    """A value as JSON can hold it: times as ISO 8601 text, decimals as floats, containers recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return dumps([dict(zip(columns, map(plain, row), strict=True)) for row in rows]) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else plain(v) for v in row])
        return out.getvalue()
    cells = [[_cell(v) for v in row] for row in rows]
    columns = [terminal_safe(c) for c in columns]  # an alias in the SQL can hold anything too
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    simple = plain(value)
    text = terminal_safe(dumps(simple) if isinstance(simple, list | dict) else str(simple))
    return text if len(text) <= 60 else text[:57] + "..."

"""Query results as text: an aligned table for people, CSV for spreadsheets, JSON for programs.

The table shows control characters escaped (:mod:`pipeline.text`) and aligns columns by the terminal cells a
value takes (a CJK character or an emoji takes two). CSV and JSON carry every value exactly: a list or a struct
is a JSON value (in CSV, as the cell's text), an interval a number of seconds."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.text import dumps, terminal_safe

MAX_CELL = 60  # terminal cells a table shows of one value


def plain(value: Any) -> Any:
    """A value as JSON can hold it: times as ISO 8601 text, intervals as seconds, decimals as floats, containers
    recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _char_cells(c: str) -> int:
    if unicodedata.combining(c) or unicodedata.category(c) == "Cf":
        return 0
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def cells(text: str) -> int:
    """Terminal cells ``text`` takes: wide and full-width characters (CJK, emoji) two, combining marks and
    zero-width format characters none, the rest one."""
    return sum(map(_char_cells, text))


def head(text: str, width: int) -> str:
    """The longest start of ``text`` that takes at most ``width`` terminal cells."""
    used = 0
    for i, c in enumerate(text):
        used += _char_cells(c)
        if used > width:
            return text[:i]
    return text


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells (ending in ``…`` when cut) and padded to exactly that width."""
    if cells(text) > width:
        text = head(text, width - 1) + "…"
    return pad(text, width)


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` terminal cells, on the left when ``right`` (numbers)."""
    room = " " * max(0, width - cells(text))
    return room + text if right else text + room


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return dumps([dict(zip(columns, map(plain, row), strict=True)) for row in rows]) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row])
        return out.getvalue()
    table = [[_cell(v) for v in row] for row in rows]
    columns = [terminal_safe(c) for c in columns]  # an alias in the SQL can hold anything too
    widths = [max([cells(c), *(cells(r[i]) for r in table)]) for i, c in enumerate(columns)]
    lines = ["  ".join(pad(c, w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> Any:
    """A CSV cell: empty for NULL, a list or struct as its JSON text, anything else as :func:`plain` gives it."""
    if value is None:
        return ""
    simple = plain(value)
    return dumps(simple) if isinstance(simple, list | dict) else simple


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, timedelta):
        return str(value)  # "2 days, 3:04:05" reads better than seconds for people
    simple = plain(value)
    text = terminal_safe(dumps(simple) if isinstance(simple, list | dict) else str(simple))
    return text if cells(text) <= MAX_CELL else head(text, MAX_CELL - 3) + "..."

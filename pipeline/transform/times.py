"""API times: one cast, the transform's, for task pages in SQL and for listings and executions in Python."""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from pipeline.transform.sql import define_macros, statement

_TIMES_LOCK = threading.Lock()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.cache
def _times() -> duckdb.DuckDBPyConnection:
    """The connection :func:`cast_time` casts with, made on first use (nothing is done at import)."""
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    define_macros(db)
    return db


# The API's own form of a time (RFC 3339, up to microseconds), which Python reads exactly as DuckDB does
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII)


def parse_time(value: Any) -> datetime | None:
    """An API time (any fraction digits, ``Z`` or an offset) as an aware UTC datetime; None when empty or bad,
    and for anything that is not a string (an object, a list, a number).

    The same cast as the one the transform applies to task times in SQL (the macro ``api_time`` of
    ``sql/transform/macros.sql``, in UTC), so a time means the same wherever it appears. The API's own form is
    read by Python, which is faster (decision 0013); any other form, and any that Python refuses (a leap
    second, say), by DuckDB (:func:`cast_time`).
    """
    return _parse_text_time(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=65536)
def _parse_text_time(value: str) -> datetime | None:
    if _RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    return cast_time(value)


def cast_time(value: Any) -> datetime | None:
    """:func:`parse_time` by DuckDB's own cast."""
    if not isinstance(value, str) or not value.strip():
        return None
    with _TIMES_LOCK:  # microseconds since the epoch (cast_time.sql)
        rows = _times().execute(statement("cast_time"), {"v": value}).fetchall()
    micros = rows[0][0]
    try:
        return _EPOCH + timedelta(microseconds=micros) if isinstance(micros, int) else None
    except OverflowError:  # beyond year 9999: no Python datetime holds it
        return None


def execution_month(created_at: Any) -> str:
    """``YYYY-MM`` of an execution's ``created_at`` (UTC), or ``unknown``."""
    parsed = parse_time(created_at)
    return parsed.strftime("%Y-%m") if parsed else "unknown"

"""API scalars read as the lake's types, one rule for every listing: a value is read, or refused with a reason.

The rules are those the transform applies to task pages in SQL (the macros ``api_integer`` and ``api_time``
of ``sql/transform/macros.sql``): an integer comes as a JSON number or as its digits (up to 18, white space
around them allowed) and must fit a signed 64-bit column; ``true`` is not an integer; a time is what DuckDB's
``TIMESTAMPTZ`` cast reads. A missing or null value is no error: its column is null.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline.names import shorten
from pipeline.transform.times import parse_time  # the transform's own cast, so a time means one thing

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DIGITS = re.compile(r"\s*-?[0-9]{1,18}\s*")

Read = tuple[Any, str | None]  # (the value as the column holds it, or None; why it was refused, or None)


def read_int(value: Any) -> Read:
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, f"expected an integer, got {json.dumps(value)}"
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return value, None
        return None, f"integer {value} is out of the 64-bit range"
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value), None
    return None, f"expected an integer, got {_kind(value)}"


def read_str(value: Any) -> Read:
    if value is None or isinstance(value, str):
        return value, None
    return None, f"expected text, got {_kind(value)}"


def read_bool(value: Any) -> Read:
    if value is None or isinstance(value, bool):
        return value, None
    return None, f"expected true or false, got {_kind(value)}"


def read_time(value: Any) -> Read:
    if value is None or value == "":
        return None, None
    parsed = parse_time(value)
    if parsed is None:
        return None, f"not a time: {_kind(value)}"
    return parsed, None


def read_json(value: Any) -> Read:
    """Any JSON value, kept as its text (objects and lists the API may change shape of)."""
    return (None if value is None else json.dumps(value, ensure_ascii=False)), None


def read_set(value: Any) -> Read:
    """Whether a value is there at all (a secret, masked in the landing: only its presence is kept)."""
    return value is not None and value != "", None


def read_instance_id(value: Any) -> Read:
    """An instance id: text as sent (never empty), or an integer's digits."""
    if isinstance(value, str) and value:
        return value, None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    return None, f"expected an id, got {_kind(value)}"


READERS = {"int": read_int, "str": read_str, "bool": read_bool, "time": read_time, "json": read_json, "set": read_set}


def _kind(value: Any) -> str:
    """A value for a message: its JSON type and a short excerpt."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict, str)) else repr(value)
    return f"{names.get(type(value), type(value).__name__)} {shorten(text, 40)}"

"""API ids as folder names: one reversible encoding for every ``key=value`` folder of the landing and the lake.

An id is whatever text the API sent. As a folder name it is percent-encoded (RFC 3986): every character but
``A-Z a-z 0-9 - . _`` becomes ``%XX`` of its UTF-8 bytes, so ``=``, ``?``, ``/``, ``%``, a newline or a glob
character can neither add a path level nor be read back as something else. DuckDB, Spark and pyarrow decode
hive partition values exactly this way, so the views show the id as the API sent it, and two ids never
share a folder (``x%2D1`` is ``instance_id=x%252D1``, ``x-1`` is ``instance_id=x-1``). The name of the
lake's placeholder partition, ``__none__``, is encoded in full when an id spells it, so it stays ours.

An id whose folder name would be longer than :data:`MAX_VALUE_BYTES`, or an empty one, is refused with
:class:`~pipeline.errors.UnusableIdError`: the caller skips that one object and goes on.
"""

from __future__ import annotations

import string
from urllib.parse import unquote

from pipeline.errors import UnusableIdError

MAX_VALUE_BYTES = 230  # a folder or file name holds 255 bytes: room for "instance_id=" and ".lock"
PLACEHOLDER = "__none__"  # the lake's partition of empty placeholder files (pipeline.load.layout)
_SAFE = frozenset(string.ascii_letters + string.digits + "-._")


def encode(value: str | int) -> str:
    """``value`` as it appears after ``key=`` in a folder name."""
    text = str(value)
    if not text:
        raise UnusableIdError("an empty id cannot name a folder")
    whole = text == PLACEHOLDER  # spelled in full, so that no id can take the placeholder's folder
    try:
        encoded = "".join(c if c in _SAFE and not whole else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
    except UnicodeEncodeError:  # a lone surrogate (JSON can spell one): no UTF-8 bytes to name it by
        raise UnusableIdError(f"id {shorten(text)!r} is not valid Unicode text") from None
    if len(encoded) > MAX_VALUE_BYTES:
        raise UnusableIdError(
            f"id {shorten(text)!r} is too long to name a folder "
            f"({len(encoded)} bytes encoded, at most {MAX_VALUE_BYTES})"
        )
    return encoded


def decode(encoded: str) -> str:
    """The id a folder name's value stands for (the inverse of :func:`encode`)."""
    return unquote(encoded, errors="replace")


def folder(key: str, value: str | int) -> str:
    """``key=<encoded value>``: one folder level."""
    return f"{key}={encode(value)}"


def canonical(encoded: str) -> bool:
    """Whether a folder name's value is exactly what :func:`encode` writes (folders written by versions
    before this encoding hold the raw id, which readers may decode into another id or not read at all)."""
    try:
        return encode(decode(encoded)) == encoded
    except UnusableIdError:
        return False


def shorten(text: str, limit: int = 60) -> str:
    """An id for a message: at most ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."

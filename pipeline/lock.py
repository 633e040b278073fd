"""One writer per data directory: runs on the same directory never interleave their writes.

The lock is an ``flock`` on ``DATA_DIR/.lock``, so the kernel releases it when its process dies however it
dies: a lock left by a dead run is simply free. The file says who holds it, for the error message.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import SwrEtlError


class Busy(SwrEtlError):
    """Another swr-etl process is writing in this data directory."""

    hint = "wait for it to finish, or stop it"


@contextmanager
def exclusive(data_dir: Path, command: str) -> Iterator[None]:
    """Hold the data directory's lock for the duration, or raise :class:`Busy` at once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            raise Busy(f"another swr-etl is writing in {data_dir} ({holder})") from None
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command, "started": started}).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        return f"pid {info['pid']}, swr-etl {info['command']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"

"""One writer per data directory, and per instance of a local lake: writes never interleave.

The lock is an ``flock`` on ``DATA_DIR/.lock``, so the kernel releases it when its process dies however it
dies: a lock left by a dead run is simply free. The file says who holds it, for the error message.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import names
from pipeline.errors import Busy

if TYPE_CHECKING:
    from pipeline.load.storage import LakeStore


@contextmanager
def exclusive(data_dir: Path, command: str) -> Iterator[None]:
    """Hold the data directory's lock for the duration, or raise :class:`Busy` at once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with _flock(data_dir / ".lock", command, f"another swr-etl is writing in {data_dir}"):
        yield


@contextmanager
def lake_instances(store: LakeStore, instances: set[str]) -> Iterator[None]:
    """On a local lake, hold one lock per instance being loaded (in a fixed order, so that two loads never
    wait for each other in a cycle): two loads of one instance never interleave, loads of different instances
    run at once. An S3 lake has no lock to take: the scheduler runs one job per instance (see the README)."""
    if store.remote:
        yield
        return
    folder = Path(store.path("_locks"))
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for instance_id in sorted(instances):
            path = folder / (names.folder("instance_id", instance_id) + ".lock")
            stack.enter_context(_flock(path, "load", f"another swr-etl is loading instance {instance_id}"))
        yield


@contextmanager
def _flock(path: Path, command: str, busy: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{busy} ({_holder(path)})") from None
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

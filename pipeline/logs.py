"""Logging for people and for schedulers: text or one JSON object per line, secrets always masked."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pipeline.text import dumps, safe_block, terminal_safe

MASK = "***"


_registered: tuple[str, ...] = ()  # secrets learnt while running: see register_secret
_registry_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` from now on in every log line and error printed, whichever :class:`RedactSecrets` does it.

    For secrets no environment variable holds, learnt while running: an IAM token, registered the moment it
    is fetched. Values under 4 characters are ignored, as :class:`RedactSecrets` ignores them.
    """
    global _registered
    if not value or len(value) < 4:
        return
    with _registry_lock:
        if value not in _registered:
            _registered = (*_registered, value)


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's final message (a last line of defence).

    Known: the values given here, and every value passed to :func:`register_secret`, before or after.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._own = frozenset(s for s in secrets if s and len(s) >= 4)
        self._cache: tuple[tuple[str, ...] | None, list[str]] = (None, [])

    @property
    def secrets(self) -> list[str]:
        """Longest first, so that a secret containing another is masked whole."""
        registered = _registered
        seen, ordered = self._cache
        if seen is not registered:
            ordered = sorted(self._own.union(registered), key=len, reverse=True)
            self._cache = (registered, ordered)  # one assignment: threads never see half of it
        return ordered

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, MASK)
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


# the stage a log line belongs to, from the package (or the module) that wrote it: see stage_of
STAGE_OF = {
    "pipeline.api": "extract",
    "pipeline.extraction": "extract",
    "pipeline.landing": "extract",
    "pipeline.transform": "load",
    "pipeline.load": "load",
    "pipeline.warehouse.warehouse": "warehouse",
    "pipeline.report.report": "report",
    "pipeline.sandbox": "sandbox",
    # shared by several stages: their lines are the command's
    "pipeline.extraction.mirror": "cli",
    "pipeline.load.storage": "cli",
    "pipeline.load.lock": "cli",
}


def stage_of(logger: str) -> str:
    """The stage of a logger's lines: that of the entry of :data:`STAGE_OF` it is or lies under, else "cli"."""
    name = logger
    while name:
        if name in STAGE_OF:
            return STAGE_OF[name]
        name = name.rpartition(".")[0]
    return "cli"


def json_fields(
    *, level: str, logger: str, stage: str, run_id: str, msg: str, created: float | None = None
) -> dict[str, Any]:
    """The fields every JSON line on stderr starts with, log line or final error: time, level, logger, stage,
    run id and message."""
    when = datetime.fromtimestamp(time.time() if created is None else created, UTC)
    return {
        "ts": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "logger": logger,
        "stage": stage,
        "run_id": run_id,
        "msg": msg,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, stage, message, run id, and any ``extra`` fields."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def format(self, record: logging.LogRecord) -> str:
        stage = stage_of(record.name)
        payload = json_fields(
            level=record.levelname.lower(),
            logger=record.name,
            stage=stage,
            run_id=self.run_id,
            msg=record.getMessage(),
            created=record.created,
        )
        for key in ("counts", "duration_s", "event"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc:
            payload["exc"] = exc
        return dumps(payload, default=str)  # the exact text, JSON-escaped: nothing in it reaches a terminal raw


class TextFormatter(logging.Formatter):
    """One line per record for people: text from the API (a policy name, an ``error_msg``) can neither drive the
    terminal nor start a line that passes for another record. A traceback keeps its lines, each indented."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = terminal_safe(self.formatMessage(record))
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        for block in (exc, self.formatStack(record.stack_info) if record.stack_info else ""):
            if block:
                line += "\n" + safe_block(block)
        return line


def setup_logging(*, fmt: str, verbosity: int, run_id: str, secrets: Iterable[str]) -> RedactSecrets:
    """Configure the root logger on stderr. ``verbosity``: -1 quiet, 0 warnings+summary, 1 info, 2 debug."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = _Stderr()
    redactor = RedactSecrets(secrets)
    handler.addFilter(redactor)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(run_id))
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every connection at DEBUG: useful, but only when asked for twice.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    # Python's warnings and a thread's uncaught exception are records too: in the chosen format, never raw
    # text among JSON lines
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    return redactor


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to ``sys.stderr`` as it is at each record, not as it was at set-up: the progress bars
    replace it while they are drawn, and print what is written to it above themselves instead of under them."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always sys.stderr


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
    logging.getLogger("pipeline").error("thread %s failed", name, exc_info=exc_info)  # type: ignore[arg-type]

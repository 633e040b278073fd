"""Logging for people and for schedulers: text or one JSON object per line, secrets always masked."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

MASK = "***"


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's final message (a last line of defence)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

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


# the stage a log line belongs to, from the module that wrote it
STAGE_OF = {
    "pipeline.client": "extract",
    "pipeline.paging": "extract",
    "pipeline.extract": "extract",
    "pipeline.landing": "extract",
    "pipeline.transform": "load",
    "pipeline.load": "load",
    "pipeline.warehouse": "warehouse",
    "pipeline.report": "report",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, stage, message, run id, and any ``extra`` fields."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "stage": STAGE_OF.get(record.name, "sandbox" if record.name.startswith("pipeline.sandbox") else "cli"),
            "run_id": self.run_id,
            "msg": record.getMessage(),
        }
        for key in ("counts", "duration_s", "event"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False, default=str)


def setup_logging(*, fmt: str, verbosity: int, run_id: str, secrets: Iterable[str]) -> RedactSecrets:
    """Configure the root logger on stderr. ``verbosity``: -1 quiet, 0 warnings+summary, 1 info, 2 debug."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    redactor = RedactSecrets(secrets)
    handler.addFilter(redactor)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(run_id))
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every connection at DEBUG: useful, but only when asked for twice.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    return redactor

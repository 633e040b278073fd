"""How a command ends, for people and for schedulers: the extract's status, and the final error line.

A stage's status is ``ok``, ``partial`` (some executions in scope are landed whole and others are not) or
``failed``; with it goes ``error``, null when ok. The final error is one ``error: ...`` line in text, and with
``--log-format json`` one JSON object carrying what every log line carries plus ``event: "error"``,
``exit_code`` and ``hint``. Secrets are masked in both, and text from the API is made inert (escaped for a
terminal, or JSON-escaped by :func:`pipeline.text.dumps`).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import click

from pipeline.errors import SwrEtlError
from pipeline.extraction.extract import ExtractFailed, Extractor
from pipeline.logs import json_fields
from pipeline.text import dumps, safe_block, terminal_safe

log = logging.getLogger("pipeline.cli.cli")

LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "SWR_ETL_LOG_FORMAT"


class Interrupted(SwrEtlError):
    """Ctrl-C or SIGTERM stopped the command: every file is whole, and the next run catches up."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")


@dataclass(frozen=True)
class Failure:
    """What the final error line says of an exception: the message, what to do about it, the exit status."""

    message: str
    hint: str
    exit_code: int


def failure(exc: BaseException) -> Failure:
    if isinstance(exc, Interrupted | KeyboardInterrupt | click.exceptions.Abort):
        return Failure("interrupted", "", 130)
    if isinstance(exc, click.UsageError):
        ctx = exc.ctx
        where = f"swr-etl {ctx.info_name} --help" if ctx is not None and ctx.parent is not None else "swr-etl --help"
        return Failure(exc.format_message(), f"see '{where}'", 2)
    if isinstance(exc, click.ClickException):
        return Failure(exc.format_message(), "", exc.exit_code)
    if isinstance(exc, SwrEtlError):
        return Failure(str(exc), exc.hint, exc.exit_code)
    return Failure(f"unexpected {type(exc).__name__}: {exc}", "a bug: please report it with the output of -v", 1)


def print_error(
    exc: BaseException, *, fmt: str, verbose: bool, run_id: str, stage: str, redact: Callable[[str], str]
) -> int:
    """Print the final error line on stderr (with -v, after the traceback, or in the JSON object's ``exc``);
    return the exit status. A usage error or an interruption has no traceback worth showing."""
    what = failure(exc)
    message, hint = redact(what.message), redact(what.hint)
    plain = isinstance(exc, click.ClickException | Interrupted | KeyboardInterrupt | click.exceptions.Abort)
    trace = None if plain or not verbose else redact("".join(traceback.format_exception(exc)))
    if fmt == "json":
        payload = json_fields(level="error", logger="pipeline.cli.cli", stage=stage, run_id=run_id, msg=message)
        payload |= {"event": "error", "exit_code": what.exit_code, "hint": hint or None}
        if trace:
            payload["exc"] = trace
        click.echo(dumps(payload, default=str), err=True)
        return what.exit_code
    if trace:
        click.echo(safe_block(trace), err=True)  # indented: no line of it passes for the error line or a log line
    if isinstance(exc, Interrupted):
        click.echo("", err=True)  # ends the line the terminal's ^C echo is on
    click.echo(terminal_safe(f"error: {message}" + (f" ({hint})" if hint else "")), err=True)
    return what.exit_code


def requested_format(args: Sequence[str], environ: Mapping[str, str]) -> str:
    """The log format the arguments ask for, read without click: for an error found while click reads them.
    The last valid ``--log-format`` wins (as one after the command wins), then SWR_ETL_LOG_FORMAT, then text."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value = arg.partition("=")[2] if arg.startswith("--log-format=") else None
        if arg == "--log-format" and i + 1 < len(args):
            value = args[i + 1]
        if value is not None and value.lower() in LOG_FORMATS:
            found = value.lower()
    env = environ.get(LOG_FORMAT_ENV, "").lower()
    return found or (env if env in LOG_FORMATS else "text")


def requested_verbose(args: Sequence[str]) -> bool:
    return any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)


def settle_extract(extractor: Extractor, exc: BaseException | None, redact: Callable[[str], str]) -> None:
    """Set the extract's status and error, and write them into its run record, which the extract wrote before
    its outcome was known (same content: ``{"stage": "extract", **summary}``)."""
    summary = extractor.summary
    message = None if exc is None else redact(failure(exc).message)
    summary.errors[:] = [redact(e) for e in summary.errors]
    summary.settle(message, stopped=exc is not None and not isinstance(exc, ExtractFailed))
    try:
        extractor.landing.write_run(summary.run_id, {"stage": "extract", **asdict(summary)})
    except (OSError, SwrEtlError) as err:  # the landing's own failure is the one reported
        log.warning("could not write the status into the run record of %s: %s", summary.run_id, err)

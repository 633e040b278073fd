"""How a command ends, for people and for schedulers: the final error line.

The final error is one ``error: ...`` line in text, and with ``--log-format json`` one JSON object carrying
what every log line carries plus ``event: "error"``, ``exit_code`` and ``hint``. Secrets are masked in both,
and text from the API is made inert (escaped for a terminal, or JSON-escaped by :func:`pipeline.text.dumps`).
The exit status comes from :func:`pipeline.errors.exit_status`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import click

from pipeline.errors import EXIT_USAGE, Interrupted, SwrEtlError, describe, exit_status
from pipeline.logs import json_fields
from pipeline.text import dumps, safe_block, terminal_safe

LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "SWR_ETL_LOG_FORMAT"


@dataclass(frozen=True)
class Failure:
    """What the final error line says of an exception: the message, what to do about it, the exit status."""

    message: str
    hint: str
    exit_code: int


def failure(exc: BaseException) -> Failure:
    """What the error line says of ``exc``. Its exit status is :func:`pipeline.errors.exit_status`'s, except for
    click's own errors of usage (2, as ours) and the exit status click gives its other exceptions."""
    if isinstance(exc, click.exceptions.Abort):  # click's Ctrl-C
        exc = Interrupted()
    if isinstance(exc, click.UsageError):
        ctx = exc.ctx
        where = f"swr-etl {ctx.info_name} --help" if ctx is not None and ctx.parent is not None else "swr-etl --help"
        return Failure(exc.format_message(), f"see '{where}'", EXIT_USAGE)
    if isinstance(exc, click.ClickException):
        return Failure(exc.format_message(), "", exc.exit_code)
    if isinstance(exc, SwrEtlError):
        return Failure(describe(exc), exc.hint, exit_status(exc))
    if isinstance(exc, KeyboardInterrupt):
        return Failure(describe(exc), "", exit_status(exc))
    return Failure(describe(exc), "a bug: please report it with the output of -v", exit_status(exc))


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
        payload = json_fields(level="error", logger="pipeline.cli", stage=stage, run_id=run_id, msg=message)
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

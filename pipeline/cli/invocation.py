"""One invocation of ``swr-etl``: its global flags, its logging, its summaries.

``--log-format``, ``-v/--verbose``, ``-q/--quiet`` and ``--progress/--no-progress`` are options of the group and
of every command (:class:`Command` adds them), so that ``swr-etl run -v`` does what ``swr-etl -v run`` does; one
given after the command wins over the same one given before it, and ``--log-format`` over SWR_ETL_LOG_FORMAT.
Logging is set up once, with the final values, just before the command runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from pipeline.cli.outcome import LOG_FORMAT_ENV, LOG_FORMATS, failure
from pipeline.config import SECRET_ENV
from pipeline.errors import EXIT_USAGE, Interrupted
from pipeline.landing import new_run_id
from pipeline.logs import RedactSecrets, setup_logging
from pipeline.text import dumps

F = TypeVar("F", bound=Callable[..., Any])

SUMMARY_STAGES = frozenset({"extract", "load", "rebuild"})  # the stages that end with a summary
FIRST_STAGE = {"run": "extract", "demo": "extract"}  # the stage an error before any work is reported under


def env_secrets(environ: Mapping[str, str]) -> list[str]:
    """Every secret the environment holds: masked in every log line and error, whatever the command."""
    return [environ[k].strip() for k in SECRET_ENV if environ.get(k, "").strip()]


class State:
    """Per-invocation state shared by the commands: the global flags, logging, the redactor, the run id, and
    the stage running (the error line names it; in JSON mode a stage cut short prints a failed summary)."""

    def __init__(self) -> None:
        self.log_format = "text"
        self.verbosity = 0  # -1 quiet, 0 warnings, 1 info, 2 debug, 3 HTTP connections
        self.progress: bool | None = None
        self.run_id = new_run_id()
        self.redactor = RedactSecrets(env_secrets(os.environ))
        self.stage = "cli"
        self.started = False  # logging is set up, with the final flags
        self._before: dict[str, Any] = {}
        self._after: dict[str, Any] = {}  # only the flags given after the command
        self._summarised: set[str] = set()

    def given_before(self, **flags: Any) -> None:
        self._before = flags
        self._merge()

    def given_after(self, name: str, value: Any) -> None:
        self._after[name] = value
        self._merge()

    def _merge(self) -> None:
        before, after = self._before, self._after
        self.log_format = after.get("log_format") or before.get("log_format") or "text"
        levels = after if {"verbose", "quiet"} & after.keys() else before  # -q and -v go together
        self.verbosity = -1 if levels.get("quiet") else int(levels.get("verbose") or 0)
        self.progress = after["progress"] if "progress" in after else before.get("progress")

    def start(self, command: str) -> None:
        """Set logging up with the final flags, once, just before ``command`` runs."""
        self.stage = FIRST_STAGE.get(command, command)
        if not self.started:
            secrets = env_secrets(os.environ)
            self.redactor = setup_logging(
                fmt=self.log_format, verbosity=self.verbosity, run_id=self.run_id, secrets=secrets
            )
            self.started = True

    def show_progress(self) -> bool:
        if self.log_format == "json":
            return False  # stderr holds JSON lines and nothing else
        if self.progress is not None:
            return self.progress
        return self.verbosity >= 0 and sys.stderr.isatty()

    def summary(self, stage: str, line: str, counts: dict[str, Any]) -> None:
        """The final line of a stage: text for people, one JSON object for schedulers. Always printed.

        The object: ``event``, ``run_id``, ``stage``, ``status`` (``ok`` unless ``counts`` says otherwise) and
        ``error`` (null when ok), then the stage's counts; every text in it redacted."""
        self._summarised.add(stage)
        if self.log_format != "json":
            click.echo(line)
            return
        payload: dict[str, Any] = {"event": "summary", "run_id": self.run_id, "stage": stage}
        payload |= {"status": "ok", "error": None} | _redacted(counts, self.redactor.redact)
        click.echo(dumps(payload, default=str))

    def stage_failed(self, exc: BaseException) -> None:
        """In JSON mode, the stage ``exc`` cut short before its summary prints one saying so. A usage or
        configuration error (exit 2) comes before any stage, and adds none."""
        what = failure(exc)
        if self.log_format != "json" or what.exit_code in (0, EXIT_USAGE):
            return
        if self.stage in SUMMARY_STAGES and self.stage not in self._summarised:
            self.summary(self.stage, "", {"status": "failed", "error": what.message})


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, redact) for v in value]
    return value


def _given_after(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global flag after the command: kept if it was given at all (a default must not undo the group's)."""
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        ctx.ensure_object(State).given_after(param.name, value)


class _LogFormat(click.Choice[str]):
    """text or json; a wrong value from the environment is said to come from there."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            if ctx and param and param.name and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
                message = f"{exc.message.rstrip('.')} (from {LOG_FORMAT_ENV})"
                raise click.BadParameter(message, ctx=ctx, param=param) from exc
            raise


def _flags(*, after: bool) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The global flags' declarations, for the group or for a command. After the command they are not passed to
    its function, and are read first, so that an error in another flag is reported in the format asked for."""
    extra: dict[str, Any] = {"expose_value": False, "is_eager": True, "callback": _given_after} if after else {}
    log_format: dict[str, Any] = {"default": None} if after else {"default": "text", "envvar": LOG_FORMAT_ENV}
    return [
        (
            ("--log-format",),
            {
                "type": _LogFormat(LOG_FORMATS, case_sensitive=False),
                "help": "json: one object per line on stderr, the final error too, and a JSON summary on stdout "
                f"(for schedulers) [env {LOG_FORMAT_ENV}; default text].",
                **log_format,
                **extra,
            },
        ),
        (
            ("-v", "--verbose"),
            {"count": True, "help": "More logging (-v info, -vv debug, -vvv HTTP connections).", **extra},
        ),
        (("-q", "--quiet"), {"is_flag": True, "help": "Errors and the summary line only.", **extra}),
        (
            ("--progress/--no-progress",),
            {"default": None, "help": "Progress bars (default: only on a terminal; never with json logs).", **extra},
        ),
    ]


def global_flags(func: F) -> F:
    """The global flags, on the group: before the command."""
    for decls, attrs in reversed(_flags(after=False)):
        func = click.option(*decls, **attrs)(func)
    return func


class Command(click.Command):
    """A command of ``swr-etl``: takes the global flags after its name too, sets logging up with the final flags
    before it runs, and in JSON mode ends a stage cut short with a failed summary."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(click.Option(decls, **attrs) for decls, attrs in _flags(after=True))

    def invoke(self, ctx: click.Context) -> Any:
        state = ctx.ensure_object(State)
        state.start(ctx.info_name or self.name or "cli")
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except KeyboardInterrupt as exc:  # an error of ours from here on: click would print a line of its own
            state.stage_failed(exc)
            raise Interrupted() from exc
        except Exception as exc:
            state.stage_failed(exc)
            raise


class Group(click.Group):
    """The ``swr-etl`` group: each of its commands is a :class:`Command`."""

    command_class = Command

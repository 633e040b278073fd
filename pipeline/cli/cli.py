"""The ``swr-etl`` command line: each command reads its flags into settings, calls one function of
:mod:`pipeline.jobs` (or the warehouse, or the report), and prints its summary.

Exit status (decided by :func:`pipeline.errors.exit_status`): 0 done; 1 failed (API error after retries, bad
credentials, I/O); 2 bad usage or configuration; 3 done but records were rejected and ``--strict`` was given;
130 interrupted. The global flags, the run's state and its summaries are in :mod:`pipeline.cli.invocation`; the
error line in :mod:`pipeline.cli.outcome`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
import duckdb

from pipeline import __version__, jobs
from pipeline.cli import stages
from pipeline.cli.demo_command import demo_cmd
from pipeline.cli.invocation import Group, State, global_flags
from pipeline.cli.options import WORKERS_OPTION, location_options, metrics_options, scope_options, settings_from
from pipeline.cli.outcome import print_error, requested_format, requested_verbose
from pipeline.cli.serve import sandbox_cmd
from pipeline.errors import Interrupted, QueryError
from pipeline.text import terminal_safe


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="swr-etl")
@global_flags  # every command takes them after its name too (see pipeline.cli.invocation)
@click.pass_context
def cli(ctx: click.Context, log_format: str, verbose: int, quiet: bool, progress: bool | None) -> None:
    """SWR Enterprise Edition replication tasks into a Parquet lake and a DuckDB warehouse.

    \b
    Example:
      export SWR_ENDPOINT=https://swr-api.cn-north-4.myhuaweicloud.com SWR_PROJECT_ID=...
      export CLOUD_SDK_AK=... CLOUD_SDK_SK=...
      swr-etl extract --concurrency 8
    """
    # logging is set up once the command's own flags are read too: see pipeline.cli.invocation.Command
    ctx.ensure_object(State).given_before(log_format=log_format, verbose=verbose, quiet=quiet, progress=progress)


@cli.command("extract")
@scope_options
@click.pass_obj
def extract_cmd(state: State, /, **flags: Any) -> None:
    """Fetch every task of every execution in scope into DATA_DIR/raw (no transform).

    \b
    Example:
      swr-etl extract --instance-id 6f1c... --policy-id 3 --data-dir /srv/swr
    """
    settings = settings_from(flags)
    jobs.extract(settings, run_id=state.run_id, hooks=stages.hooks(state))


@cli.command("run")
@scope_options
@click.option("--strict", is_flag=True, default=None, help="Exit 3 when any record was rejected.")
@WORKERS_OPTION
@metrics_options
@click.pass_obj
def run_cmd(state: State, /, **flags: Any) -> None:
    """Extract what changed in scope, then transform and load it into the lake and the warehouse.

    Incremental: executions finished when last fetched (and still so) are not fetched again; new and running
    ones are, and replace their earlier rows. --full fetches everything again. With --metrics-file (or
    --pushgateway), the Prometheus metrics are written at the end, whatever the exit status.

    \b
    Example:
      swr-etl run --data-dir /srv/swr-lake --metrics-file /var/lib/prometheus/node-exporter/swr-etl.prom
    """
    stages.run(state, settings_from(flags))


@cli.command("rebuild")
@location_options
@click.option(
    "--instance-id",
    "instance_ids",
    multiple=True,
    metavar="ID",
    help="Rebuild only this instance (repeatable). Default: every instance of the raw landing.",
)
@click.option("--strict", is_flag=True, default=None, help="Exit 3 when any record was rejected.")
@WORKERS_OPTION
@click.option("--views-only", is_flag=True, help="Only rewrite warehouse.duckdb (after moving the data directory).")
@click.pass_obj
def rebuild_cmd(state: State, /, views_only: bool, **flags: Any) -> None:
    """Transform and load the whole lake again from the raw landing alone, with no API call.

    \b
    Example:
      swr-etl rebuild --data-dir /srv/swr-lake
    """
    settings = settings_from(flags, need_api=False)
    if views_only:
        click.echo(f"rebuild: views rewritten in {jobs.rebuild_views(settings)}")
        return
    jobs.rebuild(settings, run_id=state.run_id, hooks=stages.hooks(state)).raise_for_failure()


@cli.command("query")
@click.argument("sql")
@location_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table for people, csv for spreadsheets, json (an array of objects) for programs.",
)
def query_cmd(sql: str, fmt: str, **flags: Any) -> None:
    """Run SQL on the warehouse (read-only): every lake table and every view of sql/.

    \b
    Example:
      swr-etl query "SELECT status, count(*) FROM tasks GROUP BY ALL" --format csv
    """
    from pipeline.report.output import render
    from pipeline.warehouse import warehouse

    settings = settings_from(flags, need_api=False)
    with warehouse.connect(settings.data_dir, settings.lake) as db:
        try:
            relation = db.sql(sql)
        except duckdb.Error as exc:
            # DuckDB's hints ('Did you mean "tasks"?', candidate bindings) follow on lines of their own: all of
            # them go on the one error line (made inert by main), without a parse error's caret, which then
            # points at nothing
            lines = [line.strip() for line in str(exc).split("\n") if line.strip().strip("^")]
            raise QueryError("; ".join(lines)) from exc
        if relation is None:
            return
        columns = list(relation.columns)
        rows = relation.fetchall()
    click.echo(render(columns, rows, fmt), nl=False)


@cli.command("report")
@location_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: for a terminal of 100 columns; json: the same numbers for other tools.",
)
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660), help="Window of policy health.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 1000), help="Rows per list.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the report with charts as one self-contained HTML file (opens offline).",
)
def report_cmd(fmt: str, days: int, top: int, html_file: Path | None, **flags: Any) -> None:
    """Replication analytics: what needs attention, which tags failed and why, silent schedules, last successes,
    then health per policy, failing repositories, recent failures, drift.

    Every number comes from the warehouse views (alerts, tag_status, failure_reasons, silent_schedules,
    last_success, policy_health, repository_replication, failures, tag_drift, daily_throughput), so the
    report, a BI tool and an ad-hoc query agree.

    \b
    Example:
      swr-etl report --data-dir /srv/swr-lake --days 7 --html report.html
      swr-etl report --format json > report.json
    """
    from pipeline.report.report import collect, render_json, render_text

    settings = settings_from(flags, need_api=False)
    data = collect(settings.data_dir, lake=settings.lake, days=days, top=top)
    click.echo(render_json(data) if fmt == "json" else render_text(data), nl=False)
    if html_file is not None:
        from pipeline.landing import atomic_write
        from pipeline.report.html import page

        atomic_write(html_file, page(data).encode())
        if fmt == "text":
            click.echo(f"report: wrote {html_file}")


@cli.command("check")
@location_options
@click.option(
    "--max-failure-rate",
    type=float,
    metavar="R",
    help="Alert when a policy's newest finished execution failed more than this share of its tasks "
    "[env SWR_ETL_MAX_FAILURE_RATE; default 0.1].",
)
@click.option(
    "--max-success-age-hours",
    type=float,
    metavar="H",
    help="Alert when a scheduled policy has not succeeded for this long [env SWR_ETL_MAX_SUCCESS_AGE_HOURS; "
    "default 26].",
)
@click.option(
    "--stuck-hours",
    type=float,
    metavar="H",
    help="Alert on tasks running longer than this [env SWR_ETL_STUCK_HOURS; default 6].",
)
@click.option(
    "--max-missing-tags",
    type=int,
    metavar="N",
    help="Alert when more source tags than this are missing on the destination [env SWR_ETL_MAX_MISSING_TAGS; "
    "default 0].",
)
@click.option(
    "--max-missed-runs",
    type=int,
    metavar="N",
    help="Alert when a scheduled policy's cron called for more executions than this that never came "
    "[env SWR_ETL_MAX_MISSED_RUNS; default 1].",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="text, or json for scripts.")
def check_cmd(fmt: str, **flags: Any) -> None:
    """Evaluate the alerts view against thresholds: exit 0 when healthy, 1 with one line per alert, 2 on misuse.

    Failing policies, scheduled policies with no recent success, stuck tasks, tags missing on the
    destination, and schedules that stopped firing. Disabled policies and manual runs never alert; a running
    execution is judged when it ends.

    \b
    Example:
      swr-etl check --data-dir /srv/swr-lake --max-failure-rate 0.05 || page-the-on-call
    """
    from pipeline.report.check import alerts, raise_for_alerts, render_json, render_text, thresholds_of

    settings = settings_from(flags, need_api=False)
    thresholds = thresholds_of(settings)
    found = alerts(settings.data_dir, thresholds, lake=settings.lake)
    click.echo(render_json(found, thresholds) if fmt == "json" else render_text(found), nl=False)
    raise_for_alerts(found)


@cli.command("metrics")
@location_options
@metrics_options
@click.option(
    "--stuck-hours",
    type=float,
    metavar="H",
    help="Count tasks running longer than this as stuck [env SWR_ETL_STUCK_HOURS; default 6].",
)
def metrics_cmd(**flags: Any) -> None:
    """Write the Prometheus metrics now: the replication's health from the warehouse, and the last run's own.

    To --metrics-file (for node_exporter's textfile collector) and --pushgateway; with neither, on stdout.
    Exit 1 when the warehouse could not be read (swr_warehouse_up 0 is written all the same) or a destination
    could not be written.

    \b
    Example:
      swr-etl metrics --data-dir /srv/swr-lake --metrics-file /var/lib/prometheus/node-exporter/swr-etl.prom
    """
    from pipeline.report.metrics import write

    settings = settings_from(flags, need_api=False)
    written = write(settings)
    if written.where:
        click.echo(f"metrics: {written.series} series written to {', '.join(written.where)}")
    elif sys.stdout.isatty():  # names come from the API: shown, never obeyed, on a terminal
        click.echo("".join(terminal_safe(line) + "\n" for line in written.text.splitlines()), nl=False)
    else:
        click.echo(written.text, nl=False)  # the exact exposition, for a program
    if written.problem is not None:
        raise written.problem


@cli.command("doctor")
@scope_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="text, or json for scripts.")
@click.pass_obj
def doctor_cmd(state: State, /, fmt: str, **flags: Any) -> None:
    """Check the settings, the endpoint (network, TLS), the credentials, the project, the data directory,
    the lake, the free space and the warehouse: one line per check, with what to do. Exit 1 if any failed.

    \b
    Example:
      swr-etl doctor --data-dir /srv/swr-lake
    """
    from pipeline.cli import doctor

    report = doctor.diagnose(lambda need_api: settings_from(dict(flags), need_api=need_api))
    click.echo(doctor.render(report, fmt, state.redactor.redact), nl=False)
    report.raise_for_failures()


cli.add_command(demo_cmd)
cli.add_command(sandbox_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``swr-etl`` and ``python -m pipeline``."""
    args = sys.argv[1:] if argv is None else list(argv)
    state = State()  # here, so that an error before the command starts still has the run id and the format
    signal.signal(signal.SIGTERM, _terminated)
    try:
        # color=True: click.echo writes text as given, instead of dropping only some escape sequences when the
        # output is not a terminal; text for people is made inert by pipeline.text, and CSV stays exact.
        code = cli.main(args=args, prog_name="swr-etl", standalone_mode=False, color=True, obj=state)
    except (click.exceptions.Abort, Interrupted) as exc:
        # Ctrl-C: every file on disk is whole (atomic writes), so leave now rather than wait for requests
        # still in flight; the next run picks up from what was landed.
        _fail(state, exc, args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except Exception as exc:  # usage, configuration, the API, I/O, a bug of ours: one error line each
        sys.exit(_fail(state, exc, args))
    sys.exit(code if isinstance(code, int) else 0)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's timeout, a pod eviction) stops a command as Ctrl-C does: every file whole, a
    load's staging removed, landed fetches uploaded to a data directory in the store, exit 130."""
    raise KeyboardInterrupt


def _fail(state: State, exc: BaseException, args: list[str]) -> int:
    """Print the one error line in the run's log format (see :func:`pipeline.cli.outcome.print_error`); return the
    exit status. An error found while click reads the arguments takes the format they ask for."""
    if state.started:
        fmt, verbose = state.log_format, state.verbosity > 0
    else:
        fmt, verbose = requested_format(args, os.environ), requested_verbose(args)
    redact = state.redactor.redact
    return print_error(exc, fmt=fmt, verbose=verbose, run_id=state.run_id, stage=state.stage, redact=redact)

"""The ``swr-etl`` command line. The only place that turns errors into ``error: ...`` and an exit status.

Exit status: 0 done; 1 failed (API error after retries, bad credentials, I/O); 2 bad usage or configuration;
3 done but records were rejected and ``--strict`` was given; 130 interrupted. The global flags, the run's state
and its summaries are in :mod:`pipeline.cli.invocation`; the error line and the statuses in :mod:`pipeline.cli.outcome`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import duckdb

from pipeline import __version__
from pipeline.api.client import SwrClient
from pipeline.cli import preflight
from pipeline.cli.invocation import Group, State, global_flags
from pipeline.cli.outcome import Interrupted, print_error, requested_format, requested_verbose, settle_extract
from pipeline.config import Credentials, Settings, resolve_settings
from pipeline.errors import SwrEtlError
from pipeline.extraction.extract import ExtractFailed, Extractor, ExtractSummary
from pipeline.load.lock import exclusive
from pipeline.text import dumps

if TYPE_CHECKING:
    from pipeline.cli.progress import RichProgress
    from pipeline.extraction.mirror import Mirror

log = logging.getLogger("pipeline")


class RejectsFound(SwrEtlError):
    """--strict and some records were rejected: the data is loaded, and the exit status says so."""

    exit_code = 3

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} records were rejected (--strict): see the rejects table")


class QueryError(SwrEtlError):
    """The SQL given to ``swr-etl query`` did not run."""

    exit_code = 2
    hint = 'the tables and views are listed by: swr-etl query "SHOW TABLES"'


class UploadFailed(SwrEtlError):
    """Fetches landed in the work folder could not be copied to the data directory in the store."""

    hint = "nothing is lost: the next run uploads them, and loads them then"


F = TypeVar("F", bound=Callable[..., Any])


LAKE_OPTION = click.option(
    "--lake",
    metavar="PATH|s3://BUCKET/PREFIX",
    help="Where the lake is [env SWR_ETL_LAKE; default DATA_DIR/lake]. S3 settings: AWS_* variables (README).",
)


WORK_DIR_OPTION = click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    help="With --data-dir s3://...: the local copy [env SWR_ETL_WORK_DIR; default ~/.cache/swr-etl/...].",
)


CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    envvar="SWR_ETL_CONFIG",
    help="TOML file with the same keys as the flags [env SWR_ETL_CONFIG].",
)


def location_options(func: F) -> F:
    """Where the data is: ``--data-dir``, ``--lake``, ``--work-dir``, and ``--config``, which may say so too."""
    data_dir = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        help="Data directory, or s3://bucket/prefix [env SWR_ETL_DATA_DIR; default ./data].",
    )
    return data_dir(LAKE_OPTION(WORK_DIR_OPTION(CONFIG_OPTION(func))))


def scope_options(func: F) -> F:
    """The flags that say what to fetch, and from where (contract: flag > environment > config > default)."""
    options = [
        click.option("--endpoint", metavar="URL", help="Base URL of the SWR API [env SWR_ENDPOINT]."),
        click.option("--project-id", metavar="ID", help="The project [env SWR_PROJECT_ID]."),
        click.option(
            "--instance-id",
            "instance_ids",
            multiple=True,
            metavar="ID",
            help="An instance (repeatable) [env SWR_INSTANCE_ID, comma-separated]. Default: every instance listed.",
        ),
        click.option("--policy-id", "policy_ids", multiple=True, type=int, metavar="N", help="A policy (repeatable)."),
        click.option(
            "--execution-id", "execution_ids", multiple=True, type=int, metavar="N", help="An execution (repeatable)."
        ),
        location_options,
        click.option(
            "--concurrency", type=int, help="Requests in flight at once [env SWR_ETL_CONCURRENCY; default 8]."
        ),
        click.option("--connect-timeout", type=float, help="Seconds to wait for a connection [default 10]."),
        click.option("--read-timeout", type=float, help="Seconds to wait for a response [default 60]."),
        click.option(
            "--request-deadline",
            type=float,
            metavar="S",
            help="Seconds one request may take in all, its whole body included "
            "[env SWR_ETL_REQUEST_DEADLINE; default 300].",
        ),
        click.option(
            "--max-response-mb",
            type=float,
            metavar="N",
            help="Largest answer accepted, in MiB, as sent and once decompressed "
            "[env SWR_ETL_MAX_RESPONSE_MB; default 64].",
        ),
        click.option("--max-attempts", type=int, help="Tries per request before giving up [default 6]."),
        click.option(
            "--full", is_flag=True, default=None, help="Fetch finished executions again, even those already landed."
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(path_type=Path),
            help="CA certificates for the endpoint [env SWR_ETL_CA_BUNDLE].",
        ),
        click.option("--insecure", is_flag=True, default=None, help="Do not verify TLS at all (warns loudly)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(flags: dict[str, Any], *, need_api: bool = True) -> Settings:
    config_file = flags.pop("config_file", None)
    return resolve_settings(flags, os.environ, config_file, need_api=need_api)


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
    preflight.require(*preflight.checks("extract", settings))  # setup mistakes, before the first request
    with exclusive(settings.data_dir, "extract"):
        _run_extract(state, settings, _mirror(settings))


WORKERS_OPTION = click.option(
    "--workers",
    type=int,
    help="Lanes that transform side by side [env SWR_ETL_WORKERS; default: one per core, at most 4].",
)


@cli.command("run")
@scope_options
@click.option("--strict", is_flag=True, default=None, help="Exit 3 when any record was rejected.")
@WORKERS_OPTION
@click.pass_obj
def run_cmd(state: State, /, **flags: Any) -> None:
    """Extract what changed in scope, then transform and load it into the lake and the warehouse.

    Incremental: executions finished when last fetched (and still so) are not fetched again; new and running
    ones are, and replace their earlier rows. --full fetches everything again.

    \b
    Example:
      swr-etl run --data-dir /srv/swr-lake --strict
    """
    settings = settings_from(flags)
    preflight.require(*preflight.checks("run", settings))  # setup mistakes, before the first request
    with exclusive(settings.data_dir, "run"):
        _run(state, settings)


def _run(state: State, settings: Settings) -> None:
    failure: ExtractFailed | None = None
    mirror = _mirror(settings)  # one for both stages: what the extract synced, the load need not sync again
    try:
        summary = _run_extract(state, settings, mirror)
        complete = summary.complete
    except ExtractFailed as exc:  # load what did arrive, then report the failure
        failure, complete = exc, exc.summary.complete
    # an API failure outranks rejected records: exit 1, not 3
    state.stage = "load"
    _load(state, settings, only=complete, strict=settings.strict and failure is None, stage="load", mirror=mirror)
    if failure is not None:
        state.stage = "extract"  # the stage the error line names: the extract's failure, raised after the load
        raise failure


def _load(
    state: State,
    settings: Settings,
    *,
    only: list[tuple[str, int]] | None,
    strict: bool,
    stage: str,
    mirror: Mirror | None = None,
) -> None:
    from pipeline.load.load import load_lake
    from pipeline.warehouse import warehouse

    mirror = mirror or _mirror(settings)
    if mirror is not None and not mirror.synced:
        mirror.pull_state()  # a rebuild on a new machine: the landing's state, before planning
        _push(mirror, settings, raise_error=True)  # what an earlier run could not upload, before the lake has it
        if only is None:  # a rebuild: the store's landing is known now that its state is pulled
            preflight.require(preflight.landing(settings.data_dir, f"{settings.remote}/raw"))
    summary = load_lake(
        settings.data_dir,
        version=state.run_id,
        only=only,
        instances=settings.instance_ids,
        lake_location=settings.lake,
        prepare=None if mirror is None else mirror.pull_pages,
        workers=settings.workers,
    )
    warehouse.build(settings.data_dir, settings.lake)
    counts = {**asdict(summary.stats), "executions_loaded": summary.executions_loaded, "lake_rows": summary.rows}
    counts["elapsed_s"] = summary.elapsed_s
    state.summary(stage, summary.line(stage), counts)
    if strict and summary.stats.rejected:
        raise RejectsFound(summary.stats.rejected)


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
    preflight.require(*preflight.checks("views" if views_only else "rebuild", settings))
    if views_only:
        from pipeline.warehouse import warehouse

        click.echo(f"rebuild: views rewritten in {warehouse.build(settings.data_dir, settings.lake)}")
        return
    with exclusive(settings.data_dir, "rebuild"):
        _load(state, settings, only=None, strict=settings.strict, stage="rebuild")


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
    """Replication analytics: health per policy, failing repositories, recent failures, drift.

    Every number comes from the warehouse views (policy_health, repository_replication, failures, tag_drift,
    daily_throughput), so the report, a BI tool and an ad-hoc query agree.

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
        from pipeline.extraction.landing import atomic_write
        from pipeline.report.html import page

        atomic_write(html_file, page(data).encode())
        if fmt == "text":
            click.echo(f"report: wrote {html_file}")


def _mirror(settings: Settings) -> Mirror | None:
    """The raw landing's copy in the store, for a data directory on object storage."""
    if settings.remote is None:
        return None
    from pipeline.extraction.mirror import Mirror

    return Mirror(settings.data_dir, settings.remote)


def _run_extract(state: State, settings: Settings, mirror: Mirror | None) -> ExtractSummary:
    """Extract, and print the summary line whatever happens (a failure's ``error:`` line follows it), with the
    status the run record gets too."""
    state.stage = "extract"
    log.info("extracting from %s into %s", settings.endpoint, settings.remote or settings.data_dir)
    if mirror is not None:
        mirror.pull_state()  # what is landed already: the incremental state
    uploads = _uploading(mirror) if mirror is not None else contextlib.nullcontext()
    with SwrClient(settings) as client, _progress(state) as progress:
        extractor = Extractor(settings, client, run_id=state.run_id, progress=progress)
        failure: BaseException | None = None
        try:
            with uploads:  # stopped before the last upload below: never two at once
                summary = extractor.run()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if progress is not None:
                progress.stop()  # the bars erased first: drawn again, they would overwrite the summary line
            settle_extract(extractor, failure, state.redactor.redact)
            raw = f"{settings.remote}/raw" if settings.remote else settings.data_dir / "raw"
            line = extractor.summary.line() + (f" -> {raw}" if failure is None else "")
            state.summary("extract", line, asdict(extractor.summary))
            if mirror is not None:  # even after a failure: what landed whole is kept
                _push(mirror, settings, raise_error=failure is None)
    return summary


UPLOAD_EVERY_S = 30.0  # SWR_ETL_UPLOAD_EVERY_S: how often an extract uploads its complete fetches


@contextmanager
def _uploading(mirror: Mirror) -> Iterator[None]:
    """While an extract runs, upload its complete fetches every ``SWR_ETL_UPLOAD_EVERY_S`` seconds, so that
    a run killed outright (SIGKILL, a lost machine) loses at most that much of its work. A failure here is
    only logged: the upload after the extract is the one that counts."""
    try:
        every = float(os.environ.get("SWR_ETL_UPLOAD_EVERY_S") or UPLOAD_EVERY_S)
    except ValueError:
        every = UPLOAD_EVERY_S
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(max(every, 0.05)):
            try:
                mirror.push()
            except SwrEtlError as exc:
                log.warning("upload during the extract failed (tried again at its end): %s", exc)

    thread = threading.Thread(target=loop, name="uploads", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _push(mirror: Mirror, settings: Settings, *, raise_error: bool) -> None:
    """Upload the fetches landed in the work folder. A failure stops the run before its load, so that the lake
    never holds what the store's landing does not; the next run uploads them."""
    try:
        mirror.push()
    except SwrEtlError as exc:
        message = f"landed in {settings.data_dir / 'raw'} but not copied to {settings.remote}/raw: {exc}"
        if raise_error:
            raise UploadFailed(message) from exc
        log.error("%s", message)  # the extract's own failure follows


@contextmanager
def _progress(state: State) -> Iterator[RichProgress | None]:
    if not state.show_progress():
        yield None
        return
    from pipeline.cli.progress import RichProgress

    with RichProgress() as progress:
        yield progress


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


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=0, type=int, show_default=True, help="Port; 0 picks a free one (printed on start).")
@click.option("--seed", default=0, type=int, show_default=True, help="Seed of the synthetic world.")
@click.option("--scale", default=1.0, type=float, show_default=True, help="Size of the world (tasks grow linearly).")
@click.option("--latency-ms", default=0.0, type=float, help="Delay before every answer.")
@click.option("--rate-429", default=0.0, type=float, help="Fraction of requests answered 429 with Retry-After.")
@click.option("--retry-after", "retry_after_s", default=1.0, type=float, help="Retry-After seconds sent with 429.")
@click.option("--rate-5xx", default=0.0, type=float, help="Fraction answered 500/502/503.")
@click.option("--rate-cut", default=0.0, type=float, help="Fraction of connections cut mid-body.")
@click.option("--rate-slow", default=0.0, type=float, help="Fraction of slow responses (see --slow-ms).")
@click.option("--slow-ms", default=0.0, type=float, help="Delay of a slow response's body.")
@click.option("--rate-html", default=0.0, type=float, help="Fraction answered 200 with an HTML page (a proxy).")
@click.option("--max-consecutive", default=2, type=int, show_default=True, help="Faults in a row per request.")
@click.option("--rate-bad-resource", default=0.0, type=float, help="Fraction of tasks with malformed resources.")
@click.option("--rate-object-resource", default=0.0, type=float, help="Fraction of resources sent as objects.")
@click.option("--grow-tasks", default=0, type=int, help="Tasks added to a large execution while it is paged.")
@click.option("--iam-token-ttl", "iam_token_ttl_s", default=None, type=float, help="Seconds an IAM token lives.")
@click.option("--shuffle-tasks", is_flag=True, help="Serve task lists in a new random order on every request.")
@click.option("--cache-pages", is_flag=True, help="Serve task pages from memory after the first time (benchmarks).")
@click.option("--truth", is_flag=True, help="Print the world's truth (counts per execution) as JSON and exit.")
def sandbox_cmd(host: str, port: int, seed: int, scale: float, truth: bool, cache_pages: bool, **knobs: Any) -> None:
    """Serve a simulated SWR Enterprise Edition API on loopback (for tests, demos and BI trials).

    Credentials: SWR_AUTH_TOKEN, CLOUD_SDK_AK/CLOUD_SDK_SK, SWR_PROJECT_ID and SWR_IAM_* from the
    environment when set, else the documented sandbox defaults.

    \b
    Example:
      swr-etl sandbox --port 8080 --latency-ms 50 --rate-429 0.05
    """
    from pipeline.sandbox import Faults, SandboxConfig, SandboxServer, World

    faults = Faults(**knobs)
    config = SandboxConfig.from_env(seed=seed, scale=scale, faults=faults, cache_pages=cache_pages)
    if truth:
        click.echo(dumps(World(seed=seed, scale=scale, faults=faults).truth()))
        return
    server = SandboxServer(config, host=host, port=port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the sandbox listens on %s, not only on loopback: anyone who can reach it can use it", host)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.start()
    click.echo(f"sandbox listening on {server.url} (project {config.project_id}); Ctrl-C stops it")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@cli.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("data/demo"),
    show_default=True,
    help="A new or empty folder, or one an earlier demo made: the demo writes in no other.",
)
@click.option("--seed", default=0, type=int, show_default=True, help="Seed of the sandbox world.")
@click.option("--scale", default=1.0, type=float, show_default=True, help="Size of the sandbox world.")
@click.option("--concurrency", default=8, type=int, show_default=True, help="Requests in flight at once.")
@click.option("--clean/--no-clean", default=True, show_default=True, help="Empty the demo's own folder first.")
@click.pass_obj
def demo_cmd(state: State, data_dir: Path, seed: int, scale: float, concurrency: int, clean: bool) -> None:
    """Start the sandbox API on a free loopback port, run the whole pipeline against it, and show what it found.

    The sandbox world is not clean on purpose: a few resources are malformed (the vendor's own broken example
    among them), some arrive as objects, and the API throttles now and then. No credentials, no network.

    \b
    Example:
      swr-etl demo --scale 2
      swr-etl query "SELECT * FROM repository_failures ORDER BY failed DESC LIMIT 5" --data-dir data/demo
    """
    from pipeline.cli import demo
    from pipeline.report.report import summary
    from pipeline.sandbox import Faults, SandboxConfig, SandboxServer

    faults = Faults(rate_bad_resource=0.01, rate_object_resource=0.02, rate_429=0.03, retry_after_s=0.2)
    config = SandboxConfig(seed=seed, scale=scale, faults=faults)
    workers = demo.workers(os.environ)
    demo.claim(data_dir)  # a folder the demo did not make is refused here, before anything is written in it
    with exclusive(data_dir, "demo"), SandboxServer(config) as server:
        if clean:
            demo.clean(data_dir)
        settings = Settings(
            endpoint=server.url,
            project_id=config.project_id,
            credentials=Credentials("token", token=config.token),
            data_dir=data_dir,
            concurrency=concurrency,
            workers=workers,
        )
        if state.log_format == "text":
            click.echo(f"demo: the sandbox SWR API is serving a synthetic world on {server.url}")
        _run(state, settings)
    if state.log_format == "text":
        click.echo("")
        click.echo(summary(data_dir), nl=False)
        click.echo("")
        exe = _invoked_as()
        click.echo("Next: ask your own questions (plain SQL over every table and view), for example")
        click.echo(f"  {exe} query \"SELECT * FROM tag_drift WHERE kind = 'missing' LIMIT 10\" --data-dir {data_dir}")
        click.echo(f"  {exe} report --data-dir {data_dir} --html {data_dir / 'report.html'}")
        click.echo(f'  {exe} query "SHOW TABLES" --data-dir {data_dir}')
        click.echo(f"  (any DuckDB client or BI tool can open {data_dir / 'warehouse.duckdb'} read-only)")


def _invoked_as() -> str:
    """How to type this command again from here: ``swr-etl`` when that is what the PATH finds, else the path it
    was started by (``.venv/bin/swr-etl`` under ``make run``), or ``python -m pipeline``."""
    started = Path(sys.argv[0])
    if started.name == "__main__.py":
        return f"{os.path.relpath(sys.executable)} -m pipeline"
    found = shutil.which("swr-etl")
    if found and Path(found).resolve() == started.resolve():
        return "swr-etl"
    return str(started)


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

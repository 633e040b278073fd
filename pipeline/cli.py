"""The ``swr-etl`` command line. The only place that turns errors into ``error: ...`` and an exit status.

Exit status: 0 done; 1 failed (API error after retries, bad credentials, I/O); 2 bad usage or configuration;
3 done but records were rejected and ``--strict`` was given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import duckdb

from pipeline import __version__
from pipeline.client import SwrClient
from pipeline.config import SECRET_ENV, Credentials, Settings, resolve_settings
from pipeline.errors import SwrEtlError
from pipeline.extract import ExtractFailed, Extractor, ExtractSummary, Progress
from pipeline.landing import new_run_id
from pipeline.lock import exclusive
from pipeline.logs import RedactSecrets, setup_logging
from pipeline.text import dumps

if TYPE_CHECKING:
    from pipeline.mirror import Mirror

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


class State:
    """Per-invocation state shared by the commands: logging set-up and the redactor."""

    def __init__(self, log_format: str, verbosity: int, progress: bool | None) -> None:
        self.log_format = log_format
        self.verbosity = verbosity
        self.progress = progress
        self.run_id = new_run_id()
        self.redactor = setup_logging(
            fmt=log_format, verbosity=verbosity, run_id=self.run_id, secrets=_env_secrets(os.environ)
        )

    def show_progress(self) -> bool:
        if self.progress is not None:
            return self.progress
        return self.log_format == "text" and self.verbosity >= 0 and sys.stderr.isatty()

    def summary(self, stage: str, line: str, counts: dict[str, Any]) -> None:
        """The final line of a stage: text for people, one JSON object for schedulers. Always printed."""
        if self.log_format == "json":
            payload = {"event": "summary", "run_id": self.run_id, "stage": stage, **counts}
            click.echo(dumps(payload, default=str))
        else:
            click.echo(line)


def _env_secrets(environ: Mapping[str, str]) -> list[str]:
    """Every secret the environment holds: masked in every log line and error, whatever the command."""
    return [environ[k].strip() for k in SECRET_ENV if environ.get(k, "").strip()]


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


def location_options(func: F) -> F:
    """Where the data is: ``--data-dir``, ``--lake``, ``--work-dir``."""
    data_dir = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        help="Data directory, or s3://bucket/prefix [env SWR_ETL_DATA_DIR; default ./data].",
    )
    return data_dir(LAKE_OPTION(WORK_DIR_OPTION(func)))


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
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            envvar="SWR_ETL_CONFIG",
            help="TOML file with the same keys as these flags [env SWR_ETL_CONFIG].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(flags: dict[str, Any], *, need_api: bool = True) -> Settings:
    config_file = flags.pop("config_file", None)
    return resolve_settings(flags, os.environ, config_file, need_api=need_api)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="swr-etl")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per line on stderr, and a JSON summary on stdout (for schedulers).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug, -vvv HTTP connections).")
@click.option("-q", "--quiet", is_flag=True, help="Errors and the summary line only.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: only on a terminal).")
@click.pass_context
def cli(ctx: click.Context, log_format: str, verbose: int, quiet: bool, progress: bool | None) -> None:
    """SWR Enterprise Edition replication tasks into a Parquet lake and a DuckDB warehouse.

    \b
    Example:
      export SWR_ENDPOINT=https://swr-api.cn-north-4.myhuaweicloud.com SWR_PROJECT_ID=...
      export CLOUD_SDK_AK=... CLOUD_SDK_SK=...
      swr-etl extract --concurrency 8
    """
    ctx.obj = State(log_format, -1 if quiet else verbose, progress)


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
    _load(state, settings, only=complete, strict=settings.strict and failure is None, stage="load", mirror=mirror)
    if failure is not None:
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
    from pipeline import warehouse
    from pipeline.load import load_lake

    mirror = mirror or _mirror(settings)
    if mirror is not None and not mirror.synced:
        mirror.pull_state()  # a rebuild on a new machine: the landing's state, before planning
        _push(mirror, settings, raise_error=True)  # what an earlier run could not upload, before the lake has it
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
def rebuild_cmd(
    state: State,
    data_dir: Path | None,
    lake: str | None,
    work_dir: Path | None,
    instance_ids: tuple[str, ...],
    strict: bool | None,
    workers: int | None,
    views_only: bool,
) -> None:
    """Transform and load the whole lake again from the raw landing alone, with no API call.

    \b
    Example:
      swr-etl rebuild --data-dir /srv/swr-lake
    """
    flags: dict[str, Any] = {"data_dir": data_dir, "lake": lake, "work_dir": work_dir, "workers": workers}
    flags |= {"instance_ids": instance_ids, "strict": strict}
    settings = resolve_settings(flags, os.environ, None, need_api=False)
    if views_only:
        from pipeline import warehouse

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
def query_cmd(sql: str, data_dir: Path | None, lake: str | None, work_dir: Path | None, fmt: str) -> None:
    """Run SQL on the warehouse (read-only): every lake table and every view of sql/.

    \b
    Example:
      swr-etl query "SELECT status, count(*) FROM tasks GROUP BY ALL" --format csv
    """
    from pipeline import warehouse
    from pipeline.output import render

    flags = {"data_dir": data_dir, "lake": lake, "work_dir": work_dir}
    settings = resolve_settings(flags, os.environ, None, need_api=False)
    with warehouse.connect(settings.data_dir, settings.lake) as db:
        try:
            relation = db.sql(sql)
        except duckdb.Error as exc:
            raise QueryError(str(exc).split("\n")[0]) from exc
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
def report_cmd(
    data_dir: Path | None,
    lake: str | None,
    work_dir: Path | None,
    fmt: str,
    days: int,
    top: int,
    html_file: Path | None,
) -> None:
    """Replication analytics: health per policy, failing repositories, recent failures, drift.

    Every number comes from the warehouse views (policy_health, repository_replication, failures, tag_drift,
    daily_throughput), so the report, a BI tool and an ad-hoc query agree.

    \b
    Example:
      swr-etl report --data-dir /srv/swr-lake --days 7 --html report.html
      swr-etl report --format json > report.json
    """
    from pipeline.report import collect, render_json, render_text

    flags = {"data_dir": data_dir, "lake": lake, "work_dir": work_dir}
    settings = resolve_settings(flags, os.environ, None, need_api=False)
    data = collect(settings.data_dir, lake=settings.lake, days=days, top=top)
    click.echo(render_json(data) if fmt == "json" else render_text(data), nl=False)
    if html_file is not None:
        from pipeline.html import page
        from pipeline.landing import atomic_write

        atomic_write(html_file, page(data).encode())
        if fmt == "text":
            click.echo(f"report: wrote {html_file}")


def _mirror(settings: Settings) -> Mirror | None:
    """The raw landing's copy in the store, for a data directory on object storage."""
    if settings.remote is None:
        return None
    from pipeline.mirror import Mirror

    return Mirror(settings.data_dir, settings.remote)


def _run_extract(state: State, settings: Settings, mirror: Mirror | None) -> ExtractSummary:
    """Extract, and print the summary line whatever happens (a failure's ``error:`` line follows it)."""
    log.info("extracting from %s into %s", settings.endpoint, settings.remote or settings.data_dir)
    if mirror is not None:
        mirror.pull_state()  # what is landed already: the incremental state
    uploads = _uploading(mirror) if mirror is not None else contextlib.nullcontext()
    with SwrClient(settings) as client, _progress(state) as progress:
        extractor = Extractor(settings, client, run_id=state.run_id, progress=progress)
        done = False
        try:
            with uploads:  # stopped before the last upload below: never two at once
                summary = extractor.run()
            done = True
        finally:
            raw = f"{settings.remote}/raw" if settings.remote else settings.data_dir / "raw"
            line = extractor.summary.line() + (f" -> {raw}" if done else "")
            state.summary("extract", line, asdict(extractor.summary))
            if mirror is not None:
                _push(mirror, settings, raise_error=done)  # even after a failure: what landed whole is kept
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
def _progress(state: State) -> Iterator[Progress | None]:
    if not state.show_progress():
        yield None
        return
    from pipeline.progress import RichProgress

    with RichProgress() as progress:
        yield progress


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
    help="Where the demo lands its data.",
)
@click.option("--seed", default=0, type=int, show_default=True, help="Seed of the sandbox world.")
@click.option("--scale", default=1.0, type=float, show_default=True, help="Size of the sandbox world.")
@click.option("--concurrency", default=8, type=int, show_default=True, help="Requests in flight at once.")
@click.option("--clean/--no-clean", default=True, show_default=True, help="Start from an empty data directory.")
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
    from pipeline.report import summary
    from pipeline.sandbox import Faults, SandboxConfig, SandboxServer

    faults = Faults(rate_bad_resource=0.01, rate_object_resource=0.02, rate_429=0.03, retry_after_s=0.2)
    config = SandboxConfig(seed=seed, scale=scale, faults=faults)
    with exclusive(data_dir, "demo"), SandboxServer(config) as server:
        if clean and (data_dir / "raw").exists():
            _remove_demo_data(data_dir)
        settings = Settings(
            endpoint=server.url,
            project_id=config.project_id,
            credentials=Credentials("token", token=config.token),
            data_dir=data_dir,
            concurrency=concurrency,
        )
        if state.log_format == "text":
            click.echo(f"demo: the sandbox SWR API is serving a synthetic world on {server.url}")
        _run(state, settings)
    if state.log_format == "text":
        click.echo("")
        click.echo(summary(data_dir), nl=False)
        click.echo("")
        click.echo("Next: ask your own questions (plain SQL over every table and view), for example")
        click.echo(f"  swr-etl query \"SELECT * FROM tag_drift WHERE kind = 'missing' LIMIT 10\" --data-dir {data_dir}")
        click.echo(f"  swr-etl report --data-dir {data_dir} --html report.html")
        warehouse_file = data_dir / "warehouse.duckdb"
        click.echo(f"  duckdb -readonly {warehouse_file}   (the DuckDB CLI, or any BI tool that reads DuckDB)")


def _remove_demo_data(data_dir: Path) -> None:
    """Empty a demo data directory: only what the pipeline writes there, nothing else."""
    import shutil

    for name in ("raw", ".lake", "lake"):
        if (data_dir / name).is_symlink():
            (data_dir / name).unlink()
        shutil.rmtree(data_dir / name, ignore_errors=True)
    (data_dir / "warehouse.duckdb").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``swr-etl`` and ``python -m pipeline``."""
    from pipeline.text import terminal_safe  # every error line shows control characters, never obeys them

    verbose = any(
        a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in argv or sys.argv[1:]
    )
    signal.signal(signal.SIGTERM, _terminated)
    try:
        # color=True: click.echo writes text as given, instead of dropping only some escape sequences when the
        # output is not a terminal; text for people is made inert by pipeline.text, and CSV stays exact.
        code = cli.main(args=argv, prog_name="swr-etl", standalone_mode=False, color=True)
    except click.exceptions.Abort:
        # Ctrl-C: every file on disk is whole (atomic writes), so leave now rather than wait for requests
        # still in flight; the next run picks up from what was landed.
        click.echo("error: interrupted", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except click.UsageError as exc:
        where = f"swr-etl {exc.ctx.info_name} --help" if exc.ctx and exc.ctx.parent else "swr-etl --help"
        click.echo(terminal_safe(f"error: {exc.format_message()} (see '{where}')"), err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(terminal_safe(f"error: {exc.format_message()}"), err=True)
        sys.exit(exc.exit_code)
    except SwrEtlError as exc:
        _fail(exc, verbose)
    except Exception as exc:  # a bug of ours: still one redacted line, the traceback only with -v
        _fail(exc, verbose)
    sys.exit(code if isinstance(code, int) else 0)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's timeout, a pod eviction) stops a command as Ctrl-C does: every file whole, a
    load's staging removed, landed fetches uploaded to a data directory in the store, exit 130."""
    raise KeyboardInterrupt


def _fail(exc: Exception, verbose: bool) -> None:
    """The one ``error:`` line (after the traceback with -v): secrets masked, text from the API made inert, and
    the traceback indented, so that no line of it passes for the ``error:`` line or a log line."""
    from pipeline.text import safe_block, terminal_safe

    redact = RedactSecrets(_env_secrets(os.environ)).redact
    if verbose:
        click.echo(safe_block(redact("".join(traceback.format_exception(exc)))), err=True)
    if isinstance(exc, SwrEtlError):
        message = f"error: {exc}" + (f" ({exc.hint})" if exc.hint else "")
        code = exc.exit_code
    else:
        message = f"error: unexpected {type(exc).__name__}: {exc} (a bug: please report it with the output of -v)"
        code = 1
    click.echo(terminal_safe(redact(message)), err=True)
    sys.exit(code)

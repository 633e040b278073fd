"""``swr-etl demo``: the sandbox API on a free loopback port, the whole pipeline against it, and what it found."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from pipeline.cli import stages
from pipeline.cli.invocation import Command, State
from pipeline.config import Credentials, Settings
from pipeline.load.lock import exclusive


@click.command("demo", cls=Command)
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
        stages.run(state, settings, demo=True)  # in the demo's own folder, whose lock it holds
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

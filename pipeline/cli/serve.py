"""``swr-etl sandbox``: the simulated SWR API on loopback, for tests, demos and BI trials."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import click

from pipeline.cli.invocation import Command
from pipeline.text import dumps

log = logging.getLogger("pipeline")


@click.command("sandbox", cls=Command)
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
@click.option(
    "--rate-retried-tags",
    default=0.0,
    type=float,
    help="Fraction of later copy tasks that replicate again the tags an earlier execution of the policy failed.",
)
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

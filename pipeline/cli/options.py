"""The flags commands share, and the settings they resolve to (flag > environment > config file > default)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.config import Settings, resolve_settings

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
            "--max-rps",
            type=float,
            metavar="N",
            help="Requests per second at most, all threads together, retries and IAM included "
            "[env SWR_ETL_MAX_RPS; default 0: no budget; 20 for a shared account].",
        ),
        click.option(
            "--full", is_flag=True, default=None, help="Fetch finished executions again, even those already landed."
        ),
        click.option(
            "--subtasks",
            metavar="failed|all|none",
            help="Whose per-tag subtasks to fetch: tasks that ended without succeeding, every task, or none "
            "[env SWR_ETL_SUBTASKS; default failed].",
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


WORKERS_OPTION = click.option(
    "--workers",
    type=int,
    help="Lanes that transform side by side [env SWR_ETL_WORKERS; default: one per core, at most 4].",
)


def metrics_options(func: F) -> F:
    """Where the Prometheus metrics go: ``--metrics-file`` and ``--pushgateway`` (pipeline.report.metrics)."""
    metrics_file = click.option(
        "--metrics-file",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="PATH.prom",
        help="Write the Prometheus metrics to this file, for node_exporter's textfile collector "
        "[env SWR_ETL_METRICS_FILE].",
    )
    pushgateway = click.option(
        "--pushgateway",
        metavar="URL",
        help="Also push them to this Prometheus Pushgateway [env SWR_ETL_PUSHGATEWAY].",
    )
    return metrics_file(pushgateway(func))

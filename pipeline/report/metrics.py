"""Prometheus metrics: the replication's health, read from the warehouse, and the ETL's own (``metrics_run``).

They are written in the Prometheus text format to ``--metrics-file`` (atomically, for node_exporter's textfile
collector) and pushed to ``--pushgateway`` (``pushadd``: a group keeps the metrics this push does not name)
after each ``swr-etl run``, and by ``swr-etl metrics`` on its own. Every name starts with ``swr_``; labels are
few and bounded: ``instance_id``, ``policy_id``, ``policy_name``, ``dest_registry``, ``status`` and the like,
never a repository, a tag or a digest. ``instance_id`` is the SWR instance: ``instance`` is the label
Prometheus gives every scraped target.

A health metric is one entry of :data:`HEALTH`: a gauge's name, help and labels, and the query that gives one
row per series (the labels' values in order, then the value; a NULL value adds no series). The queries read
the warehouse's views and tables and the temporary views of :data:`PREPARE`: ``metric_policies`` (the labels
of each policy), ``metric_newest`` (each policy's newest execution and last success, from the view
``last_success``) and ``metric_alerts`` (``alerts_over`` with thresholds that let every measure through, so
that a failure ratio or a missing tag means here what it means to ``swr-etl check``).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest, pushadd_to_gateway, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.errors import RunError, SwrEtlError, describe
from pipeline.report.metrics_run import RunFigures, RunWatch, etl_families, load_state, record

if TYPE_CHECKING:
    import duckdb

    from pipeline.config import Settings

log = logging.getLogger(__name__)

PUSH_JOB = "swr-etl"  # the Pushgateway's job; the grouping key adds the host and the data directory
PUSH_TIMEOUT_S = 10.0
POLICY = ("instance_id", "policy_id", "policy_name")  # the labels of every per-policy series

PREPARE = (
    """CREATE OR REPLACE TEMP VIEW metric_policies AS
    SELECT p.instance_id, p.policy_id, coalesce(p.name, '') AS policy_name,
        coalesce(p.trigger_type, '') AS trigger, coalesce(p.enabled, true) AS enabled,
        coalesce(t.dest_registry_name, CAST(p.dest_registry_id AS VARCHAR), '') AS dest_registry
    FROM policies AS p
    LEFT JOIN policy_targets AS t ON t.instance_id = p.instance_id AND t.policy_id = p.policy_id""",
    """CREATE OR REPLACE TEMP VIEW metric_newest AS
    SELECT instance_id, policy_id, last_execution_status AS status, last_execution_at AS created_at, last_success_at
    FROM last_success
    WHERE scope = 'policy' AND executions > 0""",
    # one evaluation for three families: the failure ratio of every judged policy, the stuck tasks and the
    # missing tags of those that have any (no policy is stale: that is the last success's age, in PromQL)
    """CREATE OR REPLACE TEMP TABLE metric_alerts AS
    SELECT instance_id, policy_id, kind, value
    FROM alerts_over(max_failure_rate := -1.0, max_success_age := INTERVAL 1000 YEAR,
        stuck_after := to_seconds($stuck_s), max_missing_tags := -1)""",
)


@dataclass(frozen=True)
class Health:
    """One gauge family of the replication's health: its rows come from ``sql``."""

    name: str
    help: str
    labels: tuple[str, ...]
    sql: str


HEALTH: tuple[Health, ...] = (
    Health(
        "swr_policy_info",
        "Each replication policy (always 1): its trigger (manual, scheduled, event_based), whether it is enabled, "
        "and its destination registry (the name the instance lists, else its id).",
        (*POLICY, "trigger", "enabled", "dest_registry"),
        "SELECT instance_id, policy_id, policy_name, trigger, enabled, dest_registry, 1 FROM metric_policies",
    ),
    Health(
        "swr_policy_last_execution_status",
        "Status of the policy's newest execution, any trigger: 1 for its status, 0 for the others.",
        (*POLICY, "status"),
        """SELECT instance_id, policy_id, policy_name, status, CAST(status = current AS INTEGER) FROM (
            SELECT p.instance_id, p.policy_id, p.policy_name, n.status AS current,
                unnest(list_distinct(['InProgress', 'Succeed', 'Failed', 'Stopped', coalesce(n.status, 'Succeed')]))
                    AS status
            FROM metric_policies AS p
            JOIN metric_newest AS n ON n.instance_id = p.instance_id AND n.policy_id = p.policy_id)""",
    ),
    Health(
        "swr_policy_last_execution_timestamp_seconds",
        "When the policy's newest execution, any trigger, started (Unix time); its age is time() minus this.",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name, epoch(n.created_at)
        FROM metric_policies AS p
        JOIN metric_newest AS n ON n.instance_id = p.instance_id AND n.policy_id = p.policy_id""",
    ),
    Health(
        "swr_policy_last_success_timestamp_seconds",
        "When the policy's newest execution with status Succeed, any trigger, ended (Unix time); no series when "
        "none has.",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name, epoch(n.last_success_at)
        FROM metric_policies AS p
        JOIN metric_newest AS n ON n.instance_id = p.instance_id AND n.policy_id = p.policy_id""",
    ),
    Health(
        "swr_policy_last_execution_task_success_ratio",
        "Succeed over finished tasks of an enabled policy's newest finished execution not started by hand, the "
        "execution swr-etl check judges (with no task counted: 1 if it succeeded, else 0).",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name, 1 - a.value
        FROM metric_policies AS p
        JOIN metric_alerts AS a ON a.instance_id = p.instance_id AND a.policy_id = p.policy_id
        WHERE a.kind = 'failing'""",
    ),
    Health(
        "swr_policy_last_execution_failed_tasks",
        "Failed or Stopped tasks of that same execution (an enabled policy's newest finished execution not "
        "started by hand).",
        POLICY,
        """WITH judged AS (
            SELECT instance_id, policy_id, execution_id
            FROM executions
            WHERE status IN ('Succeed', 'Failed', 'Stopped') AND coalesce(trigger, '') <> 'manual'
            QUALIFY row_number() OVER (
                PARTITION BY instance_id, policy_id ORDER BY created_at DESC, execution_id DESC) = 1
        )
        SELECT p.instance_id, p.policy_id, p.policy_name,
            count(t.task_id) FILTER (WHERE t.status IN ('Failed', 'Stopped'))
        FROM metric_policies AS p
        JOIN judged AS j ON j.instance_id = p.instance_id AND j.policy_id = p.policy_id
        LEFT JOIN tasks AS t ON t.instance_id = j.instance_id AND t.execution_id = j.execution_id
        WHERE p.enabled
        GROUP BY ALL""",
    ),
    Health(
        "swr_policy_tasks_24h",
        "Tasks of the policy that started in the last 24 hours, by status.",
        (*POLICY, "status"),
        """SELECT p.instance_id, p.policy_id, p.policy_name, coalesce(t.status, ''), count(*)
        FROM metric_policies AS p
        JOIN tasks AS t ON t.instance_id = p.instance_id AND t.policy_id = p.policy_id
        WHERE t.start_time >= now() - INTERVAL 24 HOUR
        GROUP BY ALL""",
    ),
    Health(
        "swr_policy_task_success_ratio_24h",
        "Succeed over finished (Succeed, Failed, Stopped) tasks of the policy that started in the last 24 hours; "
        "no series when none finished.",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name,
            count(*) FILTER (WHERE t.status = 'Succeed') / count(*)
        FROM metric_policies AS p
        JOIN tasks AS t ON t.instance_id = p.instance_id AND t.policy_id = p.policy_id
        WHERE t.start_time >= now() - INTERVAL 24 HOUR AND t.status IN ('Succeed', 'Failed', 'Stopped')
        GROUP BY ALL""",
    ),
    Health(
        "swr_policy_stuck_tasks",
        "Tasks of an enabled policy running (InProgress, Pending, Initialized) for longer than --stuck-hours "
        "(default 6), as swr-etl check counts them.",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name, coalesce(a.value, 0)
        FROM metric_policies AS p
        LEFT JOIN metric_alerts AS a ON a.instance_id = p.instance_id AND a.policy_id = p.policy_id AND a.kind = 'stuck'
        WHERE p.enabled""",
    ),
    Health(
        "swr_policy_missing_tags",
        "Source tags of an enabled policy missing on the destination, as swr-etl check counts them.",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name, coalesce(a.value, 0)
        FROM metric_policies AS p
        LEFT JOIN metric_alerts AS a
            ON a.instance_id = p.instance_id AND a.policy_id = p.policy_id AND a.kind = 'missing_tags'
        WHERE p.enabled""",
    ),
    Health(
        "swr_policy_missed_runs",
        "Executions an enabled scheduled policy's cron called for since its newest scheduled execution that never "
        "came (the silent_schedules view); no series when the cron does not read.",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name, s.missed_runs
        FROM metric_policies AS p
        JOIN silent_schedules AS s ON s.instance_id = p.instance_id AND s.policy_id = p.policy_id""",
    ),
    Health(
        "swr_policy_silent_schedule",
        "1 when an enabled scheduled policy missed two or more of its cron's fires in a row (silent_schedules), "
        "else 0; no series when the cron does not read.",
        POLICY,
        """SELECT p.instance_id, p.policy_id, p.policy_name, CAST(s.silent AS INTEGER)
        FROM metric_policies AS p
        JOIN silent_schedules AS s ON s.instance_id = p.instance_id AND s.policy_id = p.policy_id""",
    ),
    Health(
        "swr_registry_last_success_timestamp_seconds",
        "When the newest Succeed execution of any policy copying to the destination registry ended (Unix time; "
        "the last_success view; by id, since a registry made again under its old name has a new one); no series "
        "when none has.",
        ("instance_id", "dest_registry_id", "dest_registry"),
        """SELECT instance_id, coalesce(CAST(dest_registry_id AS VARCHAR), ''),
            coalesce(dest_registry_name, CAST(dest_registry_id AS VARCHAR), ''), epoch(last_success_at)
        FROM last_success
        WHERE scope = 'registry'""",
    ),
)


def label_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def health_families(db: duckdb.DuckDBPyConnection, *, stuck_hours: float) -> list[Metric]:
    """The families of :data:`HEALTH`, read from a warehouse connection (read-only will do)."""
    params = {"stuck_s": stuck_hours * 3600}
    for statement in PREPARE:
        wanted = set(re.findall(r"\$(\w+)", statement))
        db.execute(statement, {k: v for k, v in params.items() if k in wanted} or None)
    families: list[Metric] = []
    for health in HEALTH:
        family = GaugeMetricFamily(health.name, health.help, labels=list(health.labels))
        rows = [([label_value(v) for v in row[:-1]], row[-1]) for row in db.execute(health.sql).fetchall()]
        seen: set[tuple[str, ...]] = set()
        for labels, value in sorted(rows, key=lambda r: r[0]):  # one order, so that two files compare
            if value is None:
                continue
            if tuple(labels) in seen:  # two series with one label set make the whole exposition invalid
                log.warning("metrics: %s has two series labelled %s: the second is left out", health.name, labels)
                continue
            seen.add(tuple(labels))
            family.add_metric(labels, float(value))
        families.append(family)
    return families


def read_health(settings: Settings) -> tuple[list[Metric], SwrEtlError | None]:
    """The health families and ``swr_warehouse_up`` 1, or only ``swr_warehouse_up`` 0 and the reason when the
    warehouse could not be read (no lake yet, a lake that cannot be reached)."""
    import duckdb

    from pipeline.warehouse import warehouse

    up = GaugeMetricFamily("swr_warehouse_up", "1 when the replication health below could be read from the warehouse.")
    try:
        with warehouse.connect(settings.data_dir, settings.lake) as db:
            families = health_families(db, stuck_hours=settings.stuck_hours)
    except (SwrEtlError, duckdb.Error, OSError) as exc:
        up.add_metric([], 0.0)
        problem = exc if isinstance(exc, SwrEtlError) else RunError(f"could not read the warehouse: {describe(exc)}")
        return [up], problem
    up.add_metric([], 1.0)
    return [up, *families], None


class _Families(Collector):
    """Families collected already, for a registry of their own."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return list(self._families)


def registry(families: Iterable[Metric]) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(_Families(families))
    return found


def exposition(families: Iterable[Metric]) -> str:
    """The families in the Prometheus text format."""
    return generate_latest(registry(families)).decode()


def grouping_key(settings: Settings) -> dict[str, str]:
    """The Pushgateway group of a job: its host and its data directory, so that jobs never replace each
    other's metrics."""
    return {"instance": socket.gethostname(), "data_dir": settings.remote or str(settings.data_dir.resolve())}


def publish(settings: Settings, families: list[Metric]) -> list[str]:
    """Write the families to the metrics file and push them to the Pushgateway, whichever are set; return where
    they went. Raises :class:`RunError` naming every destination that failed, after trying both."""
    found = registry(families)
    done: list[str] = []
    problems: list[str] = []
    if settings.metrics_file is not None:
        path = settings.metrics_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(path), found)  # a temporary file beside it, then a rename
            done.append(str(path))
        except OSError as exc:
            problems.append(f"could not write the metrics to {path}: {exc.strerror or exc}")
    if settings.pushgateway:
        try:
            pushadd_to_gateway(
                settings.pushgateway, job=PUSH_JOB, registry=found, grouping_key=grouping_key(settings),
                timeout=PUSH_TIMEOUT_S,
            )  # fmt: skip
            done.append(settings.pushgateway)
        except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
            problems.append(f"could not push the metrics to {settings.pushgateway}: {exc}")
    if problems:
        raise RunError("; ".join(problems))
    return done


def after_run(settings: Settings, watch: RunWatch, exit_status: int) -> None:
    """After ``swr-etl run``: keep its figures and publish them with the health, if metrics are asked for. A
    failure is logged at level error and never raised: it does not change the run's exit status."""
    if settings.metrics_file is None and not settings.pushgateway:
        return
    try:
        figures = record(settings.data_dir, watch, exit_status)
        health, problem = read_health(settings)
        if problem is not None:
            log.warning("metrics: the replication health could not be read, swr_warehouse_up is 0: %s", problem)
        where = publish(settings, [*etl_families(figures), *health])
    except Exception as exc:  # whatever it is, the run's own outcome is the one to report
        log.error("metrics: %s (the run's exit status is unchanged)", describe(exc))
        return
    log.info("metrics written to %s", ", ".join(where))


@dataclass(frozen=True)
class Written:
    """What ``swr-etl metrics`` did: the text itself when there was nowhere to write it, else where it went;
    ``problem``: why the health is missing (``swr_warehouse_up`` 0), for the caller to raise once it is done."""

    text: str
    where: list[str]
    series: int
    problem: SwrEtlError | None


def write(settings: Settings) -> Written:
    """``swr-etl metrics``: the health, and the last run's figures as that run kept them, published (or, with no
    metrics file and no Pushgateway, returned as text). Raises :class:`RunError` when a destination failed."""
    figures: RunFigures | None = load_state(settings.data_dir)
    health, problem = read_health(settings)
    families = [*etl_families(figures), *health]
    series = sum(len(f.samples) for f in families)
    if settings.metrics_file is None and not settings.pushgateway:
        return Written(exposition(families), [], series, problem)
    return Written("", publish(settings, families), series, problem)


__all__ = [
    "HEALTH",
    "Health",
    "RunWatch",
    "Written",
    "after_run",
    "exposition",
    "health_families",
    "publish",
    "read_health",
    "write",
]

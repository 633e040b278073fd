"""When each scheduled policy should have fired: two small tables the ``silent_schedules`` view counts against.

SQL cannot read a cron, so each warehouse build (every ``run``, ``rebuild`` and a warehouse older than a
day) works the fire times out here, with croniter, and stores them: ``schedules`` (one row per policy
triggered by cron: the cron, why it does not read, the span covered) and ``schedule_fires`` (one row per
fire in that span). Harbor's cron has six fields, seconds first (``0 0 2 * * *``: 02:00:00 every day); a
five-field one is read as minute first. Times are UTC, as SWR runs its schedules.

The span runs from the policy's newest scheduled execution (else its creation) or seven days back, whichever
is earlier, but never more than :data:`LOOKBACK` back, to :data:`HORIZON` ahead of the build, so the view
stays right for a week of queries without a run. A cron firing more often than every few minutes reaches
:data:`MAX_FIRES` first, each way: its span is shorter, and says so.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from croniter import CroniterError, croniter

from pipeline.schema import TS, documented_schema

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=35)
RECENT = timedelta(days=7)  # always covered, for the view's fires_7d
HORIZON = timedelta(days=8)
MAX_FIRES = 5000  # each way from the build: a cron every minute covers 3.5 days back and ahead


@dataclass(frozen=True)
class Schedule:
    """The fires of one policy's cron between ``covered_from`` and ``covered_until`` (``problem``: why none)."""

    fires: list[datetime]
    covered_from: datetime | None
    covered_until: datetime | None
    interval_s: float | None  # the shortest gap between two fires: the schedule's period
    problem: str | None


def work_out(cron: str, anchor: datetime | None, now: datetime) -> Schedule:
    """The fires of ``cron`` from ``anchor`` (or seven days back, whichever is earlier; at most
    :data:`LOOKBACK`) to :data:`HORIZON` after ``now``."""
    text = " ".join(cron.split())
    fields = len(text.split(" ")) if text else 0
    if fields not in (5, 6):
        return Schedule([], None, None, None, f"a cron has 6 fields (seconds first), this one has {fields}")
    start = max(min(anchor or now - RECENT, now - RECENT), now - LOOKBACK)
    until = now + HORIZON
    try:
        back = croniter(text, now, second_at_beginning=fields == 6)
        past: list[datetime] = []
        while len(past) < MAX_FIRES:
            fire = back.get_prev(datetime)
            if fire < start:
                break
            past.append(fire)
        ahead = croniter(text, now, second_at_beginning=fields == 6)
        future: list[datetime] = []
        while len(future) < MAX_FIRES:
            fire = ahead.get_next(datetime)
            if fire > until:
                break
            future.append(fire)
    except (CroniterError, ValueError, KeyError, OverflowError) as exc:  # croniter's own, and a few it lets out
        return Schedule([], None, None, None, f"the cron does not read: {exc}")
    fires = past[::-1] + future
    covered_from = past[-1] if len(past) == MAX_FIRES else start
    covered_until = future[-1] if len(future) == MAX_FIRES else until
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fires)]
    return Schedule(fires, covered_from, covered_until, min(gaps) if gaps else None, None)


SCHEDULES = documented_schema(
    ("instance_id", pa.string(), "SWR EE instance"),
    ("policy_id", pa.int64(), "a policy whose trigger is scheduled"),
    ("cron", pa.string(), "its trigger_cron, as the API sent it"),
    ("cron_problem", pa.string(), "why the cron does not read (NULL when it does)"),
    ("interval_s", pa.float64(), "the shortest gap between two fires, in seconds"),
    ("covered_from", TS, "schedule_fires holds this policy's fires from here"),
    ("covered_until", TS, "... to here"),
)
FIRES = documented_schema(
    ("instance_id", pa.string(), "SWR EE instance"),
    ("policy_id", pa.int64(), "the scheduled policy"),
    ("fire_at", TS, "a time its cron called for an execution (UTC)"),
)
#: the warehouse's own tables: name, schema and what a row is (for the data dictionary and COMMENT ON)
TABLES = {
    "schedules": (SCHEDULES, "one row per policy triggered by cron, worked out when the warehouse was built"),
    "schedule_fires": (FIRES, "one row per time a scheduled policy should have fired, in the span schedules covers"),
}


def create_tables(db: duckdb.DuckDBPyConnection, now: datetime | None = None) -> None:
    """``schedules`` and ``schedule_fires`` in ``db``, from its ``policies`` and ``executions`` views."""
    now = now or datetime.now(UTC)
    policies = db.execute(
        """SELECT p.instance_id, p.policy_id, p.trigger_cron,
                  max(e.created_at) FILTER (WHERE coalesce(e.trigger, '') NOT IN ('manual', 'event_based')),
                  any_value(p.created_at)
           FROM policies AS p
           LEFT JOIN executions AS e ON e.instance_id = p.instance_id AND e.policy_id = p.policy_id
           WHERE p.trigger_type = 'scheduled'
           GROUP BY p.instance_id, p.policy_id, p.trigger_cron"""
    ).fetchall()
    rows: dict[str, list[Any]] = {name: [] for name in SCHEDULES.names}
    fires: dict[str, list[Any]] = {name: [] for name in FIRES.names}
    for instance_id, policy_id, cron, last_run, created in policies:
        schedule = work_out(cron or "", last_run or created, now)
        if schedule.problem:
            log.warning("policy %s of instance %s: %s (%r)", policy_id, instance_id, schedule.problem, cron)
        values = (instance_id, policy_id, cron, schedule.problem, schedule.interval_s)
        for name, value in zip(SCHEDULES.names, (*values, schedule.covered_from, schedule.covered_until), strict=True):
            rows[name].append(value)
        fires["instance_id"] += [instance_id] * len(schedule.fires)
        fires["policy_id"] += [policy_id] * len(schedule.fires)
        fires["fire_at"] += schedule.fires
    db.from_arrow(pa.table(rows, schema=SCHEDULES)).create("schedules")
    db.from_arrow(pa.table(fires, schema=FIRES)).create("schedule_fires")
    for name, (_, doc) in TABLES.items():
        db.execute(f"COMMENT ON TABLE {name} IS '{doc}'")

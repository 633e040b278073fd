"""Silent schedules: the fires a policy's cron called for against the executions seen, worked out by hand.

Daily policies fire at 02:30 UTC; F is the newest 02:30 at least 15 minutes (the grace) before now.
- 1 "hourly": every hour (six fields, seconds first); ran at its newest due fire. Nothing missed.
- 2 "stopped": ran at F - 4 days, never since: F - 3d, F - 2d, F - 1d and F missed (4): silent, alerts.
- 3 "disabled": like 2, but disabled. Not listed.
- 4 "by hand": a manual trigger. Not listed.
- 5 "one late": five fields (minute first); ran at F - 1 day: F missed (1). Not silent; alerts at 0 only.
- 6 "bad cron": the cron does not read. Listed with the reason, never alerts.
- 7 "manual since": ran at F - 3 days, and by hand an hour ago: the manual run is not the schedule (3 missed).
- 8 "never ran": created at F - 2 days - 1 hour, no execution: F - 2d, F - 1d, F missed (3).
- 9 "long gone": ran 60 days ago; fires are worked out 35 days back: every fire of those 35 days is missed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import clean_env, run_cli
from test_alerts import policy
from test_views import build, execution, iso, run_id_at, select

from pipeline.warehouse import schedules, warehouse

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def newest_fire(now: datetime) -> datetime:
    """The newest 02:30 UTC at least 15 minutes before ``now`` (by hand, not by croniter)."""
    due = now - timedelta(minutes=15)
    fire = due.replace(hour=2, minute=30, second=0, microsecond=0)
    return fire if fire <= due else fire - DAY


F = newest_fire(NOW)
HOUR_FIRE = (NOW - timedelta(minutes=15)).replace(minute=0, second=0, microsecond=0)


def ran(eid: int, pid: int, at: datetime, trigger: str = "scheduled") -> tuple[dict[str, Any], list[Any]]:
    updated = iso(at + timedelta(minutes=5))
    return execution(eid, iso(at + timedelta(seconds=10)), policy_id=pid, trigger=trigger, updated_at=updated), []


DAILY = "0 30 2 * * *"
POLICIES = [
    policy(1, "hourly", cron="0 0 * * * *"),
    policy(2, "stopped", cron=DAILY),
    policy(3, "disabled", cron=DAILY, enabled=False),
    policy(4, "by hand", trigger="manual"),
    policy(5, "one late", cron="30 2 * * *"),
    policy(6, "bad cron", cron="every day at 2"),
    policy(7, "manual since", cron=DAILY),
    policy(8, "never ran", cron=DAILY, created=iso(F - 2 * DAY - timedelta(hours=1))),
    policy(9, "long gone", cron=DAILY, created=iso(NOW - 90 * DAY)),
]
# the 02:30s of the last 35 days, but for one within the grace (15 minutes) after the first fire worked out
LONG_GONE = sum(1 for k in range(40) if F - k * DAY > NOW - 35 * DAY + timedelta(minutes=15))
LISTED = run_id_at(NOW)  # the executions were listed now: the view judges as of then
WORLD = [
    ran(10, 1, HOUR_FIRE - timedelta(hours=1)),
    ran(11, 1, HOUR_FIRE),
    ran(20, 2, F - 5 * DAY),
    ran(21, 2, F - 4 * DAY),
    ran(30, 3, F - 4 * DAY),
    ran(40, 4, NOW - 3 * DAY, trigger="manual"),
    ran(50, 5, F - DAY),
    ran(60, 6, F - 9 * DAY),
    ran(70, 7, F - 3 * DAY),
    ran(71, 7, NOW - timedelta(hours=1), trigger="manual"),
    ran(90, 9, F - 60 * DAY),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("silent")
    build(path, WORLD, policies=POLICIES, listed_run=LISTED).close()
    return path


@pytest.fixture
def db(data_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        yield connection


def test_missed_fires_are_counted_from_the_newest_scheduled_execution(db: duckdb.DuckDBPyConnection) -> None:
    rows = {r["policy_name"]: r for r in select(db, "SELECT * FROM silent_schedules")}
    assert set(rows) == {"hourly", "stopped", "one late", "bad cron", "manual since", "never ran", "long gone"}
    missed = {name: (r["missed_runs"], r["silent"]) for name, r in rows.items()}
    assert missed == {
        "hourly": (0, False),
        "stopped": (4, True),
        "one late": (1, False),
        "bad cron": (None, None),
        "manual since": (3, True),
        "never ran": (3, True),
        "long gone": (LONG_GONE, True),
    }
    stopped = rows["stopped"]
    assert stopped["last_run_at"] == F - 4 * DAY + timedelta(seconds=10)
    assert stopped["first_missed_at"] == F - 3 * DAY
    assert stopped["last_fire_at"] == (F + DAY if F + DAY <= NOW else F)
    assert stopped["next_fire_at"] == (F + 2 * DAY if F + DAY <= NOW else F + DAY)
    assert stopped["interval_hours"] == 24.0
    assert (stopped["fires_7d"], stopped["runs_7d"]) == (7, 2)  # F - 6d .. F due; executions 20 and 21 seen
    assert rows["never ran"]["last_run_at"] is None and rows["never ran"]["first_missed_at"] == F - 2 * DAY
    assert rows["bad cron"]["cron_problem"] == "a cron has 6 fields (seconds first), this one has 4"
    assert rows["hourly"]["interval_hours"] == 1.0
    assert rows["hourly"]["fires_7d"] == 7 * 24 - (0 if NOW.minute >= 15 else 1)


def test_only_silent_schedules_alert_and_the_threshold_moves_them(db: duckdb.DuckDBPyConnection) -> None:
    silent = select(db, "SELECT policy_id, since, value, detail FROM alerts WHERE kind = 'silent' ORDER BY 1")
    assert [(r["policy_id"], r["value"]) for r in silent] == [(2, 4), (7, 3), (8, 3), (9, LONG_GONE)]
    assert silent[0]["since"] == F - 3 * DAY
    when = (F - 4 * DAY + timedelta(seconds=10)).strftime("%Y-%m-%d %H:%M UTC")
    assert silent[0]["detail"] == (
        f"its schedule ({DAILY}) should have started 4 executions since {when} and none came (threshold 1)"
    )
    created = (F - 2 * DAY - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M UTC")
    assert f"should have started 3 executions since the policy was created or changed, {created}" in silent[2]["detail"]
    last = (F - 60 * DAY + timedelta(seconds=10)).strftime("%Y-%m-%d %H:%M UTC")
    assert (
        f"at least {LONG_GONE} executions in the 35 days counted (its last scheduled execution: {last})"
        in (silent[3]["detail"])
    )
    strict = "SELECT policy_id FROM alerts_over(max_missed_runs := 0) WHERE kind = 'silent' ORDER BY 1"
    assert [r[0] for r in db.sql(strict).fetchall()] == [2, 5, 7, 8, 9]
    lenient = "SELECT policy_id FROM alerts_over(max_missed_runs := 3) WHERE kind = 'silent'"
    assert db.sql(lenient).fetchall() == [(2,), (9,)]


def test_check_pages_on_silent_schedules_with_its_threshold(data_dir: Path) -> None:
    env = clean_env(SWR_ETL_DATA_DIR=str(data_dir))
    found = run_cli(["check", "--format", "json", "--max-success-age-hours", "10000"], env)
    assert found.returncode == 1, found.stderr
    kinds = {(a["policy_id"], a["kind"]) for a in json.loads(found.stdout)["alerts"]}
    assert kinds == {(2, "silent"), (7, "silent"), (8, "silent"), (9, "silent")}
    assert json.loads(found.stdout)["thresholds"]["max_missed_runs"] == 1
    quiet = run_cli(["check", "--max-success-age-hours", "10000", "--max-missed-runs", "40"], env)
    assert (quiet.returncode, quiet.stdout) == (0, "check: no alerts\n"), quiet.stderr
    from_env = run_cli(["check", "--max-success-age-hours", "10000"], {**env, "SWR_ETL_MAX_MISSED_RUNS": "3"})
    assert from_env.returncode == 1 and "policy stopped (2)" in from_env.stdout
    assert from_env.stdout.count("ALERT silent") == 2  # 2 and 9
    misuse = run_cli(["check", "--max-missed-runs", "-1"], env)
    assert misuse.returncode == 2 and misuse.stderr.startswith("error: --max-missed-runs must be 0 or more")


def test_a_warehouse_built_over_a_day_ago_is_rebuilt_when_read(tmp_path: Path) -> None:
    build(tmp_path, WORLD, policies=POLICIES).close()
    target = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(target)) as db:
        db.execute("UPDATE _swr_etl_meta SET built_at = now() - INTERVAL 25 HOUR")
        db.execute("DELETE FROM schedule_fires")  # what a week-old build would have run out of
    with warehouse.connect(tmp_path) as db:
        assert db.sql("SELECT count(*) FROM schedule_fires").fetchall()[0][0] > 0
        assert db.sql("SELECT built_at > now() - INTERVAL 1 HOUR FROM _swr_etl_meta").fetchall() == [(True,)]


def test_crons_are_read_as_harbor_writes_them_and_bounded() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    daily = schedules.work_out("0 0 2 * * *", now - 3 * DAY, now)
    assert daily.problem is None and daily.interval_s == 86400
    assert daily.fires[0] == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # seven days back is always covered
    assert daily.fires[-1] == datetime(2026, 12, 15, 2, 0, tzinfo=UTC)  # eight days ahead
    assert schedules.work_out("0 2 * * *", None, now).fires == daily.fires  # five fields: minute first
    old = schedules.work_out("0 0 2 * * *", now - 400 * DAY, now)
    assert old.covered_from == now - schedules.LOOKBACK and old.fires[0] == datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    every_second = schedules.work_out("* * * * * *", None, now)
    assert len(every_second.fires) == 2 * schedules.MAX_FIRES and every_second.interval_s == 1
    assert every_second.covered_from == now - timedelta(seconds=schedules.MAX_FIRES)
    for bad in ("", "0 0 2 * * * 2026", "61 * * * * *", "0 0 0 30 2 *"):
        broken = schedules.work_out(bad, None, now)
        assert broken.problem and broken.fires == [], bad


def world_listed_at(data_dir: Path, listed: datetime) -> duckdb.DuckDBPyConnection:
    """Policy 20 re-enabled an hour ago after 20 silent days; 21 stopped 4 days ago; 22 deleted (only an older
    policies listing shows it) and silent since. Listed (policies and executions) at ``listed``."""
    from test_transform_golden import IID, land_listing

    gone = policy(22, "deleted", cron=DAILY)
    land_listing(data_dir, "policies", "20261101T000000000Z-aaaaab", [gone], instance_id=IID)
    reenabled = policy(20, "re-enabled", cron=DAILY) | {"updated_at": iso(NOW - timedelta(hours=1))}
    policies = [reenabled, policy(21, "stopped", cron=DAILY)]
    runs = [ran(200, 20, F - 20 * DAY), ran(210, 21, F - 4 * DAY), ran(220, 22, F - 10 * DAY)]
    return build(data_dir, runs, policies=policies, listed_run=run_id_at(listed))


def test_judged_as_of_the_listing_for_policies_still_listed_since_their_last_change(tmp_path: Path) -> None:
    with world_listed_at(tmp_path / "now", NOW) as db:
        rows = {r["policy_id"]: r for r in select(db, "SELECT * FROM silent_schedules")}
        assert set(rows) == {20, 21}  # 22 is gone from the newest policies listing
        assert rows[20]["counted_from"] == datetime.fromisoformat(iso(NOW - timedelta(hours=1)))
        assert rows[20]["missed_runs"] <= 1 and not rows[20]["silent"]  # re-enabled an hour ago
        assert (rows[21]["missed_runs"], rows[21]["silent"]) == (4, True)
        assert abs((rows[21]["as_of"] - NOW).total_seconds()) < 0.001
        assert {r["policy_id"] for r in select(db, "SELECT policy_id FROM alerts")} == {21}
    # the same lake, its executions listed three days ago: what came after is not known to be missed
    with world_listed_at(tmp_path / "old", NOW - 3 * DAY) as db:
        (stopped,) = select(db, "SELECT missed_runs, silent, last_fire_at FROM silent_schedules WHERE policy_id = 21")
        assert (stopped["missed_runs"], stopped["silent"]) == (1, False)  # F - 3 days only
        assert stopped["last_fire_at"] == F - 3 * DAY

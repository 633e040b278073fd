"""Reports for people: what the lake holds, and the replication analytics of the views in ``sql/``.

Every number comes from the warehouse views, so the report, a BI tool and an ad-hoc query agree. Names come
from the API: the text report shows their control characters escaped, the JSON carries them exactly. The
text and the page show rates as percentages and durations as ``1m 23s``; the JSON keeps the exact numbers.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from pipeline.report.output import fit, pad, plain
from pipeline.text import dumps, terminal_safe
from pipeline.warehouse import warehouse

MIN_FINISHED = 5  # finished tasks in the window below which a failure rate ranks after the others
STUCK_HOURS = 6  # the threshold of the view stuck_tasks (the default of sql/stuck_tasks_over.sql)
FAILING_MOST = (
    "Failing most: the highest failure rate over the window (failed and stopped tasks / finished tasks) first, "
    f"but those with fewer than {MIN_FINISHED} finished tasks after all others; ties go to more failures, then "
    "by instance and repository name or policy id."
)


def failing_order(*keys: str) -> str:
    """The ORDER BY of :data:`FAILING_MOST` over columns ``finished``, ``failures`` and ``failure_rate``, those
    without a failure last, then ``keys`` (which make the order total)."""
    ranking = ["failures > 0 DESC", f"finished >= {MIN_FINISHED} DESC", "failure_rate DESC NULLS LAST", "failures DESC"]
    return ", ".join([*ranking, *keys])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return float(value)


def percent(value: object) -> str:
    """A rate as ``83.7%``; ``-`` for none, other values as text."""
    number = _number(value)
    return ("-" if value is None else _text(value)) if number is None else f"{number:.1%}"


def duration(value: object) -> str:
    """Seconds as ``4.2s``, ``42s``, ``1m 23s``, ``2h 05m`` or ``3d 04h``; ``-`` for none."""
    number = _number(value)
    if number is None:
        return "-" if value is None else _text(value)
    sign, seconds = ("-" if number < 0 else ""), abs(number)
    if seconds < 9.95:
        return f"{sign}{seconds:.1f}s"
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        rounded = round(seconds / small_size) * small_size  # rounded first: 59m 59.6s is 1h 00m, not 0h 60m
        if rounded >= size:
            big, rest = divmod(rounded, size)
            return f"{sign}{big}{unit} {rest // small_size:02d}{small}"
    return f"{sign}{round(seconds)}s"


def count(value: object) -> str:
    """A whole number with thousands separators; ``-`` for none."""
    number = _number(value)
    return ("-" if value is None else _text(value)) if number is None else f"{int(number):,}"


def _text(value: object) -> str:
    """A cell from the data as inert terminal text (``-`` for none)."""
    return "-" if value is None else terminal_safe(str(value))


def when(value: object) -> str:
    """A time as ``2024-05-30 03:58`` (UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return _text(value)


def records(db: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql``, each a dict by column name."""
    relation = db.sql(sql)
    columns = list(relation.columns)
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


def _window(days: int) -> str:
    """The report's window: the last ``days`` days of data, up to the newest day of ``policy_health``."""
    return f"(SELECT max(day) FROM policy_health) - INTERVAL {int(days)} DAY"


def failing_repositories(db: duckdb.DuckDBPyConnection, days: int, limit: int) -> list[dict[str, Any]]:
    """Source repositories with a failed or stopped task in the window, failing most first (FAILING_MOST).
    A task belongs to the day of its execution, as in ``policy_health``."""
    return records(
        db,
        f"""
        WITH windowed AS (
            SELECT t.instance_id, t.src_repository,
                   count(*) FILTER (WHERE t.status IN ('Succeed', 'Failed', 'Stopped')) AS finished,
                   count(*) FILTER (WHERE t.status IN ('Failed', 'Stopped')) AS failures
            FROM tasks AS t JOIN executions AS e USING (instance_id, execution_id)
            WHERE t.src_repository IS NOT NULL AND CAST(timezone('UTC', e.created_at) AS DATE) > {_window(days)}
            GROUP BY t.instance_id, t.src_repository
        )
        SELECT w.instance_id, w.src_repository, w.finished, w.failures, w.failures / w.finished AS failure_rate,
               r.failures_in_a_row, r.last_failure, r.last_success
        FROM windowed AS w LEFT JOIN repository_replication AS r USING (instance_id, src_repository)
        WHERE w.failures > 0
        ORDER BY {failing_order("w.instance_id", "w.src_repository")} LIMIT {int(limit)}
        """,
    )


def collect(data_dir: Path, *, lake: str | None = None, days: int = 30, top: int = 10) -> dict[str, Any]:
    """Everything the report shows, as plain data (the JSON format is exactly this)."""
    from pipeline.report import answers  # imported here: answers formats with this module's functions

    since = _window(days)
    with warehouse.connect(data_dir, lake) as db:
        answered = answers.collect(db, top)
        (totals,) = records(
            db,
            """
            SELECT (SELECT count(*) FROM instances) AS instances, (SELECT count(*) FROM policies) AS policies,
                   (SELECT count(*) FROM executions) AS executions, (SELECT count(*) FROM tasks) AS tasks,
                   (SELECT count(*) FROM artifacts) AS artifacts, (SELECT count(*) FROM tags) AS tags,
                   (SELECT count(*) FROM rejects) AS rejects,
                   (SELECT max(start_time) FROM tasks) AS newest_task
            """,
        )
        (window,) = records(
            db, f"SELECT CAST({since} + INTERVAL 1 DAY AS DATE) AS first_day, max(day) AS last_day FROM policy_health"
        )
        policies = records(
            db,
            f"""
            SELECT instance_id, policy_id, policy_name, instance_name, executions, tasks, finished, failures,
                   (finished - failures) / nullif(finished, 0) AS success_rate,
                   failures / nullif(finished, 0) AS failure_rate, p95_duration_s, tags_replicated
            FROM (
                SELECT h.instance_id, h.policy_id, any_value(h.policy_name) AS policy_name,
                       any_value(i.name) AS instance_name, sum(h.executions) AS executions, sum(h.tasks) AS tasks,
                       sum(h.finished_tasks) AS finished,
                       sum(h.finished_tasks) - CAST(coalesce(round(sum(h.task_success_rate * h.finished_tasks)), 0)
                           AS BIGINT) AS failures,
                       max(h.p95_duration_s) AS p95_duration_s, sum(h.tags_replicated) AS tags_replicated
                FROM policy_health AS h LEFT JOIN instances AS i USING (instance_id) WHERE h.day > {since}
                GROUP BY h.instance_id, h.policy_id
            )
            ORDER BY {failing_order("instance_id", "policy_id NULLS LAST")}
            """,
        )
        ranked = failing_repositories(db, days, max(top, 20))
        last_runs = records(
            db,
            """
            WITH runs AS (
                SELECT instance_id, policy_id, max(created_at) FILTER (WHERE status = 'Succeed') AS last_success,
                       max(created_at) AS last_run, arg_max(status, (created_at, execution_id)) AS last_status
                FROM executions GROUP BY instance_id, policy_id
            ),
            known AS (SELECT instance_id, policy_id FROM policies UNION SELECT instance_id, policy_id FROM runs)
            SELECT k.instance_id, i.name AS instance_name, k.policy_id, p.name AS policy_name, r.last_success,
                   r.last_run, r.last_status
            FROM known AS k
            LEFT JOIN runs AS r ON r.instance_id = k.instance_id AND r.policy_id IS NOT DISTINCT FROM k.policy_id
            LEFT JOIN policies AS p ON p.instance_id = k.instance_id AND p.policy_id = k.policy_id
            LEFT JOIN instances AS i ON i.instance_id = k.instance_id
            ORDER BY r.last_success NULLS FIRST, k.instance_id, k.policy_id NULLS LAST
            """,
        )
        (stuck,) = records(db, "SELECT count(*) AS tasks, min(start_time) AS oldest_start FROM stuck_tasks")
        failures = records(
            db,
            f"""
            SELECT instance_id, execution_id, task_id, status, src_repository, dst_repository,
                   len(digests) AS digests, len(tags) AS tags, start_time
            FROM failures ORDER BY start_time DESC NULLS LAST, execution_id DESC, task_id DESC, instance_id
            LIMIT {int(top)}
            """,
        )
        drift = records(
            db,
            """
            SELECT kind, count(*) AS tags, count(DISTINCT (instance_id, src_repository, dst_repository)) AS pairs
            FROM tag_drift GROUP BY kind ORDER BY kind
            """,
        )
        drift_pairs = records(
            db,
            f"""
            SELECT src_repository, dst_repository, count(*) AS missing
            FROM tag_drift WHERE kind = 'missing' GROUP BY src_repository, dst_repository
            ORDER BY missing DESC, src_repository, dst_repository LIMIT {int(top)}
            """,
        )
        charts = {
            "success_by_policy": records(
                db,
                f"""
                SELECT day, coalesce(policy_name, CAST(policy_id AS VARCHAR)) AS policy,
                       sum(task_success_rate * finished_tasks) / nullif(sum(finished_tasks), 0) AS success_rate
                FROM policy_health WHERE day > {since} GROUP BY ALL ORDER BY day, policy
                """,
            ),
            "failures_by_repository": ranked[:20],
            "duration_histogram": records(
                db,
                """
                SELECT bucket, count(duration_s) AS tasks
                FROM (VALUES (0, '< 1 s', 0, 1), (1, '1-10 s', 1, 10), (2, '10-30 s', 10, 30), (3, '30-60 s', 30, 60),
                             (4, '1-5 min', 60, 300), (5, '5-15 min', 300, 900), (6, '15-60 min', 900, 3600),
                             (7, '> 1 h', 3600, 1e18)) AS b(k, bucket, lo, hi)
                LEFT JOIN tasks ON duration_s >= lo AND duration_s < hi
                GROUP BY k, bucket ORDER BY k
                """,
            ),
            "daily_throughput": records(
                db,
                """
                SELECT day, sum(tags) FILTER (WHERE operation = 'copy' AND status = 'Succeed') AS tags
                FROM daily_throughput GROUP BY day ORDER BY day
                """,
            ),
            "drift_rows": records(
                db,
                f"""
                SELECT kind, src_repository, dst_repository, tag, digest, previous_digest
                FROM tag_drift
                ORDER BY kind, src_repository, dst_repository, tag, digest, previous_digest, instance_id,
                         execution_id, task_id
                LIMIT {int(top) * 5}
                """,
            ),
        }
    for row in charts["daily_throughput"]:
        row["tags"] = row["tags"] or 0
    finished = sum(p["finished"] or 0 for p in policies)
    failed = sum(p["failures"] or 0 for p in policies)
    missing = next((d for d in drift if d["kind"] == "missing"), {"tags": 0, "pairs": 0})
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_dir": str(Path(data_dir).resolve()),
        "days": days,
        "top": top,
        "window": window,
        "definitions": {
            "failing_most": FAILING_MOST,
            "window": f"the last {days} days of data, up to the newest day an execution started (UTC)",
            "stuck_tasks": f"tasks running or pending for more than {STUCK_HOURS} hours now (view stuck_tasks)",
            "answers": "the state now, over all the data: the window does not apply",
        },
        "totals": totals,
        "answers": answered,
        "glance": {
            "finished_tasks": finished,
            "succeeded_tasks": finished - failed,
            "task_success_rate": (finished - failed) / finished if finished else None,
            "policies_in_window": len(policies),
            "failing_policies": [p for p in policies if p["failures"]],
            "stuck_tasks": stuck["tasks"],
            "oldest_stuck_start": stuck["oldest_start"],
            "missing_tags": missing["tags"],
            "missing_pairs": missing["pairs"],
            "last_runs": last_runs,
        },
        "policies": policies,
        "repositories": ranked[:top],
        "recent_failures": failures,
        "drift": {"by_kind": drift, "top_pairs": drift_pairs},
        "charts": charts,
    }


def render_json(data: dict[str, Any]) -> str:
    return dumps(plain(data), indent=1) + "\n"


def _wrapped(text: str, width: int, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def _glance(data: dict[str, Any], width: int, top: int) -> list[str]:
    g, window = data["glance"], data.get("window") or {}
    span = f", {window['first_day']} to {window['last_day']}" if window.get("last_day") else ""
    failing = g["failing_policies"]
    names = ", ".join(_text(p["policy_name"] or p["policy_id"]) for p in failing[:5])
    names += f" and {len(failing) - 5} more" if len(failing) > 5 else ""
    stuck = f"{count(g['stuck_tasks'])}  (running or pending for over {STUCK_HOURS} hours now; view stuck_tasks)"
    lines = [
        f"At a glance: the last {data['days']} days of data{span} (UTC)",
        f"  {'task success rate':<32}  {percent(g['task_success_rate'])}  "
        f"({count(g['succeeded_tasks'])} of {count(g['finished_tasks'])} finished tasks)",
        f"  {'failing policies':<32}  {len(failing)} of {g['policies_in_window']}" + (f": {names}" if names else ""),
        f"  {'stuck tasks':<32}  {stuck}",
        f"  {'tags missing on the destination':<32}  {count(g['missing_tags'])}  "
        f"(in {count(g['missing_pairs'])} repository pairs, all time; view tag_drift)",
        "",
        "  Last successful run per policy, UTC (never or longest ago first)",
        f"    {'policy':<30} {'instance':<16} {'last success':<16}  {'last run':<16}  last status",
    ]
    for run in g["last_runs"][:top]:
        success = "never" if run["last_success"] is None else when(run["last_success"])
        lines.append(
            f"    {fit(_text(run['policy_name'] or run['policy_id']), 30)} "
            f"{fit(_text(run['instance_name'] or run['instance_id']), 16)} {success:<16}  "
            f"{when(run['last_run']):<16}  {_text(run['last_status'])}"
        )
    if len(g["last_runs"]) > top:
        lines.append(f"    ... and {len(g['last_runs']) - top} more (--top, or the JSON)")
    return [*lines, "", *_wrapped(data["definitions"]["failing_most"], width - 2)]


def render_text(data: dict[str, Any], width: int = 100) -> str:
    """The report at ``width`` columns (100 by default): the answers to an operator's four questions
    (:mod:`pipeline.report.answers`), the state at a glance, then the details."""
    from pipeline.report import answers  # imported here: answers formats with this module's functions

    t = data["totals"]
    lines = [
        f"SWR replication report for {_text(data['data_dir'])}",
        f"{count(t['instances'])} instances, {count(t['policies'])} policies, {count(t['executions'])} executions, "
        f"{count(t['tasks'])} tasks, {count(t['tags'])} tags, {count(t['rejects'])} rejected records",
        f"newest task started {when(t['newest_task'])} UTC",
        "",
        *answers.render_text(data["answers"], width, data.get("top", 10)),
        "",
        *_glance(data, width, data.get("top", 10)),
        "",
        f"Health per policy, last {data['days']} days (failing most first)",
        f"  {'policy':<30} {'instance':<16} {'executions':>10} {'tasks':>8} {'success':>8} {'p95 time':>8} "
        f"{'tags copied':>12}",
    ]
    for p in data["policies"]:
        lines.append(
            f"  {fit(_text(p['policy_name'] or p['policy_id']), 30)} "
            f"{fit(_text(p['instance_name'] or p['instance_id']), 16)} {count(p['executions']):>10} "
            f"{count(p['tasks']):>8} {percent(p['success_rate']):>8} {duration(p['p95_duration_s']):>8} "
            f"{count(p['tags_replicated'] or 0):>12}"
        )
    lines.append("  (p95 time: the slowest day's 95th percentile of task duration in the window)")
    lines += ["", f"Repositories failing most, last {data['days']} days (see Failing most above)"]
    lines.append(
        f"  {'source repository':<30} {'finished':>8} {'failed':>6} {'rate':>6} {'in a row':>8}  "
        f"{'last failure':<16}  {'last success':<16}"
    )
    for r in data["repositories"]:
        lines.append(
            f"  {fit(_text(r['src_repository']), 30)} {count(r['finished']):>8} {count(r['failures']):>6} "
            f"{percent(r['failure_rate']):>6} {count(r['failures_in_a_row']):>8}  {when(r['last_failure']):<16}  "
            f"{when(r['last_success']):<16}"
        )
    lines += ["", "Recent failures"]
    lines.append(f"  {'started (UTC)':<17} {'status':<8} {'source -> destination':<56} {'tags':>5}")
    for f in data["recent_failures"]:
        route = _text(f"{f['src_repository'] or '?'} -> {f['dst_repository'] or '?'}")
        lines.append(
            f"  {when(f['start_time']):<17} {pad(_text(f['status']), 8)} {fit(route, 56)} {count(f['tags'] or 0):>5}"
        )
    lines += ["", "Drift"]
    kinds = {d["kind"]: d for d in data["drift"]["by_kind"]}
    missing, moved = kinds.get("missing"), kinds.get("moved")
    lines.append(
        f"  {count(missing['tags'] if missing else 0)} tags on a copy's source never reached its destination "
        f"({count(missing['pairs'] if missing else 0)} repository pairs)"
    )
    lines.append(f"  {count(moved['tags'] if moved else 0)} tags moved to another digest between executions")
    if data["drift"]["top_pairs"]:
        lines.append("  most missing, by source -> destination:")
    for pair in data["drift"]["top_pairs"]:
        route = _text(f"{pair['src_repository']} -> {pair['dst_repository']}")
        lines.append(f"    {fit(route, width - 16)} {count(pair['missing']):>8}")
    # every cell is escaped already: this pass only guards a line that a later edit forgets to
    return "\n".join(terminal_safe(line).rstrip()[:width] for line in lines) + "\n"


def summary(data_dir: Path, *, lake: str | None = None, width: int = 100, days: int = 30) -> str:
    """What the lake holds, what was rejected and why, and what looks wrong, in a screenful of text."""
    lines: list[str] = []
    with warehouse.connect(data_dir, lake) as db:

        def one(sql: str) -> tuple[object, ...]:
            rows = db.sql(sql).fetchall()
            return rows[0] if rows else ()

        executions, tasks = one("SELECT (SELECT count(*) FROM executions), (SELECT count(*) FROM tasks)")
        artifacts, tags, rejects = one(
            "SELECT (SELECT count(*) FROM artifacts), (SELECT count(*) FROM tags), (SELECT count(*) FROM rejects)"
        )
        lines.append(f"The lake in {_text(data_dir)} holds:")
        lines.append(
            f"  {count(executions)} executions, {count(tasks)} tasks, {count(artifacts)} artifacts, {count(tags)} "
            f"tags, {count(rejects)} rejected records"
        )
        statuses = db.sql("SELECT status, count(*) FROM tasks GROUP BY ALL ORDER BY 2 DESC, 1").fetchall()
        lines.append("  tasks by status: " + ", ".join(f"{_text(s or 'none')} {count(n)}" for s, n in statuses))

        reasons = db.sql(
            """
            SELECT field, regexp_replace(error, '[0-9]+', 'N', 'g') AS reason, count(*) AS n
            FROM rejects GROUP BY ALL ORDER BY n DESC, field, reason LIMIT 8
            """
        ).fetchall()
        if reasons:
            lines += ["", "Rejected records (the task rows still load; the raw text is kept in the rejects table):"]
            for field, raw_reason, n in reasons:
                reason = _text(raw_reason)
                text = reason if len(reason) <= width - 30 else reason[: width - 33] + "..."
                lines.append(f"  {n:>6}  {_text(field):<13} {text}")

        worst = failing_repositories(db, days, 5)
        if worst:
            lines += ["", f"Repositories failing most, last {days} days of data (as 'swr-etl report' ranks them):"]
            for r in worst:
                lines.append(
                    f"  {fit(_text(r['src_repository']), 40)} {r['failures']:>5} of {r['finished']:>5} finished "
                    f"tasks failed ({percent(r['failure_rate'])})"
                )

        (missing,) = one("SELECT count(*) FROM tag_drift WHERE kind = 'missing'")
        lines += ["", f"Tags listed on a copy's source but not on its destination: {count(missing)} "]
        lines[-1] += "(view tag_drift)"
    return "\n".join(map(terminal_safe, lines)) + "\n"

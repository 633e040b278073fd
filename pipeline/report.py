"""Reports for people: what the lake holds, and the replication analytics of the views in ``sql/``.

Every number comes from the warehouse views, so the report, a BI tool and an ad-hoc query agree. Names come
from the API: the text report shows their control characters escaped, the JSON carries them exactly.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline import warehouse
from pipeline.output import plain
from pipeline.text import dumps, terminal_safe


def _n(value: object) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else _text(value)


def _text(value: object) -> str:
    """A cell from the data as inert terminal text (``-`` for none)."""
    return "-" if value is None else terminal_safe(str(value))


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(value):.1%}"  # type: ignore[arg-type]


def _cells(text: str) -> int:
    """Terminal cells ``text`` takes: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(text: object, width: int) -> str:
    """``text`` cut to ``width`` terminal cells and padded to exactly that width."""
    value = _text(text)
    if _cells(value) > width:
        while _cells(value) > width - 1:
            value = value[:-1]
        value += "…"
    return value + " " * (width - _cells(value))


def _records(db: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    relation = db.sql(sql)
    columns = list(relation.columns)
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


def collect(data_dir: Path, *, lake: str | None = None, days: int = 30, top: int = 10) -> dict[str, Any]:
    """Everything the report shows, as plain data (the JSON format is exactly this)."""
    with warehouse.connect(data_dir, lake) as db:
        (totals,) = _records(
            db,
            """
            SELECT (SELECT count(*) FROM instances) AS instances, (SELECT count(*) FROM policies) AS policies,
                   (SELECT count(*) FROM executions) AS executions, (SELECT count(*) FROM tasks) AS tasks,
                   (SELECT count(*) FROM artifacts) AS artifacts, (SELECT count(*) FROM tags) AS tags,
                   (SELECT count(*) FROM rejects) AS rejects,
                   (SELECT max(start_time) FROM tasks) AS newest_task
            """,
        )
        since = f"(SELECT max(day) FROM policy_health) - INTERVAL {int(days)} DAY"
        policies = _records(
            db,
            f"""
            SELECT h.instance_id, policy_id, any_value(policy_name) AS policy_name, any_value(i.name) AS instance_name,
                   sum(executions) AS executions, sum(tasks) AS tasks,
                   sum(task_success_rate * finished_tasks) / nullif(sum(finished_tasks), 0) AS success_rate,
                   max(p95_duration_s) AS p95_duration_s, sum(tags_replicated) AS tags_replicated
            FROM policy_health h LEFT JOIN instances i USING (instance_id) WHERE day > {since}
            GROUP BY h.instance_id, policy_id ORDER BY success_rate NULLS LAST, tasks DESC
            """,
        )
        repositories = _records(
            db,
            f"""
            SELECT instance_id, src_repository, failures_in_a_row, last_failure, last_success, tasks
            FROM repository_replication WHERE last_failure IS NOT NULL
            ORDER BY failures_in_a_row DESC, last_failure DESC LIMIT {int(top)}
            """,
        )
        failures = _records(
            db,
            f"""
            SELECT instance_id, execution_id, task_id, status, src_repository, dst_repository,
                   len(digests) AS digests, len(tags) AS tags, start_time
            FROM failures ORDER BY start_time DESC NULLS LAST LIMIT {int(top)}
            """,
        )
        drift = _records(
            db,
            """
            SELECT kind, count(*) AS tags, count(DISTINCT (instance_id, src_repository, dst_repository)) AS pairs
            FROM tag_drift GROUP BY kind ORDER BY kind
            """,
        )
        drift_pairs = _records(
            db,
            f"""
            SELECT src_repository, dst_repository, count(*) AS missing
            FROM tag_drift WHERE kind = 'missing' GROUP BY ALL ORDER BY missing DESC LIMIT {int(top)}
            """,
        )
        charts = {
            "success_by_policy": _records(
                db,
                f"""
                SELECT day, coalesce(policy_name, CAST(policy_id AS VARCHAR)) AS policy,
                       sum(task_success_rate * finished_tasks) / nullif(sum(finished_tasks), 0) AS success_rate
                FROM policy_health WHERE day > {since} GROUP BY ALL ORDER BY day, policy
                """,
            ),
            "failures_by_repository": _records(
                db,
                """
                SELECT src_repository, count(*) AS failures FROM failures
                WHERE src_repository IS NOT NULL GROUP BY ALL ORDER BY failures DESC, src_repository LIMIT 20
                """,
            ),
            "duration_histogram": _records(
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
            "daily_throughput": _records(
                db,
                """
                SELECT day, sum(tags) FILTER (WHERE operation = 'copy' AND status = 'Succeed') AS tags
                FROM daily_throughput GROUP BY day ORDER BY day
                """,
            ),
            "drift_rows": _records(
                db,
                f"""
                SELECT kind, src_repository, dst_repository, tag, digest, previous_digest
                FROM tag_drift ORDER BY kind, src_repository, tag LIMIT {int(top) * 5}
                """,
            ),
        }
    for row in charts["daily_throughput"]:
        row["tags"] = row["tags"] or 0
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_dir": str(Path(data_dir).resolve()),
        "days": days,
        "totals": totals,
        "policies": policies,
        "repositories": repositories,
        "recent_failures": failures,
        "drift": {"by_kind": drift, "top_pairs": drift_pairs},
        "charts": charts,
    }


def render_json(data: dict[str, Any]) -> str:
    return dumps(plain(data), indent=1) + "\n"


def render_text(data: dict[str, Any], width: int = 100) -> str:
    """The report at ``width`` columns (100 by default)."""
    t = data["totals"]
    lines = [
        f"SWR replication report for {_text(data['data_dir'])}",
        f"{_n(t['instances'])} instances, {_n(t['policies'])} policies, {_n(t['executions'])} executions, "
        f"{_n(t['tasks'])} tasks, {_n(t['tags'])} tags, {_n(t['rejects'])} rejected records",
        f"newest task started {_when(t['newest_task'])} UTC",
        "",
        f"Health per policy, last {data['days']} days (worst first)",
        f"  {'policy':<30} {'instance':<16} {'executions':>10} {'tasks':>8} {'success':>8} {'p95 s':>8} "
        f"{'tags copied':>12}",
    ]
    for p in data["policies"]:
        p95 = "-" if p["p95_duration_s"] is None else f"{p['p95_duration_s']:.1f}"
        lines.append(
            f"  {_cut(p['policy_name'] or p['policy_id'], 30)} {_cut(p['instance_name'] or p['instance_id'], 16)} "
            f"{_n(p['executions']):>10} {_n(p['tasks']):>8} {_pct(p['success_rate']):>8} {p95:>8} "
            f"{_n(p['tags_replicated'] or 0):>12}"
        )
    lines.append("  (p95 s: the slowest day's 95th percentile of task duration in the window)")
    lines += ["", "Repositories that fail (most failures in a row first)"]
    lines.append(f"  {'source repository':<40} {'in a row':>8}  {'last failure':<20} {'last success':<20}")
    for r in data["repositories"]:
        lines.append(
            f"  {_cut(r['src_repository'], 40)} {r['failures_in_a_row']:>8}  "
            f"{_when(r['last_failure']):<20} {_when(r['last_success']):<20}"
        )
    lines += ["", "Recent failures"]
    lines.append(f"  {'started (UTC)':<17} {'status':<8} {'source -> destination':<56} {'tags':>5}")
    for f in data["recent_failures"]:
        route = f"{f['src_repository'] or '?'} -> {f['dst_repository'] or '?'}"
        status = _text(f["status"])
        lines.append(f"  {_when(f['start_time']):<17} {status:<8} {_cut(route, 56)} {_n(f['tags'] or 0):>5}")
    lines += ["", "Drift"]
    kinds = {d["kind"]: d for d in data["drift"]["by_kind"]}
    missing, moved = kinds.get("missing"), kinds.get("moved")
    lines.append(
        f"  {_n(missing['tags'] if missing else 0)} tags on a copy's source never reached its destination "
        f"({_n(missing['pairs'] if missing else 0)} repository pairs)"
    )
    lines.append(f"  {_n(moved['tags'] if moved else 0)} tags moved to another digest between executions")
    if data["drift"]["top_pairs"]:
        lines.append("  most missing, by source -> destination:")
    for pair in data["drift"]["top_pairs"]:
        route = f"{pair['src_repository']} -> {pair['dst_repository']}"
        lines.append(f"    {_cut(route, width - 16)} {_n(pair['missing']):>8}")
    # every cell is escaped already: this pass only guards a line that a later edit forgets to
    return "\n".join(terminal_safe(line)[:width] for line in lines) + "\n"


def _when(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return _text(value)


def summary(data_dir: Path, *, lake: str | None = None, width: int = 100) -> str:
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
            f"  {_n(executions)} executions, {_n(tasks)} tasks, {_n(artifacts)} artifacts, {_n(tags)} tags, "
            f"{_n(rejects)} rejected records"
        )
        statuses = db.sql("SELECT status, count(*) FROM tasks GROUP BY ALL ORDER BY 2 DESC").fetchall()
        lines.append("  tasks by status: " + ", ".join(f"{_text(s or 'none')} {_n(n)}" for s, n in statuses))

        reasons = db.sql(
            """
            SELECT field, regexp_replace(error, '[0-9]+', 'N', 'g') AS reason, count(*) AS n
            FROM rejects GROUP BY ALL ORDER BY n DESC, field LIMIT 8
            """
        ).fetchall()
        if reasons:
            lines += ["", "Rejected records (the task rows still load; the raw text is kept in the rejects table):"]
            for field, raw_reason, n in reasons:
                reason = _text(raw_reason)
                text = reason if len(reason) <= width - 30 else reason[: width - 33] + "..."
                lines.append(f"  {n:>6}  {_text(field):<13} {text}")

        worst = db.sql(
            """
            SELECT src_repository, failed + stopped AS bad, tasks, failure_rate
            FROM repository_failures WHERE failed + stopped > 0
            ORDER BY bad DESC, failure_rate DESC, src_repository LIMIT 5
            """
        ).fetchall()
        if worst:
            lines += ["", "Repositories failing most (view repository_failures):"]
            for repo, bad, total, rate in worst:
                lines.append(f"  {_cut(repo, 40)} {bad:>5} of {total:>5} tasks ({rate:.1%})")

        (missing,) = one("SELECT count(*) FROM tag_drift WHERE kind = 'missing'")
        lines += ["", f"Tags listed on a copy's source but not on its destination: {_n(missing)} "]
        lines[-1] += "(view tag_drift)"
    return "\n".join(map(terminal_safe, lines)) + "\n"

"""Short summaries of the warehouse for people: what the demo prints after its run."""

from __future__ import annotations

from pathlib import Path

from pipeline import warehouse


def _n(value: object) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else str(value)


def summary(data_dir: Path, *, width: int = 100) -> str:
    """What the lake holds, what was rejected and why, and what looks wrong, in a screenful of text."""
    lines: list[str] = []
    with warehouse.connect(data_dir) as db:

        def one(sql: str) -> tuple[object, ...]:
            rows = db.sql(sql).fetchall()
            return rows[0] if rows else ()

        executions, tasks = one("SELECT (SELECT count(*) FROM executions), (SELECT count(*) FROM tasks)")
        artifacts, tags, rejects = one(
            "SELECT (SELECT count(*) FROM artifacts), (SELECT count(*) FROM tags), (SELECT count(*) FROM rejects)"
        )
        lines.append(f"The lake in {data_dir} holds:")
        lines.append(
            f"  {_n(executions)} executions, {_n(tasks)} tasks, {_n(artifacts)} artifacts, {_n(tags)} tags, "
            f"{_n(rejects)} rejected records"
        )
        statuses = db.sql("SELECT status, count(*) FROM tasks GROUP BY ALL ORDER BY 2 DESC").fetchall()
        lines.append("  tasks by status: " + ", ".join(f"{s or 'none'} {_n(n)}" for s, n in statuses))

        reasons = db.sql(
            """
            SELECT field, regexp_replace(error, '[0-9]+', 'N', 'g') AS reason, count(*) AS n
            FROM rejects GROUP BY ALL ORDER BY n DESC, field LIMIT 8
            """
        ).fetchall()
        if reasons:
            lines += ["", "Rejected records (the task rows still load; the raw text is kept in the rejects table):"]
            for field, reason, n in reasons:
                text = reason if len(reason) <= width - 30 else reason[: width - 33] + "..."
                lines.append(f"  {n:>6}  {field:<13} {text}")

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
                lines.append(f"  {repo[: width - 40]:<{min(40, width - 40)}} {bad:>5} of {total:>5} tasks ({rate:.1%})")

        (missing,) = one("SELECT count(*) FROM tags_missing_on_destination")
        lines += ["", f"Tags listed on a copy's source but not on its destination: {_n(missing)} "]
        lines[-1] += "(view tags_missing_on_destination)"
    return "\n".join(lines) + "\n"

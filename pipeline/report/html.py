"""The report as one self-contained HTML page: inline CSS and inline SVG charts (:mod:`pipeline.report.charts`), nothing
from the network, no script. It opens offline, prints, and can be mailed as it is.

The page opens, under "At a glance", with the answers to an operator's four questions
(:mod:`pipeline.report.answers`: what needs attention now, which tags are not on the destination and why,
which schedules went silent, when each policy and destination registry last succeeded), then the figures of
the window (task success rate, failing policies, stuck tasks, tags missing on the destination, the last
successful run of each policy), then the details, and ends with the rows of drift.
Rates show as percentages and durations as ``1m 23s``, as in the text report. Every value from the data goes
through :func:`pipeline.report.charts.esc`: none or any type is fine, and control characters and bidi overrides from
the API are shown escaped rather than acted on by the browser."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.report import answers, charts
from pipeline.report.charts import PALETTE, esc
from pipeline.report.report import FAILING_MOST, STUCK_HOURS, count, duration, percent, when

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #111827; margin: 24px auto; max-width: 1040px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; } h3 { font-size: 15px; }
.muted { color: #6b7280; } table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { background: #fff; border: 1px solid #e5e7eb; } .legend span { margin-right: 14px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; }
.tile { flex: 1 1 200px; border: 1px solid #e5e7eb; border-radius: 6px; padding: 10px 14px; }
.tile b { display: block; font-size: 26px; font-variant-numeric: tabular-nums; }
.tile.bad b { color: #991b1b; } .tile.good b { color: #166534; }
.definition { background: #f9fafb; border-left: 3px solid #9ca3af; padding: 6px 10px; }
.answer { font-weight: 600; } .answer.bad { color: #991b1b; } .answer.good { color: #166534; }
td:last-child { overflow-wrap: anywhere; } table + table { margin-top: 14px; }
"""
NO_POLICY = "(no policy)"  # the series of executions that name no policy
Cell = Callable[[object], str]
NUMBERS: tuple[Cell, ...] = (count, duration, percent)


def table(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, tuple[str, Cell | None]]) -> str:
    """Rows as a table: ``columns`` maps a key to its heading and its formatter (None: the value as text); the
    columns of numbers are aligned right."""
    if not rows:
        return '<p class="muted">none</p>'
    align = {key: ' class="n"' if f in NUMBERS else "" for key, (_, f) in columns.items()}
    head = "".join(f"<th{align[key]}>{esc(title)}</th>" for key, (title, _) in columns.items())
    body = []
    for row in rows:
        cells = []
        for key, (_, f) in columns.items():
            shown = esc(row.get(key)) if f is None else esc(f(row.get(key)))
            cells.append(f"<td{align[key]}>{shown}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _tile(label: str, value: str, note: str, tone: str = "") -> str:
    return f'<div class="tile {tone}"><span>{esc(label)}</span><b>{esc(value)}</b><small>{esc(note)}</small></div>'


def _name(row: Mapping[str, Any], name: str, key: str) -> str:
    return charts.text(row.get(name)) or charts.text(row.get(key))


def _answer(text: str, bad: object) -> str:
    """The one-line answer under a question, red when something needs doing, green when not."""
    return f'<p class="answer {"bad" if bad else "good"}">{esc(text)}</p>'


def _rows(value: object) -> list[Mapping[str, Any]]:
    """The rows of a list in the data; anything else (none, a number) is no rows."""
    return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []


def answered(data: Mapping[str, Any]) -> list[str]:
    """The four answers (:mod:`pipeline.report.answers`), with the same headings and wording as the text."""
    return [
        *_attention(_rows(data.get("alerts"))),
        *_tags(data.get("tags_not_on_destination") or {}),
        *_silent(data.get("silent_schedules") or {}),
        *_last_success(data.get("last_success") or {}),
    ]


def _attention(alerts: list[Mapping[str, Any]]) -> list[str]:
    heading = f"<h3>{esc(answers.ATTENTION)}</h3>"
    if not alerts:
        return [heading, _answer("no alerts", False)]
    rows = [{**r, "policy": answers.policy_label(r)} for r in alerts]
    columns: dict[str, tuple[str, Cell | None]] = {
        "kind": ("kind", None),
        "policy": ("policy", None),
        "since": ("since", when),
        "detail": ("detail", None),
    }
    return [heading, _answer(answers.plural(len(alerts), "alert"), True), table(rows, columns)]


def _tags(tags: Mapping[str, Any]) -> list[str]:
    rows = [
        {
            **r,
            "policy": answers.policy_label(r),
            "where": f"{r.get('src_repository') or '?'}:{r.get('tag')}",
            "why": answers.one_line(answers.why(r), 300),
        }
        for r in _rows(tags.get("top"))
    ]
    parts = [
        f"<h3>{esc(answers.NOT_ON_DESTINATION)}</h3>",
        _answer(answers.tags_summary(tags), tags.get("tags")),
    ]
    if rows:
        columns: dict[str, tuple[str, Cell | None]] = {
            "policy": ("policy", None),
            "where": ("source repository:tag", None),
            "state": ("state", None),
            "failed_attempts_since_success": ("fails", count),
            "attempted_at": ("last attempt", when),
            "why": ("why", None),
        }
        parts += [table(rows, columns), f'<p class="muted">{esc(answers.FAILS)}</p>']
    if not tags.get("subtasks"):
        return [*parts, f'<p class="muted">{esc(answers.NO_SUBTASKS)}</p>']
    reasons = [{**r, "example": answers.one_line(r.get("example") or "-", 300)} for r in _rows(tags.get("reasons"))]
    classes: dict[str, tuple[str, Cell | None]] = {
        "reason": ("class", None),
        "failed_tags": ("failed tags", count),
        "policies": ("policies", count),
        "example": ("newest example", None),
    }
    return [
        *parts,
        f"<h4>{esc(answers.CLASSES)}</h4>",
        table(reasons, classes),
    ]


def _silent(schedules: Mapping[str, Any]) -> list[str]:
    parts = [
        f"<h3>{esc(answers.SILENT)}</h3>",
        _answer(answers.schedules_summary(schedules), schedules.get("silent_policies")),
    ]
    silent = [
        {**r, "policy": answers.policy_label(r), "last_run_at": r.get("last_run_at") or "never"}
        for r in _rows(schedules.get("silent"))
    ]
    if silent:
        columns: dict[str, tuple[str, Cell | None]] = {
            "policy": ("policy", None),
            "cron": ("cron", None),
            "missed_runs": ("missed", count),
            "first_missed_at": ("first missed", when),
            "last_run_at": ("last run", when),
        }
        parts.append(table(silent, columns))
    unreadable = [{**r, "policy": answers.policy_label(r)} for r in _rows(schedules.get("unreadable"))]
    if unreadable:
        problems: dict[str, tuple[str, Cell | None]] = {
            "policy": ("policy", None),
            "cron": ("cron", None),
            "cron_problem": ("why it does not read", None),
        }
        parts += [f"<h4>{esc(answers.UNREADABLE)}</h4>", table(unreadable, problems)]
    return parts


def _last_success(last: Mapping[str, Any]) -> list[str]:
    def named(rows: object, label: Callable[[Mapping[str, Any]], str]) -> list[dict[str, Any]]:
        return [
            {
                **r,
                "name": label(r),
                "last_success_at": r.get("last_success_at") or "never",
                "ago": answers.ago(r.get("hours_since_success")),
            }
            for r in _rows(rows)
        ]

    succeeded: dict[str, tuple[str, Cell | None]] = {
        "last_success_at": ("last success", when),
        "ago": ("ago", None),
        "executions": ("executions", count),
        "last_execution_status": ("last execution", None),
    }
    stale = last.get("policies_stale") or last.get("registries_stale")
    return [
        f"<h3>{esc(answers.LAST_SUCCESS)}</h3>",
        _answer(answers.last_success_summary(last), stale),
        table(named(last.get("policies"), answers.policy_label), {"name": ("policy", None), **succeeded}),
        table(
            named(last.get("registries"), answers.registry_label),
            {"name": ("destination registry", None), **succeeded},
        ),
    ]


def glance(data: Mapping[str, Any]) -> list[str]:
    """The state at a glance: four figures, the last successful run per policy, and what failing most means."""
    g = data.get("glance") or {}
    window = data.get("window") or {}
    failing = g.get("failing_policies") or []
    names = ", ".join(_name(p, "policy_name", "policy_id") for p in failing[:5])
    stuck, missing = g.get("stuck_tasks") or 0, g.get("missing_tags") or 0
    span = f"{window.get('first_day')} to {window.get('last_day')}" if window.get("last_day") else ""
    tiles = [
        _tile(
            "Task success rate",
            percent(g.get("task_success_rate")),
            f"{count(g.get('succeeded_tasks'))} of {count(g.get('finished_tasks'))} finished tasks",
            "good" if g.get("task_success_rate") == 1 else "bad" if g.get("task_success_rate") is not None else "",
        ),
        _tile(
            "Failing policies",
            f"{len(failing)} of {count(g.get('policies_in_window'))}",
            names or "none failed in the window",
            "bad" if failing else "good",
        ),
        _tile("Stuck tasks", count(stuck), f"running or pending for over {STUCK_HOURS} hours now", "bad" * bool(stuck)),
        _tile(
            "Tags missing on the destination",
            count(missing),
            f"in {count(g.get('missing_pairs'))} repository pairs, all time",
            "bad" if missing else "good",
        ),
    ]
    runs = [dict(r, last_success=r.get("last_success") or "never") for r in g.get("last_runs") or []]
    return [
        "<h2>At a glance</h2>",
        *answered(data.get("answers") or {}),
        f"<h3>The last {esc(data.get('days'))} days of data{', ' + esc(span) if span else ''} (UTC)</h3>",
        f'<div class="tiles">{"".join(tiles)}</div>',
        "<h3>Last successful run per policy (never or longest ago first)</h3>",
        table(
            runs,
            {
                "policy_name": ("policy", None),
                "instance_name": ("instance", None),
                "last_success": ("last success", when),
                "last_run": ("last run", when),
                "last_status": ("last status", None),
            },
        ),
        f'<p class="definition">{esc((data.get("definitions") or {}).get("failing_most", FAILING_MOST))}</p>',
    ]


def page(data: dict[str, Any]) -> str:
    """The whole report page from :func:`pipeline.report.report.collect`'s data."""
    t = data.get("totals") or {}
    chart_data = data.get("charts") or {}
    success = chart_data.get("success_by_policy") or []
    days = sorted({r.get("day") for r in success}, key=str)  # a missing day sorts last, and is not on the axis
    series: dict[str, list[object]] = {}
    for r in success:
        name = charts.text(r.get("policy")) or NO_POLICY
        series.setdefault(name, [None] * len(days))[days.index(r.get("day"))] = r.get("success_rate")
    ranked = chart_data.get("failures_by_repository") or []
    throughput = chart_data.get("daily_throughput") or []
    histogram = chart_data.get("duration_histogram") or []
    drift = data.get("drift") or {}
    kinds = {d.get("kind"): d for d in drift.get("by_kind") or []}
    period = f"last {esc(data.get('days'))} days"
    window = data.get("window") or {}
    sections = [
        *glance(data),
        f"<h2>Health per policy, {period} (failing most first)</h2>",
        table(
            data.get("policies") or [],
            {
                "policy_name": ("policy", None),
                "instance_name": ("instance", None),
                "executions": ("executions", count),
                "tasks": ("tasks", count),
                "success_rate": ("success", percent),
                "p95_duration_s": ("p95 time", duration),
                "tags_replicated": ("tags copied", count),
            },
        ),
        '<p class="muted">p95 time: the slowest day\'s 95th percentile of task duration in the window</p>',
        f"<h2>Task success rate per day and policy, {period}</h2>",
        charts.day_lines(days, series, span=[window.get("first_day"), window.get("last_day")]),
        '<p class="muted">A dashed line crosses days on which the policy had no finished task.</p>',
        f"<h2>Repositories failing most, {period} (failure rate)</h2>",
        charts.bars(
            [r.get("src_repository") for r in ranked],
            [r.get("failure_rate") for r in ranked],
            color=PALETTE[1],
            percent=True,
        ),
        table(
            data.get("repositories") or [],
            {
                "src_repository": ("source repository", None),
                "finished": ("finished", count),
                "failures": ("failed", count),
                "failure_rate": ("rate", percent),
                "failures_in_a_row": ("in a row", count),
                "last_failure": ("last failure", when),
                "last_success": ("last success", when),
            },
        ),
        "<h2>Recent failures</h2>",
        table(
            data.get("recent_failures") or [],
            {
                "start_time": ("started", when),
                "status": ("status", None),
                "src_repository": ("source", None),
                "dst_repository": ("destination", None),
                "tags": ("tags", count),
            },
        ),
        "<h2>Task duration (tasks with a start and an end)</h2>",
        charts.bars([r.get("bucket") for r in histogram], [r.get("tasks") for r in histogram], color=PALETTE[4]),
        "<h2>Daily throughput (tags replicated by copy tasks)</h2>",
        charts.day_bars([r.get("day") for r in throughput], [r.get("tags") for r in throughput], color=PALETTE[2]),
        '<p class="muted">Each day has its own slot: a gap is a day on which no task started.</p>',
        "<h2>Drift</h2>",
        f"<p>{esc(count((kinds.get('missing') or {}).get('tags') or 0))} tags on a copy's source never reached its "
        f"destination ({esc(count((kinds.get('missing') or {}).get('pairs') or 0))} repository pairs); "
        f"{esc(count((kinds.get('moved') or {}).get('tags') or 0))} tags moved to another digest between "
        "executions.</p>",
        table(
            drift.get("top_pairs") or [],
            {
                "src_repository": ("source", None),
                "dst_repository": ("destination", None),
                "missing": ("missing", count),
            },
        ),
        "<h2>Drift rows (the first ones: query the view tag_drift for all)</h2>",
        table(
            chart_data.get("drift_rows") or [],
            {k: (k, None) for k in ("kind", "src_repository", "dst_repository", "tag", "digest", "previous_digest")},
        ),
    ]
    summary = (
        f"{count(t.get('instances'))} instances, {count(t.get('policies'))} policies, "
        f"{count(t.get('executions'))} executions, {count(t.get('tasks'))} tasks, {count(t.get('tags'))} tags, "
        f"{count(t.get('rejects'))} rejected records"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>SWR replication report</title><style>{CSS}</style></head><body>"
        f'<h1>SWR replication report</h1><p class="muted">{esc(data.get("data_dir"))} — generated '
        f"{esc(data.get('generated_at'))} — {esc(summary)}</p>{''.join(sections)}</body></html>\n"
    )

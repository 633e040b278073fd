"""The report as one self-contained HTML page: inline CSS and inline SVG charts, nothing from the network,
no script. It opens offline, prints, and can be mailed as it is.

Every value from the data goes through :func:`_esc`: none or any type is fine, and control characters and bidi
overrides from the API are shown escaped rather than acted on by the browser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pipeline.output import plain
from pipeline.text import terminal_safe

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #111827; margin: 24px auto; max-width: 1040px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.muted { color: #6b7280; } table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { background: #fff; border: 1px solid #e5e7eb; } .legend span { margin-right: 14px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
"""

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 960, 300, 56, 80, 16, 16
NO_POLICY = "(no policy)"  # the series of executions that name no policy


def _text(value: object) -> str:
    """Any value as inert text: none is empty, times are ISO 8601, controls and bidi overrides escaped."""
    value = plain(value)
    return "" if value is None else terminal_safe(str(value))


def _esc(value: object) -> str:
    return escape(_text(value))


def _axis(ymax: float, fmt: str) -> list[str]:
    out = []
    for i in range(5):
        value = ymax * i / 4
        y = H - PAD_B - (H - PAD_B - PAD_T) * i / 4
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{fmt.format(value)}</text>')
    return out


def bars(
    labels: Sequence[object], data: Sequence[float | None], *, color: str = PALETTE[0], fmt: str = "{:.0f}"
) -> str:
    """A bar chart; labels under the bars (every n-th when crowded); a missing value is a bar of 0."""
    values = [float(v or 0) for v in data]
    if not values:
        return '<p class="muted">no data</p>'
    ymax = max(max(values), 1e-9)
    step = (W - PAD_L - PAD_R) / len(values)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">', *_axis(ymax, fmt)]
    every = max(1, len(values) // 24)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = (H - PAD_B - PAD_T) * value / ymax
        x = PAD_L + i * step
        parts.append(
            f'<rect class="bar" x="{x + step * 0.1:.1f}" y="{H - PAD_B - height:.1f}" width="{step * 0.8:.1f}" '
            f'height="{height:.1f}" fill="{color}"><title>{_esc(label)}: {fmt.format(value)}</title></rect>'
        )
        if i % every == 0:
            cx, cy = x + step / 2, H - PAD_B + 10
            parts.append(
                f'<text x="{cx:.1f}" y="{cy}" font-size="10" text-anchor="end" '
                f'transform="rotate(-30 {cx:.1f} {cy})">{escape(_text(label)[:24])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def lines(x_labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *, fmt: str = "{:.0%}") -> str:
    """Lines over shared x labels (gaps where a series has no value), with a legend."""
    if not x_labels or not series:
        return '<p class="muted">no data</p>'
    ymax = max([v for values in series.values() for v in values if v is not None] or [1.0]) or 1.0
    n = max(len(x_labels) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">', *_axis(ymax, fmt)]
    legend = []
    for k, (name, values) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        points = [
            (PAD_L + (W - PAD_L - PAD_R) * i / n, H - PAD_B - (H - PAD_B - PAD_T) * v / ymax)
            for i, v in enumerate(values)
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline class="line" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
        legend.append(f'<span><i class="swatch" style="background:{color}"></i>{_esc(name)}</span>')
    every = max(1, len(x_labels) // 10)
    for i, label in enumerate(x_labels):
        if i % every == 0:
            x = PAD_L + (W - PAD_L - PAD_R) * i / n
            parts.append(
                f'<text x="{x:.1f}" y="{H - PAD_B + 14}" font-size="10" text-anchor="middle">{_esc(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts) + f'<div class="legend">{"".join(legend)}</div>'


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], numeric: Sequence[str] = ()) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f'<th class="{"n" if c in numeric else ""}">{_esc(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            cells.append(f'<td class="{"n" if c in numeric else ""}">{_esc(row.get(c))}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(data: dict[str, Any]) -> str:
    """The whole report page from :func:`pipeline.report.collect`'s data."""
    t = data["totals"]
    charts = data["charts"]
    days = sorted({r["day"] for r in charts["success_by_policy"]}, key=str)  # a missing day sorts last
    series: dict[str, list[float | None]] = {}
    for r in charts["success_by_policy"]:
        name = _text(r["policy"]) or NO_POLICY
        series.setdefault(name, [None] * len(days))[days.index(r["day"])] = r["success_rate"]
    sections = [
        "<h2>Task success rate over time, per policy</h2>",
        lines([str(d) for d in days], series),
        "<h2>Failed and stopped tasks by source repository</h2>",
        bars(
            [r["src_repository"] for r in charts["failures_by_repository"]],
            [r["failures"] for r in charts["failures_by_repository"]],
            color=PALETTE[1],
        ),
        "<h2>Task duration (seconds, finished tasks)</h2>",
        bars(
            [r["bucket"] for r in charts["duration_histogram"]],
            [r["tasks"] for r in charts["duration_histogram"]],
            color=PALETTE[4],
        ),
        "<h2>Daily throughput (tags replicated by copy tasks)</h2>",
        bars(
            [str(r["day"]) for r in charts["daily_throughput"]],
            [r["tags"] for r in charts["daily_throughput"]],
            color=PALETTE[2],
        ),
        "<h2>Drift: tags on a copy's source missing on its destination, and tags that moved</h2>",
        table(charts["drift_rows"], ["kind", "src_repository", "dst_repository", "tag", "digest", "previous_digest"]),
        "<h2>Health per policy</h2>",
        table(
            data["policies"],
            ["policy_name", "instance_id", "executions", "tasks", "success_rate", "p95_duration_s", "tags_replicated"],
            numeric=("executions", "tasks", "success_rate", "p95_duration_s", "tags_replicated"),
        ),
        "<h2>Recent failures</h2>",
        table(
            data["recent_failures"],
            ["start_time", "status", "src_repository", "dst_repository", "tags"],
            numeric=("tags",),
        ),
    ]
    summary = (
        f"{t['instances']} instances, {t['policies']} policies, {t['executions']} executions, {t['tasks']} tasks, "
        f"{t['tags']} tags, {t['rejects']} rejected records"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>SWR replication report</title><style>{CSS}</style></head><body>"
        f'<h1>SWR replication report</h1><p class="muted">{_esc(data["data_dir"])} — generated '
        f"{_esc(data['generated_at'])} — {_esc(summary)}</p>{''.join(sections)}</body></html>\n"
    )

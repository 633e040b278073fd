"""Inline SVG charts for the HTML report: bars over categories, bars and lines over a time axis.

The value axis starts at 0 and steps by 1, 2 or 5 times a power of ten, so its ticks read as round numbers. A
time axis gives every calendar day from the first to the last the same width, so days without data show as
gaps rather than being squeezed out. Every label goes through :func:`esc`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from html import escape

from pipeline.report.output import plain
from pipeline.text import terminal_safe

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
W, H, PAD_L, PAD_B, PAD_T, PAD_R = 960, 300, 64, 80, 16, 16
PLOT_W, PLOT_H = W - PAD_L - PAD_R, H - PAD_B - PAD_T
NO_DATA = '<p class="muted">no data</p>'

Format = Callable[[float], str]


def text(value: object) -> str:
    """Any value as inert text: none is empty, times are ISO 8601, controls and bidi overrides escaped."""
    value = plain(value)
    return "" if value is None else terminal_safe(str(value))


def esc(value: object) -> str:
    return escape(text(value))


def ticks(top: float, *, whole: bool = False, most: int = 5) -> list[float]:
    """0, then steps of 1, 2 or 5 x 10^n (at least 1 when ``whole``) up to the first at or above ``top``: about
    ``most`` steps."""
    top = top if top > 0 else 1.0
    rough = top / most
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough * (1 - 1e-9))
    if whole:
        step = max(step, 1.0)
    steps = math.ceil(top / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def decimals(step: float) -> int:
    """Decimal places that tell ticks ``step`` apart."""
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0


def number_format(values: Sequence[float]) -> Format:
    step = values[1] - values[0] if len(values) > 1 else 1.0
    places = decimals(step)
    return lambda v: f"{v:,.{places}f}"


def percent_format(values: Sequence[float]) -> Format:
    step = values[1] - values[0] if len(values) > 1 else 1.0
    places = decimals(step * 100)
    return lambda v: f"{v * 100:.{places}f}%"


def _svg(top: float, *, whole: bool, percent: bool) -> tuple[list[str], float, Format]:
    """The opening of a chart with its value axis: the parts, the axis's top value, and its number format."""
    values = ticks(top, whole=whole)
    fmt = (percent_format if percent else number_format)(values)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">']
    for value in values:
        y = _y(value, values[-1])
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(
            f'<text class="ytick" x="{PAD_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{fmt(value)}</text>'
        )
    return parts, values[-1], fmt


def _y(value: float, top: float) -> float:
    return H - PAD_B - PLOT_H * value / top


def _bar(x: float, width: float, value: float, top: float, color: str, title: str) -> str:
    y = _y(value, top)
    return (
        f'<rect class="bar" x="{x:.2f}" y="{y:.1f}" width="{width:.2f}" height="{H - PAD_B - y:.1f}" '
        f'fill="{color}"><title>{title}</title></rect>'
    )


def bars(labels: Sequence[object], data: Sequence[object], *, color: str = PALETTE[0], percent: bool = False) -> str:
    """A bar chart over categories; labels under the bars (every n-th when crowded); a missing value is 0."""
    values = [_value(v) for v in data]
    if not values:
        return NO_DATA
    parts, top, fmt = _svg(max(values), whole=not percent, percent=percent)
    step = PLOT_W / len(values)
    every = max(1, len(values) // 24)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = PAD_L + i * step
        parts.append(_bar(x + step * 0.1, step * 0.8, value, top, color, f"{esc(label)}: {fmt(value)}"))
        if i % every == 0:
            cx, cy = x + step / 2, H - PAD_B + 10
            parts.append(
                f'<text x="{cx:.1f}" y="{cy}" font-size="10" text-anchor="end" '
                f'transform="rotate(-30 {cx:.1f} {cy})">{escape(text(label)[:24])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _value(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


class TimeAxis:
    """Every calendar day from the first to the last of ``days``, each a slot of the same width."""

    def __init__(self, days: Sequence[date]) -> None:
        self.first, self.last = min(days), max(days)
        self.slot = PLOT_W / ((self.last - self.first).days + 1)

    def x(self, day: date) -> float:
        """The middle of ``day``'s slot."""
        return PAD_L + self.slot * ((day - self.first).days + 0.5)

    def labels(self) -> list[str]:
        """Round dates under the axis, at most about 10: every day, every other day, Mondays, every other Monday,
        or the first of every 1, 2, 3, 6 or 12 months."""
        span = (self.last - self.first).days + 1
        monthly = next((n for n in (1, 2, 3, 6, 12) if span / (30 * n) <= 10), 12)
        weekly = next((n for n in (1, 2, 7, 14) if span / n <= 10), 0)

        def shown(day: date) -> bool:
            if weekly:
                return (day.toordinal() - 1) % weekly == 0  # day 1 of the ordinals is a Monday
            return day.day == 1 and (day.month - 1) % monthly == 0

        parts = []
        for offset in range(span):
            day = self.first + timedelta(days=offset)
            if shown(day):
                x, y = self.x(day), H - PAD_B
                label = day.isoformat() if weekly else day.strftime("%Y-%m")
                parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 4}" stroke="#9ca3af"/>')
                parts.append(
                    f'<text class="xtick" x="{x:.1f}" y="{y + 16}" font-size="10" text-anchor="middle">{label}</text>'
                )
        return parts


def _days(values: Sequence[object]) -> list[date]:
    return [v for v in values if isinstance(v, date)]


def day_bars(days: Sequence[object], data: Sequence[object], *, color: str = PALETTE[0]) -> str:
    """Bars on a time axis, one per day that has a value; a day that is not a date (unknown) is left out."""
    points = [(d, _value(v)) for d, v in zip(days, data, strict=True) if isinstance(d, date)]
    if not points:
        return NO_DATA
    axis = TimeAxis([d for d, _ in points])
    parts, top, fmt = _svg(max(v for _, v in points), whole=True, percent=False)
    width = max(axis.slot * 0.8, 1.0)
    for day, value in points:
        parts.append(_bar(axis.x(day) - width / 2, width, value, top, color, f"{day.isoformat()}: {fmt(value)}"))
    parts += axis.labels()
    parts.append("</svg>")
    return "".join(parts)


def day_lines(days: Sequence[object], series: Mapping[str, Sequence[object]], span: Sequence[object] = ()) -> str:
    """Rates (0 to 1) on a time axis (over ``span`` too: the first and last day of a window), one line per series
    with a legend: solid between two days in a row, dashed across days without a value."""
    axis_days = _days(days)
    if not axis_days or not series:
        return NO_DATA
    axis = TimeAxis([*axis_days, *_days(span)])
    parts, top, fmt = _svg(1.0, whole=False, percent=True)
    legend = []
    for k, (name, values) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        known = [
            (day, _value(v)) for day, v in zip(days, values, strict=True) if isinstance(day, date) and v is not None
        ]
        rates = [rate for _, rate in known]
        points = [(day, axis.x(day), _y(rate, top)) for day, rate in known]
        for (d0, x0, y0), (d1, x1, y1) in itertools.pairwise(points):
            stroke = 'stroke-width="2.5"' if (d1 - d0).days == 1 else 'stroke-width="2" stroke-dasharray="6 4"'
            parts.append(
                f'<line class="line" x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
                f'stroke="{color}" {stroke}/>'
            )
        for (day, x, y), rate in zip(points, rates, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}">'
                f"<title>{escape(name)}, {day.isoformat()}: {fmt(rate)}</title></circle>"
            )
        legend.append(f'<span><i class="swatch" style="background:{color}"></i>{escape(name)}</span>')
    parts += axis.labels()
    parts.append("</svg>")
    return "".join(parts) + f'<div class="legend">{"".join(legend)}</div>'

"""``swr-etl check``: the warehouse's ``alerts_over`` macro with the thresholds given, for a scheduler to page on.

Healthy is exit 0; alerts are one line each (or one JSON object) and exit 1 (:class:`AlertsFound`); misuse is
exit 2. Disabled policies and manual runs never alert, and a running execution is judged once it ends: the
rules are the macro's, in ``sql/alerts_over.sql``, so that the view ``alerts``, a BI tool and this command agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import AlertsFound
from pipeline.report.output import plain
from pipeline.text import dumps, terminal_safe
from pipeline.warehouse import warehouse

if TYPE_CHECKING:
    from pipeline.config import Settings


@dataclass(frozen=True)
class Thresholds:
    """When a policy alerts: see ``sql/alerts_over.sql``."""

    max_failure_rate: float = 0.1  # of the newest finished execution's finished tasks
    max_success_age_hours: float = 26.0  # hours since a scheduled policy's last successful execution
    stuck_hours: float = 6.0  # hours a task may run
    max_missing_tags: int = 0  # source tags whose newest attempt did not reach the destination
    max_missed_runs: int = 1  # executions a scheduled policy's cron called for that never came


@dataclass(frozen=True)
class Alert:
    instance_id: str
    policy_id: int
    policy_name: str | None
    kind: str
    since: datetime | None
    value: float
    detail: str


def thresholds_of(settings: Settings) -> Thresholds:
    """The thresholds ``settings`` holds (flags, environment, config file: as ``swr-etl check`` reads them)."""
    return Thresholds(**{f.name: getattr(settings, f.name) for f in fields(Thresholds)})


def check(settings: Settings) -> list[Alert]:
    """What ``swr-etl check`` reports: the current alerts by the thresholds of ``settings``; empty when healthy
    (``pipeline.check``; :func:`raise_for_alerts` turns a non-empty list into the command's exit 1)."""
    return alerts(settings.data_dir, thresholds_of(settings), lake=settings.lake)


def alerts(data_dir: Path, thresholds: Thresholds, *, lake: str | None = None) -> list[Alert]:
    """The current alerts, by the thresholds given (every value is a parameter: nothing is formatted in)."""
    with warehouse.connect(data_dir, lake) as db:
        rows = db.execute(
            """SELECT instance_id, policy_id, policy_name, kind, since, value, detail FROM alerts_over(
                   max_failure_rate := $rate,
                   max_success_age := to_seconds($age_s),
                   stuck_after := to_seconds($stuck_s),
                   max_missing_tags := $missing,
                   max_missed_runs := $missed)""",
            {
                "rate": thresholds.max_failure_rate,
                "age_s": thresholds.max_success_age_hours * 3600,
                "stuck_s": thresholds.stuck_hours * 3600,
                "missing": thresholds.max_missing_tags,
                "missed": thresholds.max_missed_runs,
            },
        ).fetchall()
    return [Alert(*row) for row in rows]


def render_text(found: list[Alert]) -> str:
    """One line per alert, for a terminal or a mail from cron (made inert: names come from the API)."""
    if not found:
        return "check: no alerts\n"
    lines = []
    for a in found:
        since = "" if a.since is None else f" since {a.since:%Y-%m-%d %H:%M} UTC"
        name = a.policy_name or "?"
        line = f"ALERT {a.kind}: policy {name} ({a.policy_id}) of instance {a.instance_id}{since}: {a.detail}"
        lines.append(terminal_safe(line))
    return "\n".join(lines) + "\n"


def render_json(found: list[Alert], thresholds: Thresholds) -> str:
    payload: dict[str, Any] = {
        "status": "alerts" if found else "ok",
        "alerts": [{k: plain(v) for k, v in asdict(a).items()} for a in found],
        "thresholds": asdict(thresholds),
    }
    return dumps(payload) + "\n"


def raise_for_alerts(found: list[Alert]) -> None:
    if found:
        kinds: dict[str, int] = {}
        for a in found:
            kinds[a.kind] = kinds.get(a.kind, 0) + 1
        counts = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        raise AlertsFound(f"{len(found)} alert{'s' if len(found) != 1 else ''} ({counts})")

"""The four questions the report opens with, answered from the warehouse views.

1. What needs attention now: the view ``alerts`` (the thresholds ``swr-etl check`` uses by default).
2. Which tags are not on the destination, and why: ``tag_status`` (state ``failed`` or ``missing``), the
   failure classes of ``failure_reasons``, and how many tags failed and then replicated.
3. Which schedules went silent: ``silent_schedules`` (two or more runs missed), and the crons that do not read.
4. When each policy and destination registry last succeeded, and how long ago: ``last_success``.

These are about now, over all the data: the report's window (``--days``) does not apply to them.
:func:`collect` gives the rows as plain data (the ``answers`` of the report's JSON, every text exact), and
:func:`render_text` the lines of the text report; the HTML page (:mod:`pipeline.report.html`) takes the same
rows, headings and wording, so that both say the same thing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from pipeline.report.check import Thresholds
from pipeline.report.output import fit, pad
from pipeline.report.report import count, duration, records, when
from pipeline.text import terminal_safe

STALE_HOURS = Thresholds.max_success_age_hours  # hours without a success after which check calls a policy stale
SILENT_RUNS = 2  # missed runs from which silent_schedules calls a schedule silent
# the headings of the text and the page: the question, then where the answer comes from
ATTENTION = "What needs attention now (view alerts, with the default thresholds of swr-etl check)"
NOT_ON_DESTINATION = "Which tags are not on the destination, and why (view tag_status; all time)"
CLASSES = "Why tags fail, by class (failed subtasks, all time; view failure_reasons)"
SILENT = "Which schedules went silent (view silent_schedules; crons in UTC)"
UNREADABLE = "Crons that do not read (they never alert)"
LAST_SUCCESS = "When each policy and destination registry last succeeded (view last_success; oldest first)"
MISSING_WHY = "its task succeeded, but the destination does not list the tag"
NO_TEXT = "its task failed; no subtask of it was fetched, so no failure text"
NO_SUBTASKS = "No per-tag subtasks were fetched (--subtasks failed or all): no failure texts, no classes."
FAILS = "fails: failed attempts since the tag last replicated, or all of them if it never did"


def collect(db: duckdb.DuckDBPyConnection, top: int) -> dict[str, Any]:
    """The four answers: every alert, the first ``top`` rows of each other list, and the counts behind them."""
    return {
        "alerts": records(
            db,
            "SELECT instance_id, policy_id, policy_name, kind, since, value, detail FROM alerts "
            "ORDER BY instance_id, policy_id, kind",
        ),
        "tags_not_on_destination": _tags(db, top),
        "silent_schedules": _schedules(db, top),
        "last_success": _last_success(db, top),
    }


def _tags(db: duckdb.DuckDBPyConnection, top: int) -> dict[str, Any]:
    """Tags whose newest attempt failed or did not arrive, the ones that failed most since they last replicated
    first; the failure classes over all policies; tags that failed and then replicated (retried OK)."""
    (counts,) = records(
        db,
        """
        SELECT count(*) FILTER (WHERE state IN ('failed', 'missing')) AS tags,
               count(*) FILTER (WHERE state = 'failed') AS failed,
               count(*) FILTER (WHERE state = 'missing') AS missing,
               count(*) FILTER (WHERE state = 'replicated' AND last_failure_at IS NOT NULL) AS retried_ok,
               (SELECT count(*) FROM subtasks) AS subtasks
        FROM tag_status
        """,
    )
    listed = records(
        db,
        f"""
        SELECT instance_id, policy_id, policy_name, src_repository, tag, state, status, digest, execution_id,
               task_id, attempted_at, failed_attempts_since_success, last_success_at, last_failure_at,
               last_failure_text
        FROM tag_status WHERE state IN ('failed', 'missing')
        ORDER BY failed_attempts_since_success DESC, attempted_at DESC NULLS LAST, instance_id,
                 policy_id NULLS LAST, src_repository NULLS LAST, tag
        LIMIT {int(top)}
        """,
    )
    reasons = records(
        db,
        f"""
        SELECT reason, sum(failed_tags) AS failed_tags, count(DISTINCT (instance_id, policy_id)) AS policies,
               max(last_failure) AS last_failure, arg_max(example, last_failure) AS example
        FROM failure_reasons GROUP BY reason ORDER BY failed_tags DESC, reason LIMIT {int(top)}
        """,
    )
    return {**counts, "top": listed, "reasons": reasons}


def _schedules(db: duckdb.DuckDBPyConnection, top: int) -> dict[str, Any]:
    """Silent schedules, the longest silent first, and the crons that do not read (they never alert)."""
    (counts,) = records(
        db,
        """
        SELECT count(*) AS scheduled_policies, count(*) FILTER (WHERE silent) AS silent_policies,
               count(*) FILTER (WHERE cron_problem IS NOT NULL) AS unreadable_crons
        FROM silent_schedules
        """,
    )
    silent = records(
        db,
        f"""
        SELECT instance_id, policy_id, policy_name, cron, missed_runs, first_missed_at, last_run_at, next_fire_at
        FROM silent_schedules WHERE silent
        ORDER BY first_missed_at NULLS LAST, missed_runs DESC, instance_id, policy_id LIMIT {int(top)}
        """,
    )
    unreadable = records(
        db,
        f"""
        SELECT instance_id, policy_id, policy_name, cron, cron_problem FROM silent_schedules
        WHERE cron_problem IS NOT NULL ORDER BY instance_id, policy_id LIMIT {int(top)}
        """,
    )
    return {**counts, "silent": silent, "unreadable": unreadable}


def _last_success(db: duckdb.DuckDBPyConnection, top: int) -> dict[str, Any]:
    """Per policy and per destination registry: never or longest ago first, the disabled ones after the
    others; and how many went :data:`STALE_HOURS` or more without a success."""
    stale = f"coalesce(hours_since_success >= {float(STALE_HOURS)}, true)"
    (counts,) = records(
        db,
        f"""
        SELECT count(*) FILTER (WHERE scope = 'policy') AS policies_total,
               count(*) FILTER (WHERE scope = 'policy' AND {stale}) AS policies_stale,
               count(*) FILTER (WHERE scope = 'registry') AS registries_total,
               count(*) FILTER (WHERE scope = 'registry' AND {stale}) AS registries_stale
        FROM last_success
        """,
    )
    columns = """instance_id, policy_id, policy_name, enabled, dest_registry_id, dest_registry_name, policies,
                 executions, last_execution_at, last_execution_status, last_success_at, hours_since_success"""

    def scope(name: str, key: str) -> list[dict[str, Any]]:
        return records(
            db,
            f"""
            SELECT {columns} FROM last_success WHERE scope = '{name}'
            ORDER BY enabled DESC NULLS LAST, hours_since_success DESC NULLS FIRST, instance_id, {key} NULLS LAST
            LIMIT {int(top)}
            """,
        )

    return {
        "stale_after_hours": STALE_HOURS,
        **counts,
        "policies": scope("policy", "policy_id"),
        "registries": scope("registry", "dest_registry_id"),
    }


# --- wording shared by the text and the page ------------------------------------------------------------------


def one_line(value: object, limit: int) -> str:
    """A text from the API on one line: whitespace runs (newlines too) as one space, cut to ``limit``
    characters with ``…``. Not yet made inert: the text report and the page each escape it their own way."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def why(tag: Mapping[str, Any]) -> str:
    """Why a tag is not on the destination, in one line: its newest failure text, or what 'missing' means."""
    if tag.get("state") == "missing":
        return MISSING_WHY
    text = tag.get("last_failure_text")
    return NO_TEXT if text is None else one_line(text, 500)


def plural(n: object, word: str, many: str | None = None) -> str:
    """``1 tag``, ``2 tags``, ``3 policies`` (``many`` when the plural is not ``word`` + s)."""
    return f"{count(n)} {word if n == 1 else many or word + 's'}"


def tags_summary(tags: Mapping[str, Any]) -> str:
    """The counts of question 2, in one sentence."""
    failed, missing = count(tags.get("failed") or 0), count(tags.get("missing") or 0)
    return (
        f"{plural(tags.get('tags') or 0, 'tag')} not on the destination now: {failed} failed, {missing} missing "
        f"(their task succeeded, yet the destination does not list them); "
        f"{plural(tags.get('retried_ok') or 0, 'tag')} failed, then replicated (retried OK)"
    )


def schedules_summary(schedules: Mapping[str, Any]) -> str:
    """The counts of question 3, in one sentence."""
    scheduled = plural(
        schedules.get("scheduled_policies") or 0, "enabled scheduled policy", "enabled scheduled policies"
    )
    unreadable = schedules.get("unreadable_crons") or 0
    crons = f"{plural(unreadable, 'cron')} that {'does' if unreadable == 1 else 'do'} not read"
    return f"{count(schedules.get('silent_policies') or 0)} of {scheduled} missed {SILENT_RUNS} or more runs; {crons}"


def last_success_summary(last: Mapping[str, Any]) -> str:
    """The counts of question 4, in one sentence."""
    policies = (
        f"{count(last.get('policies_stale') or 0)} of {plural(last.get('policies_total') or 0, 'policy', 'policies')}"
    )
    registries = count(last.get("registries_stale") or 0)
    total = plural(last.get("registries_total") or 0, "destination registry", "destination registries")
    return f"{policies} and {registries} of {total}: no success for {STALE_HOURS:g} hours or more, or never"


def policy_label(row: Mapping[str, Any]) -> str:
    """A policy by its name, else its id; ``(disabled)`` after a disabled one."""
    name = row.get("policy_name")
    label = str(row.get("policy_id")) if name is None else str(name)
    return label + " (disabled)" if row.get("enabled") is False else label


def registry_label(row: Mapping[str, Any]) -> str:
    """A destination registry by its name and id; ``(no enabled policy)`` after one that no policy copies to now."""
    name, key = row.get("dest_registry_name"), row.get("dest_registry_id")
    label = f"registry {key}" if name is None else f"{name} (id {key})"
    return label + " (no enabled policy)" if row.get("enabled") is False else label


def ago(hours: object) -> str:
    """Hours as an age (``2d 23h``); ``-`` for none."""
    return duration(hours * 3600 if isinstance(hours, int | float) and not isinstance(hours, bool) else hours)


# --- the text report ------------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return "-" if value is None else terminal_safe(str(value))


# each answer: its heading, a summary at two spaces, the rows at four (as the glance's own table), their
# texts from the API (a failure, an alert's detail) at eight, below the row they explain
ROW, TEXT = " " * 4, " " * 8


def _more(shown: int, total: object, where: str) -> list[str]:
    left = (total if isinstance(total, int) else 0) - shown
    return [f"{ROW}... and {count(left)} more ({where})"] if left > 0 else []


def render_text(answers: Mapping[str, Any], width: int, top: int) -> list[str]:
    """The four answers as lines of at most ``width`` columns, every value from the API made inert."""
    return [
        *_attention(answers["alerts"], width, top),
        "",
        *_tags_text(answers["tags_not_on_destination"], width),
        "",
        *_silent_text(answers["silent_schedules"], width),
        "",
        *_last_success_text(answers["last_success"]),
    ]


def _attention(alerts: Sequence[Mapping[str, Any]], width: int, top: int) -> list[str]:
    """One row per alert, its detail below it (two lines at most), as the tags' failure texts are."""
    if not alerts:
        return [ATTENTION, "  no alerts"]
    lines = [ATTENTION, f"  {plural(len(alerts), 'alert')}", f"{ROW}{'kind':<12}  {'policy':<40}  since (UTC)"]
    for a in alerts[:top]:
        lines.append(f"{ROW}{pad(_cell(a['kind']), 12)}  {fit(_cell(policy_label(a)), 40)}  {when(a['since'])}")
        detail = terminal_safe(one_line(a["detail"] or "-", 4 * width))
        wrapped = textwrap.wrap(
            detail,
            width,
            initial_indent=TEXT,
            subsequent_indent=TEXT,
            max_lines=2,
            placeholder=" …",
            break_on_hyphens=False,
        )
        lines += wrapped
    return lines + _more(min(top, len(alerts)), len(alerts), "swr-etl check lists them all")


def _tags_text(tags: Mapping[str, Any], width: int) -> list[str]:
    summary = textwrap.wrap(tags_summary(tags), width - 2, initial_indent="  ", subsequent_indent="  ")
    lines = [NOT_ON_DESTINATION, *summary]
    listed = tags["top"]
    if listed:
        lines.append(f"{ROW}{'policy':<22} {'source repository:tag':<38} {'state':<7} {'fails':>5}  last attempt (UTC)")
    for tag in listed:
        where = _cell(f"{tag['src_repository'] or '?'}:{tag['tag']}")
        lines.append(
            f"{ROW}{fit(_cell(policy_label(tag)), 22)} {fit(where, 38)} {pad(_cell(tag['state']), 7)} "
            f"{count(tag['failed_attempts_since_success']):>5}  {when(tag['attempted_at'])}"
        )
        lines.append(TEXT + fit(terminal_safe(why(tag)), width - len(TEXT)))
    if listed:
        lines += [*_more(len(listed), tags["tags"], "--top, or the JSON"), f"{ROW}({FAILS})"]
    if not tags["subtasks"]:
        return [*lines, f"  {NO_SUBTASKS}"]
    lines += [f"  {CLASSES}", f"{ROW}{'class':<12} {'failed tags':>11}  {'policies':>8}  newest example"]
    for r in tags["reasons"]:
        lines.append(
            f"{ROW}{pad(_cell(r['reason']), 12)} {count(r['failed_tags']):>11}  {count(r['policies']):>8}  "
            f"{fit(terminal_safe(one_line(r['example'] or '-', width)), width - 40)}"
        )
    return lines


def _silent_text(schedules: Mapping[str, Any], width: int) -> list[str]:
    lines = [SILENT, f"  {schedules_summary(schedules)}"]
    if schedules["silent"]:
        lines.append(f"{ROW}{'policy':<30} {'cron':<20} {'missed':>6}  {'first missed (UTC)':<18}  last run (UTC)")
    for s in schedules["silent"]:
        last = "never" if s["last_run_at"] is None else when(s["last_run_at"])
        lines.append(
            f"{ROW}{fit(_cell(policy_label(s)), 30)} {fit(_cell(s['cron']), 20)} {count(s['missed_runs']):>6}  "
            f"{when(s['first_missed_at']):<18}  {last}"
        )
    lines += _more(len(schedules["silent"]), schedules["silent_policies"], "--top, or the JSON")
    if schedules["unreadable"]:
        lines.append(f"  {UNREADABLE}")
    for s in schedules["unreadable"]:
        lines.append(f"{ROW}{fit(_cell(policy_label(s)), 30)} {_cell(s['cron'])}")
        lines.append(TEXT + fit(_cell(one_line(s["cron_problem"], width)), width - len(TEXT)))
    return lines + _more(len(schedules["unreadable"]), schedules["unreadable_crons"], "--top, or the JSON")


def _last_success_text(last: Mapping[str, Any]) -> list[str]:
    lines = [LAST_SUCCESS, f"  {last_success_summary(last)}"]
    for rows, heading, label, total in (
        (last["policies"], "policy", policy_label, last["policies_total"]),
        (last["registries"], "destination registry", registry_label, last["registries_total"]),
    ):
        if rows:
            lines.append(
                f"{ROW}{heading:<32} {'last success (UTC)':<18}  {'ago':<9}  {'executions':>10}  last execution"
            )
        for r in rows:
            success = "never" if r["last_success_at"] is None else when(r["last_success_at"])
            lines.append(
                f"{ROW}{fit(_cell(label(r)), 32)} {success:<18}  {ago(r['hours_since_success']):<9}  "
                f"{count(r['executions']):>10}  {_cell(r['last_execution_status'])}"
            )
        lines += _more(len(rows), total, "--top, or the JSON")
    return lines

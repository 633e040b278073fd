"""The four answers `swr-etl report` opens with, on a world built by hand from the worlds of test_tag_status and
test_silent_schedules (times relative to now):

- Policy 1, named with markup and an ESC sequence, copies team/app (test_tag_status's executions 10 to 13):
  tag 3.0 failed twice and never replicated (its newest failure text spans two lines), 4.0 is missing (its task
  succeeded, the destination does not list it), 2.0 and 5.0 failed and then replicated. Alerts: failing,
  missing_tags (2 tags) and stale. Its last success is execution 12 (manual, an hour ago).
- Policy 2 "stopped" last ran 4 days ago: silent (4 runs missed) and stale.
- Policy 6 "bad cron": its cron does not read (listed with the reason, never silent); stale.
- Policy 8 "never ran": silent (3 runs missed) and stale since it was created; it never succeeded.
All four copy to registry 1, so the registry's last success is policy 1's.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, run_cli
from test_alerts import policy
from test_silent_schedules import DAILY, DAY, LISTED, F, ran
from test_tag_status import SUBTASKS, TEXT, land_subtasks
from test_tag_status import WORLD as TAG_WORLD
from test_views import build, iso, select

from pipeline.report import answers

EVIL = "<script>alert(1)</script>\x1b[2J"
FORGED = "ERROR pipeline: forged"
TWO_LINES = f"dial tcp 10.0.0.7:443: i/o timeout\n{FORGED}"  # tag 3.0's newest failure text
WORLD = [*TAG_WORLD, ran(20, 2, F - 5 * DAY), ran(21, 2, F - 4 * DAY), ran(60, 6, F - 9 * DAY)]
POLICIES = [
    policy(1, EVIL),
    policy(2, "stopped", cron=DAILY),
    policy(6, "bad cron", cron="every day at 2"),
    policy(8, "never ran", cron=DAILY, created=iso(F - 2 * DAY - timedelta(hours=1))),
]
HEADINGS = [answers.ATTENTION, answers.NOT_ON_DESTINATION, answers.SILENT, answers.LAST_SUCCESS]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """The data directory, and the alerts and the failure classes read straight from its warehouse (the
    view failure_reasons decides the class of a text; the report only sums it over policies)."""
    data_dir = tmp_path_factory.mktemp("answers")
    subtasks = dict(SUBTASKS)
    subtasks[(11, 111)] = [{**subtasks[(11, 111)][0], "status_text": TWO_LINES}]
    for (eid, task_id), rows in subtasks.items():
        land_subtasks(data_dir, eid, task_id, rows)
    with build(data_dir, WORLD, policies=POLICIES, listed_run=LISTED) as db:
        views = {
            "alerts": select(db, "SELECT policy_id, kind FROM alerts ORDER BY ALL"),
            "reasons": select(
                db,
                "SELECT reason, sum(failed_tags) AS failed_tags, count(*) AS policies FROM failure_reasons "
                "GROUP BY reason ORDER BY failed_tags DESC, reason",
            ),
        }
    return data_dir, views


def report(data_dir: Path, *args: str) -> str:
    result = run_cli(["report", "--data-dir", str(data_dir), *args], clean_env())
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_json_answers_the_four_questions(world: tuple[Path, dict[str, list[dict[str, Any]]]]) -> None:
    data_dir, views = world
    alerts = views["alerts"]
    found = json.loads(report(data_dir, "--format", "json"))["answers"]
    assert [(a["policy_id"], a["kind"]) for a in found["alerts"]] == [(a["policy_id"], a["kind"]) for a in alerts]
    assert {(1, "missing_tags"), (1, "failing"), (2, "silent"), (8, "silent")} <= {
        (a["policy_id"], a["kind"]) for a in found["alerts"]
    }
    assert {a["policy_name"] for a in found["alerts"] if a["policy_id"] == 1} == {EVIL}  # exact in the JSON

    tags = found["tags_not_on_destination"]
    assert (tags["tags"], tags["failed"], tags["missing"], tags["retried_ok"]) == (2, 1, 1, 2)  # 2.0 and 5.0
    assert tags["subtasks"] == 5
    listed = [(t["src_repository"], t["tag"], t["state"], t["failed_attempts_since_success"]) for t in tags["top"]]
    assert listed == [("team/app", "3.0", "failed", 2), ("team/app", "4.0", "missing", 0)]
    assert tags["top"][0]["last_failure_text"] == TWO_LINES and tags["top"][0]["policy_name"] == EVIL
    classes = [(r["reason"], r["failed_tags"], r["policies"]) for r in tags["reasons"]]
    assert classes == [(r["reason"], r["failed_tags"], r["policies"]) for r in views["reasons"]]
    assert {("auth", 1, 1), ("not_found", 1, 1)} <= set(classes)
    assert {r["example"] for r in tags["reasons"] if r["reason"] == "auth"} == {TEXT["auth"]}

    schedules = found["silent_schedules"]
    assert (schedules["scheduled_policies"], schedules["silent_policies"], schedules["unreadable_crons"]) == (4, 2, 1)
    assert [(s["policy_name"], s["missed_runs"]) for s in schedules["silent"]] == [("stopped", 4), ("never ran", 3)]
    assert schedules["silent"][1]["last_run_at"] is None
    (bad,) = schedules["unreadable"]
    assert (bad["policy_name"], bad["cron_problem"]) == (
        "bad cron",
        "a cron has 6 fields (seconds first), this one has 4",
    )

    last = found["last_success"]
    assert last["stale_after_hours"] == 26
    counts = [last[k] for k in ("policies_total", "policies_stale", "registries_total", "registries_stale")]
    assert counts == [4, 3, 1, 0]
    assert [p["policy_id"] for p in last["policies"]] == [8, 6, 2, 1]  # never, then the longest ago first
    assert last["policies"][0]["hours_since_success"] is None
    assert 0.8 < last["policies"][3]["hours_since_success"] < 1.0  # execution 12 ended 0.9 hours ago
    (registry,) = last["registries"]
    assert (registry["dest_registry_id"], registry["policies"]) == (1, 4)


def test_the_text_report_opens_with_the_answers(world: tuple[Path, dict[str, list[dict[str, Any]]]]) -> None:
    data_dir, views = world
    alerts = views["alerts"]
    text = report(data_dir)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    starts = [lines.index(heading) for heading in HEADINGS]
    assert starts == sorted(starts) and starts[0] == 4, lines[:6]  # right after the title, the totals, the newest task
    assert starts[-1] < next(i for i, line in enumerate(lines) if line.startswith("At a glance"))
    attention, tags, silent, last = (
        "\n".join(lines[a:b]) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)
    )

    # names from the API are inert: the ESC sequence escaped, the two-line failure text on one line
    assert "\x1b" not in text and not [line for line in lines if line.startswith(FORGED)]
    assert re.search(r"^    missing_tags  <script>alert\(1\)</script>\\x1b\[2J +\d{4}-", attention, re.M), attention
    assert f"  {len(alerts)} alerts" in attention
    assert "2 tags not on the destination (threshold 0), e.g. team/app:3.0: dial tcp" in attention
    assert re.search(r"^    stale +never ran +\d{4}-", attention, re.M), attention

    assert "2 tags not on the destination now: 1 failed, 1 missing" in tags
    assert "2 tags failed, then replicated (retried OK)" in " ".join(tags.split())
    rows = re.findall(r"^    <script>\S* +(team/app:\S+) +(\w+) +(\d+)  \d{4}-", tags, re.M)
    assert rows == [("team/app:3.0", "failed", "2"), ("team/app:4.0", "missing", "0")], tags
    assert f"        dial tcp 10.0.0.7:443: i/o timeout {FORGED}" in tags  # the text's lines joined
    assert f"        {answers.MISSING_WHY}" in tags
    assert re.search(r"^    auth +1 +1  " + re.escape(TEXT["auth"][:40]), tags, re.M), tags

    assert "  2 of 4 enabled scheduled policies missed 2 or more runs; 1 cron that does not read" in silent
    assert re.search(r"^    stopped +0 30 2 \* \* \* +4  \d{4}-", silent, re.M), silent
    assert re.search(r"^    never ran +0 30 2 \* \* \* +3  \d{4}-\S+ \S+ +never$", silent, re.M), silent
    assert re.search(
        r"^    bad cron +every day at 2\n {8}a cron has 6 fields \(seconds first\), this one has 4$", silent, re.M
    )

    assert "  3 of 4 policies and 0 of 1 destination registry: no success for 26 hours or more" in last
    order = re.findall(r"^    (never ran|bad cron|stopped|<script>\S*) ", last.split("At a glance")[0], re.M)
    assert order == ["never ran", "bad cron", "stopped", "<script>alert(1)</script>\\x1b[2J"], last
    assert re.search(r"^    never ran +never +- +0  -$", last, re.M), last
    assert re.search(r"^    registry 1 +\d{4}-\S+ \S+ +5\dm \d\ds +7  InProgress$", last, re.M), last  # 0.9 h ago


def test_top_cuts_every_list_and_says_how_many_more(world: tuple[Path, dict[str, list[dict[str, Any]]]]) -> None:
    data_dir, views = world
    alerts = views["alerts"]
    text = report(data_dir, "--top", "1")
    assert f"    ... and {len(alerts) - 1} more (swr-etl check lists them all)" in text
    tags = text.split(answers.NOT_ON_DESTINATION, 1)[1].split(answers.SILENT, 1)[0]
    assert "team/app:3.0" in tags and "team/app:4.0" not in tags and "    ... and 1 more (--top, or the JSON)" in tags
    data = json.loads(report(data_dir, "--format", "json", "--top", "1"))["answers"]
    assert len(data["alerts"]) == len(alerts)  # every alert, whatever --top
    assert len(data["tags_not_on_destination"]["top"]) == len(data["last_success"]["policies"]) == 1


def test_the_page_opens_with_the_answers_escaped(
    world: tuple[Path, dict[str, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    data_dir, _ = world
    page = tmp_path / "report.html"
    report(data_dir, "--html", str(page))
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "\x1b" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2J" in html
    assert re.findall(r"<h2[^>]*>([^<]+)</h2>", html)[0] == "At a glance"
    first = html.split("<h2", 2)[1]  # the answers come first, then the figures of the window
    headings = re.findall(r"<h3>([^<]+)</h3>", first)
    assert headings[:4] == HEADINGS, headings
    assert first.index(HEADINGS[-1]) < first.index('class="tiles"')
    assert f"dial tcp 10.0.0.7:443: i/o timeout {FORGED}" in html
    assert '<td>stopped</td><td>0 30 2 * * *</td><td class="n">4</td>' in html
    assert "a cron has 6 fields (seconds first), this one has 4" in html
    assert "registry 1" in html and "2 tags not on the destination now" in html


def test_the_answers_read_well_when_all_is_well_and_survive_odd_values() -> None:
    from pipeline.report.html import page

    calm = {
        "alerts": [],
        "tags_not_on_destination": {"tags": 0, "failed": 0, "missing": 0, "retried_ok": 0, "subtasks": 0,
                                    "top": [], "reasons": []},
        "silent_schedules": {"scheduled_policies": 1, "silent_policies": 0, "unreadable_crons": 0, "silent": [],
                             "unreadable": []},
        "last_success": {"stale_after_hours": 26, "policies_total": 0, "policies_stale": 0, "registries_total": 0,
                         "registries_stale": 0, "policies": [], "registries": []},
    }  # fmt: skip
    text = "\n".join(answers.render_text(calm, 100, 10))
    assert f"{answers.ATTENTION}\n  no alerts\n" in text
    assert f"  {answers.NO_SUBTASKS}" in text and "0 of 1 enabled scheduled policy missed" in text
    assert '<p class="answer good">no alerts</p>' in page({"answers": calm})

    odd: list[Any] = [None, 7, 1.5, ["a\x1b[2J", 1], {"k": "\u202e"}, "<em>"]
    keys = ("policy_name", "kind", "since", "detail", "tag", "state", "cron", "last_success_at", "example")
    rows = [dict.fromkeys((*keys, "hours_since_success", "last_failure_text", "cron_problem"), v) for v in odd]
    strange = {"alerts": rows, "tags_not_on_destination": {"top": rows, "reasons": rows, "subtasks": "\u202e"},
               "silent_schedules": {"silent": rows, "unreadable": rows, "silent_policies": None},
               "last_success": {"policies": rows, "registries": "\x1b"}}  # fmt: skip
    html = page({"answers": strange})
    assert "\x1b" not in html and "\u202e" not in html and "<em>" not in html and "&lt;em&gt;" in html
    assert page({"answers": None}).count("<h3>") >= 4  # no answers at all: the questions, answered "none"

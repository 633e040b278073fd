"""What people read off the warehouse: `swr-etl query`'s errors and formats, the analytics BI tools can list,
and the report's figures, order and layout (issue 17, items 10 to 12)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, clean_env, run_cli
from test_transform_golden import ARTS, IID
from test_views import build, execution, iso, resource, t

from pipeline.warehouse.warehouse import sql_views

MIN_FINISHED = 5  # the report's minimum of finished tasks for a full rank (pipeline.report.report.MIN_FINISHED)


def query(data_dir: Path, sql: str, fmt: str = "table") -> Any:
    result = run_cli(["query", sql, "--format", fmt, "--data-dir", str(data_dir)], clean_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if fmt == "json" else result.stdout


def report(data_dir: Path, *args: str) -> str:
    result = run_cli(["report", "--data-dir", str(data_dir), *args], clean_env())
    assert result.returncode == 0, result.stderr
    return result.stdout


def cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


# --- a small lake whose right answers are worked out by hand --------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


def at(days_ago: int, hour: int = 8) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time(), UTC) + timedelta(hours=hour)


def tasks_on(
    eid: int, first_id: int, repo: str, ok: int, bad: int, start: datetime, seconds: float = 10, dst: Any = ARTS
) -> list[Any]:
    """``ok`` Succeed then ``bad`` Failed copy tasks of ``repo``, all started at ``start`` (ties on purpose)."""
    end = iso(start + timedelta(seconds=seconds))
    src, dst = resource(repo, ARTS), resource("mirror/" + repo, dst)
    return [
        t(first_id + n, eid, "Succeed" if n < ok else "Failed", iso(start), end, src=src, dst=dst)
        for n in range(ok + bad)
    ]


POLICIES = [
    {"id": 1, "name": "alpha", "enabled": True},
    {"id": 2, "name": "beta", "enabled": True},
    {"id": 3, "name": "gamma", "enabled": True},
    {"id": 4, "name": "delta", "enabled": True},
    {"id": 5, "name": "zeta", "enabled": True},
    {"id": 6, "name": "eta", "enabled": True},
]
TIED = [f"tie/r{n}" for n in range(1, 7)]  # 4 of 5 succeed in each, all at the same moment
# the ranking the report must give: rate over the window, the under-5 repository last, ties by failures, then name
RANKED = ["team/c", "team/a", *TIED, "team/b"]


@pytest.fixture(scope="module")
def ranked_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("ranked")
    db = build(
        data_dir,
        [
            # alpha: 3 of 3, then team/c 10 of 20 and team/a 5 of 10, each taking 83 s
            (execution(10, iso(at(12)), policy_id=1), tasks_on(10, 1, "team/ok", 3, 0, at(12, 9))),
            (
                execution(11, iso(at(10)), policy_id=1, status="Failed"),
                tasks_on(11, 1, "team/c", 10, 10, at(10, 9), 83) + tasks_on(11, 101, "team/a", 5, 5, at(10, 9), 83),
            ),
            # beta: 0 of 2, under the minimum of 5 finished tasks; its destination lists nothing: 2 tags and an
            # untagged digest missing, twice
            (
                execution(21, iso(at(9)), policy_id=2, status="Failed"),
                tasks_on(21, 1, "team/b", 0, 2, at(9, 9), dst=[]),
            ),
            # gamma: 5 of 5, then six repositories with the very same figures and times
            (execution(30, iso(at(5)), policy_id=3), tasks_on(30, 1, "team/ok", 5, 0, at(5, 9))),
            (
                execution(31, iso(at(3)), policy_id=3, status="Failed"),
                [task for n, repo in enumerate(TIED) for task in tasks_on(31, 100 * n, repo, 4, 1, at(3, 9))],
            ),
            # gamma again: one task running for 10 hours, stuck
            (
                execution(51, iso(NOW - timedelta(hours=11)), policy_id=3, status="InProgress"),
                [t(1, 51, "InProgress", iso(NOW - timedelta(hours=10)), src=resource("team/slow", []))],
            ),
            (execution(41, iso(at(3)), policy_id=4, status="Failed"), []),  # delta: never a success
            (execution(61, iso(at(3)), policy_id=5), tasks_on(61, 1, "team/z5", 5, 0, at(3, 9))),
            (execution(62, iso(at(3)), policy_id=6), tasks_on(62, 1, "team/z6", 5, 0, at(3, 9))),
        ],
        instances=[{"id": IID, "name": "prod", "status": "Running"}],
        policies=POLICIES,
    )
    db.close()
    return data_dir


# --- item 10: query ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        ("SELECT * FROM task", 'Did you mean "tasks"'),
        ("SELECT statuss FROM tasks", 'Candidate bindings: "status"'),
    ],
)
def test_a_query_error_keeps_duckdbs_hints_on_its_one_error_line(ranked_lake: Path, sql: str, hint: str) -> None:
    result = run_cli(["query", sql, "--data-dir", str(ranked_lake)], clean_env())
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and hint in line, result.stderr
    assert line.endswith('(the tables and views are listed by: swr-etl query "SHOW TABLES")')


def test_csv_writes_lists_and_structs_as_json(ranked_lake: Path) -> None:
    sql = "SELECT ['v1', 'v2'] AS tags, {'a': 1, 'b': ['x\"y']} AS s, 'plain' AS p, INTERVAL 90 SECOND AS took"
    rows = list(csv.reader(io.StringIO(query(ranked_lake, sql, "csv"), newline="")))
    assert rows[0] == ["tags", "s", "p", "took"]
    tags, struct, plain, took = rows[1]
    assert json.loads(tags) == ["v1", "v2"] and json.loads(struct) == {"a": 1, "b": ['x"y']} and plain == "plain"
    assert float(took) == 90.0  # an interval, in seconds, in CSV and JSON alike
    assert query(ranked_lake, sql, "json")[0]["took"] == 90.0


def test_the_table_aligns_wide_characters_by_the_cells_they_take(ranked_lake: Path) -> None:
    sql = "SELECT * FROM (VALUES ('研发/node', 1), ('ab', 22), ('😀 α', 3)) AS v(repo, n) ORDER BY n"
    lines = query(ranked_lake, sql).splitlines()
    header, rule, *body, count = lines
    assert count == "(3 rows)"
    column = cells(header[: header.index("n")])
    for line, value in zip(body, ("1", "3", "22"), strict=True):
        assert cells(line[: line.rindex(value)]) == column, lines
    assert cells(rule.split("  ")[0]) == column - 2


def test_rows_whose_sort_keys_tie_come_out_in_one_documented_order(ranked_lake: Path) -> None:
    data = json.loads(report(ranked_lake, "--format", "json"))
    # tied repositories: by name; tied policies (zeta and eta: 5 of 5): by policy id
    assert [r["src_repository"] for r in data["repositories"]] == RANKED
    assert [p["policy_name"] for p in data["policies"]] == ["alpha", "gamma", "beta", "zeta", "eta", "delta"]
    # failed tasks started at the same moment: newest execution first, then task id, as the failures view says
    failures = [(f["execution_id"], f["task_id"]) for f in data["recent_failures"]]
    assert failures == [(31, 504), (31, 404), (31, 304), (31, 204), (31, 104), (31, 4), (21, 2), (21, 1),
                        (11, 110), (11, 109)]  # fmt: skip
    drift = [(r["kind"], r["src_repository"], r["dst_repository"], r["tag"], r["digest"]) for r in
             data["charts"]["drift_rows"]]  # fmt: skip
    assert drift and drift == sorted(drift, key=lambda r: tuple((v is None, v or "") for v in r))  # NULLs last
    again = json.loads(report(ranked_lake, "--format", "json"))

    def fixed(report: dict[str, Any]) -> dict[str, Any]:
        """All but what moves with the clock: when it was made, ages, and values measured up to now."""
        text = re.sub(r'"(hours_since_success|value)": [0-9.e+-]+', r'"\1": 0', json.dumps(report["answers"]))
        return {k: v for k, v in report.items() if k not in ("generated_at", "answers")} | {"answers": text}

    assert fixed(again) == fixed(data)


# --- item 11: every named analytic is a view --------------------------------------------------------------------


def test_every_analytic_of_sql_is_a_view_bi_tools_list(ranked_lake: Path) -> None:
    listed = query(
        ranked_lake,
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW' ORDER BY table_name",
        "json",
    )
    views = {row["table_name"] for row in listed}
    files = {v.name: v for v in sql_views()}
    assert "stuck_tasks" in views, "stuck_tasks must be a view, with the default threshold"
    for name, view in files.items():
        if view.is_macro:  # a macro only adds a parameter to a view that is listed
            assert name.endswith("_over") and name.removesuffix("_over") in views, name
        else:
            assert name in views, name
    stuck = query(ranked_lake, "SELECT execution_id, task_id, status, src_repository FROM stuck_tasks", "json")
    assert stuck == [{"execution_id": 51, "task_id": 1, "status": "InProgress", "src_repository": "team/slow"}]
    other = "SELECT count(*) AS n FROM stuck_tasks_over(threshold := INTERVAL 11 HOUR)"
    assert query(ranked_lake, other, "json") == [{"n": 0}]


def test_the_readmes_five_questions_run(ranked_lake: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Five questions in SQL", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    statements = [s.strip() for s in re.split(r";\s*$", section, flags=re.MULTILINE) if s.strip()]
    assert len(statements) == 5
    assert re.search(r"FROM stuck_tasks\s*;", section), "question 3 reads the view"
    for sql in statements:  # without the opening comment, which click would take for an option
        query(ranked_lake, "\n".join(line for line in sql.splitlines() if not line.startswith("--")), "json")


# --- item 12: the report --------------------------------------------------------------------------------------------


def test_text_shows_percentages_and_durations_and_json_keeps_the_numbers(ranked_lake: Path) -> None:
    text = report(ranked_lake)
    alpha = next(line for line in text.splitlines() if line.startswith("  alpha "))
    assert "54.5%" in alpha and "1m 23s" in alpha, alpha  # 18 of 33; the p95 of tasks taking 83 s
    assert not re.search(r"\d\.\d{4,}", text), "no raw float in the text report"
    data = json.loads(report(ranked_lake, "--format", "json"))
    (policy,) = [p for p in data["policies"] if p["policy_name"] == "alpha"]
    assert policy["success_rate"] == pytest.approx(18 / 33, abs=1e-12) and policy["p95_duration_s"] == 83.0
    assert data["glance"]["task_success_rate"] == pytest.approx(57 / 80, abs=1e-12)


def test_the_html_shows_percentages_and_durations(ranked_lake: Path, tmp_path: Path) -> None:
    html = html_page(ranked_lake, tmp_path)
    assert "54.5%" in html and "1m 23s" in html
    assert not re.search(r"\d\.\d{5,}", html), re.search(r".{60}\d\.\d{5,}.{20}", html)


def html_page(data_dir: Path, tmp_path: Path) -> str:
    page = tmp_path / "report.html"
    report(data_dir, "--html", str(page))
    return page.read_text(encoding="utf-8")


def charts(html: str) -> dict[str, str]:
    """Each chart's SVG by the heading above it."""
    return dict(re.findall(r"<h2[^>]*>([^<]+)</h2>(?:<p[^>]*>[^<]*</p>)?(<svg.*?</svg>)", html))


def is_round(step: float) -> bool:
    """1, 2 or 5 times a power of ten."""
    exponent = 10 ** math.floor(math.log10(step))
    return any(abs(step - m * exponent) < 1e-9 * exponent for m in (1, 2, 5, 10))


@pytest.mark.parametrize("lake", ["ranked", "demo"])
def test_chart_axes_have_round_ticks(lake: str, ranked_lake: Path, demo_lake: Path, tmp_path: Path) -> None:
    html = html_page(ranked_lake if lake == "ranked" else demo_lake, tmp_path)
    found = charts(html)
    assert len(found) == 4, list(found)
    for title, svg in found.items():
        ticks = re.findall(r'<text class="ytick"[^>]*>([^<]+)</text>', svg)
        assert len(ticks) >= 3, title
        values = [float(v.rstrip("%").replace(",", "")) for v in ticks]
        assert values[0] == 0, title
        steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
        assert len(steps) == 1 and is_round(steps.pop()), (title, ticks)


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo")
    result = run_cli(["demo", "--data-dir", str(data_dir)], clean_env())
    assert result.returncode == 0, result.stderr
    return data_dir


def test_the_time_axis_leaves_gaps_for_days_without_data(ranked_lake: Path, tmp_path: Path) -> None:
    svg = next(svg for title, svg in charts(html_page(ranked_lake, tmp_path)).items() if "throughput" in title)
    bars = re.findall(r'<rect class="bar" x="([\d.]+)"[^>]*width="([\d.]+)"[^>]*><title>([\d-]+):', svg)
    days = [date.fromisoformat(day) for _, _, day in bars]
    middles = [float(x) + float(w) / 2 for x, w, _ in bars]
    assert days == sorted(days) and len(days) >= 4
    assert (days[-1] - days[0]).days > len(days), "the lake has days without tasks"
    per_day = (middles[-1] - middles[0]) / (days[-1] - days[0]).days
    for day, x in zip(days, middles, strict=True):
        assert x == pytest.approx(middles[0] + per_day * (day - days[0]).days, abs=0.2), (day, bars)


def test_failing_most_means_one_thing_in_text_json_and_html(ranked_lake: Path, tmp_path: Path) -> None:
    data = json.loads(report(ranked_lake, "--format", "json"))
    definition = data["definitions"]["failing_most"]
    assert "failure rate" in definition and str(MIN_FINISHED) in definition
    assert [r["src_repository"] for r in data["repositories"]] == RANKED
    for r in data["repositories"]:
        assert r["failure_rate"] == pytest.approx(r["failures"] / r["finished"], abs=1e-12)
    text = report(ranked_lake)
    assert " ".join(definition.split()) in " ".join(text.split())
    section = text.split("Repositories failing most", 1)[1].split("\n\n", 1)[0]
    listed = [m.group(1) for line in section.splitlines() if (m := re.match(r"  ([a-z-]+/[a-z0-9]+) ", line))]
    assert listed == RANKED
    html = html_page(ranked_lake, tmp_path)
    assert " ".join(definition.split()) in html
    svg = next(svg for title, svg in charts(html).items() if "failing most" in title.lower())
    assert re.findall(r'<rect class="bar"[^>]*><title>([^:<]+):', svg) == RANKED
    # the same words in the demo's summary
    assert "Repositories failing most" in text


def test_the_report_opens_with_the_state_at_a_glance(ranked_lake: Path, tmp_path: Path) -> None:
    text = report(ranked_lake)
    glance = text.split("Health per policy", 1)[0]
    assert "At a glance" in glance
    assert f"{57 / 80:.1%}" in glance and "57 of 80" in glance  # finished tasks that succeeded
    assert re.search(r"failing policies\s+3 of 6: alpha, gamma, beta", glance), glance
    assert re.search(r"stuck tasks\s+1\b", glance), glance
    assert re.search(r"tags missing on the destination\s+6\b", glance), glance
    lasts = glance.split("Last successful run per policy", 1)[1]
    assert re.search(r"alpha .*" + at(12).strftime("%Y-%m-%d %H:%M"), lasts), lasts
    assert re.search(r"delta .*never", lasts), lasts
    assert re.search(r"beta .*never", lasts), lasts
    data = json.loads(report(ranked_lake, "--format", "json"))
    glanced = data["glance"]
    assert glanced["stuck_tasks"] == 1 and glanced["missing_tags"] == 6
    assert [p["policy_name"] for p in glanced["failing_policies"]] == ["alpha", "gamma", "beta"]
    html = html_page(ranked_lake, tmp_path)
    headings = re.findall(r"<h2[^>]*>([^<]+)</h2>", html)
    assert headings[0] == "At a glance", headings
    assert headings[-1].startswith("Drift rows"), headings
    glance_html = html.split("<h2", 2)[1]
    for words in (f"{57 / 80:.1%}", "Failing policies", "Stuck tasks", "Tags missing", "Last successful run"):
        assert words in glance_html, words


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (4.2, "4.2s"), (42.4, "42s"), (59.6, "1m 00s"), (83, "1m 23s"), (267.50194637775417, "4m 28s"),
     (3599.6, "1h 00m"), (7530, "2h 06m"), (86399, "1d 00h"), (90000, "1d 01h")],
)  # fmt: skip
def test_durations_read_as_minutes_and_seconds(seconds: float | None, shown: str) -> None:
    from pipeline.report.report import duration

    assert duration(seconds) == shown


@pytest.mark.parametrize("top", [0, 0.02, 0.375, 1, 2, 3.7, 99, 4621, 18426, 1e9])
def test_ticks_are_round_and_reach_the_top(top: float) -> None:
    from pipeline.report.charts import ticks

    reach = top or 1  # an empty chart still has an axis to 1
    for whole in (False, True):
        values = ticks(top, whole=whole)
        step = values[1] - values[0]
        assert values[0] == 0 and values[-2] < reach <= values[-1] and is_round(step) and len(values) <= 11
        assert not whole or step >= 1


def test_the_glance_of_the_page_survives_none_and_values_of_any_type() -> None:
    from decimal import Decimal

    from pipeline.report.html import page

    odd: list[Any] = [None, 7, Decimal("1.5"), date(2026, 11, 1), ["a\x1b[2J", 1], {"k": "\u202e"}, "x"]
    runs = [{"policy_name": v, "instance_name": v, "last_success": v, "last_run": v, "last_status": v} for v in odd]
    glance = {"task_success_rate": "odd", "failing_policies": [{"policy_name": v} for v in odd], "last_runs": runs,
              "stuck_tasks": None, "missing_tags": "\u202e", "missing_pairs": None}  # fmt: skip
    html = page({"glance": glance, "window": {"first_day": None, "last_day": "\x1b[2J"}, "days": None})
    assert "<h2>At a glance</h2>" in html and "\\x1b[2J" in html and "\x1b" not in html and "\u202e" not in html

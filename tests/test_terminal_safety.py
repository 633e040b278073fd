"""Text from the API never controls the terminal nor forges a log line; JSON outputs still carry it exactly.

A fake API on loopback names its policy, instance and repositories with escape sequences, bidi overrides and
newlines, and answers one task listing with such an ``error_msg``; the real CLI runs, reports and queries.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, run_cli
from hypothesis import given
from hypothesis import strategies as st
from test_extract_e2e import run_against
from test_transform_golden import resource, task

from pipeline.logs import setup_logging
from pipeline.text import UNSAFE, dumps, safe_block, terminal_safe

EVIL_POLICY = "evil\x1b[2J\x1b]0;pwned\x07name"
FORGED = "2026-01-01T00:00:00Z ERROR pipeline: forged"
EVIL_MSG = f"bad\n{FORGED}\x1b]0;pwned\x07"
EVIL_INSTANCE = "one\u202egnp.exe\x9b2J\u2066"  # a bidi override, an 8-bit CSI and an isolate
EVIL_REPO = "team/\x1b[31mred\rapp\x7f"
UNSAFE_CHARS = "".join(map(chr, sorted(UNSAFE)))
# what a terminal would obey: every unsafe character but the newline that ends a line
OBEYED = re.compile("[" + re.escape(UNSAFE_CHARS.replace("\n", "")) + "]")


def assert_inert(output: str) -> None:
    """Nothing in ``output`` a terminal would act on, and no line that passes for a forged log record."""
    found = OBEYED.search(output)
    assert found is None, f"raw {found.group()!r} in {output!r}"
    assert not [line for line in output.split("\n") if line.startswith(FORGED)], output


# --- the function ---------------------------------------------------------------------------------------------


@given(st.text())
def test_no_unsafe_character_survives(text: str) -> None:
    safe = terminal_safe(text)
    assert not set(map(ord, safe)) & UNSAFE
    assert terminal_safe(safe) == safe  # idempotent: safe twice is safe once


@given(st.text(alphabet=st.sampled_from([*UNSAFE_CHARS, "a", "\\", "é", "字", "🚀"])))
def test_no_unsafe_character_survives_when_there_are_many(text: str) -> None:
    assert not set(map(ord, terminal_safe(text))) & UNSAFE
    assert not set(map(ord, safe_block(text))) & (UNSAFE - {ord("\n")})


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]).filter(str.isprintable)))
def test_printable_text_is_unchanged(text: str) -> None:
    assert terminal_safe(text) == text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x07\x00\x7f\x85\x9b\x9f", "\\x07\\x00\\x7f\\x85\\x9b\\x9f"),
        ("\u202aA\u202eB\u2066C\u2069", "\\u202aA\\u202eB\\u2066C\\u2069"),
        ("镜像仓库 café 🚀 naïve \\x1b", "镜像仓库 café 🚀 naïve \\x1b"),
        ("\u200b\u00a0\u2028", "\u200b\u00a0\u2028"),  # outside the set: kept
    ],
)
def test_examples(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown


def test_a_block_keeps_its_lines_indented_so_none_passes_for_a_record() -> None:
    block = safe_block(f"Traceback (most recent call last):\n  File 'x'\nApiError: {EVIL_MSG}\n")
    assert block.split("\n") == [
        "  Traceback (most recent call last):",
        "    File 'x'",
        "  ApiError: bad",
        f"  {FORGED}\\x1b]0;pwned\\x07",
    ]


@given(st.recursive(st.none() | st.text() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
def test_json_carries_the_exact_text_and_obeys_nothing(value: Any) -> None:
    for indent in (None, 1):
        text = dumps(value, indent=indent)
        assert json.loads(text) == value
        assert OBEYED.search(text) is None


def test_text_log_lines_are_inert_and_json_log_lines_exact(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("pipeline.extraction.extract")
    for fmt in ("text", "json"):
        setup_logging(fmt=fmt, verbosity=0, run_id="r", secrets=[])
        log.error("execution 2 failed: %s", EVIL_MSG)
        try:
            raise ValueError(EVIL_MSG)
        except ValueError:
            log.exception("oops %s", EVIL_POLICY)
    err = capsys.readouterr().err
    text, json_lines = err.split("\n{", 1)
    assert_inert(text)
    assert f"execution 2 failed: bad\\n{FORGED}\\x1b]0;pwned\\x07" in text
    assert f"  ValueError: bad\\n{FORGED}" not in text  # the exception line keeps its newline ...
    assert f"  {FORGED}\\x1b]0;pwned\\x07" in text  # ... but indented, and its controls shown
    records = [json.loads(line) for line in ("{" + json_lines).splitlines()]
    assert records[0]["msg"] == f"execution 2 failed: {EVIL_MSG}"
    assert records[1]["msg"] == f"oops {EVIL_POLICY}"
    assert f"ValueError: {EVIL_MSG}" in records[1]["exc"]
    assert OBEYED.search("{" + json_lines) is None
    logging.getLogger().handlers.clear()


# --- through the real CLI -------------------------------------------------------------------------------------


class EvilApi(BaseHTTPRequestHandler):
    """One instance and policy with hostile names; execution 2's tasks answer HTTP 400 with a hostile
    ``error_msg``; execution 3 belongs to no policy."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        status, body = 200, {"total": 0}
        day = "2026-11-01T00:00:00Z"
        if path.endswith("/instances"):
            body = {"instances": [{"id": "i-1", "name": EVIL_INSTANCE, "status": "Running"}], "total": 1}
        elif path.endswith("/policies"):
            body = {"policies": [{"id": 1, "name": EVIL_POLICY, "enabled": True}], "total": 1}
        elif path.endswith("/executions"):
            records: list[dict[str, Any]] = [
                {"id": n, "policy_id": 1, "status": "Failed", "created_at": day} for n in (1, 2)
            ]
            records.append({"id": 3, "status": "Succeed", "created_at": day})  # no policy_id at all
            body = {"executions": records, "total": 3}
        elif path.endswith("/executions/2/tasks"):
            status, body = 400, {"error_code": "SWR.0400", "error_msg": EVIL_MSG}
        elif path.endswith("/executions/1/tasks"):
            src, dst = resource(EVIL_REPO, []), resource("mirror/\u202eppa", [])
            tasks = [
                task(10, src, dst, execution_id=1, status="Failed", start_time="2026-11-01T08:00:00Z"),
                task(11, src, dst, execution_id=1, status="Succeed", start_time="2026-11-01T08:01:00Z"),
            ]
            body = {"tasks": tasks, "total": 2}
        elif path.endswith("/executions/3/tasks"):
            src, dst = resource("team/plain", []), resource("mirror/plain", [])
            body = {"tasks": [task(30, src, dst, execution_id=3, start_time="2026-11-01T09:00:00Z")], "total": 1}
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("X-Request-Id", "req-fake")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def evil_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A lake loaded by ``swr-etl run`` (text logs) from the hostile API: the data directory, and the run."""
    data_dir = tmp_path_factory.mktemp("evil")
    result = run_against(EvilApi, data_dir, ["-v", "run"])  # -v: info lines and the traceback too
    assert result.returncode == 1, result.stderr  # execution 2 could not be fetched; the others are loaded
    return data_dir, result


def test_run_text_logs_and_error_line_show_api_text_inert_on_one_line(evil_lake: tuple[Path, Any]) -> None:
    _, result = evil_lake
    assert_inert(result.stdout + result.stderr)
    shown = f"SWR.0400: bad\\n{FORGED}\\x1b]0;pwned\\x07, request id req-fake"
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert shown in error
    assert any(shown in line and " ERROR " in line for line in result.stderr.splitlines()), result.stderr


def test_run_json_logs_carry_the_exact_api_text(tmp_path: Path) -> None:
    result = run_against(EvilApi, tmp_path, ["--log-format", "json", "run"])
    assert result.returncode == 1
    assert_inert(result.stdout + result.stderr)
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(EVIL_MSG in r["msg"] for r in records), result.stderr


def test_text_report_shows_every_name_escaped_within_100_columns(evil_lake: tuple[Path, Any]) -> None:
    data_dir, _ = evil_lake
    result = run_cli(["report", "--data-dir", str(data_dir)], clean_env())
    assert result.returncode == 0, result.stderr
    assert_inert(result.stdout + result.stderr)
    assert "  evil\\x1b[2J\\x1b]0;pwned\\x07na… one" in result.stdout  # escaped, then cut to 30 columns
    assert "one\\u202egnp.ex… " in result.stdout
    assert "team/\\x1b[31mred\\rapp\\x7f -> mirror/\\u202eppa" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


def test_json_report_carries_the_exact_names(evil_lake: tuple[Path, Any]) -> None:
    data_dir, _ = evil_lake
    result = run_cli(["report", "--data-dir", str(data_dir), "--format", "json"], clean_env())
    assert result.returncode == 0, result.stderr
    assert_inert(result.stdout)  # JSON escapes them: the raw output controls nothing either
    data = json.loads(result.stdout)
    assert {(p["policy_name"], p["instance_name"]) for p in data["policies"]} == {
        (EVIL_POLICY, EVIL_INSTANCE),
        (None, EVIL_INSTANCE),
    }
    assert {f["src_repository"] for f in data["recent_failures"]} == {EVIL_REPO}


def test_query_table_is_inert_and_json_and_csv_are_exact(evil_lake: tuple[Path, Any]) -> None:
    data_dir, _ = evil_lake
    sql = 'SELECT name, name AS "a\x1b[2Jb" FROM policies'

    def query(fmt: str) -> str:
        result = run_cli(["query", sql, "--format", fmt, "--data-dir", str(data_dir)], clean_env())
        assert result.returncode == 0, result.stderr
        return result.stdout

    table = query("table")
    assert_inert(table)
    assert table.splitlines()[2].startswith("evil\\x1b[2J\\x1b]0;pwned\\x07name  evil")
    assert table.splitlines()[0].endswith("a\\x1b[2Jb")
    json_out = query("json")
    assert_inert(json_out)
    assert json.loads(json_out) == [{"name": EVIL_POLICY, "a\x1b[2Jb": EVIL_POLICY}]
    assert list(csv.reader(io.StringIO(query("csv"), newline=""))) == [["name", "a\x1b[2Jb"], [EVIL_POLICY] * 2]


def test_html_report_with_an_execution_of_no_policy_is_written_and_inert(
    evil_lake: tuple[Path, Any], tmp_path: Path
) -> None:
    data_dir, _ = evil_lake
    page = tmp_path / "report.html"
    result = run_cli(["report", "--data-dir", str(data_dir), "--html", str(page)], clean_env())
    assert result.returncode == 0, result.stderr
    html = page.read_text(encoding="utf-8")
    assert_inert(html)  # no raw control character or bidi override for a browser to act on
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07name" in html
    assert "mirror/\\u202eppa" in html
    assert "(no policy)" in html  # execution 3's line in the success-rate chart has a name


def test_the_html_page_survives_none_and_values_of_any_type_everywhere() -> None:
    from datetime import date
    from decimal import Decimal

    from pipeline.report.html import page

    odd: list[Any] = [None, 7, Decimal("1.5"), date(2026, 11, 1), ["a\x1b[2J", 1], {"k": "\u202e"}]
    charts = {
        "success_by_policy": [{"day": date(2026, 11, 1), "policy": p, "success_rate": None} for p in odd],
        "failures_by_repository": [{"src_repository": r, "failures": None} for r in odd],
        "duration_histogram": [{"bucket": b, "tasks": 1} for b in odd],
        "daily_throughput": [{"day": d, "tags": None} for d in odd],
        "drift_rows": [{"kind": k, "tag": k} for k in odd],
    }
    totals = dict.fromkeys(("instances", "policies", "executions", "tasks", "tags", "rejects"))
    rows = [{"policy_name": v, "status": v, "tags": v} for v in odd]
    data = {"totals": totals, "charts": charts, "policies": rows, "recent_failures": rows}
    html = page(data | {"data_dir": None, "generated_at": date(2026, 11, 2)})
    assert_inert(html)
    assert "(no policy)" in html and "a\\x1b[2J" in html and "\\u202e" in html and "2026-11-02" in html


def test_a_usage_error_line_is_inert() -> None:
    result = run_cli(["report", f"a\x1b]0;pwned\x07\n{FORGED}"], clean_env())
    assert result.returncode == 2
    assert_inert(result.stdout + result.stderr)
    assert f"error: Got unexpected extra argument (a\\x1b]0;pwned\\x07\\n{FORGED})" in result.stderr

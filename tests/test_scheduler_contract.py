"""What a scheduler reads: exit status, JSON on stderr and stdout, the run record, and the terminal's last screen.

Every case runs the real ``swr-etl`` in a subprocess. With ``--log-format json`` each line on stderr is one JSON
object (the final error too), and each stage's summary and the run record say ``ok``, ``partial`` or ``failed``.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, all_landed_text, clean_env, run_cli, sandbox_env
from test_extract_e2e import fake_api, run_against, some_execution_ids

from pipeline.cli.cli import cli
from pipeline.extraction.extract import ExtractSummary
from pipeline.sandbox import Faults, SandboxConfig, SandboxServer


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object: fails on the first line that is not one."""
    objects = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r} in\n{text}")
        assert isinstance(value, dict), line
        objects.append(value)
    return objects


def summaries(stdout: str) -> dict[str, dict[str, Any]]:
    return {s["stage"]: s for s in json_lines(stdout) if s.get("event") == "summary"}


def run_record(data_dir: Path) -> dict[str, Any]:
    (path,) = (data_dir / "raw" / "runs").glob("*.json")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def the_error(stderr: str) -> dict[str, Any]:
    """The final line: the error, as one JSON object carrying what a log line carries."""
    lines = json_lines(stderr)
    assert lines, "nothing on stderr"
    error = lines[-1]
    assert error["event"] == "error" and error["level"] == "error", error
    assert {"ts", "logger", "stage", "run_id", "msg", "exit_code", "hint"} <= set(error)
    assert [line for line in lines if line.get("event") == "error"] == [error]
    return error


# -- item 1: a failed run never looks like an empty one --------------------------------------------------------


def test_a_bad_token_in_json_mode_is_failed_in_the_error_the_summary_and_the_run_record(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    wrong = "wrong-token-SECRET-7f3a"
    result = run_cli(["--log-format", "json", "run"], sandbox_env(sandbox, tmp_path, SWR_AUTH_TOKEN=wrong))
    assert result.returncode == 1
    error = the_error(result.stderr)
    assert error["exit_code"] == 1
    assert error["msg"].startswith("HTTP 401 from GET /v2/sandbox-project/instances, APIGW.0301: ")
    assert "SWR_AUTH_TOKEN" in error["hint"]
    assert error["stage"] == "extract"

    (summary,) = json_lines(result.stdout)  # the load never starts
    assert summary["event"] == "summary" and summary["stage"] == "extract"
    assert summary["status"] == "failed"
    assert summary["error"] == error["msg"]
    assert summary["errors"] == [error["msg"]]
    assert summary["run_id"] == error["run_id"]

    record = run_record(tmp_path)
    assert record["run_id"] == error["run_id"]
    assert (record["status"], record["error"]) == ("failed", error["msg"])
    assert wrong not in result.stdout + result.stderr + all_landed_text(tmp_path)


def test_a_partial_run_says_partial_and_exits_1(tmp_path: Path) -> None:
    api = fake_api((503, {"error_code": "SWR.0503", "error_msg": "busy"}))
    result = run_against(api, tmp_path, ["run", "--log-format", "json"], SWR_ETL_MAX_ATTEMPTS="2")
    assert result.returncode == 1
    first = (
        "1 executions could not be fetched; first: HTTP 503 from GET /v2/p/instances/i-1/replication/executions/2/"
        "tasks, SWR.0503: busy, request id req-fake"
    )
    error = the_error(result.stderr)
    assert (error["msg"], error["exit_code"], error["stage"]) == (first, 1, "extract")  # raised after the load
    stages = summaries(result.stdout)
    assert list(stages) == ["extract", "load"]
    extract, load = stages["extract"], stages["load"]
    assert (extract["status"], extract["error"]) == ("partial", first)
    assert (extract["executions_complete"], extract["executions_failed"]) == (1, 1)
    assert (load["status"], load["error"], load["executions_loaded"]) == ("ok", None, 1)
    assert (run_record(tmp_path)["status"], run_record(tmp_path)["error"]) == ("partial", first)
    assert "tok-SECRET-123456" not in result.stdout + result.stderr


def test_a_good_run_says_ok_and_exits_0(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    result = run_cli(["run", "--execution-id", str(eid), "--log-format", "json"], sandbox_env(sandbox, tmp_path))
    assert result.returncode == 0, result.stderr
    json_lines(result.stderr)
    stages = summaries(result.stdout)
    assert [(s, v["status"], v["error"]) for s, v in stages.items()] == [("extract", "ok", None), ("load", "ok", None)]
    assert stages["extract"]["executions_complete"] == 1
    record = run_record(tmp_path)
    assert (record["status"], record["error"], record["run_id"]) == ("ok", None, stages["load"]["run_id"])


def test_a_load_that_fails_has_a_failed_summary_in_json_mode(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Files may not grow past 64 KiB (RLIMIT_FSIZE): the rebuild's Parquet files cannot be written."""
    import resource

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    env = sandbox_env(sandbox, tmp_path)
    assert run_cli(["run"], env).returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "rebuild", "--log-format", "json"], env=env, cwd=ROOT, capture_output=True,
        text=True, preexec_fn=small_files, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    error = the_error(result.stderr)
    assert error["msg"].startswith(f"could not write the lake in {tmp_path / 'lake'}: ")
    assert (error["stage"], error["hint"]) == ("rebuild", "free some space (or fix the permissions or credentials) "
                                               "and run again: nothing was half-written")  # fmt: skip
    (summary,) = json_lines(result.stdout)
    assert (summary["stage"], summary["status"], summary["error"]) == ("rebuild", "failed", error["msg"])


def test_the_status_of_an_extract() -> None:
    def settled(error: str | None = None, *, stopped: bool = False, **counts: Any) -> tuple[str, str | None]:
        summary = ExtractSummary(run_id="r", **counts)
        if counts.get("executions_failed"):
            summary.errors.append("HTTP 503 ...")
        summary.settle(error, stopped=stopped)
        return summary.status, summary.error

    assert settled(executions_complete=3) == ("ok", None)
    assert settled(executions_unchanged=3) == ("ok", None)
    assert settled() == ("ok", None)  # nothing in scope
    incomplete = settled(executions_complete=3, executions_incomplete=1, missing_tasks=7)
    assert incomplete == ("partial", "1 executions incomplete, 7 tasks missing: the next run fetches them again")
    assert settled("1 executions could not be fetched", executions_complete=1, executions_failed=1) == (
        "partial",
        "1 executions could not be fetched",
    )
    assert settled("1 executions could not be fetched", executions_failed=1)[0] == "failed"
    assert settled("HTTP 401", stopped=True) == ("failed", "HTTP 401")
    assert settled("interrupted", stopped=True, executions_unchanged=2) == ("partial", "interrupted")


def test_usage_errors_are_json_lines_too(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(sandbox, tmp_path)
    for args in (
        ["--log-format", "json", "extract", "--concurrency", "many"],
        ["extract", "--concurrency", "many", "--log-format", "json"],
        ["extract", "--log-format=json", "--no-such-flag"],
        ["--log-format", "json", "--no-such-flag", "extract"],
        ["--log-format", "json", "no-such-command"],
    ):
        result = run_cli(args, env)
        assert result.returncode == 2, args
        error = the_error(result.stderr)
        assert error["exit_code"] == 2
        assert error["hint"].startswith("see 'swr-etl ") and error["hint"].endswith(" --help'"), error
        assert result.stdout == ""
    # a configuration error (exit 2) stops before any stage: no summary
    result = run_cli(["extract", "--log-format", "json"], clean_env(SWR_ETL_DATA_DIR=str(tmp_path)))
    assert result.returncode == 2
    assert the_error(result.stderr)["msg"].startswith("no endpoint: give --endpoint or set SWR_ENDPOINT; ")
    assert result.stdout == ""


def test_ctrl_c_in_json_mode_ends_with_one_json_error_line(tmp_path: Path) -> None:
    faults = Faults(rate_429=1.0, retry_after_s=100, max_consecutive=50)
    with SandboxServer(SandboxConfig(seed=1, scale=0.2, faults=faults)) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "extract", "--log-format", "json"],
            env=sandbox_env(server, tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    error = the_error(err)
    assert (error["msg"], error["exit_code"]) == ("interrupted", 130)
    (summary,) = json_lines(out)
    assert (summary["status"], summary["error"]) == ("failed", "interrupted")
    assert run_record(tmp_path)["status"] == "failed"


# -- item 2: the global flags after the subcommand, and SWR_ETL_LOG_FORMAT -------------------------------------


@pytest.mark.parametrize("command", sorted(cli.commands))  # type: ignore[attr-defined]
def test_every_command_takes_the_global_flags_after_its_name(command: str) -> None:
    flags = ["--log-format", "json", "-v", "-q", "--verbose", "--quiet", "--progress", "--no-progress"]
    result = run_cli([command, *flags, "--help"], clean_env())
    assert result.returncode == 0, result.stderr
    assert "--log-format" in result.stdout


def test_flags_after_the_command_set_up_logging_before_it_works(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    result = run_cli(
        ["extract", "-v", "--execution-id", str(eid), "--log-format", "json"], sandbox_env(sandbox, tmp_path)
    )
    assert result.returncode == 0, result.stderr
    logs = json_lines(result.stderr)
    assert logs[0]["msg"].startswith("extracting from ")  # -v: the info lines, in JSON from the first one
    assert {entry["run_id"] for entry in logs} == {summaries(result.stdout)["extract"]["run_id"]}


def test_a_flag_after_the_command_wins(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    env = sandbox_env(sandbox, tmp_path)
    scope = ["--execution-id", str(eid), "--full"]
    text = run_cli(["--log-format", "json", "-v", "extract", *scope, "--log-format", "text", "-q"], env)
    assert text.returncode == 0, text.stderr
    assert text.stderr == ""  # -q after -v
    assert text.stdout.startswith("extract: 1 executions in 2 instances (1 complete)")
    verbose = run_cli(["-q", "extract", *scope, "-v"], env)
    assert "extracting from " in verbose.stderr


def test_swr_etl_log_format_from_the_environment(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    scope = ["--execution-id", str(eid), "--full"]
    result = run_cli(["extract", *scope], sandbox_env(sandbox, tmp_path, SWR_ETL_LOG_FORMAT="json"))
    assert result.returncode == 0, result.stderr
    assert summaries(result.stdout)["extract"]["status"] == "ok"
    flag = run_cli(
        ["extract", *scope, "--log-format", "text"], sandbox_env(sandbox, tmp_path, SWR_ETL_LOG_FORMAT="json")
    )
    assert flag.stdout.startswith("extract: 1 executions")  # a flag outranks the environment
    bad = run_cli(["extract", *scope], sandbox_env(sandbox, tmp_path, SWR_ETL_LOG_FORMAT="xml"))
    assert bad.returncode == 2
    (line,) = bad.stderr.splitlines()
    assert line == (
        "error: Invalid value for '--log-format': 'xml' is not one of 'text', 'json' (from SWR_ETL_LOG_FORMAT) "
        "(see 'swr-etl --help')"
    )


# -- item 3: the progress bars are gone before the summary line is printed -------------------------------------

CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(output: str) -> list[str]:
    """The lines a terminal shows after ``output``: printable text, ``\\r``, ``\\n`` and the CSI sequences rich
    uses (cursor up/down/column, erase in line); colours and the rest ignored. No wrapping, no scrolling limit."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(output):
        match = CSI.match(output, i)
        if match:
            args, final = match.group(1), match.group(2)
            n = int(args) if args.isdigit() else None
            if final == "A":
                row = max(0, row - (n or 1))
            elif final == "B":
                row += n or 1
            elif final == "G":
                col = (n or 1) - 1
            elif final == "K":
                line = lines[row] if row < len(lines) else []
                if n == 2:
                    line.clear()
                elif n == 1:
                    line[: col + 1] = [" "] * min(col + 1, len(line))
                else:
                    del line[col:]
            i = match.end()
            continue
        char = output[i]
        i += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
        elif char == "\x1b" or char < " ":
            continue
        else:
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col : col + 1] = [char]
            col += 1
        while len(lines) <= row:
            lines.append([])
    return ["".join(line).rstrip() for line in lines]


def test_screen_interprets_what_rich_writes() -> None:
    assert screen("bar 1/2\r\x1b[2Kbar 2/2\nabc\r\x1b[2K\x1b[1A\x1b[2Kdone\r\n") == ["done", ""]
    assert screen("a\x1b[32mb\x1b[0m\r\nxyz\rQ\n") == ["ab", "Qyz", ""]


def run_in_a_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on one pseudo-terminal, as a person at a terminal would."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child is gone and the terminal is closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        code = proc.wait(timeout=30)
    return code, output.decode("utf-8", "replace")


@pytest.mark.parametrize("scope", ["all", "one and a missing one"])
def test_progress_bars_are_cleared_before_the_summary_lines(sandbox: SandboxServer, tmp_path: Path, scope: str) -> None:
    """A person at a terminal: the bars while it works, then the summary lines and nothing else. A warning logged
    while the bars are drawn is printed above them, and stays."""
    args = ["run"]
    if scope != "all":
        (eid,) = some_execution_ids(sandbox, 1)
        args += ["--execution-id", str(eid), "--execution-id", "999999"]
    env = sandbox_env(sandbox, tmp_path, TERM="xterm-256color", COLUMNS="100", LINES="40")
    code, output = run_in_a_terminal(args, env)
    assert code == 0, output
    assert "executions" in output.split("extract: ")[0]  # bars were drawn
    shown = [line for line in screen(output) if line.strip()]
    if scope != "all":  # rich wraps what it prints above the bars at the terminal's width
        first = next(i for i, line in enumerate(shown) if line.startswith("extract: "))
        warning, shown = " ".join(shown[:first]), shown[first:]
        assert warning.endswith(" WARNING pipeline.extraction.extract: execution 999999 is not listed by any "
                                "instance in scope (the service forgets old ones)"), warning  # fmt: skip
    assert len(shown) == 2, shown
    assert shown[0].startswith("extract: ") and shown[0].endswith(f" -> {tmp_path / 'raw'}")
    assert shown[1].startswith("load: ")

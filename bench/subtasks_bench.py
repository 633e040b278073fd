"""Subtasks and the request budget: what ``--subtasks none``, ``failed`` and ``all`` cost a full run and the
nightly run after it, and that a binding ``--max-rps R`` makes the wall time ``requests / R``.

The sandbox runs in its own process, as in :mod:`bench.extract_bench` (loopback, a fixed latency per request,
task pages served from memory after a warm-up pass; subtask pages are generated for each request, which
costs the sandbox CPU). For each ``--subtasks`` mode, ``swr-etl extract`` runs into an empty data directory
(the full run), then again on the same directory with nothing new (the nightly run: only the executions still
running are fetched again, with their subtasks). Then full runs with ``--subtasks failed`` (the default)
under each budget of ``--max-rps``. Requests are counted by the sandbox; the client's own count (its summary)
is checked against it. Figures are printed, never asserted.

    python -m bench.subtasks_bench                       # scale 2, 8,750 tasks: about 3.5 minutes
    python -m bench.subtasks_bench --modes all --max-rps "" --work-dir /dev/shm     # the disk taken out
    python -m bench.subtasks_bench --modes none,failed --max-rps 50    # a quick look (about 30 s)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import clean_env, measure
from bench.extract_bench import _get, _post, start_sandbox

MODES = ("none", "failed", "all")


@dataclass
class Run:
    label: str
    mode: str
    max_rps: float  # 0: no budget
    requests: int  # answered by the sandbox
    subtask_requests: int  # of which subtask pages
    client_requests: int  # as the extract's summary counts them
    tasks: int
    subtasks: int
    wall_s: float  # the whole command, Python's start included
    extract_s: float  # the extract stage, as its summary reports it
    client_cpu_s: float
    sandbox_cpu_s: float


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a running process has used so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def run_extract(
    sandbox: subprocess.Popen[str], url: str, data_dir: Path, mode: str, concurrency: int, max_rps: float, label: str
) -> Run:
    _post(f"{url}/_sandbox/reset-stats")
    env = clean_env(
        SWR_ENDPOINT=url,
        SWR_PROJECT_ID="sandbox-project",
        SWR_AUTH_TOKEN="sandbox-token",
        SWR_ETL_DATA_DIR=str(data_dir),
    )
    cmd = [sys.executable, "-m", "pipeline", "--log-format", "json", "extract", "--concurrency", str(concurrency)]
    cmd += ["--subtasks", mode, "--max-rps", f"{max_rps:g}"]
    sandbox_cpu = cpu_seconds(sandbox.pid)
    result = measure(cmd, env)
    sandbox_cpu = cpu_seconds(sandbox.pid) - sandbox_cpu
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["status"] != "ok":
        raise SystemExit(f"{label}: the extract ended {summary['status']}: {summary['error']}")
    stats = _get(f"{url}/_sandbox/stats")
    return Run(
        label,
        mode,
        max_rps,
        stats["requests"],
        stats["by_kind"]["subtasks"],
        summary["requests"],
        summary["tasks"],
        summary["subtasks"],
        result.wall_s,
        summary["elapsed_s"],
        result.cpu_s,
        sandbox_cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=2.0, help="sandbox scale (2: 8,750 tasks, 40 executions)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8, help="the default concurrency")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES), help="the --subtasks modes to measure, comma-separated")
    parser.add_argument(
        "--max-rps", default="20,50", help="budgets for full runs with --subtasks failed, comma-separated; '' for none"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="where the data directories go (default: TMPDIR)")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown --modes: {', '.join(sorted(unknown))}")
    budgets = [float(r) for r in args.max_rps.split(",") if r]

    work = Path(tempfile.mkdtemp(prefix="swr-bench-subtasks-", dir=args.work_dir))
    runs: list[Run] = []
    throttled: list[Run] = []
    proc, url = start_sandbox(args.scale, args.latency_ms, args.seed)
    try:
        # a warm-up pass fills the sandbox's cache of task pages (subtask pages are not cached)
        run_extract(proc, url, work / "warm-up", "none", args.concurrency, 0, "warm-up")
        shutil.rmtree(work / "warm-up", ignore_errors=True)
        for mode in modes:
            data_dir = work / mode
            for label in ("full run", "nightly run"):
                runs.append(run_extract(proc, url, data_dir, mode, args.concurrency, 0, f"{mode}, {label}"))
                print(_row(runs[-1], args.latency_ms, args.concurrency), flush=True)
            shutil.rmtree(data_dir, ignore_errors=True)
        for rate in budgets:
            data_dir = work / f"failed-{rate:g}rps"
            label = f"failed, --max-rps {rate:g}"
            throttled.append(run_extract(proc, url, data_dir, "failed", args.concurrency, rate, label))
            print(_row(throttled[-1], args.latency_ms, args.concurrency), flush=True)
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    _report(runs, throttled, args)


def _report(runs: list[Run], throttled: list[Run], args: argparse.Namespace) -> None:
    floor = f"requests x {args.latency_ms:g} ms / {args.concurrency}"
    print()
    print(f"scale {args.scale:g}, seed {args.seed}, latency {args.latency_ms:g} ms, concurrency {args.concurrency}")
    print(f"floor = {floor}: the wall time if every request slot were busy all the time")
    print()
    print("| run | requests (subtask pages) | subtasks | wall | extract stage | floor | client CPU | sandbox CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r.label} | {r.requests:,} ({r.subtask_requests:,}) | {r.subtasks:,} | {r.wall_s:.2f} s | "
            f"{r.extract_s:.2f} s | {_floor(r, args.latency_ms, args.concurrency):.2f} s | {r.client_cpu_s:.1f} s | "
            f"{r.sandbox_cpu_s:.1f} s |"
        )
    if throttled:
        print()
        print("| run | requests | wall | requests / R | wall / (requests / R) | extract stage / (requests / R) |")
        print("|---|---|---|---|---|---|")
        for r in throttled:
            due = r.requests / r.max_rps
            print(
                f"| {r.label} | {r.requests:,} | {r.wall_s:.2f} s | {due:.2f} s | {r.wall_s / due:.3f} | "
                f"{r.extract_s / due:.3f} |"
            )
    print()
    full = {r.mode: r for r in runs if r.label.endswith("full run")}
    nightly = {r.mode: r for r in runs if r.label.endswith("nightly run")}
    base = full.get("none")
    for mode, r in full.items():
        rate = r.requests / r.extract_s
        line = f"{mode}: {r.requests:,} requests in {r.wall_s:.1f} s ({rate:.0f} requests/s in the extract stage)"
        if base is not None and mode != "none":
            line += (
                f", {r.requests - base.requests:+,} requests over none (x{r.requests / base.requests:.1f}), "
                f"{r.wall_s - base.wall_s:+.1f} s"
            )
        if mode in nightly:
            line += f"; nightly {nightly[mode].requests:,} requests in {nightly[mode].wall_s:.1f} s"
        print(line)
        if r.tasks:
            print(f"  {r.subtask_requests / r.tasks:.3f} subtask requests per task ({r.tasks:,} tasks)")
    for r in [*runs, *throttled]:
        if r.client_requests != r.requests:
            print(f"NOTE {r.label}: the client counted {r.client_requests} requests, the sandbox {r.requests}")
    unthrottled = full.get("failed")
    for r in throttled:
        due = r.requests / r.max_rps
        binds = ""
        if unthrottled is not None:
            rate = unthrottled.requests / unthrottled.extract_s
            verdict = "binds" if r.max_rps < rate else "does NOT bind"
            binds = f"; without a budget {rate:.0f} requests/s, so the budget {verdict}"
        print(f"--max-rps {r.max_rps:g}: wall {r.wall_s:.2f} s for requests / R = {due:.2f} s{binds}")
    if throttled and "all" in full:
        r = full["all"]
        for rate in sorted({t.max_rps for t in throttled}):
            print(f"  at --max-rps {rate:g}, the full run with --subtasks all would take {r.requests / rate:.0f} s")


def _floor(r: Run, latency_ms: float, concurrency: int) -> float:
    return r.requests * latency_ms / 1000 / concurrency


def _row(r: Run, latency_ms: float, concurrency: int) -> str:
    return (
        f"{r.label:<28} requests {r.requests:>6} (subtasks {r.subtask_requests:>6})  subtasks {r.subtasks:>6}  "
        f"wall {r.wall_s:7.2f} s  extract {r.extract_s:7.2f} s  floor {_floor(r, latency_ms, concurrency):7.2f} s  "
        f"CPU client {r.client_cpu_s:5.1f} s, sandbox {r.sandbox_cpu_s:5.1f} s"
    )


if __name__ == "__main__":
    main()

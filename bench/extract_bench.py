"""Extract benchmark: wall time against the sequential bound, concurrency 1, and peak memory.

The sandbox runs in its own process with a fixed latency per request and serves task pages from memory after
a warm-up pass (it stands in for a remote server, so its own CPU should not compete with the extractor for
this machine's cores); ``swr-etl extract`` runs as a subprocess, its peak resident memory as the kernel counted
it (``wait4``). Figures are printed, never asserted.

    python -m bench.extract_bench                 # the README's figures (about a minute and a half)
    python -m bench.extract_bench --scale 2 --latency-ms 20 --skip-sequential   # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, clean_env, measure


@dataclass
class Measure:
    label: str
    tasks: int
    executions: int
    requests: int
    wall_s: float
    peak_rss_mib: float


def start_sandbox(scale: float, latency_ms: float, seed: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "pipeline", "sandbox", "--port", "0", "--seed", str(seed), "--scale", str(scale)]
    cmd += ["--latency-ms", str(latency_ms), "--cache-pages"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


_env = clean_env


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=600) as response:
        return json.loads(response.read())


def _post(url: str) -> None:
    request = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30):
        pass


def run_extract(url: str, data_dir: Path, concurrency: int, label: str) -> Measure:
    _post(f"{url}/_sandbox/reset-stats")
    env = _env(
        SWR_ENDPOINT=url,
        SWR_PROJECT_ID="sandbox-project",
        SWR_AUTH_TOKEN="sandbox-token",
        SWR_ETL_DATA_DIR=str(data_dir),
    )
    # task paging alone, as the figures in docs/benchmarks.md: subtasks add requests of their own (--subtasks)
    cmd = [sys.executable, "-m", "pipeline", "--log-format", "json", "extract", "--concurrency", str(concurrency)]
    cmd += ["--subtasks", "none"]
    result = measure(cmd, env)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    stats = _get(f"{url}/_sandbox/stats")
    return Measure(
        label, summary["tasks"], summary["executions"], stats["requests"], result.wall_s, result.peak_rss_mib
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20.0, help="sandbox scale of the large world")
    parser.add_argument("--small-scale", type=float, default=5.0, help="a smaller world, for memory growth")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8, help="the default concurrency")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-sequential", action="store_true", help="skip the --concurrency 1 run")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="swr-bench-"))
    results: list[Measure] = []
    second: Measure | None = None
    try:
        for scale in (args.small_scale, args.scale):
            proc, url = start_sandbox(scale, args.latency_ms, args.seed)
            try:
                # a warm-up pass fills the sandbox's page cache, so that in the measured runs the stand-in
                # for a remote server spends next to no CPU of the two cores it shares with the extractor
                run_extract(url, work / "warm-up", args.concurrency, "warm-up")
                shutil.rmtree(work / "warm-up", ignore_errors=True)
                runs = [(args.concurrency, f"scale {scale:g}, concurrency {args.concurrency}")]
                if scale == args.scale and not args.skip_sequential:
                    runs.append((1, f"scale {scale:g}, concurrency 1"))
                for concurrency, label in runs:
                    data_dir = work / f"s{scale}-c{concurrency}"
                    results.append(run_extract(url, data_dir, concurrency, label))
                    print(_row(results[-1], args.latency_ms), flush=True)
                    if scale == args.scale and concurrency == args.concurrency:
                        # the nightly case: nothing finished changed, only running executions are fetched
                        second = run_extract(url, data_dir, concurrency, "second run, nothing new")
                        print(_row(second, args.latency_ms), flush=True)
                    shutil.rmtree(data_dir, ignore_errors=True)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    small, big = results[0], results[1]
    bound = big.requests * args.latency_ms / 1000
    print()
    print(f"latency {args.latency_ms:g} ms per request; sequential bound = requests x latency")
    print(f"default concurrency: {big.wall_s:.2f} s for {big.tasks} tasks in {big.executions} executions")
    print(f"  sequential bound {bound:.2f} s -> wall / bound = {big.wall_s / bound:.3f} (target <= 0.167)")
    if len(results) > 2:
        seq = results[2]
        print(f"  --concurrency 1: {seq.wall_s:.2f} s -> speed-up x{seq.wall_s / big.wall_s:.1f}")
    if second is not None:
        print(
            f"second run with nothing new: {second.requests} requests (first run {big.requests}) for "
            f"{big.executions} executions, {second.wall_s:.2f} s (first run {big.wall_s:.2f} s)"
        )
    print(
        f"peak RSS {small.peak_rss_mib:.0f} MiB at {small.tasks} tasks, {big.peak_rss_mib:.0f} MiB at {big.tasks} "
        f"tasks: x{big.peak_rss_mib / small.peak_rss_mib:.2f} for x{big.tasks / small.tasks:.1f} the tasks"
    )


def _row(m: Measure, latency_ms: float) -> str:
    bound = m.requests * latency_ms / 1000
    return (
        f"{m.label:<28} tasks {m.tasks:>7}  executions {m.executions:>4}  requests {m.requests:>5}  "
        f"wall {m.wall_s:7.2f} s  bound {bound:7.2f} s  ratio {m.wall_s / bound:.3f}  "
        f"peak RSS {m.peak_rss_mib:5.0f} MiB"
    )


if __name__ == "__main__":
    main()

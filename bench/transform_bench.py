"""Transform-and-load benchmark: `swr-etl rebuild` next to the obvious baseline, at two sizes.

Raw landings are written straight from sandbox worlds (``bench.make_landing``, the same files extract
lands) into ``bench/out/`` once and reused. For each size: ``swr-etl rebuild`` runs three times and
``bench.baseline`` three times under 200,000 tasks (once above: it takes minutes), as subprocesses, their
peak resident memory as the kernel counted it (``wait4``); the table shows the median time and the highest
peak. Then a grouped count over the ``tags`` view of the warehouse is timed (best of three). Figures are
printed, never asserted.

    python -m bench.transform_bench                  # ~118,000 and ~1,000,000 tasks (about 5 minutes)
    python -m bench.transform_bench --scales 28      # the small one only
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.common import ROOT, clean_env, measure

OUT = ROOT / "bench" / "out"


def landing(scale: float, seed: int) -> tuple[Path, int]:
    folder = OUT / f"landing-zst-s{scale:g}-seed{seed}"  # pages as extract lands them today (zstd)
    marker = folder / "tasks.txt"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"writing a raw landing at scale {scale:g} into {folder} (once)...", flush=True)
        cmd = [sys.executable, "-m", "bench.make_landing", str(folder), "--scale", str(scale), "--seed", str(seed)]
        result = measure(cmd)
        marker.write_text(result.stdout.split()[1])
    return folder, int(marker.read_text())


def grouped_count_s(data_dir: Path) -> float:
    best = float("inf")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        for _ in range(3):
            started = time.perf_counter()
            db.sql("SELECT side, repository, count(*) FROM tags GROUP BY ALL").fetchall()
            best = min(best, time.perf_counter() - started)
    return best


def timed(cmd: list[str], runs: int) -> dict[str, Any]:
    """``cmd`` run ``runs`` times: the median wall time (what the table shows), every wall time, the highest
    peak memory. This machine's speed moves by 10 to 20% from minute to minute, more for a 2 s run."""
    results = [measure(cmd, clean_env()) for _ in range(runs)]
    walls = sorted(r.wall_s for r in results)
    return {"s": statistics.median(walls), "all_s": walls, "rss": max(r.peak_rss_mib for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="28,280", help="sandbox scales (28: ~118k tasks, 280: ~1M)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="rebuilds a size (the median is shown)")
    parser.add_argument(
        "--baseline-runs", type=int, default=3, help="baseline runs a size, for landings under 200,000 tasks (else 1)"
    )
    args = parser.parse_args()
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        folder, tasks = landing(scale, args.seed)
        ours = timed([sys.executable, "-m", "pipeline", "rebuild", "--data-dir", str(folder)], args.runs)
        query_s = grouped_count_s(folder)
        row = {"tasks": tasks, "ours_s": ours["s"], "ours_all_s": ours["all_s"], "ours_rss": ours["rss"]}
        row["query_s"] = query_s
        if not args.skip_baseline:
            out = OUT / "baseline-out"
            runs = args.baseline_runs if tasks < 200_000 else 1
            base = timed([sys.executable, "-m", "bench.baseline", str(folder), str(out)], runs)
            shutil.rmtree(out, ignore_errors=True)
            row |= {"base_s": base["s"], "base_all_s": base["all_s"], "base_rss": base["rss"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(
        f"{'tasks':>9}  {'rebuild':>8}  {'tasks/s':>8}  {'peak RSS':>9}  {'baseline':>8}  {'tasks/s':>8}  "
        f"{'peak RSS':>9}  {'speed-up':>8}  {'tags grouped count':>18}"
    )
    for r in rows:
        base = (
            f"{r['base_s']:7.1f}s  {r['tasks'] / r['base_s']:8.0f}  {r['base_rss']:6.0f} MiB  "
            f"{r['base_s'] / r['ours_s']:7.2f}x"
            if "base_s" in r
            else f"{'-':>8}  {'-':>8}  {'-':>9}  {'-':>8}"
        )
        print(
            f"{r['tasks']:>9}  {r['ours_s']:7.1f}s  {r['tasks'] / r['ours_s']:8.0f}  {r['ours_rss']:6.0f} MiB  "
            f"{base}  {r['query_s'] * 1000:15.0f} ms"
        )
    for r in rows:
        walls = ", ".join(f"{w:.2f}" for w in r["ours_all_s"])
        print(f"{r['tasks']:>9}  rebuilds: {walls} s", end="")
        print(f"; baseline: {', '.join(f'{w:.1f}' for w in r['base_all_s'])} s" if "base_all_s" in r else "")
    if len(rows) > 1:
        growth = rows[-1]["ours_rss"] / rows[0]["ours_rss"]
        print(f"peak RSS x{growth:.2f} for x{rows[-1]['tasks'] / rows[0]['tasks']:.1f} the tasks")


if __name__ == "__main__":
    main()

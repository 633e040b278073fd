"""Transform-and-load benchmark: `swr-etl rebuild` next to the obvious baseline, at two sizes.

Raw landings are written straight from sandbox worlds (``bench.make_landing``, the same files extract
lands) into ``bench/out/`` once and reused. For each size: ``swr-etl rebuild`` and ``bench.baseline`` run as
subprocesses, their peak resident memory as the kernel counted it (``wait4``); then a grouped count over the
``tags`` view of the warehouse is timed (best of three). Figures are printed, never asserted.

    python -m bench.transform_bench                  # ~118,000 and ~1,000,000 tasks (several minutes)
    python -m bench.transform_bench --scales 28      # the small one only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="28,280", help="sandbox scales (28: ~118k tasks, 280: ~1M)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        folder, tasks = landing(scale, args.seed)
        ours = measure([sys.executable, "-m", "pipeline", "rebuild", "--data-dir", str(folder)], clean_env())
        query_s = grouped_count_s(folder)
        row = {"tasks": tasks, "ours_s": ours.wall_s, "ours_rss": ours.peak_rss_mib, "query_s": query_s}
        if not args.skip_baseline:
            out = OUT / "baseline-out"
            base = measure([sys.executable, "-m", "bench.baseline", str(folder), str(out)], clean_env())
            shutil.rmtree(out, ignore_errors=True)
            row |= {"base_s": base.wall_s, "base_rss": base.peak_rss_mib}
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
    if len(rows) > 1:
        growth = rows[-1]["ours_rss"] / rows[0]["ours_rss"]
        print(f"peak RSS x{growth:.2f} for x{rows[-1]['tasks'] / rows[0]['tasks']:.1f} the tasks")


if __name__ == "__main__":
    main()

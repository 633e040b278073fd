"""The same load into a local lake and into an S3-compatible store on loopback, side by side.

From one raw landing (``bench.transform_bench`` writes it once into ``bench/out/``), ``swr-etl rebuild`` runs
twice, each in a data directory of its own whose ``raw`` is a link to the landing: once into
``DATA_DIR/lake``, once into ``--lake s3://bench/lake`` on moto's S3 server (started here, on 127.0.0.1).
Then the same grouped count over the ``tags`` view, through each warehouse (best of three). A third row is
a new machine: the landing is uploaded to ``s3://bench/data/raw`` first, then ``swr-etl rebuild --data-dir
s3://bench/data`` runs with an empty work folder (it downloads the landing, then loads). Figures are
printed, never asserted. The S3 server is a Python process on the
same 2 cores: the S3 figures show the cost of the protocol here, not what OBS or AWS would do.

    python -m bench.lake_bench                 # ~118,000 tasks
    python -m bench.lake_bench --scale 280     # ~1,000,000 tasks (moto holds the lake in memory)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from bench.common import clean_env, measure
from bench.transform_bench import OUT, landing

ACCESS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}


def data_dir(name: str, raw: Path) -> Path:
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "raw").symlink_to(raw.resolve())
    return folder


def grouped_count_s(folder: Path, lake: str | None) -> float:
    from pipeline.warehouse import warehouse

    best = float("inf")
    with warehouse.connect(folder, lake) as db:
        for _ in range(3):
            started = time.perf_counter()
            db.sql("SELECT side, repository, count(*) FROM tags GROUP BY ALL").fetchall()
            best = min(best, time.perf_counter() - started)
    return best


def lake_size(lake: str) -> tuple[int, int]:
    from pipeline.load.storage import open_store

    store = open_store(lake)
    files = store.files()
    return len(files), sum(store.fs.get_file_info(store.path(f)).size or 0 for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=28)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = {**ACCESS, "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}"}
    os.environ.update(s3)  # this process reads the remote lake back
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=s3["AWS_ENDPOINT_URL_S3"], allow_bucket_creation=True).create_dir("bench")
    try:
        raw, tasks = landing(args.scale, args.seed)
        rows = []
        from pipeline.extraction.mirror import Mirror

        Mirror(data_dir("lake-bench-upload", raw / "raw"), "s3://bench/data").push()
        for kind, lake in (("local", None), ("s3", "s3://bench/lake"), ("s3 dir", "s3://bench/data/lake")):
            folder = data_dir(f"lake-bench-{kind.replace(' ', '-')}", raw / "raw")
            cmd = [sys.executable, "-m", "pipeline", "rebuild", "--data-dir", str(folder)]
            if kind == "s3 dir":  # a new machine: nothing local
                shutil.rmtree(folder)
                cmd[-1:] = ["s3://bench/data", "--work-dir", str(folder)]
            elif lake:
                cmd += ["--lake", lake]
            loaded = measure(cmd, clean_env(**s3))
            location = lake or str(folder / "lake")
            files, size = lake_size(location)
            row = {
                "lake": kind,
                "tasks": tasks,
                "rebuild_s": loaded.wall_s,
                "peak_rss_mib": round(loaded.peak_rss_mib),
                "files": files,
                "mib": round(size / 2**20, 1),
                "query_s": grouped_count_s(folder, lake),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.stop()
    local, remote, _ = rows
    print()
    print(f"{'lake':>6}  {'tasks':>9}  {'rebuild':>8}  {'tasks/s':>8}  {'peak RSS':>9}  {'files':>6}  {'size':>9}  "
          f"{'tags grouped count':>18}")  # fmt: skip
    for r in rows:
        print(
            f"{r['lake']:>6}  {r['tasks']:9d}  {r['rebuild_s']:7.1f}s  {r['tasks'] / r['rebuild_s']:8.0f}  "
            f"{r['peak_rss_mib']:5d} MiB  {r['files']:6d}  {r['mib']:5.1f} MiB  {r['query_s'] * 1000:15.0f} ms"
        )
    print(
        f"\ns3 / local: rebuild x{remote['rebuild_s'] / local['rebuild_s']:.2f}, "
        f"grouped count x{remote['query_s'] / local['query_s']:.1f}"
    )


if __name__ == "__main__":
    main()

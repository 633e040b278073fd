"""Micro-timings of the pieces of bench/study/polars_transform.py (best of --repeat runs each).

.venv/bin/python bench/study/micro.py --data-dir D [--repeat 2]

It times gzip decoders, so D must be a landing with gzip pages, as extract wrote them before pages became
zstd frames (``bench/out/landing-s28-seed1``, which the study used).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson
import polars as pl
from polars_transform import RESOURCE, judge, outer_msgspec, outer_polars, read_pages

from pipeline.extraction.landing import Landing
from pipeline.transform.transform import plan


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t0)
    return min(times), r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    R = a.repeat
    paths = [f.folder / name for f in plan(Landing(a.data_dir)) for _o, name, *_ in f.pages]
    N = 118_266

    def show(name, s):
        print(f"{name:52s} {s:7.3f} s  {N / s:10,.0f} tasks/s", flush=True)

    s, gz = best(lambda: [p.read_bytes() for p in paths], R)
    show(f"read {len(paths)} gz files ({sum(map(len, gz)) >> 20} MiB)", s)
    s, bodies = best(lambda: [gzip.decompress(b) for b in gz], R)
    show(f"gunzip 1 thread ({sum(map(len, bodies)) >> 20} MiB out)", s)
    s, _ = best(lambda: [zlib.decompress(b, 31) for b in gz], R)
    show("zlib.decompress(wbits=31) 1 thread", s)
    with ThreadPoolExecutor(2) as pool:
        s, _ = best(lambda: list(pool.map(lambda b: zlib.decompress(b, 31), gz)), R)
    show("zlib.decompress 2 threads", s)
    s, (pages, bodies) = best(lambda: read_pages(a.data_dir, 2), R)
    show("step 1 as in prototype (plan+read+gunzip, 2 threads)", s)

    s, df = best(lambda: outer_polars(pages, bodies), R)
    show("outer: polars read_ndjson (all fields String) + explode", s)
    s, _ = best(lambda: outer_msgspec(pages, bodies), R)
    show("outer: msgspec typed decode per page -> polars", s)
    s, _ = best(lambda: [orjson.loads(b) for b in bodies], R)
    show("outer: orjson.loads per page (dicts only, no frame)", s)

    txt = pl.concat([df["src_resource"], df["dst_resource"]]).rename("txt")
    s, errs = best(lambda: [judge(t) for t in txt.to_list()], R)
    show("msgspec strict judge of all sides (incl. to_list)", s)
    err = pl.Series(errs, dtype=pl.String)
    clean = pl.select(pl.when(err.is_null()).then(txt)).to_series()
    print(f"  sides={txt.len()} bad={err.is_not_null().sum()} MiB={txt.str.len_bytes().sum() >> 20}")

    s, _ = best(lambda: clean.str.json_decode(RESOURCE), R)
    show("json_decode clean column, one call", s)
    per_page = df.select(pl.col("page_no")).to_series()
    pp = pl.concat([per_page, per_page])
    frame = pl.DataFrame({"page_no": pp, "t": clean})
    parts = frame.partition_by("page_no", maintain_order=True)
    s, _ = best(lambda: [p["t"].str.json_decode(RESOURCE) for p in parts], R)
    show(f"json_decode per page ({len(parts)} calls)", s)
    chunks = [pl.concat([p["t"] for p in parts[i : i + 8]]) for i in range(0, len(parts), 8)]
    s, _ = best(lambda: [c.str.json_decode(RESOURCE) for c in chunks], R)
    show(f"json_decode per 8 pages ({len(chunks)} calls)", s)
    with ThreadPoolExecutor(2) as pool:
        s, _ = best(lambda: list(pool.map(lambda c: c.str.json_decode(RESOURCE), chunks)), R)
    show("json_decode per 8 pages, 2 Python threads", s)
    two = pl.DataFrame({"a": clean[: clean.len() // 2], "b": clean[clean.len() // 2 :]})
    s, _ = best(lambda: two.select(pl.col("a", "b").str.json_decode(RESOURCE)), R)
    show("json_decode as two columns in one select", s)
    s, _ = best(lambda: clean.str.json_path_match("$.metadata.repository.name"), R)
    show("json_path_match $.metadata.repository.name (all)", s)
    s, _ = best(lambda: txt.str.json_path_match("$.type"), R)
    show("json_path_match $.type (all, incl. bad rows)", s)


if __name__ == "__main__":
    main()

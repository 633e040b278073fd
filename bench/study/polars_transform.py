"""Study prototype (not part of the pipeline; needs `pip install polars msgspec`, which the project does not
depend on): raw task pages -> tasks/artifacts/tags Parquet with polars.

    .venv/bin/python bench/study/polars_transform.py --data-dir D [--out DIR] [--outer polars|msgspec]
        [--check none|fallback|strict] [--threads N]

Steps, each timed alone:
  1 read + gunzip every page of the newest complete fetch of each execution (same plan() as the pipeline)
  2 outer JSON -> tasks frame (polars read_ndjson over the pages joined by newlines, or msgspec per page)
  3 src/dst resources: str.json_decode with an explicit dtype, explode into artifacts and tags (both sides)
    --check none      json_decode of the whole column (raises on the first bad row of the landing)
    --check fallback  json_decode per chunk of pages; a chunk that raises (or changes length) is done row by
                      row with msgspec to find and explain its bad rows, which are nulled
    --check strict    every resource is validated with msgspec first (catches polars' silent coercions too)
  4 write tasks/artifacts/tags to Parquet (zstd), one file each (no hive partitioning)
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import msgspec
import polars as pl

from pipeline.extraction.landing import Landing, decompress_page
from pipeline.transform.transform import _TASK_FIELDS, plan

TASK_FIELDS = _TASK_FIELDS  # the task keys the pipeline reads, as it reads them
PAGE_SCHEMA = {"tasks": pl.List(pl.Struct({f: pl.String for f in TASK_FIELDS})), "total": pl.Int64}

ARTIFACT = pl.Struct({"type": pl.String, "digest": pl.String, "tags": pl.List(pl.String)})
RESOURCE = pl.Struct(
    {
        "type": pl.String,
        "deleted": pl.Boolean,
        "override": pl.Boolean,
        "metadata": pl.Struct(
            {
                "repository": pl.Struct({"name": pl.String, "metadata": pl.Struct({"public": pl.String})}),
                "artifacts": pl.List(ARTIFACT),
            }
        ),
    }
)


# strict shape of a resource, as the pipeline judges it (required keys; null allowed where it is allowed)
class MArtifact(msgspec.Struct):
    digest: str
    tags: list[str] | None


class MRepo(msgspec.Struct):
    name: str


class MMeta(msgspec.Struct):
    repository: MRepo
    artifacts: list[MArtifact] | None


class MResource(msgspec.Struct):
    metadata: MMeta


_strict = msgspec.json.Decoder(MResource)


def judge(txt: str | None) -> str | None:
    """The reason a resource is rejected, or None (the slow, exact path)."""
    if txt is None:
        return "missing or null"
    if not txt.strip():
        return "empty string"
    try:
        _strict.decode(txt)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        return ("invalid: " if isinstance(exc, msgspec.ValidationError) else "invalid JSON: ") + str(exc)
    return None


class Timer:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append((name, now - self._t))
        self._t = now


def read_pages(data_dir: Path, threads: int):
    fetches = plan(Landing(data_dir))
    meta, paths = [], []
    for f in fetches:
        pid = f.execution.get("policy_id")
        for offset, name, _rows, pass_no, _bytes in f.pages:
            paths.append(f.folder / name)
            meta.append(
                (
                    f.instance_id,
                    f.execution_id,
                    f.run_id,
                    offset,
                    pass_no,
                    f.month,
                    pid if isinstance(pid, int) else None,
                )
            )

    def load(p: Path) -> bytes:
        return decompress_page(p, p.read_bytes())

    with ThreadPoolExecutor(threads) as pool:
        bodies = list(pool.map(load, paths, chunksize=16))
    pages = pl.DataFrame(
        meta,
        orient="row",
        schema={
            "instance_id": pl.String,
            "execution_id": pl.Int64,
            "run_id": pl.String,
            "page_offset": pl.Int64,
            "pass_no": pl.Int32,
            "execution_month": pl.String,
            "policy_id": pl.Int64,
        },
    ).with_row_index("page_no")
    return pages, bodies


def outer_polars(pages: pl.DataFrame, bodies: list[bytes]) -> pl.DataFrame:
    # a page is one line (the API sends compact JSON); a newline inside a valid JSON document can only be
    # whitespace, so it could be blanked first if a page ever was pretty-printed
    raw = pl.read_ndjson(io.BytesIO(b"\n".join(bodies)), schema=PAGE_SCHEMA)
    assert raw.height == len(bodies)
    df = (
        raw.with_row_index("page_no")
        .select("page_no", "tasks")
        .with_columns(pos=pl.int_ranges(pl.col("tasks").list.len(), dtype=pl.Int32))
        .explode("tasks", "pos")
        .filter(pl.col("tasks").is_not_null())
        .unnest("tasks")
    )
    return df


class MTask(msgspec.Struct):
    id: int | str | None = None
    execution_id: int | str | None = None
    resource_type: str | None = None
    src_resource: str | dict | None = None
    dst_resource: str | dict | None = None
    operation: str | None = None
    job_id: str | None = None
    status: str | None = None
    StatusRevision: int | str | None = None
    status_revision: int | str | None = None
    start_time: str | None = None
    end_time: str | None = None


class MPage(msgspec.Struct):
    tasks: list[MTask]


def outer_msgspec(pages: pl.DataFrame, bodies: list[bytes]) -> pl.DataFrame:
    dec = msgspec.json.Decoder(MPage)
    enc = msgspec.json.Encoder()
    cols: dict[str, list] = {f: [] for f in ("page_no", "pos", *TASK_FIELDS)}
    for page_no, body in enumerate(bodies):
        tasks = dec.decode(body).tasks  # a page that fails here would go to a slow path (none in this landing)
        n = len(tasks)
        cols["page_no"].extend([page_no] * n)
        cols["pos"].extend(range(n))
        for f in TASK_FIELDS:
            vals = [getattr(t, f) for t in tasks]
            if f in ("src_resource", "dst_resource"):
                vals = [enc.encode(v).decode() if isinstance(v, dict) else v for v in vals]
            elif f in ("id", "execution_id", "StatusRevision", "status_revision"):
                vals = [None if v is None else str(v) for v in vals]
            cols[f].extend(vals)
    return pl.DataFrame(cols, schema={"page_no": pl.UInt32, "pos": pl.Int32, **{f: pl.String for f in TASK_FIELDS}})


def type_tasks(df: pl.DataFrame, pages: pl.DataFrame) -> pl.DataFrame:
    def ts(c: str) -> pl.Expr:
        s = pl.col(c).str.strip_chars().str.replace(r"Z$", "+00:00")
        return s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us").dt.convert_time_zone("UTC")

    rev = pl.coalesce("StatusRevision", "status_revision").str.strip_chars()
    return df.join(
        pages.select("page_no", "instance_id", "run_id", "page_offset", "execution_month", "policy_id"), on="page_no"
    ).with_columns(
        task_id=pl.col("id").str.strip_chars().cast(pl.Int64, strict=False),
        execution_id=pl.col("execution_id").str.strip_chars().cast(pl.Int64, strict=False),
        status_revision=rev.cast(pl.Int64, strict=False),
        start_time=ts("start_time"),
        end_time=ts("end_time"),
    )


def decode_resources(sides: pl.DataFrame, check: str, chunk_pages: int, stats: dict) -> tuple[pl.DataFrame, list]:
    """sides: page_no, row (index into sides), txt. Returns (sides with struct p and error), rejects."""
    rejects: list[tuple[int, str]] = []
    txt = sides["txt"]
    pre_bad = txt.is_null() | (txt.str.strip_chars() == "")
    if check == "strict":
        t0 = time.perf_counter()
        errs = [judge(t) for t in txt.to_list()]
        stats["strict_check_s"] = time.perf_counter() - t0
        err = pl.Series("error", errs, dtype=pl.String)
        t0 = time.perf_counter()
        clean = sides.select(pl.when(err.is_null()).then(pl.col("txt")).alias("t"), "page_no")
        # one json_decode over the whole column is ~4x slower than over chunks (measured), so chunk it
        step = chunk_pages * 100  # contiguous slices, so the order of the rows is kept
        parts = [clean["t"].slice(i, step) for i in range(0, clean.height, step)]
        with ThreadPoolExecutor(2) as pool:
            p = pl.concat(list(pool.map(lambda c: c.str.json_decode(RESOURCE), parts)))
        stats["decode_s"] = time.perf_counter() - t0
        return sides.with_columns(p=p, error=err), rejects
    if check == "none":
        p = sides.select(pl.when(~pre_bad).then(pl.col("txt")).str.json_decode(RESOURCE).alias("p"))["p"]
        return sides.with_columns(p=p, error=pl.when(pre_bad).then(pl.lit("missing or empty"))), rejects
    # fallback: chunks of pages; a chunk that raises is judged row by row
    sides = sides.with_columns(chunk=(pl.col("page_no") // chunk_pages), pre_bad=pre_bad)
    out = []
    failed = rows_judged = 0
    for (_c,), part in sides.group_by("chunk", maintain_order=True):
        clean = part.select(pl.when(~pl.col("pre_bad")).then(pl.col("txt")).alias("t"))["t"]
        err = pl.when(part["pre_bad"]).then(pl.lit("missing or empty")).otherwise(None)
        try:
            p = clean.str.json_decode(RESOURCE)
            if p.len() != clean.len():
                raise ValueError("json_decode changed the length")
            e = part.select(err.alias("error"))["error"]
        except Exception:
            failed += 1
            errs = [judge(t) for t in part["txt"].to_list()]
            rows_judged += len(errs)
            e = pl.Series("error", errs, dtype=pl.String)
            p = part.select(pl.when(e.is_null()).then(pl.col("txt")).alias("t"))["t"].str.json_decode(RESOURCE)
        out.append(part.with_columns(p=p, error=e))
    stats["chunks_failed"] = failed
    stats["chunks"] = len(out)
    stats["rows_judged_slowly"] = rows_judged
    return pl.concat(out).drop("chunk", "pre_bad"), rejects


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--outer", choices=("polars", "msgspec"), default="polars")
    ap.add_argument("--check", choices=("none", "fallback", "strict"), default="fallback")
    ap.add_argument("--chunk-pages", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    out = args.out or Path(f"/tmp/polars-study-{os.getpid()}")
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {}
    t = Timer()

    pages, bodies = read_pages(args.data_dir, args.threads)
    t.lap("1 read+gunzip")

    df = (outer_polars if args.outer == "polars" else outer_msgspec)(pages, bodies)
    del bodies
    t.lap(f"2a outer parse ({args.outer})")
    tasks = type_tasks(df, pages)
    del df
    tasks = tasks.filter(pl.col("task_id").is_not_null())
    t.lap("2b type tasks")

    keys = ["instance_id", "execution_id", "task_id", "execution_month"]
    sides = pl.concat(
        [
            tasks.select(*keys, "page_no", side=pl.lit("src"), txt=pl.col("src_resource")),
            tasks.select(*keys, "page_no", side=pl.lit("dst"), txt=pl.col("dst_resource")),
        ]
    )
    res, _ = decode_resources(sides, args.check, args.chunk_pages, stats)
    t.lap(f"3a json_decode ({args.check})")

    ok = res.filter(pl.col("error").is_null() & pl.col("p").is_not_null())
    # a side that decoded but is structurally unusable (null metadata/repository/name) is a reject too
    ok = ok.with_columns(
        repository=pl.col("p").struct.field("metadata").struct.field("repository").struct.field("name"),
        arts=pl.col("p").struct.field("metadata").struct.field("artifacts"),
    )
    artifacts = (
        ok.select(
            *keys, "side", "repository", "arts", artifact_idx=pl.int_ranges(pl.col("arts").list.len(), dtype=pl.Int32)
        )
        .explode("arts", "artifact_idx")
        .filter(pl.col("arts").is_not_null())
        .unnest("arts")
        .rename({"type": "artifact_type"})
        .with_columns(tag_count=pl.col("tags").list.len().fill_null(0).cast(pl.Int32))
    )
    tags = (
        artifacts.filter(pl.col("tags").is_not_null())
        .select(
            *keys,
            "side",
            "artifact_idx",
            "repository",
            "digest",
            "tags",
            tag_idx=pl.int_ranges(pl.col("tags").list.len(), dtype=pl.Int32),
        )
        .explode("tags", "tag_idx")
        .filter(pl.col("tags").is_not_null())
        .rename({"tags": "tag"})
    )
    artifacts = artifacts.drop("tags")
    t.lap("3b explode artifacts+tags")

    # per-side columns of tasks (repository, counts, rejected flags)
    per_side = res.select(
        "instance_id",
        "execution_id",
        "task_id",
        "side",
        repository=pl.col("p").struct.field("metadata").struct.field("repository").struct.field("name"),
        n_art=pl.when(pl.col("error").is_null()).then(
            pl.col("p").struct.field("metadata").struct.field("artifacts").list.len().fill_null(0)
        ),
        rejected=pl.col("error").is_not_null(),
    ).pivot(on="side", index=["instance_id", "execution_id", "task_id"], values=["repository", "n_art", "rejected"])
    tasks_out = tasks.join(per_side, on=["instance_id", "execution_id", "task_id"], how="left").select(
        "instance_id",
        "execution_id",
        "task_id",
        "policy_id",
        "resource_type",
        "operation",
        "job_id",
        "status",
        "status_revision",
        "start_time",
        "end_time",
        duration_s=(pl.col("end_time") - pl.col("start_time")).dt.total_microseconds() / 1e6,
        src_repository="repository_src",
        dst_repository="repository_dst",
        src_artifacts="n_art_src",
        dst_artifacts="n_art_dst",
        src_rejected="rejected_src",
        dst_rejected="rejected_dst",
        run_id="run_id",
        execution_month="execution_month",
    )
    t.lap("3c tasks columns")

    for name, frame in (("tasks", tasks_out), ("artifacts", artifacts), ("tags", tags)):
        frame.write_parquet(out / f"{name}.parquet", compression="zstd")
    t.lap("4 write parquet")

    total = sum(s for _, s in t.steps)
    n = tasks_out.height
    for name, s in t.steps:
        print(f"{name:34s} {s:7.3f} s  {n / s:10,.0f} tasks/s")
    print(f"{'TOTAL':34s} {total:7.3f} s  {n / total:10,.0f} tasks/s")
    print(
        f"rows: tasks={tasks_out.height} artifacts={artifacts.height} tags={tags.height} "
        f"rejected sides={res['error'].is_not_null().sum()} {stats}"
    )
    try:
        import resource

        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    except Exception:
        pass


if __name__ == "__main__":
    main()

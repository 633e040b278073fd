"""The transform written the obvious way, for the benchmark to compare against.

``json.loads`` per page and per resource, Python lists per column, ``pyarrow.Table.from_pydict``, one
``write_table`` per table at the end. Same inputs (the newest complete fetch of every execution), same
tables (tasks, artifacts, tags, rejects), no partitioning. Not used by the pipeline.

    python -m bench.baseline DATA_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.landing import Landing, decompress_page
from pipeline.transform import plan


def main(data_dir: Path, out: Path) -> int:
    tasks: dict[str, list[Any]] = {
        k: []
        for k in (
            "instance_id",
            "execution_id",
            "task_id",
            "status",
            "operation",
            "start_time",
            "end_time",
            "src_repository",
            "dst_repository",
        )
    }
    artifacts: dict[str, list[Any]] = {
        k: []
        for k in (
            "instance_id",
            "execution_id",
            "task_id",
            "side",
            "artifact_idx",
            "repository",
            "artifact_type",
            "digest",
        )
    }
    tags: dict[str, list[Any]] = {
        k: []
        for k in (
            "instance_id",
            "execution_id",
            "task_id",
            "side",
            "artifact_idx",
            "tag_idx",
            "repository",
            "digest",
            "tag",
        )
    }
    rejects: dict[str, list[Any]] = {k: [] for k in ("instance_id", "execution_id", "task_id", "field", "error", "raw")}
    for fetch in plan(Landing(data_dir)):
        iid, eid = fetch.instance_id, fetch.execution_id
        for _, name, *_ in fetch.pages:
            page = json.loads(decompress_page(name, (fetch.folder / name).read_bytes()))
            for task in page.get("tasks") or []:
                tid = task.get("id")
                repos = {}
                for side in ("src", "dst"):
                    raw = task.get(f"{side}_resource")
                    try:
                        res = json.loads(raw) if isinstance(raw, str) else raw
                        repo = res["metadata"]["repository"]["name"]
                        arts = res["metadata"]["artifacts"] or []
                        for i, art in enumerate(arts):
                            for key, value in (
                                ("instance_id", iid),
                                ("execution_id", eid),
                                ("task_id", tid),
                                ("side", side),
                                ("artifact_idx", i),
                                ("repository", repo),
                                ("artifact_type", art["type"]),
                                ("digest", art["digest"]),
                            ):
                                artifacts[key].append(value)
                            for j, tag in enumerate(art["tags"] or []):
                                for key, value in (
                                    ("instance_id", iid),
                                    ("execution_id", eid),
                                    ("task_id", tid),
                                    ("side", side),
                                    ("artifact_idx", i),
                                    ("tag_idx", j),
                                    ("repository", repo),
                                    ("digest", art["digest"]),
                                    ("tag", tag),
                                ):
                                    tags[key].append(value)
                        repos[side] = repo
                    except (ValueError, TypeError, KeyError) as exc:
                        for key, value in (
                            ("instance_id", iid),
                            ("execution_id", eid),
                            ("task_id", tid),
                            ("field", f"{side}_resource"),
                            ("error", str(exc)),
                            ("raw", raw),
                        ):
                            rejects[key].append(value)
                for key, value in (
                    ("instance_id", iid),
                    ("execution_id", eid),
                    ("task_id", tid),
                    ("status", task.get("status")),
                    ("operation", task.get("operation")),
                    ("start_time", task.get("start_time")),
                    ("end_time", task.get("end_time")),
                    ("src_repository", repos.get("src")),
                    ("dst_repository", repos.get("dst")),
                ):
                    tasks[key].append(value)
    out.mkdir(parents=True, exist_ok=True)
    for name, columns in (("tasks", tasks), ("artifacts", artifacts), ("tags", tags), ("rejects", rejects)):
        pq.write_table(pa.Table.from_pydict(columns), out / f"{name}.parquet", compression="zstd")
    return len(tasks["task_id"])


if __name__ == "__main__":
    started = time.perf_counter()
    n = main(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps({"tasks": n, "seconds": round(time.perf_counter() - started, 3)}))

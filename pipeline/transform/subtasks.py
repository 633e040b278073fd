"""The ``subtasks`` rows of one execution's task fetch, read in Python (subtasks are few: by default only those
of tasks that did not succeed), with the readers the small tables use (:mod:`pipeline.transform.values`).

The subtasks loaded with an execution are those landed by the same run as its tasks
(:mod:`pipeline.extraction.subtaskfetch`), so a rebuild from the landing gives the same rows. A value that
does not read leaves its column null and gives a ``rejects`` row (``subtask.start_time``, ...); an item that
is not an object, or has no readable id, is one ``subtask`` or ``subtask.id`` reject and no row; a page that
cannot be read is one ``subtask_page`` reject. A subtask id seen again in the same task keeps its first row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import names
from pipeline.errors import LandingError
from pipeline.landing import MANIFEST, Landing
from pipeline.schema import REJECTS, SUBTASKS, Table
from pipeline.transform.plan import Fetch
from pipeline.transform.values import READERS, read_int

KIND = "subtasks"  # raw/subtasks/instance_id=I/execution_id=E/run_id=R/task_id=T/: one fetch per task
LIST_KEYS = ("sub_tasks", "subtasks")  # the documented key of a page's subtasks, and the spelling some versions send


def subtask_folder(landing_root: Path, instance_id: str, execution_id: int, run_id: str) -> Path:
    """The folder of one execution's subtask fetches in run ``run_id`` (one ``task_id=T`` folder each)."""
    return (
        landing_root
        / KIND
        / names.folder("instance_id", instance_id)
        / names.folder("execution_id", execution_id)
        / names.folder("run_id", run_id)
    )


# column -> reader: what a subtask row takes from its record (fields of the same names)
_FIELDS = {
    "job_id": "str",
    "namespace": "str",
    "repository": "str",
    "tag": "str",
    "digest": "str",
    "status": "str",
    "status_text": "str",
    "start_time": "time",
    "end_time": "time",
}


def subtask_tables(fetch: Fetch) -> tuple[pa.Table, pa.Table]:
    """The ``subtasks`` rows and their ``rejects`` rows of one execution's fetch (both with every column)."""
    raw_root = fetch.folder.parents[3]  # raw/tasks/instance_id=I/execution_id=E/run_id=R
    base = subtask_folder(raw_root, fetch.instance_id, fetch.execution_id, fetch.run_id)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    rejects: list[dict[str, Any]] = []
    keys = {"instance_id": fetch.instance_id, "execution_id": fetch.execution_id}
    tail = {"run_id": fetch.run_id, "execution_month": fetch.month}
    for path in sorted(base.glob(f"*/{MANIFEST}")) if base.exists() else ():
        try:
            manifest = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LandingError(f"unreadable manifest {path}: {exc}", path=str(path)) from exc
        task_id = int(manifest["task_id"])

        def reject(
            name: str, error: str, raw: str | None, offset: int, position: int | None, task_id: int = task_id
        ) -> None:
            rejects.append(
                keys
                | {"task_id": task_id, "field": name, "error": error, "raw": raw}
                | {"page_offset": offset, "position": position}
                | tail
            )

        for page in manifest["pages"]:
            offset = int(page["offset"])
            try:
                body = json.loads(Landing.read_page(path.parent, page))
            except (LandingError, ValueError) as exc:
                reject("subtask_page", f"the page cannot be read: {exc}", None, offset, None)
                continue
            items = next((body[k] for k in LIST_KEYS if isinstance(body, dict) and k in body), None)
            for position, item in enumerate(items if isinstance(items, list) else []):
                raw = json.dumps(item, ensure_ascii=False)
                if not isinstance(item, dict):
                    reject("subtask", "not an object", raw, offset, position)
                    continue
                subtask_id, why = read_int(item.get("id"))
                if subtask_id is None:
                    reject("subtask.id", why or "no id", raw, offset, position)
                    continue
                if (task_id, subtask_id) in rows:
                    continue
                row = keys | {"task_id": task_id, "subtask_id": subtask_id} | tail
                for column, reader in _FIELDS.items():
                    row[column], why = READERS[reader](item.get(column))
                    if why is not None:
                        reject(f"subtask.{column}", why, raw, offset, position)
                rows[(task_id, subtask_id)] = row
    return _table(SUBTASKS, [rows[k] for k in sorted(rows)]), _table(REJECTS, rejects)


def _table(table: Table, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({name: [row.get(name) for row in rows] for name in table.columns}, schema=table.schema)

"""The per-tag subtasks of an execution's tasks: which tag of a task failed, and why.

Fetched once every task page of the execution is in, and before its task manifest is written: a task fetch
that is complete has its subtasks landed too, so the load takes the subtasks of the same run as the tasks,
and an execution not fetched again (incremental) has its subtasks not fetched again. Which tasks:
``--subtasks failed`` (the default) those that ended without succeeding (Failed, Stopped, or a status the
API made up: the ones with failures to explain), ``all`` every task, ``none`` none. Layout, one fetch (pages
and manifest) per task::

    raw/subtasks/instance_id=I/execution_id=E/run_id=R/task_id=T/page-000000000.json.zst

A failing request fails the execution as a failing task page does: its task manifest is not written, and
the next run fetches it again. A 404 does not: a service that does not offer the listing (or a task it no
longer knows) would otherwise fail every run; the task's fetch completes with what landed, and a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline import names
from pipeline.api.paging import MAX_LIMIT, iterate_pages
from pipeline.errors import ApiError, AuthError
from pipeline.extraction.pages import land_page, rows_and_total
from pipeline.landing import FetchWriter, Landing
from pipeline.transform.subtasks import KIND, LIST_KEYS, subtask_folder
from pipeline.transform.values import read_int

if TYPE_CHECKING:
    from pipeline.api.client import SwrClient
    from pipeline.extraction.listing import ExecutionRef

log = logging.getLogger(__name__)


#: tasks ``--subtasks failed`` skips: those that succeeded, and those still running, which have no failure to
#: explain yet (their execution is fetched again, with them, until it ends)
UNEXPLAINED = frozenset({"Succeed", "InProgress", "Pending", "Initialized"})


def chosen(tasks: dict[Any, tuple[Any, Any]], mode: str) -> list[int]:
    """The ids of the tasks whose subtasks ``mode`` asks for, in id order. ``tasks``: each task's id as sent
    and its status; ids that do not read as integers name no subtask listing (their task row is rejected)."""
    if mode == "none":
        return []
    ids = set()
    for raw_id, status in tasks.values():
        task_id = read_int(raw_id)[0]
        if task_id is not None and (mode == "all" or status not in UNEXPLAINED):
            ids.add(task_id)
    return sorted(ids)


@dataclass
class SubtaskCounts:
    """Subtask pages fetched and subtasks landed for one execution (added to the extract's summary)."""

    requests: int = 0
    subtasks: int = 0


def fetch_subtasks(
    client: SwrClient, landing: Landing, run_id: str, ref: ExecutionRef, task_ids: list[int], counts: SubtaskCounts
) -> None:
    """Page and land the subtasks of these tasks of one execution, one task after another (the extractor gives
    each call one task, and runs them side by side), counting into ``counts``. Raises what the client raises;
    the caller fails the execution then."""
    base = subtask_folder(landing.root, ref.instance_id, ref.execution_id, run_id)
    for task_id in task_ids:
        writer = FetchWriter(
            base / names.folder("task_id", task_id),
            {"kind": KIND, "run_id": run_id, "instance_id": ref.instance_id}
            | {"execution_id": ref.execution_id, "task_id": task_id},
        )
        path = client.path(
            "instances", ref.instance_id, "replication", "executions", ref.execution_id, "tasks", task_id, "subtasks"
        )

        def page(offset: int, limit: int, writer: FetchWriter = writer, path: str = path) -> tuple[list[Any], int]:
            response = client.get(path, {"offset": offset, "limit": limit})
            key = next((k for k in LIST_KEYS if k in response.data), LIST_KEYS[0])
            rows, total = rows_and_total(response, key)
            writer.add(land_page(writer, response, offset, limit, len(rows), total))
            counts.requests += 1
            return rows, total

        seen = 0
        try:
            for result in iterate_pages(page, MAX_LIMIT, key=_subtask_key):
                seen += len(result.rows)
        except ApiError as exc:
            if exc.status != 404 or isinstance(exc, AuthError):
                raise
            counts.requests += 1
            log.warning("the subtasks of task %s of execution %s are not served (HTTP 404): %d landed",
                        task_id, ref.execution_id, seen)  # fmt: skip
        writer.complete(subtasks=seen)
        counts.subtasks += seen


def _subtask_key(row: Any) -> Any:
    """Tells subtasks apart, so that a server repeating a full page ends the listing."""
    return repr(row.get("id")) if isinstance(row, dict) else repr(row)

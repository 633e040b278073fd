"""What to transform, and in what pieces: the newest complete fetch of each execution (:func:`plan`), cut into
batches (:func:`batches`) and lanes of whole partitions that run side by side (:func:`lanes`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.landing import Landing
from pipeline.transform.times import execution_month
from pipeline.transform.values import read_int

log = logging.getLogger(__name__)

# Tasks a batch, in each lane: each batch pays a fixed cost, each task in it some memory (decisions 0005, 0012)
DEFAULT_BATCH_TASKS = 50_000
# ... and at most this many bytes of page bodies (as landed, before compression): the batch is held as one
# Arrow table, outside DuckDB's memory limit, so a landing of very large resources makes smaller batches
DEFAULT_BATCH_BYTES = 256 << 20

Page = tuple[int, str, int, int, int]  # a landed page: offset, file name, rows, pass, bytes of its body (0: unknown)


@dataclass(frozen=True)
class Fetch:
    """The newest complete fetch of one execution's tasks, as found in the raw landing."""

    instance_id: str
    execution_id: int
    run_id: str
    folder: Path
    pages: tuple[Page, ...]
    execution: dict[str, Any]
    # Set when this is one part of a fetch too large for a batch (see :func:`batches`): every page of the
    # fetch, across which its duplicated task ids are settled (unless ``id_repeats`` is 0).
    all_pages: tuple[Page, ...] | None = None
    # How many of its tasks repeat an earlier task's id, as the extract counted them (the manifest's
    # ``task_id_repeats``; None from landings written before it was recorded): with none, a fetch in parts
    # needs no settling across its pages (the transformer settles them first).
    id_repeats: int | None = None
    # False when the extract saw fewer tasks than the execution reports (the manifest's ``missing`` or
    # ``incomplete``): the next run fetches it again, even when only the lake remembers it
    complete: bool = True

    @property
    def tasks(self) -> int:
        return sum(page[2] for page in self.pages)

    @property
    def bytes(self) -> int:
        return sum(page[4] for page in self.pages)

    @property
    def first_part(self) -> bool:
        return self.all_pages is None or self.pages[:1] == self.all_pages[:1]

    @property
    def month(self) -> str:
        return execution_month(self.execution.get("created_at"))

    @property
    def key(self) -> tuple[str, int]:
        return (self.instance_id, self.execution_id)

    @property
    def partition(self) -> tuple[str, str]:
        return (self.instance_id, self.month)


def plan(landing: Landing, only: Iterable[tuple[str, int]] | None = None) -> list[Fetch]:
    """The newest complete fetch of every execution (or of ``only`` those), in (instance, execution) order."""
    wanted = set(only) if only is not None else None
    newest: dict[tuple[str, int], Fetch] = {}
    for manifest in landing.manifests("tasks"):
        execution_id, why = read_int(manifest.get("execution_id"))
        if execution_id is None:  # landed by a version that fetched any id; no lake column holds this one
            log.warning("not loading the tasks landed in %s: execution id %s", manifest["folder"], why)
            continue
        key = (str(manifest["instance_id"]), execution_id)
        if wanted is not None and key not in wanted:
            continue
        current = newest.get(key)
        if current is not None and current.run_id > manifest["run_id"]:
            continue
        newest[key] = Fetch(
            instance_id=key[0],
            execution_id=key[1],
            run_id=str(manifest["run_id"]),
            folder=Path(manifest["folder"]),
            pages=tuple(
                (int(p["offset"]), str(p["file"]), int(p["rows"]), int(p.get("pass_no", 0)), int(p.get("bytes") or 0))
                for p in manifest["pages"]
            ),
            execution=dict(manifest.get("execution") or {}),
            id_repeats=read_int(manifest.get("task_id_repeats"))[0],  # anything but 0: settled
            complete=not manifest.get("missing") and not manifest.get("incomplete"),
        )
    return [newest[key] for key in sorted(newest)]


def batches(
    fetches: Iterable[Fetch], batch_tasks: int = DEFAULT_BATCH_TASKS, batch_bytes: int = DEFAULT_BATCH_BYTES
) -> Iterator[list[Fetch]]:
    """Whole executions, about ``batch_tasks`` tasks and at most about ``batch_bytes`` bytes of pages a batch;
    an execution larger than that is cut into parts of whole pages, each a batch alone (its duplicated task
    ids are settled across all its pages first, by :meth:`Transformer.transform`), so that memory follows the
    batch size, not the largest execution.

    Executions are taken in partition order, so a batch spans few partitions; DuckDB works best on large
    batches (see :data:`DEFAULT_BATCH_TASKS`).
    """
    batch: list[Fetch] = []
    tasks = size = 0
    for fetch in sorted(fetches, key=lambda f: (f.instance_id, f.month, f.execution_id)):
        if (fetch.tasks > batch_tasks or fetch.bytes > batch_bytes) and len(fetch.pages) > 1:
            if batch:
                yield batch
                batch, tasks, size = [], 0, 0
            yield from ([part] for part in _parts(fetch, batch_tasks, batch_bytes))
            continue
        if batch and (tasks + fetch.tasks > batch_tasks or size + fetch.bytes > batch_bytes):
            yield batch
            batch, tasks, size = [], 0, 0
        batch.append(fetch)
        tasks += fetch.tasks
        size += fetch.bytes
    if batch:
        yield batch


def _parts(fetch: Fetch, batch_tasks: int, batch_bytes: int) -> Iterator[Fetch]:
    """``fetch`` in parts of consecutive whole pages, at most ``batch_tasks`` tasks and ``batch_bytes`` bytes
    each (or one page)."""
    part: list[Page] = []
    tasks = size = 0
    for page in fetch.pages:
        if part and (tasks + page[2] > batch_tasks or size + page[4] > batch_bytes):
            yield dataclasses.replace(fetch, pages=tuple(part), all_pages=fetch.pages)
            part, tasks, size = [], 0, 0
        part.append(page)
        tasks += page[2]
        size += page[4]
    if part:
        yield dataclasses.replace(fetch, pages=tuple(part), all_pages=fetch.pages)


def lanes(
    fetches: Iterable[Fetch], n: int, batch_tasks: int = DEFAULT_BATCH_TASKS, batch_bytes: int = DEFAULT_BATCH_BYTES
) -> list[list[list[Fetch]]]:
    """Split the work into ``n`` lanes that run side by side, each a list of batches (see :func:`batches`).

    A partition (instance, month) belongs to one lane only, so each partition file has one writer; partitions
    go to the lane with the fewest tasks so far, largest first. Empty lanes are dropped.
    """
    by_partition: dict[tuple[str, str], list[Fetch]] = {}
    for fetch in fetches:
        by_partition.setdefault(fetch.partition, []).append(fetch)
    loads = [0] * max(1, n)
    assigned: list[list[Fetch]] = [[] for _ in loads]
    for _, group in sorted(by_partition.items(), key=lambda kv: (-sum(f.tasks for f in kv[1]), kv[0])):
        lane = loads.index(min(loads))
        assigned[lane].extend(group)
        loads[lane] += sum(f.tasks for f in group)
    return [list(batches(group, batch_tasks, batch_bytes)) for group in assigned if group]

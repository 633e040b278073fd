"""Lanes of a load side by side: how many, and each one's batches transformed into the lake in a thread."""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

import pyarrow as pa

from pipeline.load.lakeload import LakeLoad
from pipeline.schema import REJECTS, SUBTASKS, Table
from pipeline.transform import LANE_MEMORY_MB, MEMORY_MB, Fetch, Stopped, Transformer, TransformStats
from pipeline.transform.subtasks import subtask_tables

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def cores() -> int:
    """The cores this process may run on (its affinity, which a container or ``taskset`` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Lanes of a load when not configured (``--workers``): one per core, at most 4 (each holds a batch)."""
    return max(1, min(4, cores()))


class _WriteBehind:
    """A lane's writes, done in order by a thread of their own: the lane goes on transforming while its last
    chunks are compressed and written. Only with fewer lanes than cores (a load of one partition, say), since
    a lane per core keeps the cores busy already. At most ``depth`` chunks wait, so memory stays bounded."""

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._discard = False
        self._thread = threading.Thread(target=self._drain, name="lane-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if self._error is None and not self._discard:
                    job()
            except BaseException as exc:  # raised in the lane, at its next write or when it closes
                self._error = exc

    def then(self, job: Callable[[], object]) -> None:
        """Run ``job`` after every write queued before it."""
        if self._error is not None:
            raise self._error
        self._queue.put(job)

    def close(self, *, discard: bool = False) -> BaseException | None:
        """Finish the queued writes and raise the first error of a write; or, with ``discard`` (the lane is
        failing), drop them and return that error, if any, for the lane to weigh against its own."""
        self._discard = discard
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and not discard:
            raise self._error
        return self._error


def transform_lanes(
    work: list[list[list[Fetch]]], target: LakeLoad, meanwhile: Callable[[], _T]
) -> tuple[TransformStats, _T]:
    """Transform each lane's batches into ``target``, the lanes side by side in threads (DuckDB, Arrow and
    Parquet release the GIL), while this thread does ``meanwhile`` (the small tables). One lane gets every
    core; several get one DuckDB thread each. The first error (or Ctrl-C) stops every lane and is raised."""
    stop = threading.Event()
    transformers: list[Transformer] = []
    alone = len(work) == 1

    def run(lane: list[list[Fetch]]) -> TransformStats:
        stats = TransformStats()
        memory_mb = MEMORY_MB if alone else LANE_MEMORY_MB
        behind: _WriteBehind | None = None

        def later(job: Callable[[], object]) -> None:
            """``job`` now, or behind the lane after the writes queued before it."""
            if behind is None:
                job()
            else:
                behind.then(job)

        def write(table: Table, rows: pa.Table, partition: tuple[str, str] | None = None) -> None:
            later(functools.partial(target.write_rows, table, rows, partition))

        with Transformer(threads=cores() if alone else 1, memory_limit_mb=memory_mb) as transformer:
            transformers.append(transformer)
            if len(work) < cores():  # a core to spare
                behind = _WriteBehind()
            try:
                for k, group in enumerate(lane):
                    if stop.is_set():
                        break
                    target.begin_batch(group)
                    done = transformer.transform(group, write)
                    for fetch in group:  # an execution's subtasks, in the partition of its tasks (once a fetch)
                        if fetch.first_part:
                            subtasks, rejected = subtask_tables(fetch)
                            write(SUBTASKS, subtasks)
                            write(REJECTS, rejected)
                            done.subtasks += subtasks.num_rows
                            if rejected.num_rows:
                                done.rejects["subtask"] = done.rejects.get("subtask", 0) + rejected.num_rows
                    following = lane[k + 1] if k + 1 < len(lane) else []
                    later(functools.partial(target.end_batch, group, following))  # after the batch's writes
                    stats.add(done)
                    log.info("transformed %d executions (%d tasks)", len(group), done.tasks)
            except BaseException as exc:
                failed_write = behind.close(discard=True) if behind is not None else None
                if failed_write is not None and not isinstance(exc, (Stopped, KeyboardInterrupt)):
                    log.debug("the lane failed after its writer: %r", exc)
                    raise failed_write from None  # the first failure (a full disk, say) says what to do
                raise
            if behind is not None:
                behind.close()
        return stats

    total = TransformStats()
    with ThreadPoolExecutor(max(1, len(work)), thread_name_prefix="lane") as pool:
        futures = [pool.submit(run, lane) for lane in work]
        try:
            result = meanwhile()
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        except BaseException:
            stop.set()
            for transformer in list(transformers):
                transformer.interrupt()
            wait(futures)
            raise
    for future in futures:
        total.add(future.result())
    return total, result

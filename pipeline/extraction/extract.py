"""Extract: every task of every execution of every instance in scope, landed raw on disk.

1. List the instances (or take the ones given), then per instance its policies, its executions (all, or
   those of the given policies) and its registries (credentials masked), landing every page.
2. Page the tasks of every execution in scope with limit 100. Pages of one execution and of different
   executions are fetched in parallel, ``concurrency`` requests in flight at most (the client lowers that
   bound while the server answers 429). Earlier executions are served first, so each finishes soon and
   memory stays bounded by the executions in flight, not by the run.
3. Each page is landed as it arrives; when an execution's last page is in, its manifest is written and the
   fetch counts as complete. An execution the service no longer knows (404) is skipped with a warning.

Nothing here parses the embedded resources: that is the transform's job. The listings are in
:mod:`pipeline.extraction.listing`, what is left out as landed already in :mod:`pipeline.extraction.incremental`,
the summary in :mod:`pipeline.extraction.summary`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict
from typing import Any

from pipeline.api.client import ApiResponse, SwrClient
from pipeline.api.paging import MAX_LIMIT, OffsetPaginator
from pipeline.config import Settings
from pipeline.errors import ApiError, AuthError, ExtractFailed, LandingError, SwrEtlError
from pipeline.extraction.incremental import FINISHED, still_to_fetch
from pipeline.extraction.listing import ExecutionRef, Lister
from pipeline.extraction.pages import land_page, rows_and_total
from pipeline.extraction.subtaskfetch import SubtaskCounts, chosen, fetch_subtasks
from pipeline.extraction.summary import ExtractSummary, NoProgress, Progress
from pipeline.extraction.taskfetch import TaskJob as _Job
from pipeline.landing import Landing, PageRecord, new_run_id

__all__ = ["ExecutionRef", "ExtractSummary", "Extractor", "NoProgress", "Progress"]

log = logging.getLogger(__name__)


class Extractor:
    """The extract stage of one run: list what is in scope, then page every execution's tasks."""

    def __init__(
        self,
        settings: Settings,
        client: SwrClient,
        *,
        run_id: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.landing = Landing(settings.data_dir)
        self.run_id = run_id or new_run_id()
        self.progress = progress or NoProgress()
        self.summary = ExtractSummary(run_id=self.run_id)
        self._errors: list[SwrEtlError] = []
        self._lister = Lister(settings, client, self.landing, self.run_id, self.summary, self._errors)

    # -- tasks -------------------------------------------------------------------------------------
    def _open(self, ref: ExecutionRef) -> _Job:
        writer = self.landing.fetch("tasks", self.run_id, instance_id=ref.instance_id, execution_id=ref.execution_id)
        writer.begin(execution=ref.record)
        job = _Job(ref, OffsetPaginator(MAX_LIMIT), writer)
        self._resume(job)
        return job

    def _resume(self, job: _Job) -> None:
        """Reuse the pages an interrupted run landed for this execution, if it was finished then and still is
        with the same status (its task list no longer changes): they are not fetched again."""
        status = job.ref.record.get("status")
        if self.settings.full or status not in FINISHED:
            return
        interrupted = self.landing.interrupted(
            "tasks", instance_id=job.ref.instance_id, execution_id=job.ref.execution_id
        )
        for folder, header, pages in interrupted:
            if folder == job.writer.folder or (header.get("execution") or {}).get("status") != status:
                continue
            adopted: set[int] = set()
            for record in pages:
                if record.pass_no or record.offset in adopted:
                    continue
                try:
                    tasks = json.loads(Landing.read_page(folder, asdict(record))).get("tasks") or []
                except (LandingError, ValueError, AttributeError) as exc:  # damaged since: fetched again instead
                    log.warning("not reusing a page of an interrupted run: %s", exc)
                    continue
                adopted.add(record.offset)
                job.writer.adopt(folder, record)
                job.add(record.offset, tasks, record.total or 0, landed_before=True)
                self.summary.pages_reused += 1
            if job.writer.pages:
                log.info(
                    "execution %d of instance %s: %d pages reused from an interrupted run",
                    job.ref.execution_id,
                    job.ref.instance_id,
                    len(job.writer.pages),
                )
            return

    def _fetch_page(self, job: _Job, offset: int) -> tuple[ApiResponse, list[Any], int]:
        ref = job.ref
        path = self.client.path("instances", ref.instance_id, "replication", "executions", ref.execution_id, "tasks")
        response = self.client.get(path, {"offset": offset, "limit": MAX_LIMIT})
        tasks, total = rows_and_total(response, "tasks")
        return response, tasks, total

    def fetch_tasks(self, refs: list[ExecutionRef]) -> None:
        """Page every execution's tasks, ``concurrency`` requests in flight, earliest executions first.

        A request slot is freed as soon as its body is read: compressing and writing the page happens in a
        small pool of its own, so the network never waits for the disk (and a slow disk holds back new
        requests once ``concurrency`` pages are waiting to be written).
        """
        pending = deque(refs)
        active: list[_Job] = []
        fetching: dict[Future[tuple[ApiResponse, list[Any], int]], tuple[_Job, int]] = {}
        landing: dict[Future[PageRecord], _Job] = {}
        subfetching: dict[Future[None], tuple[_Job, SubtaskCounts]] = {}  # one a task: its subtasks
        slots = self.settings.concurrency
        fetch_pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="swr-fetch")
        land_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="swr-land")
        stopping = True
        try:

            def submit(job: _Job, free: int) -> int:
                if job.stopped:
                    return 0
                offsets = job.paginator.take(free)
                for offset in offsets:
                    fetching[fetch_pool.submit(self._fetch_page, job, offset)] = (job, offset)
                    job.in_flight += 1
                return len(offsets)

            while True:
                free = slots - len(fetching) - len(subfetching) - max(0, len(landing) - slots)
                for job in active:
                    if free <= 0:
                        break
                    free -= submit(job, free)
                while free > 0 and pending:
                    job = self._open(pending.popleft())
                    active.append(job)
                    free -= submit(job, free)
                if not fetching and not landing and not subfetching:
                    break
                done, _ = wait(_futures(fetching, landing, subfetching), return_when=FIRST_COMPLETED)
                for future in done:
                    if future in subfetching:
                        job, counts = subfetching.pop(future)
                        job.in_flight -= 1
                        self._settle_subtasks(job, future, counts)
                    elif future in fetching:
                        job, offset = fetching.pop(future)
                        job.in_flight -= 1
                        page = self._settle_fetch(job, offset, future)
                        if page is not None:
                            landing[land_pool.submit(land_page, job.writer, *page)] = job
                            job.in_flight += 1
                    else:
                        job = landing.pop(future)
                        job.in_flight -= 1
                        self._settle_land(job, future.result())
                    if job.finished and not self._another_pass(job):
                        task_ids = self._subtasks_wanted(job)
                        if task_ids:  # the task manifest waits for them: see pipeline.extraction.subtaskfetch
                            job.subtasks = SubtaskCounts()
                            for task_id in task_ids:  # side by side, in the pool's request slots
                                counts = SubtaskCounts()
                                args = (self.client, self.landing, self.run_id, job.ref, [task_id], counts)
                                subfetching[fetch_pool.submit(fetch_subtasks, *args)] = (job, counts)
                                job.in_flight += 1
                            continue
                        self._finish(job)
                        active.remove(job)
            stopping = False
        finally:
            if stopping:  # a fatal error or Ctrl-C: nothing new starts, no retry waits
                self.client.stop()
            fetch_pool.shutdown(wait=not stopping, cancel_futures=True)
            land_pool.shutdown(wait=True)

    def _settle_fetch(
        self, job: _Job, offset: int, future: Future[tuple[ApiResponse, list[Any], int]]
    ) -> tuple[ApiResponse, int, int, int, int, int] | None:
        """Record a fetched page with its paginator; returns what :func:`land_page` needs, or None on failure."""
        ref = job.ref
        try:
            response, tasks, total = future.result()
        except AuthError:
            raise
        except ApiError as exc:
            if exc.status == 404:
                if not job.gone:
                    log.warning(
                        "execution %d of instance %s is gone (HTTP 404): skipped", ref.execution_id, ref.instance_id
                    )
                job.gone = True
            else:
                job.error = job.error or exc
            return None
        except SwrEtlError as exc:
            job.error = job.error or exc
            return None
        before = job.paginator.total
        job.add(offset, tasks, total)
        self.progress.tasks_expected(job.paginator.total - before)
        self.progress.page_landed(len(tasks))
        log.debug(
            "fetched tasks of execution %d (instance %s) offset %d: %d rows of %d",
            ref.execution_id,
            ref.instance_id,
            offset,
            len(tasks),
            total,
        )
        return response, offset, MAX_LIMIT, len(tasks), total, job.pass_no

    def _subtasks_wanted(self, job: _Job) -> list[int]:
        """The tasks whose subtasks are still to fetch before the execution is finished (none once asked for,
        and none for an execution gone or failed)."""
        if job.subtasks is not None or job.stopped:
            return []
        return chosen(job.statuses, self.settings.subtasks)

    def _settle_subtasks(self, job: _Job, future: Future[None], counts: SubtaskCounts) -> None:
        """Count a task's subtasks in; a failed request fails the execution as a failed task page does."""
        self.summary.subtask_requests += counts.requests
        self.summary.subtasks += counts.subtasks
        try:
            future.result()
        except AuthError:
            raise
        except SwrEtlError as exc:
            job.error = job.error or exc

    def _settle_land(self, job: _Job, record: PageRecord) -> None:
        job.writer.add(record)
        self.summary.pages += 1

    def _another_pass(self, job: _Job) -> bool:
        """Start another pass over the execution if this one ran to the list's end and saw fewer distinct tasks
        than its pages' total (see :meth:`pipeline.extraction.taskfetch.TaskJob.next_pass`)."""
        seen, total = len(job.ids), job.paginator.total
        if not job.next_pass():
            return False
        log.warning(
            "execution %d of instance %s: %d of %d tasks seen (the list moved while paging): paging it again",
            job.ref.execution_id,
            job.ref.instance_id,
            seen,
            total,
        )
        return True

    def _finish(self, job: _Job) -> None:
        ref = job.ref
        self.progress.execution_done()
        if job.gone:
            self.summary.executions_gone += 1
            return
        if job.error is not None:
            self.summary.executions_failed += 1
            self.summary.errors.append(str(job.error))
            self._errors.append(job.error)
            log.error("execution %d of instance %s failed: %s", ref.execution_id, ref.instance_id, job.error)
            return
        missing, incomplete = job.missing, job.incomplete()
        if incomplete:
            log.warning(
                "execution %d of instance %s is incomplete after %d passes: %s; the next run fetches it again",
                ref.execution_id,
                ref.instance_id,
                job.pass_no + 1,
                incomplete,
            )
        job.writer.complete(
            execution=ref.record,
            tasks=len(job.ids),
            duplicates=job.ids.repeats,
            # how many tasks repeat an id of an earlier one, read as the transform reads ids (see task_id_key):
            # with none, it need not settle duplicates across the pages of a fetch too large for one batch
            task_id_repeats=job.ids.repeats,
            total_reported=job.reported,
            total_record=job.record_total,
            missing=missing,
            incomplete=incomplete,  # why the fetch is not the whole list (see pipeline.extraction.taskfetch), or None
            passes=job.pass_no + 1,
        )
        self.summary.executions_complete += 1
        if incomplete:
            self.summary.executions_incomplete += 1
        self.summary.complete.append((ref.instance_id, ref.execution_id))
        self.summary.tasks += len(job.ids)
        self.summary.duplicate_tasks += job.ids.repeats
        self.summary.missing_tasks += missing
        log.info(
            "execution %d of instance %s: %d tasks in %d pages",
            ref.execution_id,
            ref.instance_id,
            len(job.ids),
            len(job.writer.pages),
        )

    # -- the whole stage ---------------------------------------------------------------------------
    def run(self) -> ExtractSummary:
        started = time.monotonic()
        summary = self.summary
        if removed := self.landing.remove_leftovers():
            log.info("removed %d temporary files left by a run that was killed", removed)
        try:
            instances = self._lister.list_instances()
            summary.instances = len(instances)
            refs = self._lister.list_every_instance(instances)
            for eid in sorted(set(self.settings.execution_ids) - {ref.execution_id for ref in refs}):
                log.warning("execution %d is not listed by any instance in scope (the service forgets old ones)", eid)
            summary.executions = len(refs)
            refs = still_to_fetch(self.settings, self.landing, refs, summary)
            self.progress.executions_found(len(refs))
            self.fetch_tasks(refs)
        finally:
            stats = self.client.stats.as_dict()
            summary.requests = stats["requests"]
            summary.retries = stats["retries"]
            summary.throttled = stats["throttled"]
            summary.lowest_concurrency = self.client.limiter.lowest
            summary.elapsed_s = round(time.monotonic() - started, 3)
            self.landing.write_run(self.run_id, {"stage": "extract", **asdict(summary)})
        if self._errors:
            raise ExtractFailed(summary, self._errors[0])
        return summary


def _futures(*groups: dict[Future[Any], Any]) -> list[Future[Any]]:
    return [future for group in groups for future in group]

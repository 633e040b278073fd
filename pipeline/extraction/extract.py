"""Extract: every task of every execution of every instance in scope, landed raw on disk.

1. List the instances (or take the ones given), then per instance its policies and its executions (all, or
   those of the given policies), landing every page.
2. Page the tasks of every execution in scope with limit 100. Pages of one execution and of different
   executions are fetched in parallel, ``concurrency`` requests in flight at most (the client lowers that
   bound while the server answers 429). Earlier executions are served first, so each finishes soon and
   memory stays bounded by the executions in flight, not by the run.
3. Each page is landed as it arrives; when an execution's last page is in, its manifest is written and the
   fetch counts as complete. An execution the service no longer knows (404) is skipped with a warning.

Nothing here parses the embedded resources: that is the transform's job.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pipeline.api.client import ApiResponse, SwrClient
from pipeline.api.paging import MAX_LIMIT, OffsetPaginator, iterate_pages
from pipeline.config import Settings
from pipeline.errors import ApiError, AuthError, BadResponseError, LandingError, SwrEtlError
from pipeline.extraction.landing import FetchWriter, Landing, PageRecord, new_run_id
from pipeline.extraction.taskfetch import TaskJob as _Job
from pipeline.transform.values import read_instance_id, read_int

log = logging.getLogger(__name__)

FINISHED = frozenset({"Succeed", "Failed", "Stopped"})  # an execution in one of these no longer changes


class Progress(Protocol):
    """What extract reports while it works (the CLI draws it on a terminal)."""

    def executions_found(self, n: int) -> None: ...
    def tasks_expected(self, n: int) -> None: ...
    def page_landed(self, rows: int) -> None: ...
    def execution_done(self) -> None: ...


class NoProgress:
    def executions_found(self, n: int) -> None:
        pass

    def tasks_expected(self, n: int) -> None:
        pass

    def page_landed(self, rows: int) -> None:
        pass

    def execution_done(self) -> None:
        pass


@dataclass(frozen=True)
class ExecutionRef:
    instance_id: str
    execution_id: int
    record: dict[str, Any]


@dataclass
class ExtractSummary:
    """What one extract did; written to ``raw/runs/<run_id>.json`` and printed as the summary line."""

    run_id: str
    # ok; partial: some executions in scope are landed whole (now or earlier) and others are not (failed,
    # incomplete, not reached); failed: none is. Set by settle() once the stage is over.
    status: str = "ok"
    error: str | None = None  # when not ok, why: the error that ended the stage, or what is missing
    instances: int = 0
    policies: int = 0
    executions: int = 0
    executions_complete: int = 0
    executions_incomplete: int = 0  # complete fetches with tasks missing, or cut short: fetched again next run
    executions_unchanged: int = 0
    executions_gone: int = 0
    executions_failed: int = 0
    instances_failed: int = 0
    pages: int = 0
    tasks: int = 0
    duplicate_tasks: int = 0
    missing_tasks: int = 0
    pages_reused: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    lowest_concurrency: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    complete: list[tuple[str, int]] = field(default_factory=list)  # executions whose fetch completed

    def settle(self, error: str | None = None, *, stopped: bool = False) -> None:
        """Set ``status`` and ``error`` once the stage is over. ``error``: the message of the exception that ended
        it, if one did; ``stopped``: that exception ended it early (it is then added to ``errors`` too), rather
        than reporting the failures ``errors`` already lists (:class:`ExtractFailed`)."""
        if error is not None and stopped and error not in self.errors:
            self.errors.append(error)
        if error is None and self.errors:
            error = self.errors[0]
        if error is None and self.executions_incomplete:
            error = (
                f"{self.executions_incomplete} executions incomplete, {self.missing_tasks} tasks missing: "
                "the next run fetches them again"
            )
        landed = self.executions_complete + self.executions_unchanged
        self.status = "ok" if error is None else "partial" if landed else "failed"
        self.error = error

    def line(self) -> str:
        parts = [
            f"extract: {self.executions} executions in {self.instances} instances ({self.executions_complete} complete",
        ]
        if self.executions_incomplete:
            parts.append(f", {self.executions_incomplete} of them incomplete: {self.missing_tasks} tasks missing")
        if self.executions_unchanged:
            parts.append(f", {self.executions_unchanged} finished and already landed")
        if self.executions_gone:
            parts.append(f", {self.executions_gone} gone")
        if self.executions_failed:
            parts.append(f", {self.executions_failed} FAILED")
        if self.instances_failed:
            parts.append(f", {self.instances_failed} instances FAILED")
        parts.append(
            f"), {self.pages} pages, {self.tasks} tasks, {self.requests} requests "
            f"({self.retries} retries, {self.throttled} throttled) in {self.elapsed_s:.1f} s"
        )
        return "".join(parts)


class ExtractFailed(SwrEtlError):
    """Some executions could not be fetched; the others were landed. ``cause`` is the first failure."""

    def __init__(self, summary: ExtractSummary, cause: SwrEtlError) -> None:
        self.summary = summary
        self.cause = cause
        self.hint = cause.hint
        failed = [
            f"{n} {what} could not be {verb}"
            for n, what, verb in (
                (summary.instances_failed, "instances", "listed"),
                (summary.executions_failed, "executions", "fetched"),
            )
            if n
        ]
        super().__init__(f"{' and '.join(failed)}; first: {cause}")


class Extractor:
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
        self._lock = threading.Lock()

    # -- listings ----------------------------------------------------------------------------------
    def _land_listing(self, kind: str, key: str, path: str, extra: dict[str, Any], **keys: str | int) -> list[Any]:
        """Page a small listing one request at a time, land each page, return the rows (de-duplicated by id)."""
        writer = self.landing.fetch(kind, self.run_id, **keys)
        rows: dict[Any, Any] = {}

        def fetch(offset: int, limit: int) -> tuple[list[Any], int]:
            params = {**extra, "offset": offset, "limit": limit}
            response = self.client.get(path, params)
            page_rows, total = _rows_and_total(response, key)
            writer.add(_land(writer, response, offset, limit, len(page_rows), total))
            return page_rows, total

        for page in iterate_pages(fetch, MAX_LIMIT, key=_row_key):
            for row in page.rows:
                rows.setdefault(_row_key(row), row)
        writer.complete(rows=len(rows), filters=extra)
        return list(rows.values())

    def list_instances(self) -> list[str]:
        instances = self._land_listing("instances", "instances", self.client.path("instances"), {})
        listed = []
        for record in instances:
            iid, why = read_instance_id(record.get("id")) if isinstance(record, dict) else (None, "not an object")
            if iid is None:
                project = self.settings.project_id
                log.warning("an instance listed by project %s has no usable id (%s): skipped", project, why)
            else:
                listed.append(iid)
        wanted = self.settings.instance_ids or tuple(listed)
        for iid in wanted:
            if iid not in listed:
                log.warning("instance %s is not listed by project %s; trying it anyway", iid, self.settings.project_id)
        return list(wanted)

    def _list_every_instance(self, instances: list[str]) -> list[ExecutionRef]:
        """The executions of every instance, listed side by side (a project with many instances pays one round
        of latency). An instance that fails (its listing refused, an id no folder can be named by) is counted
        and reported; the others go on. Credentials refused (401) stop everything: no other call would pass."""
        refs: list[ExecutionRef] = []
        with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, max(1, len(instances)))) as pool:
            futures = {pool.submit(self.list_executions, iid): iid for iid in instances}
            for future in futures:
                try:
                    refs.extend(future.result())
                except AuthError as exc:
                    if exc.status == 401:
                        raise
                    self._instance_failed(futures[future], exc)
                except SwrEtlError as exc:
                    self._instance_failed(futures[future], exc)
        return refs

    def _instance_failed(self, instance_id: str, exc: SwrEtlError) -> None:
        self.summary.instances_failed += 1
        self.summary.errors.append(f"instance {instance_id!r}: {exc}")
        self._errors.append(exc)
        log.error("instance %r could not be listed, its executions are not fetched: %s", instance_id, exc)

    def list_executions(self, instance_id: str) -> list[ExecutionRef]:
        policies = self._land_listing(
            "policies",
            "policies",
            self.client.path("instances", instance_id, "replication", "policies"),
            {},
            instance_id=instance_id,
        )
        with self._lock:
            self.summary.policies += len(policies)
        path = self.client.path("instances", instance_id, "replication", "executions")
        filters: list[dict[str, Any]] = [{"policy_id": p} for p in self.settings.policy_ids] or [{}]
        records: dict[int, dict[str, Any]] = {}
        for extra in filters:
            for record in self._land_listing(
                "executions", "executions", path, extra, instance_id=instance_id, **_filter_key(extra)
            ):
                eid, why = read_int(record.get("id")) if isinstance(record, dict) else (None, "not an object")
                if eid is None:
                    log.warning(
                        "an execution listed by instance %s has no usable id (%s): its tasks are not fetched, "
                        "and the record is in rejects",
                        instance_id,
                        why,
                    )
                else:
                    records.setdefault(eid, record)
        wanted = self.settings.execution_ids
        return [
            ExecutionRef(instance_id, eid, rec) for eid, rec in sorted(records.items()) if not wanted or eid in wanted
        ]

    def _still_to_fetch(self, refs: list[ExecutionRef]) -> list[ExecutionRef]:
        """Incremental: leave out executions that were finished when last fetched and still are, unchanged.

        What counts as landed is read from the landing's manifests (no state file to lose or repair): an
        execution whose newest complete fetch saw it Succeed, Failed or Stopped, with no task missing and not
        cut short (``missing``, ``incomplete``), and whose status is the same now. The landing's manifest of a
        fetch outranks the lake's record of the same fetch: only the manifest says what was missing. ``--full``
        and executions named with ``--execution-id`` are fetched whatever their state; running executions
        always are, and replace their rows.
        """
        if self.settings.full:
            return refs
        landed: dict[tuple[str, int], tuple[str, Any]] = self._landed_per_lake()
        for manifest in self.landing.manifests("tasks"):
            key = (str(manifest["instance_id"]), int(manifest["execution_id"]))
            if key not in landed or landed[key][0] <= manifest["run_id"]:
                whole = not manifest.get("missing") and not manifest.get("incomplete")
                status = (manifest.get("execution") or {}).get("status") if whole else None
                landed[key] = (str(manifest["run_id"]), status)
        named = set(self.settings.execution_ids)
        todo = []
        for ref in refs:
            status = landed.get((ref.instance_id, ref.execution_id), ("", None))[1]
            if ref.execution_id not in named and status in FINISHED and ref.record.get("status") == status:
                self.summary.executions_unchanged += 1
            else:
                todo.append(ref)
        if self.summary.executions_unchanged:
            log.info("%d executions are finished and already landed: not fetched again", len(refs) - len(todo))
        return todo

    def _landed_per_lake(self) -> dict[tuple[str, int], tuple[str, Any]]:
        """What the lake says was loaded (run id, status at fetch): the incremental state when the raw
        landing was lost or pruned. The landing's manifests, when present, take precedence."""
        from pipeline.load.load import lake_fetches, open_lake  # the lake's own reader of its state

        lake = open_lake(self.settings.data_dir, self.settings.lake, writer=True)
        try:
            return dict(lake_fetches(lake, self.settings.instance_ids))
        except OSError as exc:
            raise LandingError(f"could not read the lake at {lake.store.url}: {exc}", path=lake.store.url) from exc

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
        tasks, total = _rows_and_total(response, "tasks")
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
                free = slots - len(fetching) - max(0, len(landing) - slots)
                for job in active:
                    if free <= 0:
                        break
                    free -= submit(job, free)
                while free > 0 and pending:
                    job = self._open(pending.popleft())
                    active.append(job)
                    free -= submit(job, free)
                if not fetching and not landing:
                    break
                done, _ = wait(_futures(fetching, landing), return_when=FIRST_COMPLETED)
                for future in done:
                    if future in fetching:
                        job, offset = fetching.pop(future)
                        job.in_flight -= 1
                        page = self._settle_fetch(job, offset, future)
                        if page is not None:
                            landing[land_pool.submit(_land, job.writer, *page)] = job
                            job.in_flight += 1
                    else:
                        job = landing.pop(future)
                        job.in_flight -= 1
                        self._settle_land(job, future.result())
                    if job.finished and not self._another_pass(job):
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
        """Record a fetched page with its paginator; returns what :func:`_land` needs, or None on failure."""
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
            instances = self.list_instances()
            summary.instances = len(instances)
            refs = self._list_every_instance(instances)
            for eid in sorted(set(self.settings.execution_ids) - {ref.execution_id for ref in refs}):
                log.warning("execution %d is not listed by any instance in scope (the service forgets old ones)", eid)
            summary.executions = len(refs)
            refs = self._still_to_fetch(refs)
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


def _row_key(row: Any) -> str:
    """What makes two rows of a listing the same row: the id, whatever JSON it is (a list is no dict key)."""
    if isinstance(row, dict) and row.get("id") is not None:
        return "id:" + json.dumps(row["id"], sort_keys=True, default=repr)
    return "row:" + json.dumps(row, sort_keys=True, default=repr)


def _futures(*groups: dict[Future[Any], Any]) -> list[Future[Any]]:
    return [future for group in groups for future in group]


def _filter_key(extra: dict[str, Any]) -> dict[str, str | int]:
    """A listing fetched with a policy filter lands in its own folder, so filtered fetches never mix."""
    return {"policy_id": extra["policy_id"]} if "policy_id" in extra else {}


def _rows_and_total(response: ApiResponse, key: str) -> tuple[list[Any], int]:
    rows = response.data.get(key)
    total = response.data.get("total")
    if rows is None:
        rows = []
    if not isinstance(rows, list) or not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise BadResponseError(
            f"GET {response.path} offset {response.params.get('offset')}: expected '{key}' (a list) and 'total' "
            f"(an integer), got {type(rows).__name__} and {type(total).__name__} (request id {response.request_id})",
            path=response.path,
        )
    return rows, total


def _land(
    writer: FetchWriter, response: ApiResponse, offset: int, limit: int, rows: int, total: int, pass_no: int = 0
) -> PageRecord:
    return writer.write_page(
        pass_no=pass_no,
        body=response.body,
        path=response.path,
        params=dict(response.params),
        offset=offset,
        limit=limit,
        status=response.status,
        request_id=response.request_id,
        fetched_at=response.fetched_at,
        rows=rows,
        total=total,
        parsed=response.data,
    )

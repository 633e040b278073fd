"""One execution's task listing while the extract fetches it: its pages' task ids, its passes, and whether
what arrived is the whole list. No HTTP and no files here: :class:`pipeline.extraction.extract.Extractor` drives it.

Two counts say how many tasks an execution has: the ``total`` of its task pages, and the ``total`` of its
record in the executions listing (when that is a non-negative integer). Neither is trusted alone:

* Paging asks for offsets up to the larger of the two, and stops early when the server repeats itself, when
  full pages keep coming far past every total, or at a cap of pages (see :mod:`pipeline.api.paging`).
* The count the distinct task ids are held against is the larger of the two: a count that under-reports
  (pages that say 100 of an execution whose record says 250, or a record whose counters lag behind a
  running execution, Harbor #16028) must not hide tasks. One exception: when the server's own pages ended
  paging early (a page that repeats, a list that never ends), their total is not borne out by them, and the
  record's count is held instead, when there is one (pages that say 10^7 and repeat the same 100 tasks,
  of an execution whose record says 250: 150 missing, not 9,999,900).
* Seeing more distinct tasks than that count is no shortfall (counters lag): ``missing`` is never negative.

An execution with tasks missing, or whose paging was stopped early, is incomplete: its manifest's ``missing``
and ``incomplete`` (the reason) say so, and the next run fetches it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.api.paging import OffsetPaginator
from pipeline.errors import SwrEtlError
from pipeline.extraction.subtaskfetch import SubtaskCounts
from pipeline.landing import FetchWriter, TaskIds, task_id_key

if TYPE_CHECKING:
    from pipeline.extraction.listing import ExecutionRef

# Passes over one execution's task list when a pass saw fewer distinct tasks than its pages' total (the order
# of a running execution is not stable, so a page can shift under the paginator): the later passes land beside
# the first and the transform de-duplicates. What is still missing after the last pass is reported.
MAX_PASSES = 3


def record_total(record: dict[str, Any]) -> int | None:
    """The execution record's own count of its tasks, when it is a non-negative integer."""
    total = record.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None


@dataclass
class TaskJob:
    """The task listing of one execution, while it is being fetched."""

    ref: ExecutionRef
    paginator: OffsetPaginator
    writer: FetchWriter
    ids: TaskIds = field(default_factory=TaskIds)  # over every pass
    pass_keys: set[Any] = field(default_factory=set)  # the ids of this pass: a full page of none new ends it
    reported: int = 0  # the largest total any page reported, over every pass
    in_flight: int = 0
    pass_no: int = 0
    gone: bool = False
    error: SwrEtlError | None = None
    # each task's id as sent and its status (the last page wins): whose subtasks to fetch once the pages are in
    statuses: dict[Any, tuple[Any, Any]] = field(default_factory=dict)
    subtasks: SubtaskCounts | None = None  # set once its subtasks were asked for (pipeline.extraction.subtaskfetch)

    def __post_init__(self) -> None:
        self.paginator.expect(self.record_total or 0)

    @property
    def record_total(self) -> int | None:
        return record_total(self.ref.record)

    @property
    def stopped(self) -> bool:
        return self.gone or self.error is not None

    @property
    def finished(self) -> bool:
        return self.in_flight == 0 and (self.stopped or self.paginator.done)

    def add(self, offset: int, tasks: list[Any], total: int, *, landed_before: bool = False) -> None:
        """Count a page's tasks in and tell the paginator about it (``landed_before``: a page an interrupted
        run landed, taken over without being asked for)."""
        before = len(self.pass_keys)
        self.pass_keys.update(task_id_key(t.get("id") if isinstance(t, dict) else None) for t in tasks)
        if landed_before:
            self.paginator.already(offset, len(tasks), total)
        else:
            self.paginator.record(offset, len(tasks), total, fresh=len(self.pass_keys) - before)
        self.ids.add(tasks)
        for task in tasks:
            if isinstance(task, dict):
                self.statuses[task_id_key(task.get("id"))] = (task.get("id"), task.get("status"))
        self.reported = max(self.reported, total)

    def next_pass(self) -> bool:
        """Start another pass if this one ran to the listing's end with fewer distinct tasks than its pages'
        total (the list moved while paging). A pass the server cut short is not repeated: it would be again."""
        if self.stopped or self.paginator.stopped or len(self.ids) >= self.paginator.total:
            return False
        if self.pass_no + 1 >= MAX_PASSES:
            return False
        self.pass_no += 1
        self.pass_keys = set()
        self.paginator = OffsetPaginator(self.paginator.limit, expected=self.paginator.expected)
        return True

    @property
    def expected(self) -> int:
        """How many distinct tasks the execution should have (see the module's docstring for the rule)."""
        record = self.record_total
        if record is not None and self.paginator.stopped is not None:
            return record
        return max(self.reported, record or 0)

    @property
    def missing(self) -> int:
        return max(0, self.expected - len(self.ids))

    def incomplete(self) -> str | None:
        """Why the fetch is not the whole list, or None."""
        reasons = []
        if self.paginator.stopped is not None:
            reasons.append(f"paging stopped: {self.paginator.stopped}")
        if self.missing:
            counts = f"the pages' total {self.reported}"
            if self.record_total is not None:
                counts += f", the execution record's {self.record_total}"
            reasons.append(f"{len(self.ids)} distinct tasks seen of {self.expected} ({counts})")
        return "; ".join(reasons) or None

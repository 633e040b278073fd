"""What the extract reports: its progress as it works, and its summary and failure once the stage is over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Progress(Protocol):
    """What extract reports while it works (the CLI draws it on a terminal)."""

    def executions_found(self, n: int) -> None: ...
    def tasks_expected(self, n: int) -> None: ...
    def page_landed(self, rows: int) -> None: ...
    def execution_done(self) -> None: ...


class NoProgress:
    """Progress that nobody watches (no terminal, or a caller that passed none)."""

    def executions_found(self, n: int) -> None:
        pass

    def tasks_expected(self, n: int) -> None:
        pass

    def page_landed(self, rows: int) -> None:
        pass

    def execution_done(self) -> None:
        pass


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
    registries: int = 0  # replication targets listed
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
    subtask_requests: int = 0  # pages of per-tag subtasks fetched (--subtasks)
    subtasks: int = 0
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
            f"), {self.pages} pages, {self.tasks} tasks, "
            + (f"{self.subtasks} subtasks, " if self.subtask_requests else "")
            + f"{self.requests} requests "
            f"({self.retries} retries, {self.throttled} throttled) in {self.elapsed_s:.1f} s"
        )
        return "".join(parts)

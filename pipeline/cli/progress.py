"""Progress bars on a terminal (rich). Only the CLI uses this, and only when stderr is a terminal."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichProgress:
    """Implements :class:`pipeline.extraction.extract.Progress`: executions, pages and tasks as they land."""

    def __init__(self) -> None:
        console = Console(stderr=True)
        self._bars = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            # on a terminal the bars are erased when done (the summary line has the totals); into a file they
            # are written once, at the end
            transient=console.is_terminal,
        )
        self._running = False
        self._executions = self._bars.add_task("executions", total=None)
        self._tasks = self._bars.add_task("tasks", total=0)
        self._pages = self._bars.add_task("pages", total=None)

    def __enter__(self) -> RichProgress:
        self._bars.start()
        self._running = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop drawing, and erase the bars from a terminal: before anything else is printed, which the bars'
        next refresh would overwrite. Once only (rich writes a blank line on each stop into a file)."""
        if self._running:
            self._running = False
            self._bars.stop()

    def executions_found(self, n: int) -> None:
        self._bars.update(self._executions, total=n)

    def tasks_expected(self, n: int) -> None:
        if n:
            current = self._bars.tasks[self._tasks].total or 0
            self._bars.update(self._tasks, total=current + n)

    def page_landed(self, rows: int) -> None:
        self._bars.advance(self._pages)
        self._bars.advance(self._tasks, rows)

    def execution_done(self) -> None:
        self._bars.advance(self._executions)

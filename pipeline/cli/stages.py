"""Running the pipeline's jobs for a command: progress bars on a terminal, one summary per stage, and the
stage an error line names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipeline import jobs
from pipeline.cli.invocation import State
from pipeline.config import Settings

if TYPE_CHECKING:
    from pipeline.cli.progress import RichProgress


def run(state: State, settings: Settings, *, demo: bool = False) -> None:
    """``swr-etl run`` (``demo``: the demo's run in its own folder), then its failure, if any, raised."""
    call = jobs.demo_run if demo else jobs.run
    result = call(settings, run_id=state.run_id, hooks=hooks(state))
    if result.failure is not None:
        state.stage = "extract"  # the stage the error line names: the extract's failure, raised after the load
    result.raise_for_failure()


def hooks(state: State) -> jobs.Hooks:
    """The stage being run goes to the error line; the extract draws progress bars on a terminal; each
    stage's summary is printed, after the bars are erased (drawn again, they would overwrite it)."""
    drawn: list[RichProgress] = []

    def stage(name: str) -> None:
        state.stage = name

    @contextmanager
    def progress() -> Iterator[RichProgress | None]:
        if not state.show_progress():
            yield None
            return
        from pipeline.cli.progress import RichProgress

        with RichProgress() as bars:
            drawn.append(bars)
            yield bars

    def summary(name: str, line: str, counts: dict[str, Any]) -> None:
        for bars in drawn:
            bars.stop()
        state.summary(name, line, counts)

    return jobs.Hooks(stage=stage, summary=summary, progress=progress, redact=state.redactor.redact)

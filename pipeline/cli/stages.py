"""Running the pipeline's jobs for a command: progress bars on a terminal, one summary per stage, and the
stage an error line names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipeline import jobs
from pipeline.cli.invocation import State
from pipeline.cli.outcome import failure
from pipeline.config import Settings
from pipeline.errors import Interrupted

if TYPE_CHECKING:
    from pipeline.cli.progress import RichProgress


def run(state: State, settings: Settings, *, demo: bool = False) -> None:
    """``swr-etl run`` (``demo``: the demo's run in its own folder), then its failure, if any, raised.

    With ``--metrics-file`` or ``--pushgateway``, the Prometheus metrics are written once it has ended, whatever
    its exit status (not when Ctrl-C or SIGTERM stopped it); a failure to write them is an error log line and
    leaves the exit status as it is (:func:`pipeline.report.metrics.after_run`)."""
    from pipeline.report.metrics import RunWatch, after_run

    call = jobs.demo_run if demo else jobs.run
    watch = RunWatch(state.run_id)
    heard = hooks(state)
    told = heard.summary

    def summary(name: str, line: str, counts: dict[str, Any]) -> None:
        watch.summary(name, counts)
        told(name, line, counts)

    try:
        result = call(settings, run_id=state.run_id, hooks=replace(heard, summary=summary))
        if result.failure is not None:
            state.stage = "extract"  # the stage the error line names: the extract's failure, raised after the load
        result.raise_for_failure()
    except (KeyboardInterrupt, Interrupted):
        raise  # stopping now: the file keeps the last run's metrics
    except Exception as exc:
        after_run(settings, watch, failure(exc).exit_code)
        raise
    after_run(settings, watch, 0)


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

"""The pipeline as Python calls: extract, run and rebuild. The CLI commands wrap these and nothing more.

    import pipeline

    settings = pipeline.settings(endpoint="https://...", project_id="...", token="...", data_dir="/srv/swr")
    result = pipeline.run(settings)  # extract what changed, then load it; the summaries are in the result
    result.raise_for_failure()  # the exceptions the CLI turns into exit statuses 1 and 3
    tasks = pipeline.connect("/srv/swr").sql("SELECT status, count(*) FROM tasks GROUP BY ALL").df()

Each call checks the setup first (a missing folder, a landing that is not one) and holds the data directory's
lock while it writes; what it did is in its return value, and in its run record in the landing. A caller who
wants to watch (the CLI prints one summary line per stage and draws progress bars) passes :class:`Hooks`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline import preflight
from pipeline.errors import ExtractFailed, RejectsFound, SwrEtlError, UploadFailed, describe
from pipeline.load.lock import exclusive
from pipeline.logs import RedactSecrets

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.extraction.extract import Extractor, ExtractSummary, Progress
    from pipeline.extraction.mirror import Mirror
    from pipeline.load import LoadSummary

log = logging.getLogger("pipeline.jobs")


def _ignore(*args: Any) -> None:
    return None


def _no_progress() -> contextlib.AbstractContextManager[Progress | None]:
    return contextlib.nullcontext()


@dataclass
class Hooks:
    """What a caller hears while a job runs.

    ``stage(name)``: a stage starts (``extract``, ``load``, ``rebuild``). ``summary(name, line, counts)``: it
    ended, with its summary line and counts; the extract's is given even when it fails. ``progress()``: a
    context manager the extract runs in, giving the :class:`~pipeline.extraction.summary.Progress` it reports
    to (or None); it is entered once the extract is about to send requests. ``redact``: masks secrets in the
    messages the extract's run record keeps (default: every secret of the settings and the IAM tokens)."""

    stage: Callable[[str], None] = _ignore
    summary: Callable[[str, str, dict[str, Any]], None] = _ignore
    progress: Callable[[], contextlib.AbstractContextManager[Progress | None]] = _no_progress
    redact: Callable[[str], str] | None = None


@dataclass
class RunResult:
    """What ``run`` or ``rebuild`` did. ``failure``: the extract's failure when some executions could not be
    fetched (what did arrive is loaded all the same); ``strict``: rejected records count as a failure."""

    run_id: str
    extract: ExtractSummary | None = None
    load: LoadSummary | None = None
    failure: ExtractFailed | None = None
    strict: bool = False
    stages: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return 0 if self.load is None else self.load.stats.rejected

    @property
    def status(self) -> str:
        """``ok``, ``partial`` (some executions in scope are landed whole, others not) or ``failed``."""
        return "ok" if self.extract is None else self.extract.status

    def raise_for_failure(self) -> None:
        """Raise the extract's failure if there was one, else :class:`RejectsFound` if ``strict`` and records
        were rejected: an API failure outranks rejected records."""
        if self.failure is not None:
            raise self.failure
        if self.strict and self.rejected:
            raise RejectsFound(self.rejected)


def extract(settings: Settings, *, run_id: str | None = None, hooks: Hooks | None = None) -> ExtractSummary:
    """Fetch every task of every execution in scope that changed into the raw landing (no transform).

    Raises :class:`~pipeline.errors.ExtractFailed` (its ``summary`` says what landed) when some executions or
    instances could not be fetched, and the API's own errors (a 401) when nothing could be."""
    preflight.require(*preflight.checks("extract", settings))
    with exclusive(settings.data_dir, "extract"):
        return _extract(settings, run_id or _new_run_id(), hooks or Hooks(), _mirror(settings))


def run(settings: Settings, *, run_id: str | None = None, hooks: Hooks | None = None) -> RunResult:
    """Extract what changed in scope, then transform and load it into the lake and rewrite the warehouse.

    An extract that fetched only part of the scope still loads what arrived; its failure is then in
    ``result.failure`` (see :meth:`RunResult.raise_for_failure`)."""
    preflight.require(*preflight.checks("run", settings))
    with exclusive(settings.data_dir, "run"):
        return _run(settings, run_id, hooks or Hooks())


def demo_run(settings: Settings, *, run_id: str | None = None, hooks: Hooks | None = None) -> RunResult:
    """The run of ``swr-etl demo`` in the folder it made: the demo holds the folder's lock already, and every
    other run refuses a demo's folder."""
    preflight.require(*preflight.checks("demo", settings))
    return _run(settings, run_id, hooks or Hooks())


def _run(settings: Settings, run_id: str | None, hooks: Hooks) -> RunResult:
    result = RunResult(run_id=run_id or _new_run_id(), strict=settings.strict)
    mirror = _mirror(settings)  # one for both stages: what the extract synced, the load need not sync again
    try:
        result.extract = _extract(settings, result.run_id, hooks, mirror)
        complete = result.extract.complete
    except ExtractFailed as exc:  # load what did arrive, then report the failure
        result.failure, result.extract, complete = exc, exc.summary, exc.summary.complete
    result.strict = settings.strict and result.failure is None  # an API failure outranks rejected records
    result.load = _load(settings, result.run_id, hooks, stage="load", only=complete, mirror=mirror)
    return result


def rebuild(settings: Settings, *, run_id: str | None = None, hooks: Hooks | None = None) -> RunResult:
    """Transform and load the whole lake again from the raw landing alone, with no API call."""
    preflight.require(*preflight.checks("rebuild", settings))
    result = RunResult(run_id=run_id or _new_run_id(), strict=settings.strict)
    with exclusive(settings.data_dir, "rebuild"):
        result.load = _load(settings, result.run_id, hooks or Hooks(), stage="rebuild", only=None)
    return result


def rebuild_views(settings: Settings) -> str:
    """Rewrite only ``warehouse.duckdb`` (after the data directory moved); returns its path."""
    from pipeline.warehouse import warehouse

    preflight.require(*preflight.checks("views", settings))
    return str(warehouse.build(settings.data_dir, settings.lake))


def _new_run_id() -> str:
    from pipeline.landing import new_run_id

    return new_run_id()


def _extract(settings: Settings, run_id: str, hooks: Hooks, mirror: Mirror | None) -> ExtractSummary:
    """Extract, and hand the summary to the hooks whatever happens, with the status its run record gets too."""
    from pipeline.api.client import SwrClient
    from pipeline.extraction.extract import Extractor

    hooks.stage("extract")
    log.info("extracting from %s into %s", settings.endpoint, settings.remote or settings.data_dir)
    if mirror is not None:
        mirror.pull_state()  # what is landed already: the incremental state
    uploads = _uploading(mirror, settings.upload_every_s) if mirror is not None else contextlib.nullcontext()
    redact = hooks.redact or RedactSecrets(settings.credentials.secrets()).redact
    with SwrClient(settings) as client, hooks.progress() as progress:
        extractor = Extractor(settings, client, run_id=run_id, progress=progress)
        failure: BaseException | None = None
        try:
            with uploads:  # stopped before the last upload below: never two at once
                return extractor.run()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _settle(extractor, failure, redact)
            raw = f"{settings.remote}/raw" if settings.remote else settings.data_dir / "raw"
            line = extractor.summary.line() + (f" -> {raw}" if failure is None else "")
            hooks.summary("extract", line, asdict(extractor.summary))
            if mirror is not None:  # even after a failure: what landed whole is kept
                _push(mirror, settings, raise_error=failure is None)


def _settle(extractor: Extractor, exc: BaseException | None, redact: Callable[[str], str]) -> None:
    """Set the extract's status and error, and write them into its run record, which the extract wrote before
    its outcome was known (same content: ``{"stage": "extract", **summary}``)."""
    summary = extractor.summary
    message = None if exc is None else redact(describe(exc))
    summary.errors[:] = [redact(e) for e in summary.errors]
    summary.settle(message, stopped=exc is not None and not isinstance(exc, ExtractFailed))
    try:
        extractor.landing.write_run(summary.run_id, {"stage": "extract", **asdict(summary)})
    except (OSError, SwrEtlError) as err:  # the landing's own failure is the one reported
        log.warning("could not write the status into the run record of %s: %s", summary.run_id, err)


def _load(
    settings: Settings,
    run_id: str,
    hooks: Hooks,
    *,
    stage: str,
    only: list[tuple[str, int]] | None,
    mirror: Mirror | None = None,
) -> LoadSummary:
    from pipeline.load import load_lake
    from pipeline.warehouse import warehouse

    hooks.stage(stage)
    mirror = mirror or _mirror(settings)
    if mirror is not None and not mirror.synced:
        mirror.pull_state()  # a rebuild on a new machine: the landing's state, before planning
        _push(mirror, settings, raise_error=True)  # what an earlier run could not upload, before the lake has it
        if only is None:  # a rebuild: the store's landing is known now that its state is pulled
            preflight.require(preflight.landing(settings.data_dir, f"{settings.remote}/raw"))
    summary = load_lake(
        settings.data_dir,
        version=run_id,
        only=only,
        instances=settings.instance_ids,
        lake_location=settings.lake,
        prepare=None if mirror is None else mirror.pull_pages,
        workers=settings.workers,
    )
    warehouse.build(settings.data_dir, settings.lake)
    counts = {**asdict(summary.stats), "executions_loaded": summary.executions_loaded, "lake_rows": summary.rows}
    counts["elapsed_s"] = summary.elapsed_s
    hooks.summary(stage, summary.line(stage), counts)
    return summary


def _mirror(settings: Settings) -> Mirror | None:
    """The raw landing's copy in the store, for a data directory on object storage."""
    if settings.remote is None:
        return None
    from pipeline.extraction.mirror import Mirror

    return Mirror(settings.data_dir, settings.remote)


@contextmanager
def _uploading(mirror: Mirror, every: float) -> Iterator[None]:
    """While an extract runs, upload its complete fetches every ``every`` seconds, so that a run killed outright
    (SIGKILL, a lost machine) loses at most that much of its work. A failure here is only logged: the upload
    after the extract is the one that counts."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(max(every, 0.05)):
            try:
                mirror.push()
            except SwrEtlError as exc:
                log.warning("upload during the extract failed (tried again at its end): %s", exc)

    thread = threading.Thread(target=loop, name="uploads", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _push(mirror: Mirror, settings: Settings, *, raise_error: bool) -> None:
    """Upload the fetches landed in the work folder. A failure stops the run before its load, so that the lake
    never holds what the store's landing does not; the next run uploads them."""
    try:
        mirror.push()
    except SwrEtlError as exc:
        message = f"landed in {settings.data_dir / 'raw'} but not copied to {settings.remote}/raw: {exc}"
        if raise_error:
            raise UploadFailed(message) from exc
        log.error("%s", message)  # the extract's own failure follows


__all__ = ["Hooks", "RunResult", "demo_run", "extract", "rebuild", "rebuild_views", "run"]

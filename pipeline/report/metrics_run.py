"""The ETL's own metrics (``swr_etl_*``): what the last ``swr-etl run`` did, from its stages' summaries.

A run's figures are kept in ``DATA_DIR/etl-metrics.json`` (when metrics are asked for), so that
``swr-etl metrics`` writes them again between runs. ``swr_etl_last_success_timestamp_seconds`` is the end of the
newest run that exited 0: a failed run leaves it where it was, as the batch-job convention has it, and an alert
on its age is the one alert that catches every way a nightly run can go wrong (failing, killed, never started).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from pipeline import __version__
from pipeline.errors import SwrEtlError
from pipeline.landing import atomic_write

log = logging.getLogger(__name__)

STATE_FILE = "etl-metrics.json"  # in the data directory (the local work folder of one in a store)
EXTRACT_COUNTS = ("requests", "retries", "throttled", "pages", "tasks", "subtasks")
EXECUTION_STATES = ("complete", "incomplete", "unchanged", "gone", "failed")  # executions_<state> of the extract
LOAD_COUNTS = ("tasks", "artifacts", "tags", "subtasks", "duplicates")


@dataclass
class RunFigures:
    """What one run did, as its metrics say it. Empty dictionaries: the stage did not report (it never began)."""

    run_id: str
    finished_at: float  # Unix time
    exit_status: int
    last_success_at: float | None  # the end of the newest run that exited 0: this one, or one before it
    durations: dict[str, float] = field(default_factory=dict)  # seconds: extract, load, and run (all of it)
    extract: dict[str, int] = field(default_factory=dict)  # EXTRACT_COUNTS
    executions: dict[str, int] = field(default_factory=dict)  # EXECUTION_STATES
    load: dict[str, int] = field(default_factory=dict)  # LOAD_COUNTS, and executions (loaded)
    rejects: dict[str, int] = field(default_factory=dict)  # rejected records per kind

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunFigures:
        def numbers(key: str, kind: Callable[[Any], Any]) -> dict[str, Any]:
            value = data.get(key) or {}
            return {str(k): kind(v) for k, v in value.items()} if isinstance(value, dict) else {}

        success = data.get("last_success_at")
        return cls(
            run_id=str(data["run_id"]),
            finished_at=float(data["finished_at"]),
            exit_status=int(data["exit_status"]),
            last_success_at=None if success is None else float(success),
            durations=numbers("durations", float),
            extract=numbers("extract", int),
            executions=numbers("executions", int),
            load=numbers("load", int),
            rejects=numbers("rejects", int),
        )


class RunWatch:
    """Times a run and keeps its stages' summaries (what :class:`pipeline.jobs.Hooks` ``summary`` hears)."""

    def __init__(self, run_id: str, *, clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self._clock = clock
        self.started = clock()
        self.counts: dict[str, dict[str, Any]] = {}

    def summary(self, stage: str, counts: dict[str, Any]) -> None:
        self.counts[stage] = counts

    def figures(self, exit_status: int, previous: RunFigures | None) -> RunFigures:
        """The run's figures, once it ended with ``exit_status``; ``previous``: the last run's, for the time of the
        last success when this run did not succeed."""
        now = self._clock()
        figures = RunFigures(
            run_id=self.run_id,
            finished_at=now,
            exit_status=exit_status,
            last_success_at=now if exit_status == 0 else (previous.last_success_at if previous else None),
            durations={"run": now - self.started},
        )
        extract = self.counts.get("extract")
        if extract is not None:
            figures.durations["extract"] = float(extract.get("elapsed_s") or 0.0)
            figures.extract = {k: int(extract.get(k) or 0) for k in EXTRACT_COUNTS}
            figures.executions = {s: int(extract.get(f"executions_{s}") or 0) for s in EXECUTION_STATES}
        load = self.counts.get("load")
        if load is not None:
            figures.durations["load"] = float(load.get("elapsed_s") or 0.0)
            figures.load = {k: int(load.get(k) or 0) for k in LOAD_COUNTS}
            figures.load["executions"] = int(load.get("executions_loaded") or 0)
            figures.rejects = {str(k): int(v) for k, v in (load.get("rejects") or {}).items()}
        return figures


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE


def load_state(data_dir: Path) -> RunFigures | None:
    """The last run's figures, or None when no run with metrics has ended here (or the file is unreadable,
    which is logged: the next run writes it whole again)."""
    path = state_path(data_dir)
    try:
        return RunFigures.from_json(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("the last run's metrics in %s could not be read (%s): the next run writes them again", path, exc)
        return None


def save_state(data_dir: Path, figures: RunFigures) -> None:
    """Keep the run's figures for ``swr-etl metrics`` (written whole or not at all). Raises LandingError."""
    atomic_write(state_path(data_dir), json.dumps(asdict(figures), indent=1).encode())


def record(data_dir: Path, watch: RunWatch, exit_status: int) -> RunFigures:
    """The figures of the run ``watch`` saw, kept in the data directory when it is a folder (a run refused
    because it is not one has nowhere to keep them). A failure to keep them is logged, not raised."""
    figures = watch.figures(exit_status, load_state(data_dir))
    if Path(data_dir).is_dir():
        try:
            save_state(data_dir, figures)
        except SwrEtlError as exc:
            log.error("the run's metrics could not be kept for swr-etl metrics: %s", exc)
    return figures


def _gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def etl_families(figures: RunFigures | None) -> list[Metric]:
    """The ``swr_etl_*`` families of the last run (only ``swr_etl_build_info`` when there was none). A stage that
    did not report adds no series: a run refused before its extract has durations and an exit status only."""
    info = _gauge("swr_etl_build_info", "The swr-etl version that wrote these metrics (always 1).", ("version",))
    info.add_metric([__version__], 1.0)
    if figures is None:
        return [info]
    families: list[Metric] = [info]

    def single(name: str, documentation: str, value: float | None) -> None:
        if value is not None:
            family = _gauge(name, documentation)
            family.add_metric([], float(value))
            families.append(family)

    def labelled(name: str, documentation: str, label: str, values: dict[str, Any]) -> None:
        if values:
            family = _gauge(name, documentation, (label,))
            for key, value in sorted(values.items()):
                family.add_metric([key], float(value))
            families.append(family)

    single("swr_etl_last_run_timestamp_seconds", "When the last swr-etl run ended (Unix time).", figures.finished_at)
    single(
        "swr_etl_last_success_timestamp_seconds",
        "When the newest swr-etl run that exited 0 ended (Unix time): only a successful run advances it.",
        figures.last_success_at,
    )
    single(
        "swr_etl_last_run_exit_status",
        "Exit status of the last swr-etl run: 0 done, 1 failed, 2 usage or configuration, 3 rejects with --strict.",
        figures.exit_status,
    )
    labelled(
        "swr_etl_last_run_duration_seconds",
        "Seconds the last swr-etl run took, per stage (extract, load) and in all (run).",
        "stage",
        figures.durations,
    )
    extract = figures.extract
    for key, name, documentation in (
        ("requests", "requests", "Requests the last run sent to the SWR API, retries and IAM included."),
        ("retries", "retries", "Requests of the last run that were retried."),
        ("throttled", "throttled_requests", "Requests of the last run answered 429 (throttled)."),
        ("pages", "pages", "Task pages the last run fetched."),
        ("subtasks", "subtasks", "Per-tag subtasks the last run fetched."),
    ):
        single(f"swr_etl_last_run_{name}", documentation, extract.get(key))
    tasks = {"extract": extract.get("tasks"), "load": figures.load.get("tasks")}
    labelled(
        "swr_etl_last_run_tasks",
        "Tasks the last run fetched (stage extract) and loaded into the lake (stage load).",
        "stage",
        {k: v for k, v in tasks.items() if v is not None},
    )
    labelled(
        "swr_etl_last_run_executions",
        "Executions in the last run's scope, by what became of them (complete, incomplete, unchanged, gone, failed).",
        "state",
        figures.executions,
    )
    if figures.load:
        rejects = _gauge(
            "swr_etl_last_run_rejects", "Records the last run rejected (see the rejects table).", ("kind",)
        )
        for kind, count in sorted(figures.rejects.items()):
            rejects.add_metric([kind], float(count))
        families.append(rejects)
        single(
            "swr_etl_last_run_rejected_records",
            "Records the last run rejected, every kind together.",
            sum(figures.rejects.values()),
        )
    return families

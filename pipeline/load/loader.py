"""Transform the raw landing and load it into the lake: the whole of a load, and what it did."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from pipeline.errors import LandingError, LoadError
from pipeline.landing import Landing
from pipeline.load import legacy
from pipeline.load.lake import lake_fetches, open_lake
from pipeline.load.lakeload import LakeLoad
from pipeline.load.lanes import default_workers, transform_lanes
from pipeline.load.lock import lake_instances
from pipeline.schema import REJECTS
from pipeline.transform import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_TASKS, Fetch, TransformStats, lanes, plan
from pipeline.transform.listings import small_tables

log = logging.getLogger(__name__)


@dataclass
class LoadSummary:
    """What one transform-and-load did, for the summary line and the run record."""

    executions_loaded: int = 0
    stats: TransformStats = field(default_factory=TransformStats)
    rows: dict[str, int] = field(default_factory=dict)
    version: str = ""
    elapsed_s: float = 0.0
    instances: list[str] = field(default_factory=list)

    def line(self, stage: str) -> str:
        s = self.stats
        rejects = ", ".join(f"{n} {name}" for name, n in sorted(s.rejects.items())) or "none"
        return (
            f"{stage}: {self.executions_loaded} executions, {s.tasks} tasks, {s.artifacts} artifacts, {s.tags} tags "
            f"loaded ({s.duplicates} duplicate tasks dropped); rejects: {rejects}; lake now holds "
            f"{self.rows.get('tasks', 0)} tasks in {self.rows.get('executions', 0)} executions of "
            f"{len(self.instances)} instance{'s' if len(self.instances) != 1 else ''}; {self.elapsed_s:.1f} s"
        )


Loaded = dict[tuple[str, int], tuple[str, str | None]]  # what lake_fetches returns


def _loaded_fetches(loaded: Loaded, everything: list[Fetch]) -> Loaded:
    """After this load: the landing's newest fetches, and what the lake held for executions whose fetches
    are no longer in the landing (pruned or lost): that is how the incremental state survives."""
    merged = dict(loaded)
    for f in everything:
        status = f.execution.get("status") if f.complete else None  # an incomplete fetch is not done
        merged[f.key] = (f.run_id, status if isinstance(status, str) else None)
    return merged


def _behind(loaded: Loaded, everything: list[Fetch]) -> set[tuple[str, int]]:
    """Executions whose newest complete fetch is not the one the lake holds (a run killed after its extract,
    or a first load): loading them too makes the lake catch up with the landing, with no manual step."""
    return {f.key for f in everything if loaded.get(f.key, ("", None))[0] != f.run_id}


def load_lake(
    data_dir: Path,
    *,
    version: str,
    only: Iterable[tuple[str, int]] | None = None,
    instances: Iterable[str] = (),
    lake_location: str | None = None,
    batch_tasks: int = DEFAULT_BATCH_TASKS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    prepare: Callable[[list[Fetch]], object] | None = None,
    workers: int | None = None,
) -> LoadSummary:
    """Transform the raw landing and load it: every execution (``only=None``: a rebuild) or just ``only``.

    The load owns ``instances`` (the run's scope) or, when none are given, every instance whose policies or
    executions the landing holds: it writes their partitions and nobody else's. ``prepare`` is handed the
    fetches about to be transformed (a remote data directory copies their pages). ``workers``: lanes that
    transform side by side (default: one per core, see :func:`default_workers`); ``batch_tasks`` and
    ``batch_bytes``: how large a lane's batches are (:func:`pipeline.transform.batches`)."""
    started = time.monotonic()
    landing = Landing(data_dir)
    scope = set(instances)
    everything = [f for f in plan(landing) if not scope or f.key[0] in scope]
    # Not every instance of the project's listing: a job that extracted one instance has them all in its
    # instances listing, and its rebuild must not take (and empty) the other jobs' instances.
    owned = scope or (
        {f.key[0] for f in everything}
        | {m["instance_id"] for kind in ("policies", "executions") for m in landing.manifests(kind)}
    )
    lake = open_lake(data_dir, lake_location, writer=True)
    with lake_instances(lake.store, owned):
        try:
            legacy.repair(lake.store, owned)  # folders an older version named with raw ids: readers fail on them
            cut_short = lake.unfinished_rebuilds(owned)
            if cut_short and only is not None:
                log.warning("a rebuild of %s was cut short while publishing: rebuilding them", ", ".join(cut_short))
                only = None
            loaded = lake_fetches(lake, owned)
            wanted = None if only is None else set(only) | _behind(loaded, everything)
            fetches = everything if wanted is None else [f for f in everything if f.key in wanted]
            replace = None if only is None else [f.key for f in fetches]
            target = LakeLoad.begin(lake, version, instances=owned, replace=replace)
        except OSError as exc:
            raise LoadError(f"could not read the lake at {lake.store.url}: {exc}", path=lake.store.url) from exc
        summary = LoadSummary(executions_loaded=len(fetches), version=version)
        try:
            if prepare is not None:
                prepare(fetches)

            def listings() -> tuple[dict[str, pa.Table], set[str]]:
                try:
                    return small_tables(landing, _loaded_fetches(loaded, everything))
                except OSError as exc:  # not a lake write: said as what it is
                    raise LandingError(f"could not read the landing in {data_dir}: {exc}", path=str(data_dir)) from exc

            work = lanes(fetches, workers or default_workers(), batch_tasks, batch_bytes)
            summary.stats, (listed, listed_instances) = transform_lanes(work, target, listings)
            summary.rows = target.commit(listed, listed_instances)
            if listed[REJECTS.name].num_rows:
                summary.stats.rejects["listing"] = listed[REJECTS.name].num_rows
        except OSError as exc:  # a full disk, a file too large, a permission: the lake stays as it was
            target.abort()
            raise LoadError(f"could not write the lake in {lake.store.url}: {exc}", path=lake.store.url) from exc
        except BaseException:
            target.abort()
            raise
    summary.instances = sorted(owned)
    summary.elapsed_s = round(time.monotonic() - started, 3)
    return summary

"""What an extract still has to fetch: the executions in scope, less those landed whole and finished since."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import Settings
from pipeline.errors import LandingError
from pipeline.extraction.listing import ExecutionRef
from pipeline.extraction.summary import ExtractSummary
from pipeline.landing import Landing
from pipeline.load import lake_fetches, open_lake  # the lake's own reader of its state

log = logging.getLogger(__name__)

FINISHED = frozenset({"Succeed", "Failed", "Stopped"})  # an execution in one of these no longer changes


def still_to_fetch(
    settings: Settings, landing: Landing, refs: list[ExecutionRef], summary: ExtractSummary
) -> list[ExecutionRef]:
    """Incremental: leave out executions that were finished when last fetched and still are, unchanged.

    What counts as landed is read from the landing's manifests (no state file to lose or repair): an
    execution whose newest complete fetch saw it Succeed, Failed or Stopped, with no task missing and not
    cut short (``missing``, ``incomplete``), and whose status is the same now. The landing's manifest of a
    fetch outranks the lake's record of the same fetch: only the manifest says what was missing. ``--full``
    and executions named with ``--execution-id`` are fetched whatever their state; running executions
    always are, and replace their rows.
    """
    if settings.full:
        return refs
    landed: dict[tuple[str, int], tuple[str, Any]] = _landed_per_lake(settings)
    for manifest in landing.manifests("tasks"):
        key = (str(manifest["instance_id"]), int(manifest["execution_id"]))
        if key not in landed or landed[key][0] <= manifest["run_id"]:
            whole = not manifest.get("missing") and not manifest.get("incomplete")
            status = (manifest.get("execution") or {}).get("status") if whole else None
            landed[key] = (str(manifest["run_id"]), status)
    named = set(settings.execution_ids)
    todo = []
    for ref in refs:
        status = landed.get((ref.instance_id, ref.execution_id), ("", None))[1]
        if ref.execution_id not in named and status in FINISHED and ref.record.get("status") == status:
            summary.executions_unchanged += 1
        else:
            todo.append(ref)
    if summary.executions_unchanged:
        log.info("%d executions are finished and already landed: not fetched again", len(refs) - len(todo))
    return todo


def _landed_per_lake(settings: Settings) -> dict[tuple[str, int], tuple[str, Any]]:
    """What the lake says was loaded (run id, status at fetch): the incremental state when the raw
    landing was lost or pruned. The landing's manifests, when present, take precedence."""
    lake = open_lake(settings.data_dir, settings.lake, writer=True)
    try:
        return dict(lake_fetches(lake, settings.instance_ids))
    except OSError as exc:
        raise LandingError(f"could not read the lake at {lake.store.url}: {exc}", path=lake.store.url) from exc

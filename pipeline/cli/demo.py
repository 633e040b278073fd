"""The folder of ``swr-etl demo``: the demo writes only into a folder it made, and empties nothing else.

A data directory's raw landing is the only copy of the history the API has forgotten, so the demo never
deletes or overwrites anything it did not create. It takes a new or empty folder and marks it as its own
(:data:`MARKER`, a file saying so); it cleans only a folder carrying that mark, and only what the pipeline
writes there; it refuses any other folder that holds something. ``run`` and ``extract`` refuse a marked
folder in turn (:func:`pipeline.preflight.not_a_demo`), so that no real fetch lands where the demo cleans.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from pipeline.config import resolve_settings
from pipeline.errors import ConfigError
from pipeline.landing import atomic_write
from pipeline.preflight import DEMO_MARKER, folder, require

MARKER = DEMO_MARKER
MARKER_TEXT = (
    "This folder was made by 'swr-etl demo', which empties its landing, lake and warehouse on its next run.\n"
    "Do not keep real data here: 'swr-etl run' and 'swr-etl extract' refuse this folder.\n"
)
NOT_CONTENT = (".lock",)  # the lock file alone holds nothing: a folder with only that is empty
WRITTEN_BY_THE_PIPELINE = ("raw", ".lake", "lake")  # and the warehouse file: what a clean removes


def workers(environ: Mapping[str, str]) -> int | None:
    """The demo's transform lanes, from ``SWR_ETL_WORKERS`` as ``run`` reads it (the machine's memory limits the
    demo too). No other setting of the environment or of a config file applies: those name the real data
    directory, lake and API, which the demo never touches."""
    chosen = {k: v for k, v in environ.items() if k == "SWR_ETL_WORKERS"}
    return resolve_settings({}, chosen, None, need_api=False).workers


def claim(data_dir: Path) -> None:
    """Make ``data_dir`` the demo's folder (creating and marking it), or raise :class:`ConfigError` when it is
    not a folder the demo may write in: nothing is written then."""
    require(folder(data_dir, f"the data directory {data_dir}", "give --data-dir a new folder"))
    marker = data_dir / MARKER
    if marker.is_file():
        return
    found = sorted(p.name for p in data_dir.iterdir() if p.name not in NOT_CONTENT) if data_dir.is_dir() else []
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ConfigError(
            f"{data_dir} holds {shown}, which 'swr-etl demo' did not make, and the demo writes only into a new or "
            f"empty folder, or one it made (marked by {MARKER}): give --data-dir another folder"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(marker, MARKER_TEXT.encode())


def clean(data_dir: Path) -> None:
    """Empty the demo's folder of what the pipeline writes there: the landing, the lake and the warehouse. The
    user's own files stay; a folder without the mark is never touched."""
    if not (data_dir / MARKER).is_file():
        raise ConfigError(f"{data_dir} is not a folder of 'swr-etl demo' (no {MARKER}): it is not emptied")
    for name in WRITTEN_BY_THE_PIPELINE:
        if (data_dir / name).is_symlink():
            (data_dir / name).unlink()
        shutil.rmtree(data_dir / name, ignore_errors=True)
    (data_dir / "warehouse.duckdb").unlink(missing_ok=True)

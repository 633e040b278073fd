"""Checks of the places a command will write in, made before it does any work (before the first API request).

A setup mistake (a data directory that is a file, a lake under a file, a read-only folder) found here is one
``error:`` line that says what to fix, with exit status 2, instead of an extract's worth of requests followed by
a failure, or a Python exception called a bug. Each check returns its problem as a sentence, or ``None``;
:func:`require` raises them all together. Only local folders are checked: a location in a store is not asked
anything here (no request before the command's own).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.landing import MANIFEST
from pipeline.load.storage import is_remote

DEMO_MARKER = ".swr-etl-demo"  # in a folder `swr-etl demo` made: the demo may empty it, and nothing else may land there
LANDING_KINDS = ("instances", "policies", "executions", "tasks")  # the small listings first: found at once


def require(*problems: str | None) -> None:
    """Raise every problem found at once, as one :class:`ConfigError` (exit status 2)."""
    found = [p for p in problems if p]
    if found:
        raise ConfigError("; ".join(found))


def folder(path: Path, what: str, fix: str) -> str | None:
    """``path`` is, or can be made, a folder this process writes in. ``what`` names it ("the data directory
    /srv/x"), ``fix`` says what to do instead."""
    path = Path(path).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: making the folder would fail on it
            return f"{what} cannot be made: {existing} is a broken symbolic link: {fix}"
        existing = existing.parent
    if not existing.is_dir():
        if existing == path:
            return f"{what} is a file, not a folder: {fix}"
        return f"{what} cannot be made: {existing} is a file, not a folder: {fix}"
    # access(2) sees the permission bits, ACLs, a read-only mount and an immutable folder, and writes nothing
    if not os.access(existing, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        where = "" if existing == path else f" (it would be made in {existing}, which is not)"
        return f"{what} is not writable{where}: {fix} this user can write in, or fix the permissions"
    return None


def writable(path: Path) -> bool:
    """``path`` is, or can be made, a folder this process writes in."""
    return folder(path, str(path), "") is None


def data_dir(settings: Settings) -> str | None:
    """The local data directory, or the work folder of one in a store: the lock, the landing, the warehouse."""
    if settings.remote:
        what = f"the work folder {settings.data_dir} of {settings.remote}"
        return folder(settings.data_dir, what, "give --work-dir another folder")
    return folder(settings.data_dir, f"the data directory {settings.data_dir}", "give --data-dir a folder")


def landing_folder(settings: Settings) -> str | None:
    """``DATA_DIR/raw``, where an extract lands pages."""
    raw = settings.data_dir / "raw"
    if raw.exists() and not raw.is_dir():
        return f"the raw landing {raw} is a file, not a folder: move it out of the data directory"
    return None


def lake(settings: Settings) -> str | None:
    """The lake, when it is a local folder (``--lake PATH``, or ``DATA_DIR/lake``)."""
    location = settings.lake or str(settings.data_dir / "lake")
    if is_remote(location):
        return None
    return folder(Path(location), f"the lake {location}", "give --lake a folder")


def warehouse_file(settings: Settings) -> str | None:
    """``DATA_DIR/warehouse.duckdb``, which a load replaces: a folder of that name cannot be replaced."""
    path = settings.data_dir / "warehouse.duckdb"
    if path.is_dir():
        return f"{path} is a folder, where the warehouse file goes: move it out of the data directory"
    return None


def not_a_demo(settings: Settings) -> str | None:
    """Real fetches never land in the demo's folder, which the next ``swr-etl demo`` empties."""
    if (settings.data_dir / DEMO_MARKER).exists():
        return (
            f"{settings.data_dir} is the folder of 'swr-etl demo', which empties it on its next run: "
            "give --data-dir another folder"
        )
    return None


def landing(data_dir: Path, where: str | None = None) -> str | None:
    """A rebuild replays the landing: none (no complete fetch) is a mistake, not an empty lake."""
    raw = Path(data_dir) / "raw"
    for kind in LANDING_KINDS:
        if (raw / kind).is_dir() and next((raw / kind).rglob(MANIFEST), None) is not None:
            return None
    return (
        f"no landing to rebuild from in {where or raw} (no complete fetch): check --data-dir, or fetch first "
        "with 'swr-etl run'"
    )


def checks(command: str, settings: Settings) -> list[str | None]:
    """What ``command`` needs of its folders: ``run`` and ``extract`` land pages (never in the demo's folder;
    ``demo`` is the run of ``swr-etl demo`` there),
    ``run`` and ``rebuild`` load the lake, these and ``views`` (``rebuild --views-only``) write the warehouse,
    and ``rebuild`` replays a landing (one in a store is looked for once its state is pulled)."""
    problems = [data_dir(settings)]
    if problems[0] is not None:  # what lies inside it is not looked at: the one problem is said once
        return [*problems, lake(settings) if command in ("run", "demo", "rebuild") and settings.lake else None]
    if command in ("run", "extract", "demo"):
        problems.append(landing_folder(settings))
    if command in ("run", "extract"):
        problems.append(not_a_demo(settings))
    if command in ("run", "demo", "rebuild", "views"):
        problems.append(warehouse_file(settings))
    if command in ("run", "demo", "rebuild"):
        problems.append(lake(settings))
    if command == "rebuild" and not settings.remote:
        problems.append(landing(settings.data_dir))
    return problems

"""Partition folders that versions before :mod:`pipeline.names` wrote with the raw id in their name.

Such a folder (``tasks/instance_id=a=b``, ``instance_id=x%2D1``) is read back by DuckDB as another id, or
not at all ("Hive partition mismatch"), which breaks every view of the lake for every job that shares it.
A load repairs the instances it owns: each file moves to its encoded folder (the files hold no instance id,
so the move is exact), one file at a time and idempotently, so a move cut short is finished by the next
load. Folders of instances the load does not own are left to their own jobs, and named by
:func:`describe` when a reader fails on them.
"""

from __future__ import annotations

import logging

from pyarrow.fs import FileSelector, FileType

from pipeline import names
from pipeline.errors import UnusableIdError
from pipeline.load.storage import LakeStore
from pipeline.schema import TABLES

log = logging.getLogger(__name__)

KEY = "instance_id"


def legacy_folders(store: LakeStore) -> dict[str, list[str]]:
    """Raw id -> the folders (relative to the lake's root) holding that id unencoded, over every table."""
    found: dict[str, list[str]] = {}
    for table in TABLES.values():
        selector = FileSelector(store.path(table.name), allow_not_found=True)
        for info in store.fs.get_file_info(selector):
            name = info.base_name
            if info.type != FileType.Directory or not name.startswith(f"{KEY}="):
                continue
            raw = name.removeprefix(f"{KEY}=")
            if raw == names.PLACEHOLDER or names.canonical(raw):
                continue
            found.setdefault(raw, []).append(f"{table.name}/{name}")
    return found


def repair(store: LakeStore, owned: set[str]) -> list[str]:
    """Move the files of owned instances' legacy folders to their encoded folders; returns the ids repaired.
    A file whose encoded twin exists already was written later, by this version: the legacy one is dropped."""
    repaired = []
    for raw, folders in sorted(legacy_folders(store).items()):
        if raw not in owned:
            continue
        try:
            target_name = names.folder(KEY, raw)
        except UnusableIdError:  # cannot be encoded: left as it is, named by describe()
            continue
        log.warning(
            "moving the lake's folders of instance %r to their encoded names (written by an older version)", raw
        )
        for old in folders:
            table = old.split("/", 1)[0]
            for relative in store.files(old, hidden=True):
                target = f"{table}/{target_name}/{relative.removeprefix(old + '/')}"
                if store.exists(target):
                    store.delete(relative)
                else:
                    store.move(relative, target)
            store.delete_dir(old)
        repaired.append(raw)
    return repaired


def describe(store: LakeStore) -> str:
    """What to tell a reader that failed on legacy folders: which, and how to repair them. Empty when none."""
    found = legacy_folders(store)
    if not found:
        return ""
    shown = ", ".join(sorted(f for folders in found.values() for f in folders)[:5])
    ids = " ".join(f"--instance-id {_shell(raw)}" for raw in sorted(found)[:3])
    return (
        f"the lake at {store.url} holds partition folders named by an older version with raw instance ids, "
        f"which no reader can parse ({shown}); run 'swr-etl rebuild {ids}' (or the job that owns those "
        "instances), which renames them"
    )


def _shell(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"

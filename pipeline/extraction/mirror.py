"""A data directory on object storage: ``--data-dir s3://bucket/prefix``.

Everything durable lives in the store: the raw landing under ``<prefix>/raw/`` and the lake under
``<prefix>/lake/``. A run works in a local folder (``--work-dir``, by default
``~/.cache/swr-etl/<bucket>/<prefix>``), because landing pages needs what object stores lack (fsync, renames,
an append-only journal) and the warehouse is a DuckDB file:

- before it extracts or loads, a run copies what the folder lacks of the landing's small files (manifests,
  run records, the listings' pages), which is all the incremental state and the small tables need;
- before it transforms, it copies the pages of the fetches it is about to load (and only those: a nightly
  run on a fresh machine downloads what it loads, not the whole history; a rebuild downloads everything);
- after it extracts, even after a failure, it uploads the complete fetches the store lacks: pages first,
  the manifest last, so a fetch is complete in the store exactly when it is complete on disk.

A fetch folder never changes once its manifest is written, so a copy is either there or not: no versions
to compare. The local folder is a cache: delete it, or use a new machine, and the next run rebuilds it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.errors import ConfigError, LandingError
from pipeline.landing import MANIFEST, atomic_write
from pipeline.load.storage import LakeStore, open_store
from pipeline.transform import Fetch

log = logging.getLogger(__name__)

FROM_STORE = ".from-store"  # in a fetch folder copied down from the store: never pushed back
MARKER = ".swr-etl-remote"  # in the work folder: which data directory it is a copy of
TRANSFERS = 16  # objects copied at once: a store answers each in tens of milliseconds, so one at a time is slow


def _each(action: Callable[[str], None], items: list[str]) -> None:
    """``action`` on every item, ``TRANSFERS`` at a time; the first failure is raised once all have ended."""
    if len(items) < 2:
        for item in items:
            action(item)
        return
    with ThreadPoolExecutor(TRANSFERS, thread_name_prefix="mirror") as pool:
        for _ in pool.map(action, items):
            pass


class Mirror:
    """The raw landing of a remote data directory, and its local copy in the work folder."""

    def __init__(self, work_dir: Path, remote: str) -> None:
        self.local = Path(work_dir) / "raw"
        self.store: LakeStore = open_store(remote.rstrip("/") + "/raw")
        self._claim(Path(work_dir), remote.rstrip("/"))
        self._pulled = False
        self.synced = False  # the state was pulled, and the last push uploaded every fetch landed here

    @staticmethod
    def _claim(work_dir: Path, remote: str) -> None:
        """A work folder serves one data directory: two jobs sharing one would push each other's fetches."""
        marker = work_dir / MARKER
        if marker.exists():
            if marker.read_text(encoding="utf-8").strip() != remote:
                raise ConfigError(
                    f"work folder {work_dir} is the copy of {marker.read_text(encoding='utf-8').strip()}, not of "
                    f"{remote}: give each data directory a --work-dir of its own"
                )
            return
        atomic_write(marker, (remote + "\n").encode())

    def _remote_files(self) -> set[str]:
        try:
            return set(self.store.files(hidden=True))
        except OSError as exc:
            raise LandingError(f"could not list {self.store.url}: {exc}", path=self.store.url) from exc

    def _download(self, relative: str) -> None:
        try:
            data = self.store.read_bytes(relative)
        except OSError as exc:
            raise LandingError(f"could not read {self.store.uri(relative)}: {exc}", path=self.store.url) from exc
        atomic_write(self.local / relative, data, fsync=True)

    def _upload(self, relative: str) -> None:
        try:
            self.store.write_bytes((self.local / relative).read_bytes(), relative)
        except OSError as exc:
            raise LandingError(f"could not write {self.store.uri(relative)}: {exc}", path=self.store.url) from exc

    def pull_state(self) -> int:
        """Copy what the local landing lacks of the small files: every manifest, the run records, and the
        listings' pages (instances, policies, executions); task pages wait for :meth:`pull_pages`."""
        wanted = [
            f
            for f in sorted(self._remote_files())
            if (f.endswith("/" + MANIFEST) or not f.startswith("tasks/")) and not (self.local / f).exists()
        ]

        def pull(relative: str) -> None:
            if relative.endswith("/" + MANIFEST):  # marked first: a copy is never taken for a fetch landed here
                atomic_write(self.local / relative.rsplit("/", 1)[0] / FROM_STORE, b"")
            self._download(relative)

        _each(pull, wanted)
        self._pulled = True
        if wanted:
            log.info("copied %d manifests, listings and run records from %s", len(wanted), self.store.url)
        return len(wanted)

    def pull_pages(self, fetches: Iterable[Fetch]) -> int:
        """Copy the pages of these fetches that the local landing lacks; returns how many."""
        wanted = [
            f"{fetch.folder.relative_to(self.local).as_posix()}/{name}"
            for fetch in fetches
            for _, name, *_ in fetch.pages
            if not (fetch.folder / name).exists()
        ]
        _each(self._download, wanted)
        if wanted:
            log.info("copied %d pages from %s", len(wanted), self.store.url)
        return len(wanted)

    def push(self) -> int:
        """Upload the complete fetches (and run records) the store lacks: pages, then the manifest. Only
        fetches landed here: one copied down from the store and since pruned there is not brought back."""
        self.synced = False
        if not self.local.exists():
            self.synced = self._pulled
            return 0
        remote = self._remote_files()
        manifests, pages = [], []
        for manifest in sorted(self.local.rglob(MANIFEST)):
            relative = manifest.relative_to(self.local).as_posix()
            if relative in remote or (manifest.parent / FROM_STORE).exists():
                continue
            folder = relative.rsplit("/", 1)[0]
            listed = (f"{folder}/{page['file']}" for page in json.loads(manifest.read_bytes())["pages"])
            pages += [page for page in listed if page not in remote]
            manifests.append(relative)
        _each(self._upload, pages)
        _each(self._upload, manifests)  # only once every page is in: a fetch is complete there when it is here
        count = len(manifests)
        for record in sorted((self.local / "runs").glob("*.json")):
            relative = record.relative_to(self.local).as_posix()
            if relative not in remote:  # a run record pruned in the store comes back: it is a few hundred bytes
                self._upload(relative)
        if count:
            log.info("copied %d complete fetches to %s", count, self.store.url)
        self.synced = self._pulled
        return count

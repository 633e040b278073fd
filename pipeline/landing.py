"""The raw landing: API pages exactly as received, zstd-compressed, plus manifests to replay them.

Extract writes here and transform reads here; neither looks inside the other. Layout under ``DATA_DIR/raw``::

    instances/run_id=R/page-000000000.json.zst
    policies/instance_id=I/run_id=R/page-000000000.json.zst
    registries/instance_id=I/run_id=R/page-000000000.json.zst
    executions/instance_id=I/run_id=R/page-000000000.json.zst
    tasks/instance_id=I/execution_id=E/run_id=R/page-000000100.json.zst
    subtasks/instance_id=I/execution_id=E/run_id=R/task_id=T/page-000000000.json.zst   (extraction.subtaskfetch)
    <every run_id=R folder>/_manifest.json       written last: the fetch is complete
    runs/R.json                                  the run's summary

A page file holds the response body byte for byte (one zstd frame at level 3, so the same body always
gives the same file with the same zstd library; landings written by earlier versions hold ``.json.gz``
pages, which every reader still takes: the codec follows the file name), with one exception: Harbor's
``registry`` object inside an embedded resource, and every record of the registries listing, may carry a
remote registry's ``credential`` (``access_key``, ``access_secret``). Those values are masked before anything
is written (:func:`scrub_credentials`), and the manifest counts what was masked.
The manifest lists every page with what is needed to replay or check it: path, query, offset, limit, HTTP
status, request id, time fetched, rows, total, byte count and SHA-256 of the body as stored.
A folder without ``_manifest.json`` is a fetch that did not finish: readers skip it.

Every file is written to a temporary name in its folder and renamed into place, so a crash never leaves a
half-written file under a name a reader would open. ``run_id`` sorts by time, so the newest complete fetch
of an execution is the last one in name order.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import threading
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from pipeline import names
from pipeline.errors import LandingError

MANIFEST = "_manifest.json"
JOURNAL = "_journal.jsonl"  # pages landed so far by a fetch not yet complete: what a resumed run can reuse
MASK = "***"
CREDENTIAL_KEYS = frozenset({"access_key", "access_secret"})
# the same keys in text that is not JSON: `"access_secret":"x"`, or inside a string `\"access_secret\":\"x\"`
# the value runs to the closing quote (at any escape level) that a ``,`` or ``}`` follows, so a quote or a
# backslash inside a secret does not end it early
_CREDENTIAL_TEXT = re.compile(r'(\\*"(?:access_key|access_secret)\\*"\s*:\s*\\*")((?:(?!\\*"\s*[,}]).)*)', re.DOTALL)
FORMAT_VERSION = 1
PAGE_SUFFIX = ".json.zst"
MAX_PAGE_BYTES = 1 << 30  # no API page comes near: 100 tasks of a few KiB each
ZSTD_LEVEL = 3  # smaller and faster than gzip on these pages (docs/decisions/0001-zstd-for-raw-pages.md)
_zstd = threading.local()  # a zstd context is not safe to share between threads


def compress_page(body: bytes) -> bytes:
    """A page body as stored: one zstd frame that records its size."""
    if not hasattr(_zstd, "compressor"):
        _zstd.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    data: bytes = _zstd.compressor.compress(body)
    return data


def decompress_page(name: str | Path, data: bytes) -> bytes:
    """A stored page's body: zstd (``.zst``), or gzip (``.gz``, landings written by earlier versions).

    Raises ``ValueError`` when the data is not what its name says, is cut short or corrupt, or holds more than
    any page can (:data:`MAX_PAGE_BYTES`). That is found out before the memory is taken: from the size a zstd
    frame states, or by decompressing a little at a time (a few KiB of zeros can expand to gigabytes).
    """
    try:
        if str(name).endswith(".gz"):
            return _gzip_members(data)
        size = zstandard.frame_content_size(data)
        if size > MAX_PAGE_BYTES:
            raise ValueError(f"the zstd frame says {size} bytes, more than a page can be")
        # one decompressor a thread, and one call for a frame that states its size:
        # docs/decisions/0016-reading-zstd-pages.md
        if not hasattr(_zstd, "decompressor"):
            _zstd.decompressor = zstandard.ZstdDecompressor()
        unzstd = _zstd.decompressor
        if size > 0:  # one frame that states its size (ours always): one call
            # (not for a size of 0: zstandard then returns nothing, whatever frames follow)
            with contextlib.suppress(zstandard.ZstdError):  # not alone: more frames follow (read below)
                return bytes(unzstd.decompress(data, allow_extra_data=False))
        return _zstd_frames(unzstd, data)
    except (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc


def _gzip_members(data: bytes) -> bytes:
    """Every gzip member of ``data``, a MiB at a time (a read of the whole limit at once would reserve it)."""
    parts, total = [], 0
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
        while part := gz.read(1 << 20):
            parts.append(part)
            total += len(part)
            if total > MAX_PAGE_BYTES:
                raise ValueError(f"the gzip data holds more than {MAX_PAGE_BYTES} bytes, more than a page can be")
    return b"".join(parts)


_FEED = 256  # bytes of zstd data decompressed a step: a step's output stays under 8 MiB (zstd expands 32,000x)


def _zstd_frames(unzstd: zstandard.ZstdDecompressor, data: bytes) -> bytes:
    """Frame after frame, as DuckDB reads them, a few bytes of input at a time: a frame need not state its size
    (another tool's streaming writer), so only the output as it comes tells when it is too large."""
    parts, rest, total = [], data, 0
    while rest:
        frame, used = unzstd.decompressobj(), 0
        while not frame.eof and used < len(rest):
            parts.append(frame.decompress(rest[used : used + _FEED]))
            used += _FEED
            total += len(parts[-1])
            if total > MAX_PAGE_BYTES:
                raise ValueError(f"the zstd data holds more than {MAX_PAGE_BYTES} bytes, more than a page can be")
        if not frame.eof:
            raise ValueError("the zstd data is cut short")
        rest = frame.unused_data + rest[used:]
    return b"".join(parts)


def task_id_key(value: Any) -> Any:
    """A task's id as the transform will read it, or near enough: text is read as the integer it spells (around
    it any white space), other values compare as they are (``1 == 1.0 == True`` in Python). Two ids the
    transform reads as one integer always share a key here (a key may join more, which only costs the
    transform a settling of its own), given the same JSON value: a task object that holds ``id`` twice is
    read as its last by Python and its first by DuckDB (the transform keeps the same one)."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value if isinstance(value, int | float | bool | None) else repr(value)


@dataclass
class TaskIds:
    """The task ids of one fetch as they are landed: how many repeat an earlier one (``repeats``, recorded in
    the manifest as ``task_id_repeats``; with none, the transform need not settle duplicates across the fetch's
    pages), and how many are distinct."""

    keys: set[Any] = field(default_factory=set)
    repeats: int = 0

    def add(self, tasks: list[Any]) -> None:
        for task in tasks:
            key = task_id_key(task.get("id") if isinstance(task, dict) else None)
            if key in self.keys:
                self.repeats += 1
            else:
                self.keys.add(key)

    def __len__(self) -> int:
        return len(self.keys)


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by time: ``20261129T021500123Z-1a2b3c``."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


def atomic_write(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see all of it or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if fsync:
            fsync_path(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LandingError(f"could not write {path}: {exc.strerror or exc}", path=str(path)) from exc


def fsync_path(path: Path) -> None:
    """Make a file's contents, or a folder's names (a rename), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def scrub_credentials(body: bytes, page: Any = None) -> tuple[bytes, int]:
    """Mask registry credentials anywhere in a page, including inside embedded resource strings.

    ``page`` is the body already parsed, when the caller has it. Returns the body (unchanged, byte for byte,
    when there is nothing to mask) and how many values were masked.
    """
    named = b"access_key" in body or b"access_secret" in body
    if not named and (b"\\u" not in body or _ESCAPED_KEY_BYTES.search(body) is None):
        return body, 0
    if page is None:
        try:
            page = json.loads(body)
        except ValueError:
            text, n = _CREDENTIAL_TEXT.subn(rf"\g<1>{MASK}", body.decode("utf-8", "replace"))
            return text.encode(), n
    scrubbed, n = _mask(page)
    if not n:
        return body, 0
    return json.dumps(scrubbed, ensure_ascii=False, separators=(",", ":")).encode(), n


def _mask(value: Any) -> tuple[Any, int]:
    """``value`` with every credential masked, and how many; untouched parts are shared, not copied."""
    if isinstance(value, str):
        if not _may_hold_credential(value):
            return value, 0
        try:
            inner = json.loads(value)
        except ValueError:
            text, n = _CREDENTIAL_TEXT.subn(rf"\g<1>{MASK}", value)
            return text, n
        masked, n = _mask(inner)
        return (json.dumps(masked, ensure_ascii=False, separators=(",", ":")), n) if n else (value, 0)
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return value, 0
    total = 0
    out: Any = None
    for key, item in items:
        if key in CREDENTIAL_KEYS and item not in ("", MASK, None):
            new, n = MASK, 1  # whatever the type: a secret sent as a number or an object is a secret too
        elif isinstance(item, (dict, list)) or (isinstance(item, str) and _may_hold_credential(item)):
            new, n = _mask(item)
        else:
            continue  # a leaf without credentials: the common case, kept cheap
        if n:
            if out is None:
                out = dict(value) if isinstance(value, dict) else list(value)
            out[key] = new
            total += n
    return (out, total) if out is not None else (value, 0)


def _may_hold_credential(text: str) -> bool:
    """Whether ``text`` may name a credential key, also spelled with JSON escapes (``\\u0061ccess_key``)."""
    if "access_key" in text or "access_secret" in text:
        return True
    return "\\u" in text and _ESCAPED_KEY.search(text) is not None


def _spelled(word: str) -> str:
    """A pattern for ``word`` with any letter written as itself or as a JSON escape, at any escape level."""
    return "".join(f"(?:{re.escape(c)}|\\\\+u(?i:{ord(c):04x}))" for c in word)


_ESCAPED_KEY = re.compile(_spelled("access_") + f"(?:{_spelled('key')}|{_spelled('secret')})")
_ESCAPED_KEY_BYTES = re.compile(_ESCAPED_KEY.pattern.encode())


@dataclass(frozen=True)
class PageRecord:
    """One landed page, as listed in its fetch's manifest."""

    file: str
    path: str
    params: dict[str, Any]
    offset: int
    limit: int
    status: int
    request_id: str | None
    fetched_at: str
    rows: int
    total: int | None
    bytes: int
    sha256: str
    scrubbed: int = 0
    pass_no: int = 0  # a later pass over the same execution (when the first missed tasks) lands beside it


class FetchWriter:
    """Lands the pages of one fetch (one listing: instances, policies, executions, or one execution's tasks)."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.meta = meta
        self.pages: list[PageRecord] = []
        self._journaling = False  # only a fetch that may be resumed (begin()) keeps a journal

    def write_page(
        self,
        *,
        body: bytes,
        path: str,
        params: dict[str, Any],
        offset: int,
        limit: int,
        status: int,
        request_id: str | None,
        fetched_at: str,
        rows: int,
        total: int | None,
        parsed: Any = None,
        pass_no: int = 0,
    ) -> PageRecord:
        """Land one body (credentials masked). Safe to call from several threads for different offsets.

        ``parsed`` is the body already parsed, if the caller has it (saves parsing it again).
        """
        body, scrubbed = scrub_credentials(body, parsed)
        name = f"page-{offset:09d}{PAGE_SUFFIX}" if not pass_no else f"page-{offset:09d}.p{pass_no}{PAGE_SUFFIX}"
        # pages are fsynced too: a manifest that survives a power cut must not point at empty pages
        atomic_write(self.folder / name, compress_page(body), fsync=True)
        return PageRecord(
            file=name,
            path=path,
            params=params,
            offset=offset,
            limit=limit,
            status=status,
            request_id=request_id,
            fetched_at=fetched_at,
            rows=rows,
            total=total,
            bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            scrubbed=scrubbed,
            pass_no=pass_no,
        )

    def add(self, record: PageRecord) -> None:
        """Count a landed page in; journaled too after :meth:`begin`, so an interrupted fetch can resume."""
        self.pages.append(record)
        if self._journaling:
            self._journal({"page": asdict(record)})

    def begin(self, **header: Any) -> None:
        """Open the journal of a fetch that may be resumed (the execution's record, as listed)."""
        self._journaling = True
        self._journal({"header": header})

    def _journal(self, entry: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / JOURNAL, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def adopt(self, folder: Path, record: PageRecord) -> None:
        """Take a page landed by an interrupted fetch of the same execution (a hard link, no copy)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.link(folder / record.file, self.folder / record.file)
        self.add(record)

    def complete(self, **summary: Any) -> Path:
        """Write the manifest: from now on readers take this fetch."""
        manifest = {
            "format": FORMAT_VERSION,
            **self.meta,
            **summary,
            "completed_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "pages": [asdict(p) for p in sorted(self.pages, key=lambda p: p.offset)],
        }
        path = self.folder / MANIFEST
        atomic_write(path, json.dumps(manifest, indent=1, ensure_ascii=False).encode(), fsync=True)
        (self.folder / JOURNAL).unlink(missing_ok=True)
        return path


class Landing:
    """The ``raw/`` folder of a data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "raw"

    def fetch(self, kind: str, run_id: str, **keys: str | int) -> FetchWriter:
        """A writer for one fetch; ``keys`` (instance_id, execution_id) become hive-style folders."""
        folder = self.root / kind
        for key, value in keys.items():
            folder /= names.folder(key, value)
        folder /= names.folder("run_id", run_id)
        return FetchWriter(folder, {"kind": kind, "run_id": run_id, **keys})

    def interrupted(self, kind: str, **keys: str | int) -> Iterator[tuple[Path, dict[str, Any], list[PageRecord]]]:
        """Fetches that never completed (a journal, no manifest), newest first: folder, header, pages."""
        base = self.root / kind
        for key, value in keys.items():
            base /= names.folder(key, value)
        if not base.exists():
            return
        for folder in sorted(base.glob("run_id=*"), reverse=True):
            journal = folder / JOURNAL
            if (folder / MANIFEST).exists() or not journal.exists():
                continue
            header: dict[str, Any] = {}
            pages = []
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # the last line of a journal cut short by a crash
                if "header" in entry:
                    header = entry["header"]
                elif "page" in entry:
                    pages.append(PageRecord(**entry["page"]))
            yield folder, header, pages

    def remove_leftovers(self) -> int:
        """Delete the temporary files of writes a killed run never finished (``.<name>.<pid>.<hex>.tmp``, see
        :func:`atomic_write`). Only for the holder of the data directory's lock: no other writer is alive."""
        removed = 0
        if self.root.exists():
            for path in self.root.rglob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def write_run(self, run_id: str, summary: dict[str, Any]) -> Path:
        path = self.root / "runs" / f"{run_id}.json"
        atomic_write(path, json.dumps(summary, indent=1, ensure_ascii=False).encode(), fsync=True)
        return path

    def manifests(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every complete fetch of ``kind``, oldest first within each key (folder name order)."""
        base = self.root / kind
        if not base.exists():
            return
        for path in sorted(base.rglob(MANIFEST)):
            try:
                manifest = json.loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise LandingError(f"unreadable manifest {path}: {exc}", path=str(path)) from exc
            manifest["folder"] = str(path.parent)
            yield manifest

    @staticmethod
    def read_page(folder: str | Path, page: dict[str, Any]) -> bytes:
        """The body of one landed page, checked against its manifest entry."""
        path = Path(folder) / page["file"]
        try:
            body = decompress_page(path, path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LandingError(f"unreadable page {path}: {exc}", path=str(path)) from exc
        if len(body) != page["bytes"] or hashlib.sha256(body).hexdigest() != page["sha256"]:
            raise LandingError(f"page {path} does not match its manifest", path=str(path))
        return body

"""The landed task pages as text: read, decompressed, and handed to DuckDB as it asks for them; and read
again, one at a time, for the few records Python explains."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.errors import LandingError
from pipeline.landing import decompress_page
from pipeline.transform.plan import Fetch, Page

# a batch's pages, a row each: the temporary table ``batch_files``, and the keys each page's text carries
BATCH_FILES = pa.schema(
    [
        ("filename", pa.string()),
        ("instance_id", pa.string()),
        ("execution_id", pa.int64()),
        ("run_id", pa.string()),
        ("page_offset", pa.int64()),
        ("pass_no", pa.int32()),
        ("rows", pa.int64()),
        ("execution_month", pa.string()),
        ("policy_id", pa.int64()),
    ]
)


class PageTexts:
    """The text of a batch's pages, for DuckDB to parse: ``reader()`` is registered as ``page_texts`` (the
    page's keys of :data:`BATCH_FILES`, and ``json``), a page a record batch. Each file is read and
    decompressed here as DuckDB asks for it (zstandard lets go of the GIL, so lanes decompress side by side)
    and handed over without a copy; a page at a time is the fastest (decision 0011). A page spread over lines,
    or larger than any reader's buffer, needs nothing special.

    A page that does not decompress, or is not UTF-8 text, is left out and recorded in ``unread`` (path,
    reason, raw text or None). A file that cannot be read at all is a broken landing, not a bad record: it
    ends the stream, and the transformer raises its :class:`LandingError` once the statement
    is done."""

    def __init__(self, pages: pa.RecordBatch) -> None:
        self.pages = pages
        self.unread: list[tuple[str, str, str | None]] = []
        self.failed: LandingError | None = None

    def reader(self) -> pa.RecordBatchReader:
        schema = self.pages.schema.append(pa.field("json", pa.large_string()))
        return pa.RecordBatchReader.from_batches(schema, self._batches(schema))

    def _batches(self, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        for i, path in enumerate(self.pages.column("filename").to_pylist()):
            try:
                data = page_file(path)
            except LandingError as exc:
                self.failed = exc
                return
            text, broken = decompressed(path, data)
            del data
            if broken is not None:
                self.unread.append((path, broken, None))
                continue
            offsets = pa.py_buffer(np.array([0, len(text)], dtype=np.int64))
            json = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(text)])
            try:
                json.validate(full=True)
            except pa.ArrowInvalid:
                try:
                    text.decode("utf-8")
                    reason = "it is not UTF-8 text"  # Arrow and Python disagree: never seen
                except UnicodeDecodeError as exc:
                    reason = f"it is not UTF-8 text ({exc})"
                self.unread.append((path, f"page is not JSON: {reason}", as_text(text)))
                continue
            yield pa.RecordBatch.from_arrays([*self.pages.slice(i, 1).columns, json], schema=schema)


def page_file(path: str | Path) -> bytes:
    """A landed page's file, as stored. A file that cannot be read at all is a broken landing, not a bad
    record: that raises :class:`LandingError`."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LandingError(f"unreadable page {path}: {exc.strerror or exc}", path=str(path)) from exc


def decompressed(path: str | Path, data: bytes) -> tuple[bytes, str | None]:
    """A page's body (without a UTF-8 byte order mark, which no JSON reader wants), or why it does not
    decompress (a page cut short, or corrupt)."""
    try:
        body = decompress_page(path, data)
        return (body[len(codecs.BOM_UTF8) :] if body.startswith(codecs.BOM_UTF8) else body), None
    except ValueError as exc:
        return b"", f"page could not be decompressed: {exc} (its file is kept in the landing as it is)"


def page_text(fetch: Fetch, page: Page) -> tuple[str, str | None]:
    """A landed page's text, or why it does not decompress."""
    path = fetch.folder / page[1]
    body, broken = decompressed(path, page_file(path))
    return as_text(body), broken


def as_text(body: bytes) -> str:
    """A page's body as text, what is not UTF-8 replaced (a reject keeps what can be shown of it)."""
    return body.decode("utf-8", "replace")


def earlier_passes(fetch: Fetch, offset: int, pass_no: int, position: int) -> set[str]:
    """The item at ``position`` of the page at ``offset`` in each pass of ``fetch`` before ``pass_no``, as text.
    An item without an id cannot be settled by id as tasks are: the same text in the same place is the same
    item, rejected once (read only for the few such items of later passes)."""
    found: set[str] = set()
    for page in fetch.all_pages or fetch.pages:
        if page[0] != offset or page[3] >= pass_no:
            continue
        text, broken = page_text(fetch, page)
        try:
            body = json.loads(text) if broken is None else None
        except (ValueError, RecursionError):
            continue
        tasks = body.get("tasks") if isinstance(body, dict) else None
        if isinstance(tasks, list) and position < len(tasks):
            found.add(json.dumps(tasks[position], ensure_ascii=False))
    return found

"""The transformer: raw task pages into tidy Arrow tables (tasks, artifacts, tags, rejects), a batch at a time.

The heavy lifting runs inside DuckDB (vectorised C++): it parses the pages (decompressed as it asks for them,
:class:`~pipeline.transform.pages.PageTexts`), unnests the tasks and parses both embedded ``src_resource`` /
``dst_resource`` in the same pass (``read.sql``), and hands the batch over as one Arrow table. DuckDB queries
that table in place for the tasks and the rejects; the few resources that did not parse, or look wrong, are
judged in one place (``resource_errors.sql``). Arrow explodes the good sides' artifact lists, straight from
that table, into artifacts and tags (:mod:`pipeline.transform.explode`). Python only plans the batches
(:mod:`pipeline.transform.plan`), explains the few records that were rejected (:mod:`pipeline.transform.judge`),
and hands Arrow tables to the loader. A load runs several :class:`Transformer` side by side, one per lane of
whole partitions. The statements are the files of ``sql/transform/`` (:mod:`pipeline.transform.sql`).

Bad input never stops a run and never vanishes. A resource that cannot be read (invalid JSON, trailing text
after the object, a missing or null resource, an empty string, a part of the wrong structure) gives a
``rejects`` row with its raw text and the reason, and no artifact or tag rows for that side; its task row
still loads. A scalar of another type than expected (a tag or a digest sent as a number) is read as its text.
A task with no usable id cannot be a ``tasks`` row (it has no key): it goes to ``rejects`` whole. A missing
``operation`` or ``status``, and a time or revision that does not parse, are recorded too (the row still
loads, with a null). Duplicated task ids within a fetch keep the row with the highest ``StatusRevision``
(then the later pass, page and position); a fetch whose pages hold a task object with its ``id`` twice is
the one exception (see :meth:`Transformer._unrepeated`).

Memory is bounded by the batch size (whole executions, about ``batch_tasks`` tasks at a time), by the number
of lanes and by DuckDB's ``memory_limit``, never by the size of the run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.schema import REJECTS, TASKS, Table
from pipeline.transform.connection import Connection
from pipeline.transform.explode import explode, with_facts
from pipeline.transform.judge import explain, odd_pages_and_tasks, page_reject, repeat_rejects
from pipeline.transform.pages import BATCH_FILES, PageTexts
from pipeline.transform.plan import Fetch
from pipeline.transform.sink import Sink
from pipeline.transform.sql import IDS_STRUCTURE, PAGE_STRUCTURE, UNPARSED, define_macros, statement

log = logging.getLogger(__name__)

MEMORY_MB = 384  # DuckDB's memory limit when one lane transforms alone
LANE_MEMORY_MB = 256  # ... and in each of several lanes
CHUNK_ROWS = 128 * 1024  # rows of the tasks table handed to the writer at a time

_ROOMY = threading.RLock()  # see Transformer._roomier (lanes never take a retry's room together)


@dataclass
class TransformStats:
    tasks: int = 0
    duplicates: int = 0
    artifacts: int = 0
    tags: int = 0
    subtasks: int = 0  # added by the load (pipeline.transform.subtasks), not by the DuckDB transform
    rejects: dict[str, int] = field(default_factory=dict)

    def add(self, other: TransformStats) -> None:
        self.tasks += other.tasks
        self.subtasks += other.subtasks
        self.duplicates += other.duplicates
        self.artifacts += other.artifacts
        self.tags += other.tags
        for name, n in other.rejects.items():
            self.rejects[name] = self.rejects.get(name, 0) + n

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())


class Transformer:
    """Turns batches of fetches into Arrow tables. Holds one DuckDB connection; use as a context manager."""

    def __init__(self, *, threads: int | None = None, memory_limit_mb: int = MEMORY_MB) -> None:
        self.memory_limit_mb = memory_limit_mb
        self._spill = tempfile.mkdtemp(prefix="swr-etl-duckdb-")  # an execution larger than memory spills here
        self.db = Connection()
        self.db.execute("SET temp_directory = $dir", {"dir": self._spill})
        self.db.execute(f"SET threads = {int(threads or os.cpu_count() or 2)}")
        self.db.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute("SET preserve_insertion_order = false")
        define_macros(self.db)
        self._settled: tuple[tuple[tuple[str, int], str], tuple[int, int]] | None = None  # see _settle
        self._earlier: tuple[tuple[tuple[str, int], str], np.ndarray] | None = None  # see _unrepeated

    def interrupt(self) -> None:
        """Stop, from another thread: the statement running now raises, and so does any later one."""
        self.db.interrupt()

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self._spill, ignore_errors=True)

    def __enter__(self) -> Transformer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transform(self, fetches: list[Fetch], sink: Sink) -> TransformStats:
        """Transform some whole executions and hand their rows to ``sink`` in chunks, table by table.

        The batch's parsed tasks are held as one Arrow table (so memory follows the batch size); the tables
        that leave are handed over chunk by chunk. A batch too large for DuckDB's memory limit (huge
        resources) is done again with one thread and eight times the memory, if no row had left yet.
        """
        emitted = [0]

        def counting(table: Table, rows: pa.Table, partition: tuple[str, str] | None = None) -> None:
            emitted[0] += rows.num_rows
            sink(table, rows, partition)

        try:
            return self._transform(fetches, counting)
        except duckdb.OutOfMemoryException:
            if emitted[0]:
                raise
        # again outside the handler, so that the failed attempt (its Arrow table) is freed first
        tasks = sum(f.tasks for f in fetches)
        log.warning("a batch of %d tasks did not fit in memory: doing it again with more", tasks)
        with self._roomier(factor=8):
            return self._transform(fetches, sink)

    def _transform(self, fetches: list[Fetch], sink: Sink) -> TransformStats:
        part = fetches[0] if len(fetches) == 1 and fetches[0].all_pages is not None else None
        # A fetch in parts is settled across all its pages first, unless its extract saw no id twice: then each
        # part is de-duplicated alone, and checked against the ids of the parts before it (_unrepeated).
        settle = part is not None and part.id_repeats != 0
        if part is not None and settle:
            listed, distinct = self._settle(part)
        typed, python_rejects = self._read(fetches, self._register_files(fetches))
        self.db.register("typed_tasks", typed)
        repeated = 0
        try:
            python_rejects += odd_pages_and_tasks(self.db, fetches)
            if not settle:
                listed, distinct = self.db.execute(statement("count")).fetchall()[0]
                if listed != distinct:  # only then is the de-duplication, a sort, paid for
                    self.db.execute(statement("kept_rn"))
                    self.db.execute(statement("kept_deduped"))
                else:
                    self.db.execute(statement("kept_all"))
                if part is not None:
                    earlier, again = self._unrepeated(part)
                    python_rejects += again
                    repeated = len(again)
            else:  # settled across the whole fetch: its duplicates are counted once, with its first part
                self.db.execute(statement("kept_part"))
                if part is not None and not part.first_part:
                    listed = distinct = 0
            self.db.execute(statement("resource_errors"))
            tasks = self._stream(TASKS, statement("tasks_out"), sink)
            artifacts, tags = self._explode(typed, sorted({f.partition for f in fetches}), sink)
            rejects = explain(self._fetch(REJECTS, statement("rejects_out")), python_rejects)
            sink(REJECTS, rejects)
        finally:  # even when told to stop: what failed is what the lane reports
            self.db.cleanup(statement("cleanup"))
            self.db.unregister("typed_tasks")
        if not settle and part is not None:
            self._earlier = earlier  # only once the part is done: a retry (out of memory) checks it again
        by_field: dict[str, int] = {}
        for name in rejects.column("field").to_pylist():
            by_field[name] = by_field.get(name, 0) + 1
        return TransformStats(
            tasks=tasks,
            duplicates=int(listed) - int(distinct) + repeated,
            artifacts=artifacts,
            tags=tags,
            rejects=by_field,
        )

    def _unrepeated(self, part: Fetch) -> tuple[tuple[tuple[tuple[str, int], str], np.ndarray], list[dict[str, Any]]]:
        """Keep out of ``kept_tasks`` the tasks of ``part`` (whose extract saw no id twice) whose id a part of
        its fetch before it loaded: returns the ids loaded so far (with this part's), and a reject for each task
        kept out. The parts of a fetch follow one another in one lane (:func:`~pipeline.transform.plan.batches`).

        A repeat is not expected: the landing was changed after its manifest was written, or the JSON holds a
        name twice (a task's ``id``, a page's ``tasks``), which Python's reader, that the extract counts with,
        reads as the last value and DuckDB as the first. Then the task loaded first stays, whatever its
        revision, and the later one is rejected, not loaded twice; which one is first depends on where the
        execution was cut into parts. Everywhere else the highest revision wins, as when settled."""
        key = (part.key, part.run_id)
        ids = self.db.execute(statement("kept_ids")).fetchnumpy()["task_id"].astype(np.int64)
        if part.first_part:
            before = np.zeros(0, dtype=np.int64)
        elif self._earlier is not None and self._earlier[0] == key:
            before = self._earlier[1]
        else:  # the parts before it went elsewhere: nothing to check against (batches() never does this)
            raise RuntimeError(f"a part of execution {part.execution_id} came without the parts before it")
        again = np.isin(ids, before)
        if not again.any():
            return (key, np.concatenate([before, ids])), []
        self.db.register("repeated", pa.table({"task_id": ids[again]}))
        try:
            found = self.db.execute(statement("repeated")).fetchall()
            self.db.execute(statement("unrepeated_rn"))
            self.db.execute(statement("kept_unrepeated"))
        finally:
            self.db.unregister("repeated")
        log.warning(
            "execution %d of instance %s: %d tasks repeat the id of a task loaded from an earlier part of it, "
            "though its manifest says no id repeats: they are rejected, not loaded twice",
            part.execution_id,
            part.instance_id,
            len(found),
        )
        return (key, np.concatenate([before, ids[~again]])), repeat_rejects(found)

    def _settle(self, part: Fetch) -> tuple[int, int]:
        """Settle the duplicated task ids of the fetch ``part`` belongs to, across all its pages: the rows that
        lose go to the temporary table ``losers`` (kept for its next parts, which follow in the same lane).
        Returns the fetch's (listed, distinct) task ids. The pages are read a second time, but DuckDB makes
        nothing of a task but its id and revision for this (``ids.sql``); a page that cannot be read is
        rejected by its part."""
        settled = (part.key, part.run_id)
        if self._settled is not None and self._settled[0] == settled:
            return self._settled[1]
        whole = dataclasses.replace(part, pages=part.all_pages or part.pages, all_pages=None)
        pages = self._register_files([whole])
        self.db.execute(statement("ids_table"))
        with self._page_texts(pages):
            self.db.execute(statement("ids", ids_structure=IDS_STRUCTURE, unparsed=UNPARSED))
        self.db.execute(statement("losers"))
        counts = self.db.execute(statement("ids_counts")).fetchall()[0]
        self.db.execute(statement("ids_drop"))
        self._settled = (settled, (int(counts[0]), int(counts[1])))
        return self._settled[1]

    def _stream(self, table: Table, sql: str, sink: Sink) -> int:
        rows = 0
        for chunk in self.db.sql(sql).to_arrow_reader(CHUNK_ROWS):
            part = pa.Table.from_batches([chunk]).select(table.columns).cast(table.schema)
            rows += part.num_rows
            sink(table, part)
        return rows

    def _explode(self, typed: pa.Table, keys: list[tuple[str, str]], sink: Sink) -> tuple[int, int]:
        """Artifacts and tags of the kept tasks' good sides, a partition (``keys``) at a time (see
        :func:`~pipeline.transform.explode.explode`)."""
        kept_rows = self.db.execute(statement("kept_rows")).fetchnumpy()["rn"]
        rejected: dict[str, list[int]] = {"src": [], "dst": []}
        for rn, side in self.db.execute(statement("rejected_sides")).fetchall():
            rejected[side].append(rn)
        return explode(typed, kept_rows, rejected, keys, sink)

    def _fetch(self, table: Table, sql: str) -> pa.Table:
        result = self.db.sql(sql).to_arrow_table()
        return result.select(table.columns).cast(table.schema)

    def _register_files(self, fetches: list[Fetch]) -> pa.RecordBatch:
        """The pages of ``fetches``, a row each (:data:`~pipeline.transform.pages.BATCH_FILES`): as the
        temporary table ``batch_files``, and returned (for :class:`~pipeline.transform.pages.PageTexts`)."""
        rows: dict[str, list[Any]] = {name: [] for name in BATCH_FILES.names}
        for fetch in fetches:
            policy_id = fetch.execution.get("policy_id")
            for offset, name, count, pass_no, _ in fetch.pages:
                rows["filename"].append(str(fetch.folder / name))
                rows["instance_id"].append(fetch.instance_id)
                rows["execution_id"].append(fetch.execution_id)
                rows["run_id"].append(fetch.run_id)
                rows["page_offset"].append(offset)
                rows["pass_no"].append(pass_no)
                rows["rows"].append(count)
                rows["execution_month"].append(fetch.month)
                rows["policy_id"].append(policy_id if isinstance(policy_id, int) else None)
        pages = pa.record_batch(rows, schema=BATCH_FILES)
        self.db.register("batch_pages", pages)
        try:  # a table of its own: a page that cannot be read is deleted from it
            self.db.execute(statement("batch_files"))
        finally:
            self.db.unregister("batch_pages")
        return pages

    @contextmanager
    def _page_texts(self, pages: pa.RecordBatch) -> Iterator[PageTexts]:
        """The table ``page_texts``: each of ``pages`` (:data:`~pipeline.transform.pages.BATCH_FILES`) with its
        text, decompressed as DuckDB reads it (:class:`~pipeline.transform.pages.PageTexts`), while the block
        runs."""
        texts = PageTexts(pages)
        self.db.register("page_texts", texts.reader())
        try:
            yield texts
        finally:
            self.db.unregister("page_texts")
        if texts.failed is not None:
            raise texts.failed

    def _read(self, fetches: list[Fetch], pages: pa.RecordBatch) -> tuple[pa.Table, list[dict[str, Any]]]:
        """The batch's pages parsed and typed by DuckDB into one Arrow table (``read.sql``), with what Arrow
        works out of its artifact lists (:func:`~pipeline.transform.explode.with_facts`), its rows numbered
        ``rn``; and the rejects of pages that could not be read: one that does not decompress (no text: its
        file stays in the landing) or is not UTF-8 text. A page that is not JSON gives no task, and is
        explained with the others that gave fewer tasks than were landed
        (:func:`~pipeline.transform.judge.odd_pages_and_tasks`)."""
        with self._page_texts(pages) as texts:
            typed = self.db.sql(statement("read", page_structure=PAGE_STRUCTURE, unparsed=UNPARSED)).to_arrow_table()
        meta = {str(f.folder / page[1]): (f, page) for f in fetches for page in f.pages}
        rejects = []
        for path, reason, text in texts.unread:
            fetch, page = meta[path]
            rejects.append(page_reject(fetch, page, "page", reason, text, None))
            self.db.execute(statement("unread_page"), {"f": path})
            log.warning("page %s could not be read: it is kept in rejects", path)
        return with_facts(typed), rejects

    @contextmanager
    def _roomier(self, factor: int) -> Iterator[None]:
        """One thread and ``factor`` times the usual memory limit. One lane at a time, so that lanes side by
        side never take that room together."""
        with _ROOMY:
            threads, limit = self.db.execute(
                "SELECT current_setting('threads'), current_setting('memory_limit')"
            ).fetchall()[0]
            self.db.execute(f"SET threads = 1; SET memory_limit = '{factor * self.memory_limit_mb}MB'")
            try:
                yield
            finally:
                self.db.execute(f"SET threads = {int(threads)}; SET memory_limit = '{limit}'")

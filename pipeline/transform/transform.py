"""Transform: raw task pages into tidy Arrow tables (tasks, artifacts, tags, rejects) and executions.

The heavy lifting runs inside DuckDB (vectorised C++): it parses the pages (decompressed by zstandard as it
asks for them, :class:`_PageTexts`), unnests the tasks and parses both embedded ``src_resource`` /
``dst_resource`` in the same pass (:data:`_READ_SELECT`), and hands the batch over as one Arrow table.
DuckDB queries that table in place for the tasks and the rejects; the few resources that did not parse, or
look wrong, are judged in one place (:data:`RESOURCE_ERRORS_SQL`). Arrow explodes the good sides' artifact
lists, straight from that table, into artifacts and tags. Python only plans the batches, explains the few
records that were rejected, and hands Arrow tables to the loader. A load runs several :class:`Transformer`
side by side, one per lane of whole partitions (:func:`lanes`).

Bad input never stops a run and never vanishes. A resource that cannot be read (invalid JSON, trailing
text after the object, a missing or null resource, an empty string, a part of the wrong structure) gives a
``rejects`` row with its raw text and the reason, and no artifact or tag rows for that side; its task row
still loads. A scalar of another type than expected (a tag or a digest sent as a number) is read as its
text. A task with no usable id cannot be a ``tasks`` row (it has no key): it goes to ``rejects`` whole. A
missing ``operation`` or ``status``, and a time or revision that does not parse, are recorded too (the row
still loads, with a null). Duplicated task ids within a fetch keep the row with the highest
``StatusRevision`` (then the later pass, page and position); a fetch whose pages hold a task object with its
``id`` twice is the one exception (see :meth:`Transformer._unrepeated`).

Memory is bounded by the batch size (whole executions, about ``batch_tasks`` tasks at a time), by the number
of lanes and by DuckDB's ``memory_limit``, never by the size of the run.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import LandingError
from pipeline.extraction.landing import Landing, decompress_page
from pipeline.schema import ARTIFACTS, REJECTS, TAGS, TASKS, Table
from pipeline.transform.values import read_int

log = logging.getLogger(__name__)

# tasks a batch, in each lane: each batch pays a fixed cost (about 30 statements, their Arrow scans, the
# explode's tables), each task in it some memory. Measured at 1.1 M tasks with two lanes (alternating runs):
# 12.5k 14.5 s / 540 MiB, 25k 12.4 s / 690 MiB, 35k 11.8 s / 770 MiB; and once the explode's chunks and the
# rows waiting for a row group held no more than their own buffers: 40k 11.1 s / 700 MiB, 50k 10.9 s /
# 780 MiB, 60k 10.7 s / 830 MiB
DEFAULT_BATCH_TASKS = 50_000
# ... and at most this many bytes of page bodies (as landed, before compression): the batch is held as one
# Arrow table, outside DuckDB's memory limit, so a landing of very large resources makes smaller batches
# (the benchmark's pages, about 2 KiB a task, fill 50,000 tasks with 105 MiB)
DEFAULT_BATCH_BYTES = 256 << 20
MEMORY_MB = 384  # DuckDB's memory limit when one lane transforms alone
LANE_MEMORY_MB = 256  # ... and in each of several lanes
CHUNK_ROWS = 128 * 1024  # rows of the tasks table handed to the writer at a time

# Every field of a task, read as text: a value of an unexpected type becomes text instead of an error,
# and is then cast (and, if it does not cast, recorded) below. A task that is not an object becomes NULL.
_TASK_FIELDS = (
    "id",
    "execution_id",
    "resource_type",
    "src_resource",
    "dst_resource",
    "operation",
    "job_id",
    "status",
    "StatusRevision",
    "status_revision",
    "start_time",
    "end_time",
)
_PAGE_STRUCTURE = json.dumps({"tasks": [dict.fromkeys(_TASK_FIELDS, "VARCHAR")]})

# What the transform reads from a resource. Non-strict: a missing key or a value of the wrong type gives
# NULL, and such suspicious rows (_SUSPICIOUS) are then judged exactly (RESOURCE_ERRORS_SQL) before use.
_RESOURCE_STRUCTURE = json.dumps(
    {
        "type": "VARCHAR",
        "deleted": "BOOLEAN",
        "is_delete_tag": "BOOLEAN",
        "override": "BOOLEAN",
        "metadata": {
            "repository": {"name": "VARCHAR", "metadata": {"public": "VARCHAR"}},
            "artifacts": [{"type": "VARCHAR", "digest": "VARCHAR", "tags": ["VARCHAR"]}],
        },
    }
)

# Whether a parsed resource needs a closer look (RESOURCE_ERRORS_SQL): the non-strict parse gives NULL for a
# missing key or a value of the wrong type, so a NULL wherever the transform needs a value is suspicious.
_SUSPICIOUS = """(
    {p}.metadata IS NULL OR {p}.metadata.repository IS NULL OR {p}.metadata.repository.name IS NULL
    OR {p}.metadata.artifacts IS NULL
    OR coalesce(list_bool_or(list_transform(
        {p}.metadata.artifacts,
        -- list_position finds a NULL too: whether a tag is NULL (cheaper than list_count against len)
        lambda a: a IS NULL OR a.digest IS NULL OR a.tags IS NULL OR list_position(a.tags, NULL) IS NOT NULL
    )), false)
)"""


def _page_tasks(structure: str) -> str:
    """The tasks of the batch's pages (``page_texts``, see :class:`_PageTexts`), each with its page's keys
    and its position. A page DuckDB cannot parse gives one row instead, with no task and position -1 (see
    ODD_SQL). The keys come with each page's text, not from a join: DuckDB cannot know how many rows a stream
    holds, and would build the join's hash table from the tasks."""
    return f"""(
            SELECT * EXCLUDE (json, page),
                unnest(CASE WHEN page IS NULL THEN [NULL] ELSE page.tasks END) AS t,
                unnest(CASE WHEN page IS NULL THEN [-1] ELSE range(len(page.tasks)) END)::INTEGER AS pos
            FROM (SELECT *, TRY(json_transform(json, '{structure}')) AS page FROM page_texts)
        )"""


# An integer sent as a number or as its digits; with white space around it too (trim takes off Unicode spaces,
# the cast ASCII white space such as tabs and newlines), but only the rare such text pays for the trim (per
# million texts: 0.057 s against 0.086 s)
_INTEGER = (
    "CASE WHEN regexp_full_match({v}, '-?[0-9]{{1,18}}') THEN CAST({v} AS BIGINT)"
    " WHEN regexp_full_match(trim({v}), '\\s*-?[0-9]{{1,18}}\\s*') THEN TRY_CAST(trim({v}) AS BIGINT) END"
)
# A time (an empty one is NULL); the cast reads spaces around it itself, so only a text it refuses is trimmed
# and cast again (Unicode spaces, which only trim takes off): per million times 0.044 s against 0.141 s
_TIME = "coalesce(TRY_CAST({v} AS TIMESTAMPTZ), TRY_CAST(trim({v}) AS TIMESTAMPTZ))"
_CAST_TIME_SQL = f"SELECT epoch_us({_TIME.format(v='$v')})"  # the same cast, of one value (cast_time)
_TASK_ID = _INTEGER.format(v="u.t.id")
_REVISION_RAW = 'coalesce(u.t."StatusRevision", u.t.status_revision)'
_REVISION = _INTEGER.format(v=_REVISION_RAW)


def _parsed(side: str) -> str:
    """The parse of a side's resource text, NULL when it is not JSON. A text in braces is parsed under
    ``TRY``, once; any other (an empty string, cut short, trailing text, not an object) goes through
    ``json_valid`` first, so that ``TRY``, which redoes a whole vector row by row when one row fails, rarely
    has to: every bad resource of the benchmark lands there. ``json_valid`` for every text made DuckDB parse
    each good resource twice (per 236,532 resources, 0.54 s against 0.42 s)."""
    text, structure = f"{side}_resource", f"'{_RESOURCE_STRUCTURE}'"
    return f"""CASE
            WHEN starts_with({text}, '{{') AND ends_with({text}, '}}') THEN TRY(json_transform({text}, {structure}))
            WHEN json_valid({text}) THEN json_transform({text}, {structure})
        END"""


# constants only are formatted into these statements; values go in as parameters
# Each page is transformed in one pass (measured: three times faster than read_json with typed columns). Both
# resources of a task are parsed in the same pass, and their text is kept only when it must be looked at
# again (it did not parse, or is suspicious): keeping every text would cost half as much again as the parse.
# What the tasks table keeps of each side is taken in the same pass. The result goes to Arrow, not to a
# DuckDB table: storing the parsed resources in DuckDB and reading their artifact lists back out cost a
# quarter of the whole load (measured at 1.1 M tasks: 17.6 s against 13.3 s, and 5 s of system time against
# 1.6 s, for the pages it faulted in).
_SIDE_SCALARS = """
    {side}_p IS NULL AS {side}_unparsed,
    {side}_p.metadata.artifacts AS {side}_list,
    {side}_p.metadata.repository.name AS {side}_repository,
    coalesce(len({side}_p.metadata.artifacts), 0)::INTEGER AS {side}_artifacts,
    TRY_CAST({side}_p.metadata.repository.metadata.public AS BOOLEAN) AS {side}_public,
    {side}_p.deleted AS {side}_deleted,"""
_READ_SELECT = f"""
SELECT * EXCLUDE (src_resource, dst_resource, src_look, dst_look, src_p, dst_p),
    src_look, CASE WHEN src_look THEN src_resource END AS src_txt,
    dst_look, CASE WHEN dst_look THEN dst_resource END AS dst_txt,
    {_SIDE_SCALARS.format(side="src")}
    {_SIDE_SCALARS.format(side="dst")}
    dst_p.override AS dst_override
FROM (
SELECT *,
    src_p IS NULL OR {_SUSPICIOUS.format(p="src_p")} AS src_look,
    dst_p IS NULL OR {_SUSPICIOUS.format(p="dst_p")} AS dst_look
FROM (
    SELECT *,
        {_parsed("src")} AS src_p,
        {_parsed("dst")} AS dst_p
    FROM (
        SELECT
            u.instance_id, u.execution_id, u.run_id, u.page_offset, u.pass_no, u.execution_month, u.policy_id, u.pos,
            u.t.id AS id_raw,
            {_TASK_ID} AS task_id,
            u.t.resource_type, u.t.operation, u.t.job_id, u.t.status,
            {_REVISION_RAW} AS revision_raw, {_REVISION} AS status_revision,
            u.t.start_time AS start_raw, {_TIME.format(v="u.t.start_time")} AS start_time,
            u.t.end_time AS end_raw, {_TIME.format(v="u.t.end_time")} AS end_time,
            u.t.src_resource, u.t.dst_resource
        FROM {_page_tasks(_PAGE_STRUCTURE)} u
    )
)
)
"""

# Tasks without an id (or not objects at all), pages DuckDB could not parse (position -1, whatever rows they
# claim), and pages that gave fewer tasks than were landed (``tasks`` not a list): rare, explained in Python
# with their raw text (Transformer._odd_pages_and_tasks)
ODD_SQL = """
SELECT instance_id, execution_id, page_offset, pass_no, pos FROM typed_tasks WHERE id_raw IS NULL
UNION ALL
SELECT f.instance_id, f.execution_id, f.page_offset, f.pass_no, NULL
FROM batch_files f
LEFT JOIN (
    SELECT instance_id, execution_id, run_id, page_offset, pass_no, count(*) AS n
    FROM typed_tasks GROUP BY ALL
) t USING (instance_id, execution_id, run_id, page_offset, pass_no)
WHERE coalesce(t.n, 0) < f.rows
"""
UNPARSED = -1  # the position of the row a page DuckDB cannot parse gives (see _page_tasks)

# ``typed_tasks`` is the batch's Arrow table (each row numbered ``rn``); ``kept_tasks`` its rows that load.
# Duplicated task ids (a task listed twice while the execution ran) are rare: only then is the
# de-duplication, a sort, paid for. The row with the highest StatusRevision wins, then the later pass and page.
DEDUPE_SQL = """
CREATE OR REPLACE TEMP TABLE kept_rn AS
SELECT rn FROM typed_tasks
WHERE task_id IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY instance_id, execution_id, task_id
    ORDER BY status_revision DESC NULLS LAST, pass_no DESC, page_offset DESC, pos DESC
) = 1;
CREATE OR REPLACE TEMP VIEW kept_tasks AS SELECT * FROM typed_tasks SEMI JOIN kept_rn USING (rn);
"""
NO_DEDUPE_SQL = "CREATE OR REPLACE TEMP VIEW kept_tasks AS SELECT * FROM typed_tasks WHERE task_id IS NOT NULL"
# A part of a split fetch: its duplicated task ids were settled across the whole fetch (``losers``: the rows
# that lose, see Transformer._settle), so a part only drops those.
PART_KEPT_SQL = """
CREATE OR REPLACE TEMP VIEW kept_tasks AS
SELECT t.* FROM typed_tasks t ANTI JOIN losers l USING (page_offset, pass_no, pos) WHERE t.task_id IS NOT NULL
"""
IDS_TABLE = (
    "CREATE OR REPLACE TEMP TABLE ids (page_offset BIGINT, pass_no INTEGER, pos INTEGER, task_id BIGINT, "
    "status_revision BIGINT)"
)


_IDS_STRUCTURE = json.dumps({"tasks": [dict.fromkeys(("id", "StatusRevision", "status_revision"), "VARCHAR")]})
# The task ids of the batch's pages and what settles duplicates: the parse makes nothing else of the tasks
IDS_SQL = f"""
INSERT INTO ids
SELECT * FROM (
    SELECT u.page_offset, u.pass_no, u.pos, {_TASK_ID} AS task_id, {_REVISION} AS status_revision
    FROM {_page_tasks(_IDS_STRUCTURE)} u
)
WHERE task_id IS NOT NULL
"""


SETTLE_SQL = """
CREATE OR REPLACE TEMP TABLE losers AS
SELECT page_offset, pass_no, pos FROM ids
QUALIFY row_number() OVER (
    PARTITION BY task_id ORDER BY status_revision DESC NULLS LAST, pass_no DESC, page_offset DESC, pos DESC
) > 1
"""
COUNT_SQL = """
SELECT count(*), count(DISTINCT (instance_id, execution_id, task_id)) FROM typed_tasks WHERE task_id IS NOT NULL
"""

# The one place where embedded resources are judged (they were parsed as they were read, see _READ_SELECT):
# the few that did not parse, or were suspicious, are looked at again in their text, and those that fail get
# their reason. A side with no row here is good: its parsed resource is used as it is. What the parse left
# NULL is told by flags: ``unparsed`` from the read, ``no_name`` from its repository column, the others worked
# out by Arrow from the artifact lists (see :func:`_resource_facts`), so DuckDB reads back no parsed resource
# here.
_JUDGED_SIDE = """
    SELECT rn, instance_id, execution_id, task_id, run_id, page_offset, pos, execution_month,
           '{side}' AS side, {side}_txt AS txt, {side}_artifacts AS artifacts,
           {side}_unparsed AS unparsed, {side}_no_name AS no_name, {side}_no_artifacts AS no_artifacts,
           {side}_bad_artifact AS bad_artifact, {side}_null_tags AS null_tags, {side}_null_tag AS null_tag
    FROM kept_tasks WHERE {side}_look
"""
RESOURCE_ERRORS_SQL = f"""
CREATE OR REPLACE TEMP TABLE resource_errors AS
WITH sides AS (
    {_JUDGED_SIDE.format(side="src")}
    UNION ALL
    {_JUDGED_SIDE.format(side="dst")}
), typed AS (
    SELECT *,
        -- the text is parsed again only to name what is missing or of the wrong type
        CASE WHEN NOT unparsed AND (no_name OR no_artifacts)
             THEN json_type(
                 txt, ['$.metadata', '$.metadata.repository', '$.metadata.repository.name', '$.metadata.artifacts']
             ) END AS ty,
        CASE WHEN bad_artifact THEN json_type(txt, '$.metadata.artifacts[*]') END AS ta,
        CASE WHEN null_tags THEN json_type(txt, '$.metadata.artifacts[*].tags') END AS tt
    FROM sides
)
SELECT rn, instance_id, execution_id, task_id, run_id, page_offset, pos, execution_month, side, txt AS raw, error
FROM (
SELECT *,
    CASE
        WHEN unparsed AND txt IS NULL THEN 'missing or null'
        WHEN unparsed THEN CASE WHEN trim(txt) = '' THEN 'empty string' ELSE 'invalid JSON' END
        -- the others are suspicious. The parse gives NULLs for a part that is missing and for one of another
        -- type (a string where an object should be parses as an object of NULLs): the text tells which.
        WHEN ty IS NOT NULL AND json_type(txt) <> 'OBJECT' THEN 'not a JSON object but ' || lower(json_type(txt))
        WHEN ty IS NOT NULL AND ty[1] IS NULL THEN 'missing key metadata'
        WHEN ty IS NOT NULL AND ty[1] <> 'OBJECT' THEN 'metadata is ' || lower(ty[1]) || ', expected an object'
        WHEN ty IS NOT NULL AND ty[2] IS NULL THEN 'missing key metadata.repository'
        WHEN ty IS NOT NULL AND ty[2] <> 'OBJECT'
            THEN 'metadata.repository is ' || lower(ty[2]) || ', expected an object'
        WHEN ty IS NOT NULL AND ty[3] IS NULL THEN 'missing key metadata.repository.name'
        WHEN no_name THEN 'metadata.repository.name is ' || lower(ty[3]) || ', expected a string'
        WHEN ty IS NOT NULL AND ty[4] IS NULL THEN 'missing key metadata.artifacts'
        WHEN ty IS NOT NULL AND ty[4] = 'NULL' THEN NULL
        WHEN no_artifacts THEN 'metadata.artifacts is ' || lower(ty[4]) || ', expected an array'
        WHEN len(list_filter(ta, lambda x: x <> 'OBJECT')) > 0 THEN 'an artifact is not an object'
        WHEN ta IS NOT NULL THEN 'an artifact has no digest string'
        WHEN len(tt) < artifacts THEN 'an artifact has no tags key'
        WHEN len(list_filter(tt, lambda x: x NOT IN ('ARRAY', 'NULL'))) > 0
            THEN 'the tags of an artifact are not an array'
        WHEN null_tag THEN 'a tag is not a string'
    END AS error
FROM typed
)
WHERE error IS NOT NULL
"""

_SIDE_ERRORS = "(SELECT rn, error FROM resource_errors WHERE side = '{side}')"
# what the tasks table keeps of a side (read with the batch, see _SIDE_SCALARS): nothing when it was rejected
_SIDE_COLUMNS = """
    CASE WHEN {e}.error IS NULL THEN t.{side}_repository END AS {side}_repository,
    CASE WHEN {e}.error IS NULL THEN t.{side}_artifacts END AS {side}_artifacts,
    CASE WHEN {e}.error IS NULL THEN t.{side}_tags END AS {side}_tags,
    CASE WHEN {e}.error IS NULL THEN t.{side}_public END AS {side}_public,
    CASE WHEN {e}.error IS NULL THEN t.{side}_deleted END AS {side}_deleted,
    {e}.error IS NOT NULL AS {side}_rejected,
"""
TASKS_OUT_SQL = f"""
SELECT
    t.instance_id, t.execution_id, t.task_id, t.policy_id, t.resource_type, t.operation, t.job_id, t.status,
    t.status_revision, t.start_time, t.end_time,
    CASE WHEN t.end_time >= t.start_time THEN epoch(t.end_time) - epoch(t.start_time) END AS duration_s,
    {_SIDE_COLUMNS.format(e="s", side="src")}
    {_SIDE_COLUMNS.format(e="d", side="dst")}
    CASE WHEN d.error IS NULL THEN t.dst_override END AS dst_override,
    t.run_id, t.execution_month
FROM kept_tasks t
LEFT JOIN {_SIDE_ERRORS.format(side="src")} s USING (rn)
LEFT JOIN {_SIDE_ERRORS.format(side="dst")} d USING (rn)
"""
KEPT_ROWS_SQL = "SELECT rn FROM kept_tasks"
CLEANUP_SQL = (
    "DROP VIEW IF EXISTS kept_tasks; DROP TABLE IF EXISTS kept_rn; DROP TABLE IF EXISTS resource_errors; "
    "DROP TABLE IF EXISTS unrepeated_rn"
)
# A part of a fetch whose extract saw no id twice, less the tasks whose id an earlier part loaded (``repeated``,
# see Transformer._unrepeated): the first loaded stays, the later ones are rejected
REPEATED_SQL = """
SELECT instance_id, execution_id, task_id, id_raw, run_id, page_offset, pos, execution_month
FROM kept_tasks SEMI JOIN repeated USING (task_id)
"""
UNREPEATED_SQL = """
CREATE OR REPLACE TEMP TABLE unrepeated_rn AS SELECT rn FROM kept_tasks ANTI JOIN repeated USING (task_id);
CREATE OR REPLACE TEMP VIEW kept_tasks AS SELECT * FROM typed_tasks SEMI JOIN unrepeated_rn USING (rn);
"""
REJECTED_SIDES_SQL = "SELECT rn, side FROM resource_errors"
LISTS_CHUNK = 16 * 1024  # tasks' sides a chunk: about 115,000 artifacts and 280,000 tags

REJECTS_OUT_SQL = """
SELECT instance_id, execution_id, task_id, side || '_resource' AS field, error, raw,
       run_id, page_offset, pos AS position, execution_month
FROM resource_errors
UNION ALL
SELECT instance_id, execution_id, NULL, 'id', 'task id is not an integer: not loaded',
       id_raw, run_id, page_offset, pos, execution_month
FROM typed_tasks WHERE task_id IS NULL AND id_raw IS NOT NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'operation', 'missing', NULL, run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE operation IS NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'status', 'missing', NULL, run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE status IS NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'StatusRevision', 'not an integer', revision_raw,
       run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE revision_raw IS NOT NULL AND status_revision IS NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'start_time', 'not a timestamp', start_raw,
       run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE start_time IS NULL AND NULLIF(trim(start_raw), '') IS NOT NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'end_time', 'not a timestamp', end_raw,
       run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE end_time IS NULL AND NULLIF(trim(end_raw), '') IS NOT NULL
ORDER BY instance_id, execution_month, execution_id, page_offset, position, field
"""


Page = tuple[int, str, int, int, int]  # a landed page: offset, file name, rows, pass, bytes of its body (0: unknown)


@dataclass(frozen=True)
class Fetch:
    """The newest complete fetch of one execution's tasks, as found in the raw landing."""

    instance_id: str
    execution_id: int
    run_id: str
    folder: Path
    pages: tuple[Page, ...]
    execution: dict[str, Any]
    # Set when this is one part of a fetch too large for a batch (see :func:`batches`): every page of the
    # fetch, across which its duplicated task ids are settled (unless ``id_repeats`` is 0).
    all_pages: tuple[Page, ...] | None = None
    # How many of its tasks repeat an earlier task's id, as the extract counted them (the manifest's
    # ``task_id_repeats``; None from landings written before it was recorded): with none, a fetch in parts
    # needs no settling across its pages (see Transformer._transform).
    id_repeats: int | None = None
    # False when the extract saw fewer tasks than the execution reports (the manifest's ``missing`` or
    # ``incomplete``): the next run fetches it again, even when only the lake remembers it
    complete: bool = True

    @property
    def tasks(self) -> int:
        return sum(page[2] for page in self.pages)

    @property
    def bytes(self) -> int:
        return sum(page[4] for page in self.pages)

    @property
    def first_part(self) -> bool:
        return self.all_pages is None or self.pages[:1] == self.all_pages[:1]

    @property
    def month(self) -> str:
        return execution_month(self.execution.get("created_at"))

    @property
    def key(self) -> tuple[str, int]:
        return (self.instance_id, self.execution_id)

    @property
    def partition(self) -> tuple[str, str]:
        return (self.instance_id, self.month)


@dataclass
class TransformStats:
    tasks: int = 0
    duplicates: int = 0
    artifacts: int = 0
    tags: int = 0
    rejects: dict[str, int] = field(default_factory=dict)

    def add(self, other: TransformStats) -> None:
        self.tasks += other.tasks
        self.duplicates += other.duplicates
        self.artifacts += other.artifacts
        self.tags += other.tags
        for name, n in other.rejects.items():
            self.rejects[name] = self.rejects.get(name, 0) + n

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())


class Sink(Protocol):
    """Where a transform's rows go: rows of ``table`` (all its columns); or, with ``partition`` (instance,
    month), rows of that one partition with only the columns of its files (``table.file_schema``)."""

    def __call__(self, table: Table, rows: pa.Table, partition: tuple[str, str] | None = None) -> None: ...


def partitions(rows: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """The rows of each partition in ``rows`` (a batch spans one partition or a few)."""
    if rows.num_rows == 0:
        return
    instances = pc.unique(rows["instance_id"]).to_pylist()
    months = pc.unique(rows["execution_month"]).to_pylist()
    if len(instances) == 1 and len(months) == 1:
        yield (instances[0], months[0]), rows
        return
    for instance_id in sorted(instances):
        mine = rows.filter(pc.equal(rows["instance_id"], instance_id)) if len(instances) > 1 else rows
        for month in sorted(pc.unique(mine["execution_month"]).to_pylist()):
            yield (instance_id, month), mine.filter(pc.equal(mine["execution_month"], month))


def execution_month(created_at: Any) -> str:
    """``YYYY-MM`` of an execution's ``created_at`` (UTC), or ``unknown``."""
    parsed = parse_time(created_at)
    return parsed.strftime("%Y-%m") if parsed else "unknown"


_TIMES_LOCK = threading.Lock()
_ROOMY = threading.RLock()  # see Transformer._roomier (lanes never take a retry's room together)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.cache
def _times() -> duckdb.DuckDBPyConnection:
    """The connection :func:`parse_time` casts with, made on first use (nothing is done at import)."""
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    return db


# The API's own form of a time (RFC 3339, up to microseconds), which Python reads exactly as DuckDB does
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII)


def parse_time(value: Any) -> datetime | None:
    """An API time (any fraction digits, ``Z`` or an offset) as an aware UTC datetime; None when empty or bad,
    and for anything that is not a string (an object, a list, a number).

    The same cast as the one the transform applies to task times in SQL (``TRY_CAST(... AS TIMESTAMPTZ)``
    in UTC), so a time means the same wherever it appears. The API's own form is read by Python (a DuckDB
    statement for each of a run's few thousand times took a quarter of a second, before the load could
    start); any other form, and any that Python refuses (a leap second, say), by DuckDB (:func:`cast_time`).
    """
    return _parse_text_time(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=65536)
def _parse_text_time(value: str) -> datetime | None:
    if _RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    return cast_time(value)


def cast_time(value: Any) -> datetime | None:
    """:func:`parse_time` by DuckDB's own cast."""
    if not isinstance(value, str) or not value.strip():
        return None
    with _TIMES_LOCK:  # microseconds since the epoch: a TIMESTAMPTZ value itself would import pandas (0.1 s)
        rows = _times().execute(_CAST_TIME_SQL, {"v": value}).fetchall()
    micros = rows[0][0]
    try:
        return _EPOCH + timedelta(microseconds=micros) if isinstance(micros, int) else None
    except OverflowError:  # beyond year 9999: no Python datetime holds it
        return None


def plan(landing: Landing, only: Iterable[tuple[str, int]] | None = None) -> list[Fetch]:
    """The newest complete fetch of every execution (or of ``only`` those), in (instance, execution) order."""
    wanted = set(only) if only is not None else None
    newest: dict[tuple[str, int], Fetch] = {}
    for manifest in landing.manifests("tasks"):
        execution_id, why = read_int(manifest.get("execution_id"))
        if execution_id is None:  # landed by a version that fetched any id; no lake column holds this one
            log.warning("not loading the tasks landed in %s: execution id %s", manifest["folder"], why)
            continue
        key = (str(manifest["instance_id"]), execution_id)
        if wanted is not None and key not in wanted:
            continue
        current = newest.get(key)
        if current is not None and current.run_id > manifest["run_id"]:
            continue
        newest[key] = Fetch(
            instance_id=key[0],
            execution_id=key[1],
            run_id=str(manifest["run_id"]),
            folder=Path(manifest["folder"]),
            pages=tuple(
                (int(p["offset"]), str(p["file"]), int(p["rows"]), int(p.get("pass_no", 0)), int(p.get("bytes") or 0))
                for p in manifest["pages"]
            ),
            execution=dict(manifest.get("execution") or {}),
            id_repeats=read_int(manifest.get("task_id_repeats"))[0],  # anything but 0: settled
            complete=not manifest.get("missing") and not manifest.get("incomplete"),
        )
    return [newest[key] for key in sorted(newest)]


def batches(
    fetches: Iterable[Fetch], batch_tasks: int = DEFAULT_BATCH_TASKS, batch_bytes: int = DEFAULT_BATCH_BYTES
) -> Iterator[list[Fetch]]:
    """Whole executions, about ``batch_tasks`` tasks and at most about ``batch_bytes`` bytes of pages a batch;
    an execution larger than that is cut into parts of whole pages, each a batch alone (its duplicated task
    ids are settled across all its pages first, see :meth:`Transformer._transform`), so that memory follows the
    batch size, not the largest execution.

    Executions are taken in partition order, so a batch spans few partitions; DuckDB works best on large
    batches (see :data:`DEFAULT_BATCH_TASKS`).
    """
    batch: list[Fetch] = []
    tasks = size = 0
    for fetch in sorted(fetches, key=lambda f: (f.instance_id, f.month, f.execution_id)):
        if (fetch.tasks > batch_tasks or fetch.bytes > batch_bytes) and len(fetch.pages) > 1:
            if batch:
                yield batch
                batch, tasks, size = [], 0, 0
            yield from ([part] for part in _parts(fetch, batch_tasks, batch_bytes))
            continue
        if batch and (tasks + fetch.tasks > batch_tasks or size + fetch.bytes > batch_bytes):
            yield batch
            batch, tasks, size = [], 0, 0
        batch.append(fetch)
        tasks += fetch.tasks
        size += fetch.bytes
    if batch:
        yield batch


def _parts(fetch: Fetch, batch_tasks: int, batch_bytes: int) -> Iterator[Fetch]:
    """``fetch`` in parts of consecutive whole pages, at most ``batch_tasks`` tasks and ``batch_bytes`` bytes
    each (or one page)."""
    part: list[Page] = []
    tasks = size = 0
    for page in fetch.pages:
        if part and (tasks + page[2] > batch_tasks or size + page[4] > batch_bytes):
            yield dataclasses.replace(fetch, pages=tuple(part), all_pages=fetch.pages)
            part, tasks, size = [], 0, 0
        part.append(page)
        tasks += page[2]
        size += page[4]
    if part:
        yield dataclasses.replace(fetch, pages=tuple(part), all_pages=fetch.pages)


def lanes(
    fetches: Iterable[Fetch], n: int, batch_tasks: int = DEFAULT_BATCH_TASKS, batch_bytes: int = DEFAULT_BATCH_BYTES
) -> list[list[list[Fetch]]]:
    """Split the work into ``n`` lanes that run side by side, each a list of batches (see :func:`batches`).

    A partition (instance, month) belongs to one lane only, so each partition file has one writer; partitions
    go to the lane with the fewest tasks so far, largest first. Empty lanes are dropped.
    """
    by_partition: dict[tuple[str, str], list[Fetch]] = {}
    for fetch in fetches:
        by_partition.setdefault(fetch.partition, []).append(fetch)
    loads = [0] * max(1, n)
    assigned: list[list[Fetch]] = [[] for _ in loads]
    for _, group in sorted(by_partition.items(), key=lambda kv: (-sum(f.tasks for f in kv[1]), kv[0])):
        lane = loads.index(min(loads))
        assigned[lane].extend(group)
        loads[lane] += sum(f.tasks for f in group)
    return [list(batches(group, batch_tasks, batch_bytes)) for group in assigned if group]


# a batch's pages, a row each: the temporary table ``batch_files``, and the keys each page's text carries
_BATCH_FILES = pa.schema(
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


class Stopped(Exception):
    """A transformer was told to stop (:meth:`Transformer.interrupt`): another lane failed, or Ctrl-C."""


class _Connection:
    """A DuckDB connection that runs no statement once its transformer was told to stop: DuckDB forgets an
    interrupt that lands between two statements, and a lane would otherwise finish its batch first."""

    def __init__(self) -> None:
        self._db = duckdb.connect()
        self.stopped = threading.Event()

    def execute(self, query: str, parameters: Any = None) -> duckdb.DuckDBPyConnection:
        if self.stopped.is_set():
            raise Stopped("told to stop")
        return self._db.execute(query, parameters)

    def sql(self, query: str, params: Any = None) -> duckdb.DuckDBPyRelation:
        if self.stopped.is_set():
            raise Stopped("told to stop")
        return self._db.sql(query, params=params)

    def register(self, name: str, table: pa.Table) -> None:
        if self.stopped.is_set():
            raise Stopped("told to stop")
        self._db.register(name, table)

    def unregister(self, name: str) -> None:
        with contextlib.suppress(duckdb.Error):
            self._db.unregister(name)

    def cleanup(self, query: str) -> None:
        """Run ``query`` even once told to stop, and never raise: it only drops what a batch left."""
        with contextlib.suppress(duckdb.Error):
            self._db.execute(query)

    def interrupt(self) -> None:
        self.stopped.set()
        with contextlib.suppress(duckdb.Error):  # closed already: nothing runs
            self._db.interrupt()

    def close(self) -> None:
        self._db.close()


class _PageTexts:
    """The text of a batch's pages, for DuckDB to parse: ``reader()`` is registered as ``page_texts``
    (the page's keys of :data:`_BATCH_FILES`, and ``json``), a page a record batch. Each file is read and
    decompressed here as DuckDB asks for it (zstandard lets go of the GIL, so lanes decompress side by side)
    and handed over without a copy.

    Measured on the 118,266-task landing, one thread: the read's statement takes 0.92 s this way, against
    1.13 to 1.21 s with the same pages handed over 40 at a time (DuckDB parses the documents of a vector
    together, and their parses then outgrow the caches); the whole read 1.21 to 1.26 s, against 1.35 to 1.40 s
    with DuckDB's own file reader. A page spread over lines, or larger than any reader's buffer, needs nothing
    special. A page that does not decompress, or is not UTF-8 text, is left out and recorded in ``unread``
    (path, reason, raw text or None). A file that cannot be read at all is a broken landing, not a bad record:
    it ends the stream, and :meth:`Transformer._page_texts` raises its :class:`LandingError` once the
    statement is done."""

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
                data = _page_file(path)
            except LandingError as exc:
                self.failed = exc
                return
            text, broken = _decompressed(path, data)
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
                self.unread.append((path, f"page is not JSON: {reason}", _text(text)))
                continue
            yield pa.RecordBatch.from_arrays([*self.pages.slice(i, 1).columns, json], schema=schema)


class Transformer:
    """Turns batches of fetches into Arrow tables. Holds one DuckDB connection; use as a context manager."""

    def __init__(self, *, threads: int | None = None, memory_limit_mb: int = MEMORY_MB) -> None:
        self.memory_limit_mb = memory_limit_mb
        self._spill = tempfile.mkdtemp(prefix="swr-etl-duckdb-")  # an execution larger than memory spills here
        self.db = _Connection()
        self.db.execute("SET temp_directory = $dir", {"dir": self._spill})
        self.db.execute(f"SET threads = {int(threads or os.cpu_count() or 2)}")
        self.db.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute("SET preserve_insertion_order = false")
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
            python_rejects += self._odd_pages_and_tasks(fetches)
            if not settle:
                listed, distinct = self.db.execute(COUNT_SQL).fetchall()[0]
                self.db.execute(DEDUPE_SQL if listed != distinct else NO_DEDUPE_SQL)
                if part is not None:
                    earlier, again = self._unrepeated(part)
                    python_rejects += again
                    repeated = len(again)
            else:  # settled across the whole fetch: its duplicates are counted once, with its first part
                self.db.execute(PART_KEPT_SQL)
                if part is not None and not part.first_part:
                    listed = distinct = 0
            self.db.execute(RESOURCE_ERRORS_SQL)
            tasks = self._stream(TASKS, TASKS_OUT_SQL, sink)
            artifacts, tags = self._explode(typed, sorted({f.partition for f in fetches}), sink)
            rejects = _explain(self._fetch(REJECTS, REJECTS_OUT_SQL), python_rejects)
            sink(REJECTS, rejects)
        finally:  # even when told to stop: what failed is what the lane reports
            self.db.cleanup(CLEANUP_SQL)
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
        kept out. The parts of a fetch follow one another in one lane (:func:`batches`).

        A repeat is not expected: the landing was changed after its manifest was written, or the JSON holds a
        name twice (a task's ``id``, a page's ``tasks``), which Python's reader, that the extract counts with,
        reads as the last value and DuckDB as the first. Then the task loaded first stays, whatever its
        revision, and the later one is rejected, not loaded twice; which one is first depends on where the
        execution was cut into parts. Everywhere else the highest revision wins, as when settled."""
        key = (part.key, part.run_id)
        ids = self.db.execute("SELECT task_id FROM kept_tasks").fetchnumpy()["task_id"].astype(np.int64)
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
            found = self.db.execute(REPEATED_SQL).fetchall()
            self.db.execute(UNREPEATED_SQL)
        finally:
            self.db.unregister("repeated")
        log.warning(
            "execution %d of instance %s: %d tasks repeat the id of a task loaded from an earlier part of it, "
            "though its manifest says no id repeats: they are rejected, not loaded twice",
            part.execution_id,
            part.instance_id,
            len(found),
        )
        rejects = [
            {
                "instance_id": instance_id,
                "execution_id": execution_id,
                "task_id": task_id,
                "field": "id",
                "error": "task id repeats a task loaded from an earlier part of the execution: not loaded again",
                "raw": id_raw,
                "run_id": run_id,
                "page_offset": page_offset,
                "position": pos,
                "execution_month": month,
            }
            for instance_id, execution_id, task_id, id_raw, run_id, page_offset, pos, month in found
        ]
        return (key, np.concatenate([before, ids[~again]])), rejects

    def _settle(self, part: Fetch) -> tuple[int, int]:
        """Settle the duplicated task ids of the fetch ``part`` belongs to, across all its pages: the rows that
        lose go to the temporary table ``losers`` (kept for its next parts, which follow in the same lane).
        Returns the fetch's (listed, distinct) task ids. The pages are read a second time, but DuckDB makes
        nothing of a task but its id and revision for this (:data:`IDS_SQL`); a page that cannot be read is
        rejected by its part."""
        settled = (part.key, part.run_id)
        if self._settled is not None and self._settled[0] == settled:
            return self._settled[1]
        whole = dataclasses.replace(part, pages=part.all_pages or part.pages, all_pages=None)
        pages = self._register_files([whole])
        self.db.execute(IDS_TABLE)
        with self._page_texts(pages):
            self.db.execute(IDS_SQL)
        self.db.execute(SETTLE_SQL)
        counts = self.db.execute("SELECT count(*), count(DISTINCT task_id) FROM ids").fetchall()[0]
        self.db.execute("DROP TABLE ids")
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
        """Artifacts and tags: the artifact lists of the kept tasks' good sides, taken from the batch's Arrow
        table (``typed``) a partition (``keys``) at a time and exploded, a row per artifact and a row per tag,
        each with its position in its list. Each chunk goes to one partition's files whole, and only the
        columns those files hold are repeated down to the artifacts and the tags (the partition's are in its
        path)."""
        size = typed.num_rows
        kept = np.zeros(size, dtype=bool)
        kept[self.db.execute(KEPT_ROWS_SQL).fetchnumpy()["rn"]] = True
        rejected: dict[str, list[int]] = {"src": [], "dst": []}
        for rn, side in self.db.execute(REJECTED_SIDES_SQL).fetchall():
            rejected[side].append(rn)
        sources = []
        for side in ("src", "dst"):
            good = kept & _numpy(pc.greater(typed.column(f"{side}_artifacts"), 0))
            good[rejected[side]] = False
            source = pa.table(
                {
                    "execution_id": typed.column("execution_id"),
                    "task_id": typed.column("task_id"),
                    "repository": typed.column(f"{side}_repository"),
                    "artifacts": typed.column(f"{side}_list"),
                }
            )
            sources.append((side, good, source))
        instances, months = typed.column("instance_id"), typed.column("execution_month")
        artifacts_n = tags_n = 0
        for instance_id, month in keys:
            here = _numpy(pc.equal(instances, instance_id)) & _numpy(pc.equal(months, month))
            for side, good, source in sources:
                wanted = np.flatnonzero(good & here)
                for start in range(0, len(wanted), LISTS_CHUNK):
                    # taken, not sliced: each chunk owns its buffers, so rows that wait in a writer for their
                    # row group hold only theirs
                    some = wanted[start : start + LISTS_CHUNK]
                    lists = source.take(pa.array(some)).combine_chunks()
                    lists = lists.append_column("side", pa.repeat(pa.scalar(side), len(some)))
                    rows, tagged = _explode_lists(lists.to_batches()[0])
                    sink(ARTIFACTS, _file_rows(ARTIFACTS, rows), (instance_id, month))
                    sink(TAGS, _file_rows(TAGS, tagged), (instance_id, month))
                    artifacts_n += rows.num_rows
                    tags_n += tagged.num_rows
        return artifacts_n, tags_n

    def _fetch(self, table: Table, sql: str) -> pa.Table:
        result = self.db.sql(sql).to_arrow_table()
        return result.select(table.columns).cast(table.schema)

    def _register_files(self, fetches: list[Fetch]) -> pa.RecordBatch:
        """The pages of ``fetches``, a row each (:data:`_BATCH_FILES`): as the temporary table ``batch_files``,
        and returned (for :class:`_PageTexts`)."""
        rows: dict[str, list[Any]] = {name: [] for name in _BATCH_FILES.names}
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
        pages = pa.record_batch(rows, schema=_BATCH_FILES)
        self.db.register("batch_pages", pages)
        try:  # a table of its own: a page that cannot be read is deleted from it
            self.db.execute("CREATE OR REPLACE TEMP TABLE batch_files AS SELECT * FROM batch_pages")
        finally:
            self.db.unregister("batch_pages")
        return pages

    @contextmanager
    def _page_texts(self, pages: pa.RecordBatch) -> Iterator[_PageTexts]:
        """The table ``page_texts``: each of ``pages`` (:data:`_BATCH_FILES`) with its text, decompressed as
        DuckDB reads it (:class:`_PageTexts`), while the block runs."""
        texts = _PageTexts(pages)
        self.db.register("page_texts", texts.reader())
        try:
            yield texts
        finally:
            self.db.unregister("page_texts")
        if texts.failed is not None:
            raise texts.failed

    def _read(self, fetches: list[Fetch], pages: pa.RecordBatch) -> tuple[pa.Table, list[dict[str, Any]]]:
        """The batch's pages parsed and typed by DuckDB into one Arrow table, its rows numbered ``rn``, in one
        statement; and the rejects of pages that could not be read: one that does not decompress (no text:
        its file stays in the landing) or is not UTF-8 text. A page that is not JSON gives no task, and is
        explained with the others that gave fewer tasks than were landed (:meth:`_odd_pages_and_tasks`)."""
        with self._page_texts(pages) as texts:
            typed = self.db.sql(_READ_SELECT).to_arrow_table()
        meta = {str(f.folder / page[1]): (f, page) for f in fetches for page in f.pages}
        rejects = []
        for path, reason, text in texts.unread:
            fetch, page = meta[path]
            rejects.append(_page_reject(fetch, page, "page", reason, text, None))
            self.db.execute("DELETE FROM batch_files WHERE filename = $f", {"f": path})
            log.warning("page %s could not be read: it is kept in rejects", path)
        for side in ("src", "dst"):
            chunks = [_resource_facts(chunk) for chunk in typed.column(f"{side}_list").chunks]
            for name in _FACTS:
                values = np.concatenate([c[name] for c in chunks]) if chunks else np.zeros(0, _FACTS[name])
                typed = typed.append_column(f"{side}_{name}", pa.array(values))
            typed = typed.append_column(f"{side}_no_name", pc.is_null(typed.column(f"{side}_repository")))
        return typed.append_column("rn", pa.array(np.arange(typed.num_rows, dtype=np.int64))), rejects

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

    def _odd_pages_and_tasks(self, fetches: list[Fetch]) -> list[dict[str, Any]]:
        """Tasks with no id or that are not objects, and pages whose ``tasks`` is not a list (all rare)."""
        odd = self.db.execute(ODD_SQL).fetchall()
        if not odd:
            return []
        pages = {(f.instance_id, f.execution_id, p[0], p[3]): (f, p) for f in fetches for p in f.pages}
        rejects = []
        whole: set[tuple[str, int, int, int]] = set()  # pages already rejected as a whole

        def order(row: tuple[Any, ...]) -> int:  # pages as a whole first: then their tasks need no look
            return 0 if row[4] == UNPARSED else 1 if row[4] is None else 2

        for instance_id, execution_id, offset, pass_no, position in sorted(odd, key=order):
            key = (instance_id, execution_id, offset, pass_no)
            if key in whole:
                continue
            fetch, page = pages[key]
            text, broken = _page_text(fetch, page)
            if broken is not None:  # damaged since it was read (rare)
                rejects.append(_page_reject(fetch, page, "page", broken, None, None))
                whole.add(key)
                continue
            if position == UNPARSED:
                reason = self._parse_error(text)
                if reason is not None:
                    rejects.append(_page_reject(fetch, page, "page", f"page is not JSON: {reason}", text, None))
                    whole.add(key)
                    continue
                position = None  # JSON, but not an object: its tasks are not a list (below)
            try:
                body = json.loads(text)
            except (ValueError, RecursionError) as exc:  # DuckDB parsed it: Python's reader refuses it
                reason = f"page could not be taken apart: {type(exc).__name__}: {exc}"
                rejects.append(_page_reject(fetch, page, "page", reason, text, None))
                whole.add(key)
                continue
            tasks = body.get("tasks") if isinstance(body, dict) else None
            if position is None or not isinstance(tasks, list):
                raw = json.dumps(tasks, ensure_ascii=False)
                rejects.append(_page_reject(fetch, page, "tasks", "the page's tasks are not a list", raw, None))
                whole.add(key)
                continue
            task = tasks[position]
            raw = json.dumps(task, ensure_ascii=False)
            if pass_no and raw in _earlier_passes(fetch, offset, pass_no, position):
                continue  # a later pass landed the same item in the same place: it was rejected with the first
            if isinstance(task, dict):
                rejects.append(_page_reject(fetch, page, "id", "task has no id: not loaded", raw, position))
            else:
                rejects.append(_page_reject(fetch, page, "task", "task is not an object", raw, position))
        return rejects

    def _parse_error(self, text: str) -> str | None:
        """Why DuckDB cannot parse ``text`` as JSON (its own words, without the text it quotes), or None."""
        try:
            self.db.execute("SELECT json($text)", {"text": text})
        except duckdb.InvalidInputException as exc:
            return str(exc).split("  Input: ", 1)[0].removeprefix("Invalid Input Error: ")
        return None


def _page_file(path: str | Path) -> bytes:
    """A landed page's file, as stored. A file that cannot be read at all is a broken landing, not a bad
    record: that raises :class:`LandingError`."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LandingError(f"unreadable page {path}: {exc.strerror or exc}", path=str(path)) from exc


def _decompressed(path: str | Path, data: bytes) -> tuple[bytes, str | None]:
    """A page's body (without a UTF-8 byte order mark, which no JSON reader wants), or why it does not
    decompress (a page cut short, or corrupt)."""
    try:
        body = decompress_page(path, data)
        return (body[len(codecs.BOM_UTF8) :] if body.startswith(codecs.BOM_UTF8) else body), None
    except ValueError as exc:
        return b"", f"page could not be decompressed: {exc} (its file is kept in the landing as it is)"


def _earlier_passes(fetch: Fetch, offset: int, pass_no: int, position: int) -> set[str]:
    """The item at ``position`` of the page at ``offset`` in each pass of ``fetch`` before ``pass_no``, as text.
    An item without an id cannot be settled by id as tasks are: the same text in the same place is the same
    item, rejected once (read only for the few such items of later passes)."""
    found: set[str] = set()
    for page in fetch.all_pages or fetch.pages:
        if page[0] != offset or page[3] >= pass_no:
            continue
        text, broken = _page_text(fetch, page)
        try:
            body = json.loads(text) if broken is None else None
        except (ValueError, RecursionError):
            continue
        tasks = body.get("tasks") if isinstance(body, dict) else None
        if isinstance(tasks, list) and position < len(tasks):
            found.add(json.dumps(tasks[position], ensure_ascii=False))
    return found


def _page_text(fetch: Fetch, page: Page) -> tuple[str, str | None]:
    """A landed page's text, or why it does not decompress."""
    path = fetch.folder / page[1]
    body, broken = _decompressed(path, _page_file(path))
    return _text(body), broken


def _text(body: bytes) -> str:
    """A page's body as text, what is not UTF-8 replaced (a reject keeps what can be shown of it)."""
    return body.decode("utf-8", "replace")


def _file_rows(table: Table, rows: pa.Table) -> pa.Table:
    """``rows`` as a file of ``table`` holds them: its columns but the partition's, in order, of its types."""
    return rows.select(table.file_schema.names).cast(table.file_schema)


def _children(lists: pa.Array) -> tuple[pa.Array, pa.Array]:
    """For each value of the lists in ``lists`` (as :func:`pyarrow.compute.list_flatten` gives them): the
    index of its list, and its position in that list."""
    offsets = lists.offsets.to_numpy()
    parents = pc.list_parent_indices(lists).to_numpy()
    position = np.arange(len(parents), dtype=np.int64) - (offsets[parents] - offsets[0])
    return pa.array(parents), pa.array(position.astype(np.int32))


def _explode_lists(chunk: pa.RecordBatch) -> tuple[pa.Table, pa.Table]:
    """A chunk of artifact lists (``artifacts`` and their parent's columns) as artifacts and as tags."""
    lists = chunk.column("artifacts")
    parents, artifact_idx = _children(lists)
    flat = pc.list_flatten(lists)
    tag_lists = pc.struct_field(flat, "tags")
    rows = pa.Table.from_batches([chunk]).drop_columns(["artifacts"]).take(parents)
    rows = rows.append_column("artifact_idx", artifact_idx)
    rows = rows.append_column("digest", pc.struct_field(flat, "digest"))
    parents, tag_idx = _children(tag_lists)
    tagged = rows.take(parents).append_column("tag_idx", tag_idx)
    tagged = tagged.append_column("tag", pc.list_flatten(tag_lists))
    rows = rows.append_column("artifact_type", pc.struct_field(flat, "type"))
    rows = rows.append_column("tag_count", pc.fill_null(pc.list_value_length(tag_lists), 0))
    return rows, tagged


_FACTS = {
    "tags": np.int32,
    "no_artifacts": np.bool_,
    "bad_artifact": np.bool_,
    "null_tags": np.bool_,
    "null_tag": np.bool_,
}


def _resource_facts(artifacts: pa.Array) -> dict[str, np.ndarray]:
    """What the tasks table and the judging of resources (RESOURCE_ERRORS_SQL) need to know of each parsed
    resource's artifact list (``metadata.artifacts``), worked out on Arrow's flat arrays of all the artifacts
    and all the tags of the batch (DuckDB would run a lambda over each list): its tag count (a null list counts
    none); and which of its parts the non-strict parse left NULL (missing, or of another type): the list, an
    artifact or its digest, a tag list, a tag. (Whether the resource parsed, and whether its repository has a
    name, DuckDB and the read's own columns tell.)"""
    flat = pc.list_flatten(artifacts)  # the artifacts of every list, in order; a null artifact stays
    owner = pc.list_parent_indices(artifacts).to_numpy()
    tag_lists = pc.struct_field(flat, "tags")

    def anywhere(bad: np.ndarray, parents: np.ndarray, size: int) -> np.ndarray:
        found = np.zeros(size, dtype=bool)
        found[parents[bad]] = True
        return found

    null_tag = anywhere(
        _numpy(pc.is_null(pc.list_flatten(tag_lists))), pc.list_parent_indices(tag_lists).to_numpy(), len(flat)
    )
    counts = pc.fill_null(pc.list_value_length(tag_lists), 0).to_numpy()
    return {
        "tags": np.bincount(owner, weights=counts, minlength=len(artifacts)).astype(np.int32),
        "no_artifacts": _numpy(pc.is_null(artifacts)),
        "bad_artifact": anywhere(_numpy(pc.is_null(pc.struct_field(flat, "digest"))), owner, len(artifacts)),
        "null_tags": anywhere(_numpy(pc.is_null(tag_lists)), owner, len(artifacts)),
        "null_tag": anywhere(null_tag, owner, len(artifacts)),
    }


def _numpy(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array with no nulls as a numpy array (maybe read-only: combine it into a new one)."""
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _page_reject(
    fetch: Fetch, page: Page, field: str, error: str, raw: str | None, position: int | None
) -> dict[str, Any]:
    return {
        "instance_id": fetch.instance_id,
        "execution_id": fetch.execution_id,
        "task_id": None,
        "field": field,
        "error": error,
        "raw": raw,
        "run_id": fetch.run_id,
        "page_offset": page[0],
        "position": position,
        "execution_month": fetch.month,
    }


def _explain(rejects: pa.Table, extra: list[dict[str, Any]]) -> pa.Table:
    """Add detail to 'invalid JSON' reasons (where the text stops being JSON) and append Python's rejects."""
    errors = rejects.column("error").to_pylist()
    raws = rejects.column("raw").to_pylist()
    changed = False
    for i, (error, raw) in enumerate(zip(errors, raws, strict=True)):
        if error == "invalid JSON" and raw is not None:
            errors[i] = describe_invalid_json(raw)
            changed = True
    if changed:
        rejects = rejects.set_column(
            rejects.schema.get_field_index("error"), REJECTS.schema.field("error"), pa.array(errors, pa.string())
        )
    if extra:
        rows = {name: [r.get(name) for r in extra] for name in REJECTS.columns}
        rejects = pa.concat_tables([rejects, pa.table(rows, schema=REJECTS.schema)])
    return rejects


def describe_invalid_json(text: str) -> str:
    """Why ``text`` is not a JSON document, in words an operator can act on."""
    try:
        _, end = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    trailing = text.lstrip()[end:]
    return (
        f"invalid JSON: a complete JSON value followed by {len(trailing)} characters of trailing text "
        f"starting {trailing[:40]!r}"
    )

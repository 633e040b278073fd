"""The warehouse: ``DATA_DIR/warehouse.duckdb``, views over the lake for SQL and BI tools.

It holds no data, only views: one per lake table (explicit columns, in the schema's order) and one per file
in ``sql/``; and two small tables of the times scheduled policies should fire (:mod:`.schedules`, worked
out at each build; a warehouse built over a day ago is rebuilt when read). Any DuckDB client opens it
read-only and sees the current lake without running anything: the views read the lake's partition files
(``<lake>/<table>/instance_id=*/...``), each of which a load replaces whole.

The views hold the lake's absolute location: a local path, or ``s3://bucket/prefix``. DuckDB reads S3 with its
httpfs extension, loaded from the installed package (:mod:`.httpfs`); where that cannot be, ``swr-etl`` hands
DuckDB the lake's own pyarrow filesystem (:meth:`pipeline.load.storage.LakeStore.duckdb_filesystem`). If the
data directory or the lake is moved, the next ``swr-etl`` command that uses the warehouse (``query``,
``report``, ``rebuild``, ``run``) notices and rewrites the views; ``swr-etl rebuild --views-only`` does only
that. The file itself is rebuilt under a temporary name and renamed into place, so a reader never sees it
half-made. Where it cannot be rewritten (a read-only copy of a data directory, a full disk), ``query`` and
``report`` make the same views in an in-memory database instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline import preflight
from pipeline.errors import WarehouseError, WarehouseWriteError
from pipeline.load import legacy
from pipeline.load.storage import LakeStore
from pipeline.schema import TABLES, Table
from pipeline.sqlfiles import sql_folder
from pipeline.warehouse import httpfs, schedules

log = logging.getLogger(__name__)

WAREHOUSE = "warehouse.duckdb"
_VIEW_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


#: a warehouse built longer ago is rebuilt when read: its schedule fires (see :mod:`.schedules`) run out
REBUILT_AFTER = timedelta(days=1)
WRITE_HINT = "free some space or fix the folder's permissions, then run 'swr-etl rebuild --views-only'"


@dataclass(frozen=True)
class SqlView:
    """One file of ``sql/``: a SELECT that becomes the view of the file's name, or ``CREATE MACRO <name>(...) AS
    TABLE ...`` run as it is (the same question with a parameter: BI tools list views only, so every analytic
    is a view, and a macro such as ``stuck_tasks_over`` only adds a parameter to one)."""

    name: str
    sql: str
    question: str

    @property
    def is_macro(self) -> bool:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return body.lstrip().upper().startswith("CREATE")


def sql_views() -> list[SqlView]:
    """Every analytics view shipped in ``sql/``: one file a view, opening with a comment (the question); the
    macros first, since a view may call one."""
    views = []
    for entry in sorted(sql_folder().iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        name = entry.name.removesuffix(".sql")
        if not _VIEW_NAME.match(name):
            raise WarehouseError(f"sql/{entry.name}: a view name must be lower_snake_case")
        text = entry.read_text(encoding="utf-8")
        comment = [line.removeprefix("--").strip() for line in text.splitlines() if line.startswith("--")]
        if not comment:
            raise WarehouseError(f"sql/{entry.name} must open with a comment saying what question it answers")
        views.append(SqlView(name, text.strip().rstrip(";"), " ".join(comment)))
    return sorted(views, key=lambda view: not view.is_macro)


def duck_type(kind: pa.DataType) -> str:
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ"
    return {
        pa.string(): "VARCHAR",
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
    }[kind]


def table_view_sql(table: Table, store: LakeStore, db: duckdb.DuckDBPyConnection | None = None) -> str:
    """The view of one lake table: its columns in schema order, over its Parquet files (or empty, typed).

    The small tables (instances, policies, registries, executions) are read by column name, and given ``db`` a
    column no file has yet is null: their files are rewritten only when their instance is loaded again, so a
    lake shared by several jobs, or one written by an older version, holds files with fewer columns."""
    root = re.sub(r"([\[\]?*])", r"[\1]", store.url)  # the lake's own path taken literally, the rest a glob
    pattern = "/".join([root, table.name, *["*"] * len(table.partition_by), "*.parquet"])
    hive = ", ".join(f"'{c}': 'VARCHAR'" for c in table.partition_by)
    by_name = "" if table.partitioned else ", union_by_name = true"
    source = f"read_parquet('{_quote(pattern)}', hive_partitioning = true, hive_types = {{{hive}}}{by_name})"
    if not any(f.endswith(".parquet") for f in store.files(table.name)):
        typed = ", ".join(f'CAST(NULL AS {duck_type(f.type)}) AS "{f.name}"' for f in table.schema)
        return f"CREATE VIEW {table.name} AS SELECT {typed} WHERE false"
    present = set(table.columns)
    if db is not None and not table.partitioned:
        present = {row[0] for row in db.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    columns = ", ".join(
        f'"{f.name}"' if f.name in present else f'CAST(NULL AS {duck_type(f.type)}) AS "{f.name}"' for f in table.schema
    )
    return f"CREATE VIEW {table.name} AS SELECT {columns} FROM {source}"


def _quote(path: str) -> str:
    return path.replace("'", "''")


def lake_store(data_dir: Path, location: str | None = None) -> LakeStore:
    """The lake the warehouse of ``data_dir`` reads: ``location``, or ``DATA_DIR/lake``."""
    from pipeline.load import open_lake

    return open_lake(Path(data_dir).resolve(), location).store


def attach_lake(db: duckdb.DuckDBPyConnection, store: LakeStore) -> None:
    """Let a connection read a remote lake: DuckDB's httpfs extension with the lake's settings, else the lake's
    own pyarrow filesystem, registered for ``s3://``."""
    if store.s3 is None or httpfs.attach(db, store.s3):
        return
    filesystem = store.duckdb_filesystem()
    if filesystem is not None and not db.filesystem_is_registered("s3"):
        db.register_filesystem(filesystem)


def build(data_dir: Path, location: str | None = None) -> Path:
    """(Re)write ``warehouse.duckdb`` for the lake of ``data_dir`` (or at ``location``); returns its path."""
    data_dir = Path(data_dir).resolve()
    return _build(data_dir, lake_store(data_dir, location))


def _build(data_dir: Path, store: LakeStore) -> Path:
    target = data_dir / WAREHOUSE
    tmp = data_dir / f".{WAREHOUSE}.{os.getpid()}.tmp"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)  # the work folder of a data directory in a store, on a new machine
        _remove_dead_builds(data_dir)
        with duckdb.connect(str(tmp)) as db:
            _create_views(db, data_dir, store, written=str(tmp))
        os.replace(tmp, target)
    except (OSError, duckdb.Error) as exc:
        raise WarehouseWriteError(f"could not write {target}: {exc}", hint=WRITE_HINT) from exc
    finally:  # never left behind, whatever stopped the build
        for leftover in (tmp, Path(f"{tmp}.wal")):
            with contextlib.suppress(OSError):  # a read-only folder holds none, and says so
                leftover.unlink(missing_ok=True)
    return target


def _create_views(db: duckdb.DuckDBPyConnection, data_dir: Path, store: LakeStore, *, written: str = "") -> None:
    """Every view of the warehouse, and the table saying what they were made for, in ``db``. ``written``: the
    file being written, whose own I/O errors (a full disk) are raised as they are, not blamed on a view."""
    db.execute("SET TimeZone = 'UTC'")
    attach_lake(db, store)
    for table in TABLES.values():
        try:
            db.execute(table_view_sql(table, store, db))
        except duckdb.Error as exc:
            if written and written in str(exc):
                raise  # the warehouse file could not be written (a full disk): said by the caller
            message = unreadable_lake(exc, store) or f"the {table.name} files do not read: {exc}"
            raise WarehouseError(message) from exc
        db.execute(f"COMMENT ON VIEW {table.name} IS '{table.doc}'")
    schedules.create_tables(db)
    _create_sql_views(db, written)
    db.execute(
        "CREATE TABLE _swr_etl_meta AS SELECT $dir AS data_dir, $fp AS fingerprint, now() AS built_at",
        {"dir": str(data_dir), "fp": fingerprint(store)},
    )


def _create_sql_views(db: duckdb.DuckDBPyConnection, written: str) -> None:
    """The views and macros of ``sql/``, each once what it reads exists: DuckDB binds a view or macro when it is
    created, so one that reads another waits for a later pass (a cycle or a real error is raised as such)."""
    waiting = sql_views()
    while waiting:
        failed: list[tuple[SqlView, duckdb.Error]] = []
        for view in waiting:
            try:
                db.execute(view.sql if view.is_macro else f"CREATE VIEW {view.name} AS {view.sql}")
            except duckdb.CatalogException as exc:
                failed.append((view, exc))  # it may read a view not made yet
                continue
            except duckdb.Error as exc:
                if written and written in str(exc):
                    raise  # a full disk is not the view's fault
                raise WarehouseError(f"sql/{view.name}.sql does not run: {exc}") from exc
            if not view.is_macro:
                db.execute(f"COMMENT ON VIEW {view.name} IS '{view.question.replace(chr(39), chr(39) * 2)}'")
        if len(failed) == len(waiting):  # blame the file whose error is not that another waiting one is missing
            names = {view.name for view, _ in failed}
            stuck, error = next(
                ((v, e) for v, e in failed if not any(n in str(e) for n in names - {v.name})), failed[0]
            )
            raise WarehouseError(f"sql/{stuck.name}.sql does not run: {error}") from error
        waiting = [view for view, _ in failed]


def _remove_dead_builds(data_dir: Path) -> None:
    """Delete what builds killed midway left (``.warehouse.duckdb.<pid>.tmp``): those whose process is gone."""
    for path in data_dir.glob(f".{WAREHOUSE}.*.tmp*"):
        pid = path.name.removeprefix(f".{WAREHOUSE}.").split(".", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def unreadable_lake(exc: duckdb.Error, store: LakeStore) -> str:
    """What to say when reading the lake failed on partition folders an older version named (else "")."""
    return legacy.describe(store) if "partition" in str(exc).lower() else ""


def ensure(data_dir: Path, store: LakeStore) -> Path | None:
    """The warehouse of ``data_dir`` (resolved) over ``store``, rebuilt first if it is missing or was made for
    another location. ``None`` when it would need that but cannot be written here (a read-only copy of a data
    directory, a full disk): nothing is written then, and the caller makes the same views in memory."""
    target = data_dir / WAREHOUSE
    try:
        found = store.exists("executions")
    except OSError as exc:
        raise WarehouseError(f"could not read the lake at {store.url}: {exc}") from exc
    if not found:
        raise WarehouseError(f"no lake at {store.url}: run 'swr-etl run' or 'swr-etl rebuild' first")
    try:
        with duckdb.connect(str(target), read_only=True) as db:
            made_for = db.execute(
                "SELECT data_dir, fingerprint, built_at > now() - $age FROM _swr_etl_meta", {"age": REBUILT_AFTER}
            ).fetchall()
    except duckdb.Error:
        made_for = []
    if made_for and made_for[0] == (str(data_dir), fingerprint(store), True):
        return target
    if not preflight.writable(data_dir):  # a BI host's read-only copy: never written to, not even tried
        log.info("the warehouse of %s cannot be rewritten there: its views are made in memory", data_dir)
        return None
    if made_for and made_for[0][:2] == (str(data_dir), fingerprint(store)):
        log.info("the warehouse of %s was built over %s ago: rebuilding it (schedule fires)", data_dir, REBUILT_AFTER)
    elif made_for:
        log.warning("the data directory or lake moved, or the views changed: rewriting the warehouse of %s", data_dir)
    else:
        log.info("building the warehouse for %s", data_dir)
    try:
        return _build(data_dir, store)
    except WarehouseWriteError as exc:
        log.info("%s: its views are made in memory", exc)
        return None


def fingerprint(store: LakeStore) -> str:
    """What the views are made of (the lake's location, table schemas and sql/ files): a warehouse made from
    others is rebuilt."""
    digest = hashlib.sha256(store.url.encode())
    for table in TABLES.values():
        digest.update(f"{table.name}:{table.schema}".encode())
    for view in sql_views():
        digest.update(f"{view.name}:{view.sql}".encode())
    return digest.hexdigest()[:16]


def connect(data_dir: Path, location: str | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse (rebuilt first if needed), in UTC, able to read its lake; when the
    warehouse is out of date and cannot be rewritten, an in-memory database holding the same views."""
    data_dir = Path(data_dir).resolve()
    store = lake_store(data_dir, location)
    target = ensure(data_dir, store)
    if target is None:
        db = duckdb.connect(":memory:")
        _create_views(db, data_dir, store)
        return db
    db = duckdb.connect(str(target), read_only=True)
    db.execute("SET TimeZone = 'UTC'")
    attach_lake(db, store)
    return db

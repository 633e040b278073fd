"""A transformer's DuckDB connection, which can be told to stop from another thread."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.errors import Stopped


class Connection:
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

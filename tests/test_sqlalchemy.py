"""Superset and other SQLAlchemy-based BI tools reach the warehouse through duckdb-engine: the file opened
read-only lists every lake table and analytics view, each answers, and nothing can be written through it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bi_helpers import analytics, lake_tables, sandbox_data_dir

import pipeline

pytest.importorskip("duckdb_engine", reason="duckdb-engine (the test extras) is not installed")
sa = pytest.importorskip("sqlalchemy", reason="sqlalchemy (the test extras) is not installed")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sandbox_data_dir(tmp_path_factory.mktemp("bi"))


@pytest.fixture(scope="module")
def expected(data_dir: Path) -> dict[str, Any]:
    """What the Python API answers, for comparison: row counts of every view, and two analytics in full."""
    db = pipeline.connect(data_dir)
    try:
        counts = {name: db.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0] for name in lake_tables() + analytics()}
        columns = {name: [row[0] for row in db.sql(f"DESCRIBE {name}").fetchall()] for name in analytics()}
        daily = sorted(db.sql("SELECT * FROM daily_throughput").fetchall(), key=repr)
        health = sorted(db.sql("SELECT * FROM policy_health").fetchall(), key=repr)
    finally:
        db.close()
    return {"counts": counts, "columns": columns, "daily_throughput": daily, "policy_health": health}


@pytest.fixture
def engine(data_dir: Path, expected: dict[str, Any]) -> Iterator[Any]:
    """The engine a Python BI tool builds: the warehouse file, read-only (``expected`` is read first: DuckDB
    refuses a second connection to a file with other settings in one process)."""
    engine = sa.create_engine(f"duckdb:///{data_dir / 'warehouse.duckdb'}", connect_args={"read_only": True})
    yield engine
    engine.dispose()


def test_every_table_and_analytic_is_listed_and_answers(engine: Any, expected: dict[str, Any]) -> None:
    inspector = sa.inspect(engine)
    views = set(inspector.get_view_names())
    assert set(lake_tables()) <= views, set(lake_tables()) - views
    assert set(analytics()) <= views, set(analytics()) - views
    assert {"alerts", "failure_reasons", "policy_health", "stuck_tasks", "tag_drift"} <= views  # the README's
    assert views.isdisjoint(inspector.get_table_names())  # the warehouse holds views, not copies

    with warnings.catch_warnings(record=True) as caught:  # what a BI tool reads when a view becomes a dataset
        warnings.simplefilter("always")
        for name in analytics():
            assert [c["name"] for c in inspector.get_columns(name)] == expected["columns"][name], name
    unknown = {str(w.message).split("'")[1] for w in caught if "Did not recognize type" in str(w.message)}
    assert unknown <= {"list"}, unknown  # lists (tags, digests) only: SQLAlchemy has no type for them

    answered: dict[str, int] = {}
    with engine.connect() as conn:
        for name in lake_tables() + analytics():
            rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).fetchall()
            answered[name] = len(rows)
    assert answered == expected["counts"]
    for name in ("tasks", "executions", "policy_health", "failures", "daily_throughput", "alerts", "tag_drift"):
        assert answered[name] > 0, f"{name} is empty in the sandbox's lake"


def test_answers_match_the_python_api_in_any_time_zone(engine: Any, expected: dict[str, Any]) -> None:
    """A BI host's session time zone is its own (no ``SET TimeZone = 'UTC'``): the views' days are UTC dates
    all the same, and times are the same instants."""
    with engine.connect() as conn:
        conn.execute(sa.text("SET TimeZone = 'Asia/Shanghai'"))
        daily = sorted(conn.execute(sa.text("SELECT * FROM daily_throughput")).fetchall(), key=repr)
        health = sorted(conn.execute(sa.text("SELECT * FROM policy_health")).fetchall(), key=repr)
        assert conn.execute(sa.text("SELECT current_setting('TimeZone')")).scalar() == "Asia/Shanghai"
    assert [tuple(row) for row in daily] == expected["daily_throughput"]
    assert [tuple(row) for row in health] == expected["policy_health"]


def test_the_warehouse_cannot_be_changed_through_it(engine: Any) -> None:
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="read-only"):
        conn.execute(sa.text("CREATE TABLE scratch AS SELECT 1 AS x"))


def test_the_uri_given_to_superset(data_dir: Path, expected: dict[str, Any]) -> None:
    """The URI of docs/operations.md, typed into Superset's form: read-only through the URI alone."""
    engine = sa.create_engine(f"duckdb:///{data_dir / 'warehouse.duckdb'}?access_mode=read_only")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_setting('access_mode')")).scalar() == "read_only"
            assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar() == expected["counts"]["alerts"]
            stuck = "SELECT count(*) FROM stuck_tasks_over(threshold := INTERVAL 6 HOUR)"  # a macro, in SQL Lab
            assert conn.execute(sa.text(stuck)).scalar() == expected["counts"]["stuck_tasks"]
    finally:
        engine.dispose()

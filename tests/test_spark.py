"""A distributed engine reads the lake as written: Spark (local mode) against the DuckDB warehouse.

The lake is built by the real CLI (``demo``); Spark reads each ``lake/<table>`` folder whole and discovers
its hive partitions itself, so these checks hold whatever the partition layout of a table is. DuckDB is
read through the warehouse's views, the way the project's own queries read it.

Times are compared as UTC epoch microseconds computed inside each engine (Spark ``unix_micros``, DuckDB
``epoch_us``), never as Python datetimes: PySpark's ``collect()`` turns a ``TimestampType`` into a naive
datetime in the *Python process's* local zone (not the session zone), and DuckDB into an aware one in its
own ``TimeZone`` setting, so comparing datetimes would test the machines' zones, not the lake.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from conftest import clean_env, run_cli

from pipeline.schema import TABLES

pytestmark = [
    pytest.mark.slow,
    # pyspark 4.x warns once that it is not yet tested with pandas 3; nothing here goes through pandas
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

LOOPBACK = "127.0.0.1"


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine without Spark; in CI (``CI=true``) the test must run, so fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the Spark test must run in CI, not skip)", pytrace=False)
    pytest.skip(reason)


def _java() -> tuple[str | None, str]:
    """The java that pyspark's launcher will use ($JAVA_HOME/bin/java if JAVA_HOME is set, else PATH's), or why none."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate), ""
        return None, f"no Java runtime found: JAVA_HOME={java_home} has no executable bin/java"
    found = shutil.which("java")
    return found, "" if found else "no Java runtime found: no java on PATH and JAVA_HOME is not set"


def _spark_type(kind: pa.DataType) -> str:
    """The Spark type (``DataType.simpleString()``) that the Parquet of an Arrow column must read back as."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_int64(kind):
        return "bigint"
    if pa.types.is_int32(kind):
        return "int"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_float64(kind):
        return "double"
    if pa.types.is_timestamp(kind):
        # a tz-aware Arrow timestamp is written with isAdjustedToUTC=true: an instant, Spark's TimestampType.
        # A naive one would come back as TIMESTAMP_NTZ (a wall clock) and shift by the reader's zone.
        return "timestamp" if kind.tz is not None else "timestamp_ntz"
    raise AssertionError(f"no Spark type mapped for Arrow type {kind}: extend _spark_type")


def _hive_keys(folder: Path) -> set[str]:
    """The hive partition keys (``key=value`` folder names) anywhere under a table's folder."""
    keys: set[str] = set()
    for _dirpath, dirnames, _filenames in os.walk(folder, followlinks=True):
        keys.update(name.split("=", 1)[0] for name in dirnames if "=" in name and not name.startswith((".", "_")))
    return keys


def _sorted(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows as a sorted list of tuples; a null sorts before any value of its column."""
    return sorted((tuple(row) for row in rows), key=lambda row: tuple((v is not None, v) for v in row))


def _micros_select(table: str, engine: str) -> str:
    """SELECT every column of ``table`` in schema order, timestamps as UTC epoch microseconds."""
    micros = "unix_micros" if engine == "spark" else "epoch_us"
    quote = "`" if engine == "spark" else '"'
    exprs = []
    for field in TABLES[table].schema:
        column = f"{quote}{field.name}{quote}"
        exprs.append(f"{micros}({column})" if pa.types.is_timestamp(field.type) else column)
    return f"SELECT {', '.join(exprs)} FROM {table}"


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake and warehouse written by the real CLI against the loopback sandbox."""
    data = tmp_path_factory.mktemp("spark-demo")
    result = run_cli(["demo", "--data-dir", str(data)], clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (data / "warehouse.duckdb").is_file()
    for name in TABLES:
        assert (data / "lake" / name).is_dir(), f"the demo wrote no lake/{name}"
    return data


@pytest.fixture(scope="module")
def warehouse(data_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        yield con
    finally:
        con.close()


@pytest.fixture(scope="module")
def spark(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local SparkSession for the module (the JVM takes seconds to start), every table a temp view."""
    try:
        from pyspark import SparkContext
        from pyspark.sql import SparkSession
    except ImportError as exc:
        _unavailable(f"pyspark cannot be imported: {exc}")
    java, missing = _java()
    if java is None:
        _unavailable(f"{missing} (Spark 4 needs Java 17 or newer)")

    scratch = tmp_path_factory.mktemp("spark-scratch")
    with pytest.MonkeyPatch.context() as env:
        # the pip-installed Spark, nothing of a developer's own Spark install or submit arguments
        env.delenv("SPARK_HOME", raising=False)
        env.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
        env.setenv("SPARK_LOCAL_IP", LOOPBACK)  # no network: the driver binds and advertises loopback only
        builder = (
            SparkSession.builder.master("local[2]")
            .appName("swr-etl-lake-test")
            .config("spark.driver.memory", "1g")
            .config("spark.driver.host", LOOPBACK)
            .config("spark.driver.bindAddress", LOOPBACK)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.local.dir", str(scratch / "local"))
            .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
            # Partition values are text in the lake: instance ids are opaque ids, months are 'YYYY-MM' such
            # as '2026-11' (or 'unknown'). With type inference on, Spark guesses each partition column's type
            # from the folder names it happens to find: an id like '0042' becomes the integer 42 (leading
            # zeros lost, no longer equal to the API's id), and a column's type would change with the data
            # in the lake. The schema says string, DuckDB's views pin them to VARCHAR (hive_types): so here.
            .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        )
        try:
            session = builder.getOrCreate()
            session.sparkContext.setLogLevel("ERROR")
            assert session.range(3).count() == 3
        except Exception as exc:
            _unavailable(f"the JVM failed to start ({java}): {type(exc).__name__}: {str(exc)[:500]}")

    try:
        for name in TABLES:
            session.read.parquet(str(data_dir / "lake" / name)).createOrReplaceTempView(name)
        yield session
    finally:
        gateway = SparkContext._gateway
        session.stop()
        # stop() leaves the gateway JVM running until Python exits: end it (it exits when its stdin closes),
        # so the rest of the test suite does not carry a 1 GiB JVM along
        if gateway is not None:
            proc = getattr(gateway, "proc", None)
            gateway.shutdown()
            SparkContext._gateway = None
            SparkContext._jvm = None
            if proc is not None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


# -- checks ------------------------------------------------------------------------------------------------


def _duck(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in con.execute(sql).fetchall()]


def _spark(spark: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in spark.sql(sql).collect()]


@pytest.mark.parametrize("table", list(TABLES))
def test_row_counts_agree(spark: Any, warehouse: duckdb.DuckDBPyConnection, table: str) -> None:
    expected = _duck(warehouse, f"SELECT count(*) FROM {table}")[0][0]
    assert expected > 0, f"the demo lake has no {table}: nothing to compare"
    assert spark.table(table).count() == expected


@pytest.mark.parametrize("table", list(TABLES))
def test_columns_and_types_agree(spark: Any, warehouse: duckdb.DuckDBPyConnection, table: str) -> None:
    duck_columns = [d[0] for d in warehouse.execute(f"SELECT * FROM {table} LIMIT 0").description]
    spark_types = {f.name: f.dataType.simpleString() for f in spark.table(table).schema.fields}
    assert set(spark_types) == set(duck_columns)
    expected = {field.name: _spark_type(field.type) for field in TABLES[table].schema}
    assert spark_types == expected


def test_hive_partitions_are_discovered_as_strings(
    spark: Any, warehouse: duckdb.DuckDBPyConnection, data_dir: Path
) -> None:
    """Whatever a table is partitioned by (found from its folders), Spark finds those columns, as strings."""
    partitioned = {name: _hive_keys(data_dir / "lake" / name) for name in TABLES}
    # guard: without partitions there would be nothing to discover (tasks are split by instance and month)
    assert {"instance_id", "execution_month"} <= partitioned["tasks"], partitioned
    for table, keys in partitioned.items():
        if not keys:
            continue
        assert keys <= set(TABLES[table].columns), f"partition keys {keys} are not columns of {table}"
        schema = {f.name: f.dataType.simpleString() for f in spark.table(table).schema.fields}
        for key in sorted(keys):
            assert schema.get(key) == "string", f"{table}.{key} read as {schema.get(key)}"
        sql = f"SELECT DISTINCT {', '.join(sorted(keys))} FROM {table}"
        assert _sorted(_spark(spark, sql)) == _sorted(_duck(warehouse, sql)), f"{table}: partition values differ"


@pytest.mark.parametrize("table", list(TABLES))
def test_every_row_reads_the_same(spark: Any, warehouse: duckdb.DuckDBPyConnection, table: str) -> None:
    """Every value of every row (times as UTC epoch microseconds), compared as multisets of rows."""
    spark_rows = Counter(_spark(spark, _micros_select(table, "spark")))
    duck_rows = Counter(_duck(warehouse, _micros_select(table, "duckdb")))
    only_spark = list((spark_rows - duck_rows).elements())[:5]
    only_duck = list((duck_rows - spark_rows).elements())[:5]
    assert not only_spark and not only_duck, f"only in Spark: {only_spark}\nonly in DuckDB: {only_duck}"
    assert sum(spark_rows.values()) == sum(duck_rows.values())


def test_timestamps_are_the_same_instants(spark: Any, warehouse: duckdb.DuckDBPyConnection) -> None:
    """Min and max of every time column, as UTC epoch microseconds and as UTC text."""
    checked = 0
    for name, table in TABLES.items():
        for field in table.schema:
            if not pa.types.is_timestamp(field.type):
                continue
            col = field.name
            spark_sql = (
                f"SELECT unix_micros(min(`{col}`)), unix_micros(max(`{col}`)), count(`{col}`),"
                f" date_format(min(`{col}`), 'yyyy-MM-dd HH:mm:ss'), date_format(max(`{col}`), 'yyyy-MM-dd HH:mm:ss')"
                f" FROM {name}"
            )
            duck_sql = (
                f'SELECT epoch_us(min("{col}")), epoch_us(max("{col}")), count("{col}"),'
                f" strftime(timezone('UTC', min(\"{col}\")), '%Y-%m-%d %H:%M:%S'),"
                f" strftime(timezone('UTC', max(\"{col}\")), '%Y-%m-%d %H:%M:%S')"
                f" FROM {name}"
            )
            got, want = _spark(spark, spark_sql), _duck(warehouse, duck_sql)
            assert got == want, f"{name}.{col}: Spark {got} != DuckDB {want}"
            # the sandbox's instances are all paid per use: they send no expiry time ("")
            assert want[0][2] > 0 or (name, col) == ("instances", "expires_at"), f"{name}.{col} is all null"
            checked += 1
    assert checked >= 6
    # and Spark's UTC month of an execution's start is the month its task partitions are named by
    mismatched = _spark(
        spark,
        "SELECT instance_id, execution_id, execution_month, date_format(created_at, 'yyyy-MM') FROM executions"
        " WHERE created_at IS NOT NULL AND execution_month <> date_format(created_at, 'yyyy-MM')",
    )
    assert mismatched == []


GROUPED = {
    "tasks per month and status": """
        SELECT execution_month, status, count(*) AS tasks, count(end_time) AS ended, sum(src_tags) AS src_tags,
               sum(CASE WHEN src_rejected THEN 1 ELSE 0 END) AS src_rejected, min(task_id), max(task_id)
        FROM tasks GROUP BY execution_month, status
    """,
    "tags per instance, side and task status": """
        SELECT g.instance_id, g.side, t.status, count(*) AS tags, count(DISTINCT g.digest) AS digests,
               count(DISTINCT g.execution_id) AS executions
        FROM tags AS g
        JOIN tasks AS t
          ON t.instance_id = g.instance_id AND t.execution_id = g.execution_id AND t.task_id = g.task_id
        GROUP BY g.instance_id, g.side, t.status
    """,
    "executions per instance and trigger, joined to their policies": """
        SELECT e.instance_id, e.trigger, p.enabled, count(*) AS executions, sum(e.total) AS total
        FROM executions AS e
        LEFT JOIN policies AS p ON p.instance_id = e.instance_id AND p.policy_id = e.policy_id
        GROUP BY e.instance_id, e.trigger, p.enabled
    """,
}


@pytest.mark.parametrize("name", list(GROUPED))
def test_grouped_queries_give_the_same_answer(spark: Any, warehouse: duckdb.DuckDBPyConnection, name: str) -> None:
    sql = GROUPED[name]
    want = _sorted(_duck(warehouse, sql))
    assert want, f"{name}: no rows to compare"
    assert _sorted(_spark(spark, sql)) == want

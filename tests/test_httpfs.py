"""An S3 lake read by DuckDB's httpfs extension, loaded from the installed package, and by pyarrow when it
cannot load: the same answers, and the lake's secret key never in the warehouse file.

The extension exists for DuckDB 1.5.5 only (the ``[httpfs]`` extra): ``make test`` runs this file a second
time in ``.venv-httpfs``, where ``SWR_ETL_TEST_HTTPFS=1`` turns a missing extension into a failure; in the
main environment (the DuckDB of the default install) the tests that need it are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import S3Server, run_cli, sandbox_env

from pipeline.load.storage import S3Settings
from pipeline.sandbox import SandboxServer
from pipeline.warehouse import httpfs, warehouse

QUESTIONS = (
    "SELECT status, count(*) FROM tasks GROUP BY ALL ORDER BY ALL",
    "SELECT side, count(*), count(DISTINCT digest) FROM tags GROUP BY ALL ORDER BY ALL",
    "SELECT policy_id, day, executions, tasks FROM policy_health ORDER BY ALL",
    "SELECT count(*) FROM tag_status",
)


def answers(db: duckdb.DuckDBPyConnection) -> list[list[tuple[Any, ...]]]:
    return [db.sql(sql).fetchall() for sql in QUESTIONS]


def _installed() -> bool:
    with duckdb.connect() as db:
        return httpfs.extension_file(db) is not None


if not _installed() and os.environ.get("SWR_ETL_TEST_HTTPFS") == "1":
    raise RuntimeError(f"no httpfs extension installed for DuckDB {duckdb.__version__}: pip install -e '.[httpfs]'")
needs_httpfs = pytest.mark.skipif(
    not _installed(),
    reason=f"no httpfs extension for DuckDB {duckdb.__version__} here (make test runs it in .venv-httpfs)",
)


def httpfs_loaded(db: duckdb.DuckDBPyConnection) -> bool:
    found = db.sql("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchall()
    return found == [(True,)]


@pytest.fixture
def s3_lake(
    s3_server: S3Server, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    lake = f"s3://{s3_server.bucket()}/swr/lake"
    result = run_cli(["run"], sandbox_env(sandbox, tmp_path, SWR_ETL_LAKE=lake, **s3_server.env()))
    assert result.returncode == 0, result.stderr
    return tmp_path, lake


@needs_httpfs
def test_an_s3_lake_is_read_through_httpfs_with_the_answers_of_pyarrow(
    s3_lake: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, lake = s3_lake
    with warehouse.connect(data_dir, lake) as db:
        assert httpfs_loaded(db) and not db.filesystem_is_registered("s3")
        assert db.sql("SELECT name, persistent FROM duckdb_secrets()").fetchall() == [(httpfs.SECRET_NAME, False)]
        direct = answers(db)
    assert direct[0] and direct[1]
    monkeypatch.setattr(httpfs, "extension_file", lambda db: None)  # a DuckDB the package was not built for
    with warehouse.connect(data_dir, lake) as db:
        assert not httpfs_loaded(db) and db.filesystem_is_registered("s3")
        assert answers(db) == direct


def test_without_credentials_in_the_environment_pyarrow_reads_the_lake(
    s3_lake: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, lake = s3_lake
    with warehouse.connect(data_dir, lake) as db:
        expected = answers(db)
    # pyarrow finds keys where httpfs does not look (here: a credentials file)
    credentials = data_dir / "aws-credentials"
    key, secret = S3Server.ACCESS_KEY, S3Server.SECRET_KEY
    credentials.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with warehouse.connect(data_dir, lake) as db:
        assert not httpfs_loaded(db) and db.filesystem_is_registered("s3")
        assert answers(db) == expected


@needs_httpfs
def test_the_cli_answers_through_httpfs_and_leaves_no_key_in_the_warehouse(
    s3_lake: tuple[Path, str], s3_server: S3Server, sandbox: SandboxServer
) -> None:
    data_dir, lake = s3_lake
    env = sandbox_env(sandbox, data_dir, SWR_ETL_LAKE=lake, **s3_server.env())
    assert run_cli(["rebuild", "--views-only"], env).returncode == 0
    result = run_cli(["-vv", "query", "SELECT count(*) FROM tags", "--format", "csv"], env)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.splitlines()[1]) > 0
    assert "through pyarrow" not in result.stderr  # httpfs was used: nothing said why not
    assert S3Server.SECRET_KEY not in result.stdout + result.stderr
    for path in data_dir.rglob("warehouse.duckdb*"):
        assert S3Server.SECRET_KEY.encode() not in path.read_bytes(), path


@needs_httpfs
def test_the_secret_takes_the_lake_settings_quoted() -> None:
    db = duckdb.connect()
    s3 = S3Settings(endpoint="https://obs.cn-north-4.example.com/", region="cn-north-4", virtual_hosted=True)
    env = {"AWS_ACCESS_KEY_ID": "AK'1", "AWS_SECRET_ACCESS_KEY": "s'k", "AWS_SESSION_TOKEN": "tok"}
    assert httpfs.attach(db, s3, env)
    (row,) = db.sql(f"SELECT secret_string FROM duckdb_secrets() WHERE name = '{httpfs.SECRET_NAME}'").fetchall()
    shown = row[0]  # DuckDB's own description, the secret itself redacted
    assert "endpoint=obs.cn-north-4.example.com" in shown and "region=cn-north-4" in shown
    assert "url_style=vhost" in shown and "use_ssl=true" in shown and "key_id=AK'1" in shown
    assert "s'k" not in shown
    assert not httpfs.attach(duckdb.connect(), s3, {})  # no keys in the environment: pyarrow's chain instead

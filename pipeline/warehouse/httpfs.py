"""DuckDB's httpfs extension for a lake on S3 or OBS: DuckDB reads the Parquet files itself, ranged reads in
parallel, instead of through pyarrow and fsspec (12x faster on the grouped count of ``bench.lake_bench``;
decision 0020).

The extension comes from the ``duckdb-extension-httpfs`` package, pinned with the DuckDB it was built for: it
is loaded from the file the package installed, never downloaded, and DuckDB's own autoloading is turned off
so that nothing is fetched behind our back. The lake's endpoint, region and addressing come from the
:class:`~pipeline.load.storage.S3Settings` the lake was opened with, and the credentials from the same
environment variables pyarrow reads; they are handed over as a temporary secret, which lives in the
connection's memory and is never written to ``warehouse.duckdb``.

When the extension cannot load (a DuckDB it was not built for, a platform without its file) or the
credentials are not in the environment (an instance profile, ``~/.aws/credentials``: pyarrow's chain reads
those, this does not), :func:`attach` says why once and returns False: the caller reads the lake through
pyarrow's filesystem instead.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import duckdb

if TYPE_CHECKING:
    from pipeline.load.storage import S3Settings

log = logging.getLogger(__name__)

SECRET_NAME = "swr_etl_lake"  # noqa: S105 - the name of the DuckDB secret, not one
_said: set[str] = set()  # why httpfs was not used, said once per process


def extension_file(db: duckdb.DuckDBPyConnection) -> str | None:
    """The installed httpfs extension file built for this connection's DuckDB, or None."""
    try:
        import duckdb_extension_httpfs  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    (version,) = db.execute("SELECT library_version FROM pragma_version()").fetchone() or ("",)
    path = importlib.resources.files(duckdb_extension_httpfs) / "extensions" / str(version) / "httpfs.duckdb_extension"
    return str(path) if path.is_file() else None


def attach(db: duckdb.DuckDBPyConnection, s3: S3Settings, environ: dict[str, str] | None = None) -> bool:
    """Load httpfs into ``db`` and give it the lake's S3 settings; False (said once) when it cannot."""
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        _say_once("the S3 credentials are not in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        return False
    try:
        path = extension_file(db)
    except (duckdb.Error, OSError, ValueError, TypeError) as exc:  # a package laid out otherwise
        _say_once(f"the httpfs extension could not be found: {exc}")
        return False
    if path is None:
        _say_once(f"no httpfs extension is installed for DuckDB {duckdb.__version__} (duckdb-extension-httpfs)")
        return False
    try:
        db.execute("SET autoinstall_known_extensions = false")
        db.execute("SET autoload_known_extensions = false")
        db.execute(f"LOAD {_literal(path)}")
    except duckdb.Error as exc:
        _say_once(f"the httpfs extension did not load: {exc}")
        return False
    options = {"TYPE": "s3", "KEY_ID": key, "SECRET": secret, "REGION": s3.region or "us-east-1"}
    if env.get("AWS_SESSION_TOKEN"):
        options["SESSION_TOKEN"] = env["AWS_SESSION_TOKEN"]
    if s3.endpoint:
        endpoint = urlsplit(s3.endpoint if "//" in s3.endpoint else f"https://{s3.endpoint}")
        options["ENDPOINT"] = endpoint.netloc + endpoint.path.rstrip("/")
        options["USE_SSL"] = "true" if endpoint.scheme != "http" else "false"
        options["URL_STYLE"] = "vhost" if s3.virtual_hosted else "path"
    elif s3.virtual_hosted:
        options["URL_STYLE"] = "vhost"
    spec = ", ".join(
        f"{name} {value if name in ('TYPE', 'USE_SSL') else _literal(value)}" for name, value in options.items()
    )
    try:
        db.execute(f"CREATE OR REPLACE TEMPORARY SECRET {SECRET_NAME} ({spec})")
    except duckdb.Error as exc:  # its text may quote the statement, keys included: never shown
        _say_once(f"DuckDB refused the lake's S3 settings ({type(exc).__name__})")
        return False
    return True


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _say_once(why: str) -> None:
    if why not in _said:
        _said.add(why)
        log.info("reading the S3 lake through pyarrow: %s", why)

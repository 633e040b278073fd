"""Shared helpers: run the real CLI in a subprocess, read back what it landed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.landing import Landing, decompress_page
from pipeline.sandbox import SandboxConfig, SandboxServer

ROOT = Path(__file__).resolve().parent.parent
# The vendor's own example response of the task listing (ListInstanceReplicationPolicyExecTasks), copied
# byte for byte from its API page: a fact of the documentation, kept with the tests
VENDOR_EXAMPLE = ROOT / "tests" / "data" / "vendor_example_tasks_response.json"


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: nothing of the developer's (credentials, config) leaks into a test run."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(args: list[str], env: Mapping[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def sandbox_env(server: SandboxServer, data_dir: Path, **extra: str) -> dict[str, str]:
    config = server.config
    base = {
        "SWR_ENDPOINT": server.url,
        "SWR_PROJECT_ID": config.project_id,
        "SWR_ETL_DATA_DIR": str(data_dir),
        "SWR_AUTH_TOKEN": config.token,
    }
    base.update(extra)
    return clean_env(**{k: v for k, v in base.items() if v})


def landed_tasks(data_dir: Path) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Every task row of every complete fetch, newest fetch per execution, in page order."""
    landing = Landing(data_dir)
    newest: dict[tuple[str, int], dict[str, Any]] = {}
    for manifest in landing.manifests("tasks"):
        newest[(manifest["instance_id"], manifest["execution_id"])] = manifest
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for key, manifest in newest.items():
        rows: list[dict[str, Any]] = []
        for page in manifest["pages"]:
            rows.extend(json.loads(Landing.read_page(manifest["folder"], page))["tasks"])
        out[key] = rows
    return out


def all_landed_text(data_dir: Path) -> str:
    """Everything under the data directory as text, pages decompressed: for secret searches."""
    chunks = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file():
            raw = path.read_bytes()
            if path.suffix in (".gz", ".zst"):
                raw = decompress_page(path, raw)
            chunks.append(raw.decode("utf-8", "replace"))
    return "\n".join(chunks)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=7, scale=0.5)) as server:
        yield server


class S3Server:
    """A real S3-compatible server (moto's) on a loopback port, with a bucket per test."""

    ACCESS_KEY = "AKIASWRETLTESTKEY001"
    SECRET_KEY = "s3-secret-that-must-never-be-printed-7f3a9c"

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._buckets = 0

    def env(self) -> dict[str, str]:
        """What a client needs to reach it: the variables every S3 tool reads."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def bucket(self) -> str:
        import pyarrow.fs as pafs

        self._buckets += 1
        name = f"lake-{self._buckets}"
        fs = pafs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            region="us-east-1",
            access_key=self.ACCESS_KEY,
            secret_key=self.SECRET_KEY,
            allow_bucket_creation=True,
        )
        fs.create_dir(name)
        return name

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def connections() -> Iterator[list[duckdb.DuckDBPyConnection]]:
    """DuckDB connections a test opens, closed when it ends."""
    opened: list[duckdb.DuckDBPyConnection] = []
    yield opened
    for db in opened:
        db.close()

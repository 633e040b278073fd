"""Known secrets, every command, every log level: none of them in anything printed or written."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from conftest import run_cli, sandbox_env

from pipeline.landing import decompress_page
from pipeline.sandbox import Faults, SandboxConfig, SandboxServer
from pipeline.sandbox.tasks import REGISTRY_SECRET

AK, SK = "AKSECRET7777777777", "sk-SECRET-5f1e-never-shown"
PASSWORD = "iam-SECRET-pw-0042"


def everything_written(data_dir: Path) -> str:
    """Every file as text (pages decompressed), plus every string of every table and view read through DuckDB."""
    chunks = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        if path.suffix in (".gz", ".zst"):
            raw = decompress_page(path, raw)
        chunks.append(raw.decode("utf-8", "replace"))
    warehouse = data_dir / "warehouse.duckdb"
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as db:
            names = [n for (n,) in db.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
            for name in names:
                if name == "stuck_tasks":
                    continue
                for row in db.sql(f"SELECT * FROM {name}").fetchall():
                    chunks.append(" ".join(str(v) for v in row))
    return "\n".join(chunks)


@pytest.mark.parametrize("verbosity", [[], ["-v"], ["-vvv"], ["--log-format", "json", "-vv"]])
def test_no_secret_anywhere_whatever_the_command_and_log_level(verbosity: list[str], tmp_path: Path) -> None:
    config = SandboxConfig(seed=6, scale=0.3, ak=AK, sk=SK, iam_password=PASSWORD, token="",
                           faults=Faults(rate_bad_resource=0.05, rate_429=0.05, retry_after_s=0.05))  # fmt: skip
    data_dir = tmp_path / "data"
    printed = []
    with SandboxServer(config) as server:
        aksk = sandbox_env(server, data_dir, CLOUD_SDK_AK=AK, CLOUD_SDK_SK=SK)
        iam = sandbox_env(
            server, data_dir, SWR_IAM_USERNAME=config.iam_username, SWR_IAM_PASSWORD=PASSWORD,
            SWR_IAM_DOMAIN=config.iam_domain, SWR_IAM_ENDPOINT=server.url,
        )  # fmt: skip
        wrong = sandbox_env(server, data_dir, CLOUD_SDK_AK=AK, CLOUD_SDK_SK=SK + "-wrong")
        commands = [
            (["run"], aksk, 0),
            (["extract", "--full"], iam, 0),
            (["run"], wrong, 1),  # refused: the error line must not carry the key either
            (["rebuild"], aksk, 0),
            (["query", "SELECT * FROM rejects"], aksk, 0),
            (["report", "--html", str(tmp_path / "report.html")], aksk, 0),
            (["report", "--format", "json"], aksk, 0),
        ]
        for args, env, code in commands:
            result = run_cli([*verbosity, *args], env)
            assert result.returncode == code, (args, result.stderr[-2000:])
            printed.append(result.stdout + result.stderr)
    text = "\n".join(printed) + everything_written(data_dir) + (tmp_path / "report.html").read_text()
    for secret in (SK, PASSWORD, AK, REGISTRY_SECRET, SK + "-wrong"):
        assert secret not in text, secret
    assert "access_secret" in text  # the registry credential was there, masked

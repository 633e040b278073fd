"""Registries (replication targets) and the instances' own fields, end to end through the real CLI against the
sandbox: the table is what the API serves, the policy_targets view joins right, a registry's credential is
never stored, a rebuild gives the same table, and a registries listing refused for one instance stops nothing."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import all_landed_text, run_cli, sandbox_env
from test_transform_golden import IID, land_listing

from pipeline.landing import Landing
from pipeline.load import load_lake
from pipeline.sandbox import SandboxConfig, SandboxServer
from pipeline.sandbox.tasks import REGISTRY_SECRET
from pipeline.warehouse.warehouse import build

RUN = "20261101T000000000Z-aaaaaa"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def table(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    """Rows of a query on the warehouse the CLI built (``swr-etl query`` made it current)."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        db.execute("SET TimeZone = 'UTC'")
        result = db.sql(sql)
        names = [c[0] for c in result.description]
        return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxServer, Path]]:
    """One ``swr-etl run`` against the sandbox, its warehouse built."""
    data_dir = tmp_path_factory.mktemp("registries") / "data"
    with SandboxServer(SandboxConfig(seed=7, scale=0.5)) as server:
        env = sandbox_env(server, data_dir)
        result = run_cli(["run"], env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert run_cli(["query", "SELECT 1"], env).returncode == 0  # the warehouse, current
        yield server, data_dir


def test_the_registries_table_is_what_the_api_serves(ran: tuple[SandboxServer, Path]) -> None:
    server, data_dir = ran
    world = server.world
    expected = []
    for instance in world.instances():
        for r in world.registries(instance["id"]):
            expected.append(
                {
                    "instance_id": instance["id"],
                    "registry_id": r["id"],
                    "name": r["name"],
                    "description": r["description"],
                    "region_id": r["region_id"],
                    "type": r["type"],
                    "url": r["url"],
                    "remote_instance_id": r["instance_id"],
                    "insecure": r["insecure"],
                    "status": r["status"],
                    "created_at": utc(r["created_at"]),
                    "updated_at": utc(r["updated_at"]),
                    "credential_type": "basic",
                    "credential_set": True,
                }
            )
    got = table(data_dir, "SELECT * EXCLUDE (first_seen_run, last_seen_run) FROM registries ORDER BY ALL")
    assert got == sorted(expected, key=lambda r: (r["instance_id"], r["registry_id"]))
    assert len(got) >= 8

    # by hand, from the world's rules: registry 0 is the instance itself, healthy, at its own address; the
    # destination of policy (index + 1) % 3 is unhealthy
    alpha, beta = world.instances()[:2]
    by_key = {(r["instance_id"], r["registry_id"]): r for r in got}
    local = by_key[(alpha["id"], 0)]
    assert (local["name"], local["url"], local["status"], local["type"]) == (
        "swr-ee-alpha-local",
        alpha["access_address"],
        "healthy",
        "swr-pro-internal",
    )
    assert local["remote_instance_id"] == alpha["id"]
    assert [by_key[(alpha["id"], rid)]["status"] for rid in (1, 2, 3)] == ["healthy", "unhealthy", "healthy"]
    assert [by_key[(beta["id"], rid)]["status"] for rid in (1, 2, 3)] == ["healthy", "healthy", "unhealthy"]
    assert by_key[(alpha["id"], 1)]["description"] == "destination of policy 0"
    runs = table(data_dir, "SELECT DISTINCT first_seen_run, last_seen_run FROM registries")
    assert len(runs) == 1 and runs[0]["first_seen_run"] == runs[0]["last_seen_run"]


def test_the_instances_carry_the_fields_the_api_sends(ran: tuple[SandboxServer, Path]) -> None:
    server, data_dir = ran
    got = {r["instance_id"]: r for r in table(data_dir, "SELECT * FROM instances")}
    assert len(got) == len(server.world.instances()) == 2
    for body in server.world.instances():
        row = got[body["id"]]
        for column in ("name", "description", "charge_mode", "access_address", "enterprise_project_id", "vpc_id",
                       "vpc_name", "vpc_cidr", "subnet_id", "subnet_name", "subnet_cidr", "obs_bucket_name",
                       "user_def_obs", "spec", "version", "status"):  # fmt: skip
            assert row[column] == body[column], column
        assert row["updated_at"] == utc(body["updated_at"])
        assert row["expires_at"] is None  # "" for an instance paid per use: no time, and no reject
    alpha = got[server.world.instances()[0]["id"]]
    assert alpha["access_address"].startswith("https://swr-ee-alpha-") and alpha["enterprise_project_id"] == "0"
    assert table(data_dir, "SELECT count(*) AS n FROM rejects")[0]["n"] == 0


def test_policy_targets_joins_each_policy_to_its_registries(ran: tuple[SandboxServer, Path]) -> None:
    server, data_dir = ran
    got = table(data_dir, "SELECT * FROM policy_targets")
    policies = [(i["id"], p) for i in server.world.instances() for p in server.world.policies(i["id"], None)]
    assert len(got) == len(policies) == 6
    for row, (iid, policy) in zip(got, sorted(policies, key=lambda x: (x[0], x[1]["id"])), strict=True):
        src = server.world.registry(iid, policy["src_registry"]["id"])
        dest = server.world.registry(iid, policy["dest_registry"]["id"])
        assert src is not None and dest is not None
        assert (row["instance_id"], row["policy_id"], row["policy_name"]) == (iid, policy["id"], policy["name"])
        assert (row["src_registry_name"], row["src_registry_url"], row["src_registry_status"]) == (
            src["name"],
            src["url"],
            src["status"],
        )
        assert (row["dest_registry_name"], row["dest_registry_type"], row["dest_registry_status"]) == (
            dest["name"],
            dest["type"],
            dest["status"],
        )
        assert row["targets_healthy"] == (src["status"] == dest["status"] == "healthy")
    assert sorted(r["targets_healthy"] for r in got) == [False, False, True, True, True, True]


def test_no_registry_secret_or_access_key_is_landed_or_loaded(ran: tuple[SandboxServer, Path]) -> None:
    _, data_dir = ran
    landed = all_landed_text(data_dir / "raw")
    assert '"registries"' in landed and '"access_secret":"***"' in landed  # the credential was there, masked
    lake_text = []
    for path in sorted((data_dir / "lake").rglob("*.parquet")):
        lake_text.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        lake_text.append(path.read_bytes().decode("utf-8", "replace"))
    everything = landed + "\n".join(lake_text)
    for secret in (REGISTRY_SECRET, "sandbox-registry-ak"):
        assert secret not in everything, secret
    # every page of every registries listing says how many values it masked: a key and a secret per registry
    for manifest in Landing(data_dir).manifests("registries"):
        assert sum(p["scrubbed"] for p in manifest["pages"]) == 2 * sum(p["rows"] for p in manifest["pages"]) > 0


def test_a_rebuild_from_the_landing_gives_the_same_registries(ran: tuple[SandboxServer, Path]) -> None:
    server, data_dir = ran
    before = table(data_dir, "SELECT * FROM registries ORDER BY instance_id, registry_id")
    instances = table(data_dir, "SELECT * FROM instances ORDER BY instance_id")
    result = run_cli(["rebuild"], sandbox_env(server, data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_cli(["query", "SELECT 1"], sandbox_env(server, data_dir)).returncode == 0
    assert table(data_dir, "SELECT * FROM registries ORDER BY instance_id, registry_id") == before
    assert table(data_dir, "SELECT * FROM instances ORDER BY instance_id") == instances


def test_unreadable_registry_fields_are_null_with_a_reject_and_a_missing_registry_leaves_nulls(
    tmp_path: Path,
) -> None:
    registry = {"id": 1, "name": "mirror", "type": "swr-pro", "url": "https://mirror.example", "status": "healthy",
                "insecure": False, "created_at": "2025-01-01T00:00:00Z",
                "credential": {"type": "basic", "access_key": "AK-NUMBERED", "access_secret": 123456789}}  # fmt: skip
    odd = {**registry, "id": "2", "url": 42, "insecure": "yes", "created_at": "soon", "credential": {"type": "basic"}}
    land_listing(tmp_path, "registries", RUN, [registry, odd, {"name": "no id"}], instance_id=IID)
    policy = {"id": 3, "name": "p", "src_registry": {"id": 0}, "dest_registry": {"id": 2}}
    lost = {**policy, "id": 4, "dest_registry": {"id": 9}}
    land_listing(tmp_path, "policies", RUN, [policy, lost], instance_id=IID)
    load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert "123456789" not in all_landed_text(tmp_path / "raw")  # a secret of any type is masked
    with duckdb.connect() as db:
        lake = tmp_path / "lake"
        read = "read_parquet('{}/{}/*/*.parquet', hive_partitioning = true)"
        got = db.sql(
            f"SELECT registry_id, url, insecure, created_at IS NULL AS no_time, credential_set "
            f"FROM {read.format(lake, 'registries')} ORDER BY registry_id"
        ).fetchall()
        assert got == [(1, "https://mirror.example", False, False, True), (2, None, None, True, False)]
        rejects = db.sql(f"SELECT field, error FROM {read.format(lake, 'rejects/*')} ORDER BY field").fetchall()
    assert [f for f, _ in rejects] == ["registry.created_at", "registry.id", "registry.insecure", "registry.url"]
    assert dict(rejects)["registry.url"] == "expected text, got a number 42"

    # registry 0 is not listed here and registry 9 not at all: left joins, nulls (registry 2's url was rejected)
    build(tmp_path)
    targets = table(tmp_path, "SELECT policy_id, src_registry_name, dest_registry_id, dest_registry_name, "
                    "dest_registry_url, targets_healthy FROM policy_targets")  # fmt: skip
    assert [tuple(r.values()) for r in targets] == [(3, None, 2, "mirror", None, None), (4, None, 9, None, None, None)]


class RefusingProxy:
    """The sandbox behind a proxy that answers 403 to the registries listing of one instance."""

    def __init__(self, upstream: str, refused: str) -> None:
        self.refused = f"/instances/{refused}/registries"

        proxy = self
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy of the environment

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path.split("?")[0].endswith(proxy.refused):
                    status, body = 403, b'{"error_code":"SWR.0403","error_msg":"no permission to list registries"}'
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    request = urllib.request.Request(upstream + self.path, headers=headers)
                    try:
                        with direct.open(request, timeout=30) as answer:
                            status, body = answer.status, answer.read()
                    except urllib.error.HTTPError as exc:
                        status, body = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_registries_refused_for_one_instance_stop_no_other_listing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with SandboxServer(SandboxConfig(seed=7, scale=0.5)) as server:
        alpha, beta = (i["id"] for i in server.world.instances())
        proxy = RefusingProxy(server.url, alpha)
        try:
            env = {**sandbox_env(server, data_dir), "SWR_ENDPOINT": proxy.url}
            result = run_cli(["run"], env)
            assert result.returncode == 1, result.stderr[-3000:]
            assert "1 instances could not be listed" in result.stderr and "403" in result.stderr
            assert "registries" in result.stderr
            assert run_cli(["query", "SELECT 1"], env).returncode == 0
        finally:
            proxy.close()
        truth = {(i["id"], e["id"]) for i in server.world.instances() for e in server.world.executions(i["id"], None)}
    # every execution of both instances was fetched and loaded, and the policies of both listed
    got = table(data_dir, "SELECT instance_id, execution_id FROM executions WHERE tasks_run IS NOT NULL")
    assert {(r["instance_id"], r["execution_id"]) for r in got} == truth
    assert {r["instance_id"] for r in table(data_dir, "SELECT instance_id FROM policies")} == {alpha, beta}
    assert {r["instance_id"] for r in table(data_dir, "SELECT instance_id FROM registries")} == {beta}
    # the refused instance's policies are there, their targets unknown
    targets = table(data_dir, "SELECT instance_id, dest_registry_name FROM policy_targets")
    assert {r["instance_id"] for r in targets if r["dest_registry_name"] is None} == {alpha}
    assert {m["instance_id"] for m in Landing(data_dir).manifests("registries")} == {beta}


def test_a_service_without_the_registries_listing_is_only_a_warning(tmp_path: Path) -> None:
    import fake_swr

    world = fake_swr.World()
    world.add_instance("i-1", [fake_swr.execution(1)])
    world.tasks[("i-1", "1")] = fake_swr.tasks(1)
    with fake_swr.serve(world) as url:
        result = run_cli(["run"], fake_swr.env(url, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no registries listing (HTTP 404)" in result.stderr
    assert any(path.endswith("/instances/i-1/registries") for path in world.requests)


def test_the_run_summary_counts_the_registries_listed(ran: tuple[SandboxServer, Path]) -> None:
    server, data_dir = ran
    expected = sum(len(server.world.registries(i["id"])) for i in server.world.instances())
    (summary_file,) = (data_dir / "raw" / "runs").glob("*.json")
    assert json.loads(summary_file.read_text())["registries"] == expected > 0

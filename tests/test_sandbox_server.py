"""The sandbox over a real loopback socket: paging rules, errors, auth, faults, growth, truth, stats."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from pipeline.sandbox import Faults, SandboxConfig, SandboxServer

PROJECT = "sandbox-project"
TOKEN = {"X-Auth-Token": "sandbox-token"}
ERROR_KEYS = {"error_code", "error_msg", "encoded_authorization_message"}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=11, scale=0.2)) as srv:
        yield srv


def api(srv: SandboxServer, path: str = "", **params: Any) -> requests.Response:
    return requests.get(f"{srv.url}/v2/{PROJECT}/{path}", headers=TOKEN, params=params, timeout=10)


def first_instance(srv: SandboxServer) -> str:
    return str(api(srv, "instances").json()["instances"][0]["id"])


def execution_with(srv: SandboxServer, iid: str, total: int) -> int:
    executions = api(srv, f"instances/{iid}/replication/executions", limit=100).json()["executions"]
    return int(next(e["id"] for e in executions if e["total"] == total))


def tasks_path(iid: str, eid: int) -> str:
    return f"instances/{iid}/replication/executions/{eid}/tasks"


# ---------------------------------------------------------------- basics, paging, errors


def test_instances_headers_and_body(server: SandboxServer) -> None:
    resp = api(server, "instances")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert len(resp.headers["X-Request-Id"]) == 36
    body = resp.json()
    assert body["total"] == len(body["instances"]) == 2
    assert all(i["project_id"] == PROJECT for i in body["instances"])
    assert api(server, "instances", status="Unavailable").json() == {"instances": [], "total": 0}


def test_default_limits_and_ordering(server: SandboxServer) -> None:
    iid = first_instance(server)
    executions = api(server, f"instances/{iid}/replication/executions").json()
    assert len(executions["executions"]) == 10 < executions["total"]
    ids = [e["id"] for e in executions["executions"]]
    assert ids == sorted(ids, reverse=True)
    eid = execution_with(server, iid, 2345)
    page = api(server, tasks_path(iid, eid), offset=20).json()
    assert page["total"] == 2345
    task_ids = [t["id"] for t in page["tasks"]]
    assert len(task_ids) == 10 and task_ids == sorted(task_ids)
    last = api(server, tasks_path(iid, eid), offset=2300, limit=100).json()["tasks"]
    assert len(last) == 45


def test_filters(server: SandboxServer) -> None:
    iid = first_instance(server)
    policies = api(server, f"instances/{iid}/replication/policies").json()
    assert policies["total"] == 3
    policy = policies["policies"][0]
    assert set(policy) >= {"id", "name", "src_registry", "dest_registry", "dest_namespace", "filters", "trigger"}
    named = api(server, f"instances/{iid}/replication/policies", name=policy["name"]).json()
    assert [p["id"] for p in named["policies"]] == [policy["id"]]
    execs = api(server, f"instances/{iid}/replication/executions", policy_id=policy["id"], limit=100).json()
    assert execs["total"] >= 6 and all(e["policy_id"] == policy["id"] for e in execs["executions"])


def test_subtasks_one_per_tag(server: SandboxServer) -> None:
    iid = first_instance(server)
    eid = execution_with(server, iid, 99)
    for task in api(server, tasks_path(iid, eid), limit=20).json()["tasks"]:
        src = json.loads(task["src_resource"])
        tags = [(a["digest"], t) for a in src["metadata"]["artifacts"] for t in a["tags"] or ()]
        body = api(server, f"{tasks_path(iid, eid)}/{task['id']}/subtasks", limit=100).json()
        assert body["total"] == len(tags)
        assert [(s["digest"], s["tag"]) for s in body["sub_tasks"]] == tags
        if body["sub_tasks"]:
            status = body["sub_tasks"][0]["status"]
            only = api(server, f"{tasks_path(iid, eid)}/{task['id']}/subtasks", status=status, limit=100).json()
            assert only["total"] >= 1 and {s["status"] for s in only["sub_tasks"]} == {status}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"offset": 5, "limit": 10}, {"offset": 5}, {"limit": "ten"}, {"offset": -10}],
)
def test_bad_paging_is_400(server: SandboxServer, params: dict[str, Any]) -> None:
    iid = first_instance(server)
    for path in ("instances", f"instances/{iid}/replication/executions"):
        resp = api(server, path, **params)
        assert resp.status_code == 400, (path, params)
        body = resp.json()
        assert set(body) == ERROR_KEYS
        assert body["error_code"] == "SWR.0400"
        assert body["error_msg"]


def test_not_found_is_404(server: SandboxServer) -> None:
    iid = first_instance(server)
    eid = execution_with(server, iid, 1)
    cases = [
        f"{server.url}/v2/other-project/instances",
        f"{server.url}/v2/{PROJECT}/instances/00000000-0000-4000-8000-000000000000/replication/policies",
        f"{server.url}/v2/{PROJECT}/{tasks_path(iid, 999999)}",
        f"{server.url}/v2/{PROJECT}/{tasks_path(iid, eid)}/1/subtasks",
        f"{server.url}/v2/{PROJECT}/nothing-here",
    ]
    for url in cases:
        resp = requests.get(url, headers=TOKEN, timeout=10)
        assert resp.status_code == 404, url
        assert set(resp.json()) == ERROR_KEYS
        assert resp.headers["X-Request-Id"]


# ---------------------------------------------------------------- auth


def assert_401(resp: requests.Response, *secrets: str) -> None:
    assert resp.status_code == 401
    body = resp.json()
    assert body["error_code"] == "APIGW.0301"
    assert body["error_msg"].startswith("Incorrect IAM authentication information")
    for secret in secrets:
        assert secret not in resp.text


def test_token_required(server: SandboxServer) -> None:
    url = f"{server.url}/v2/{PROJECT}/instances"
    assert_401(requests.get(url, timeout=10))
    assert_401(requests.get(url, headers={"X-Auth-Token": "wrong-token-value-123"}, timeout=10), "wrong-token-value")
    mismatch = {**TOKEN, "X-Project-Id": "another-project"}
    assert_401(requests.get(url, headers=mismatch, timeout=10))


def signed(
    srv: SandboxServer,
    path: str,
    query: list[tuple[str, Any]],
    sk: str = "sandbox-secret-key",
    date: str | None = None,
) -> tuple[str, dict[str, str]]:
    """Sign with the vendor's own signer; returns (url, headers) ready for requests."""
    headers = {"X-Project-Id": PROJECT, "Content-Type": "application/json"}
    if date is not None:
        headers["X-Sdk-Date"] = date
    request = SdkRequest(
        method="GET",
        schema="http",
        host=srv.url.split("://", 1)[1],
        resource_path=path,
        query_params=query,
        header_params=headers,
    )
    Signer(BasicCredentials("SANDBOXACCESSKEY0001", sk)).sign(request)
    return srv.url + request.uri, dict(request.header_params)


def test_aksk_signature_from_the_vendor_signer_is_accepted(server: SandboxServer) -> None:
    iid = first_instance(server)
    url, headers = signed(server, f"/v2/{PROJECT}/instances", [("limit", 100), ("offset", 0)])
    resp = requests.get(url, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["total"] == 2
    path = f"/v2/{PROJECT}/instances/{iid}/replication/executions"
    url, headers = signed(server, path, [("policy_id", 5), ("limit", 10), ("offset", 0)])
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    # an odd path segment (percent-encoded unicode and a space) checks the canonical URI: 404, not 401
    url, headers = signed(server, f"/v2/{PROJECT}/instances/{quote('研发 x')}/replication/policies", [])
    assert requests.get(url, headers=headers, timeout=10).status_code == 404


def test_aksk_wrong_sk_tampered_query_and_stale_date_are_rejected(server: SandboxServer) -> None:
    path = f"/v2/{PROJECT}/instances"
    url, headers = signed(server, path, [("limit", 10)], sk="not-the-secret")
    assert_401(requests.get(url, headers=headers, timeout=10), headers["Authorization"].rsplit("=", 1)[1])
    url, headers = signed(server, path, [("limit", 10)])
    assert_401(requests.get(url.replace("limit=10", "limit=20"), headers=headers, timeout=10))
    stale = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y%m%dT%H%M%SZ")
    url, headers = signed(server, path, [("limit", 10)], date=stale)
    resp = requests.get(url, headers=headers, timeout=10)
    assert_401(resp)
    assert "15 minutes" in resp.json()["error_msg"]
    url, headers = signed(server, path, [])
    headers["Authorization"] = headers["Authorization"].replace("SANDBOXACCESSKEY0001", "OTHERKEY")
    assert_401(requests.get(url, headers=headers, timeout=10))


def iam_body(password: str = "sandbox-password") -> dict[str, Any]:
    user = {"name": "sandbox-user", "password": password, "domain": {"name": "sandbox-domain"}}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"id": PROJECT}},
        }
    }


def test_iam_token_flow(server: SandboxServer) -> None:
    resp = requests.post(f"{server.url}/v3/auth/tokens", json=iam_body(), timeout=10)
    assert resp.status_code == 201
    token = resp.headers["X-Subject-Token"]
    assert token and "expires_at" in resp.json()["token"]
    assert token not in resp.text
    ok = requests.get(f"{server.url}/v2/{PROJECT}/instances", headers={"X-Auth-Token": token}, timeout=10)
    assert ok.status_code == 200
    wrong = requests.post(f"{server.url}/v3/auth/tokens", json=iam_body("nope-password"), timeout=10)
    assert wrong.status_code == 401 and "X-Subject-Token" not in wrong.headers
    assert "nope-password" not in wrong.text and set(wrong.json()) >= ERROR_KEYS
    bad = requests.post(f"{server.url}/v3/auth/tokens", data=b"{not json", timeout=10)
    assert bad.status_code == 400


def test_iam_token_expires() -> None:
    config = SandboxConfig(scale=0.05, faults=Faults(iam_token_ttl_s=0.3))
    with SandboxServer(config) as srv:
        token = requests.post(f"{srv.url}/v3/auth/tokens", json=iam_body(), timeout=10).headers["X-Subject-Token"]
        headers = {"X-Auth-Token": token}
        assert requests.get(f"{srv.url}/v2/{PROJECT}/instances", headers=headers, timeout=10).status_code == 200
        time.sleep(0.4)
        resp = requests.get(f"{srv.url}/v2/{PROJECT}/instances", headers=headers, timeout=10)
        assert_401(resp, token)
        assert "expired" in resp.json()["error_msg"]


def test_debug_log_never_holds_header_values(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pipeline.sandbox"), SandboxServer(SandboxConfig(scale=0.05)) as srv:
        assert api(srv, "instances").status_code == 200
        url, headers = signed(srv, f"/v2/{PROJECT}/instances", [])
        assert requests.get(url, headers=headers, timeout=10).status_code == 200
        requests.get(f"{srv.url}/v2/{PROJECT}/instances", headers={"X-Auth-Token": "leak-me-not"}, timeout=10)
    assert "GET /v2/sandbox-project/instances -> 200" in caplog.text
    for secret in ("sandbox-token", "leak-me-not", headers["Authorization"].rsplit("=", 1)[1], "sandbox-secret"):
        assert secret not in caplog.text


# ---------------------------------------------------------------- faults


def fault_server(**knobs: Any) -> SandboxServer:
    return SandboxServer(SandboxConfig(seed=1, scale=0.05, faults=Faults(**knobs)))


def test_429_with_retry_after_then_through() -> None:
    with fault_server(rate_429=1.0, retry_after_s=0.2) as srv:
        codes = []
        for _ in range(6):
            resp = api(srv, "instances")
            codes.append(resp.status_code)
            if resp.status_code == 429:
                assert resp.headers["Retry-After"] == "0.2"
                assert set(resp.json()) == ERROR_KEYS
        assert codes == [429, 429, 200, 429, 429, 200]
        # helpers are never faulted
        for _ in range(3):
            assert requests.get(f"{srv.url}/_sandbox/stats", timeout=10).status_code == 200
        stats = srv.stats()
        assert stats["faults"]["429"] == 4 and stats["status"] == {"200": 2, "429": 4}
    with fault_server(rate_429=1.0, retry_after_s=3.0) as srv:
        assert api(srv, "instances").headers["Retry-After"] == "3"


def test_5xx_rotates_and_is_capped() -> None:
    with fault_server(rate_5xx=1.0, max_consecutive=3) as srv:
        iid = first_instance_after_faults(srv)
        statuses = set()
        for offset in range(0, 200, 10):
            codes = [api(srv, f"instances/{iid}/replication/executions", offset=offset).status_code for _ in range(4)]
            assert codes[3] == 200 and all(c >= 500 for c in codes[:3])
            statuses |= set(codes[:3])
        assert statuses == {500, 502, 503}


def first_instance_after_faults(srv: SandboxServer) -> str:
    for _ in range(10):
        resp = api(srv, "instances")
        if resp.status_code == 200:
            return str(resp.json()["instances"][0]["id"])
    raise AssertionError("never got through")


def test_cut_connection_raises_in_requests() -> None:
    with fault_server(rate_cut=1.0) as srv:
        for _ in range(2):
            with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
                api(srv, "instances")
        assert api(srv, "instances").status_code == 200
        assert srv.stats()["faults"]["cut"] == 2


def test_slow_body_trips_a_read_timeout() -> None:
    with fault_server(rate_slow=1.0, slow_ms=600) as srv:
        url = f"{srv.url}/v2/{PROJECT}/instances"
        for _ in range(2):
            with pytest.raises(requests.exceptions.Timeout):
                requests.get(url, headers=TOKEN, timeout=(2, 0.15))
        # the third try is not held back: it answers within the same short read timeout
        assert requests.get(url, headers=TOKEN, timeout=(2, 0.15)).status_code == 200
        assert srv.stats()["faults"]["slow"] == 2


def test_latency_applies_to_api_requests() -> None:
    with fault_server(latency_ms=3000) as srv:
        with pytest.raises(requests.exceptions.Timeout):
            api_timeout = f"{srv.url}/v2/{PROJECT}/instances"
            requests.get(api_timeout, headers=TOKEN, timeout=(2, 1.0))
        # helper endpoints are never delayed: the same timeout is plenty for them
        assert requests.get(f"{srv.url}/_sandbox/stats", timeout=(2, 1.0)).status_code == 200


def test_mixed_faults_never_exceed_max_consecutive_and_are_deterministic() -> None:
    def run() -> list[list[int]]:
        with fault_server(rate_429=0.4, rate_5xx=0.3, max_consecutive=2) as srv:
            iid = first_instance_after_faults(srv)
            eid = 0
            for _ in range(10):
                resp = api(srv, f"instances/{iid}/replication/executions", limit=100)
                if resp.status_code == 200:
                    eid = max(e["id"] for e in resp.json()["executions"] if e["total"] == 2345)
                    break
            sequences = []
            for offset in range(0, 400, 20):
                sequences.append(
                    [api(srv, tasks_path(iid, eid), offset=offset, limit=20).status_code for _ in range(7)]
                )
            return sequences

    first = run()
    assert first == run()
    faulted = sum(c != 200 for seq in first for c in seq)
    assert faulted > 20
    for seq in first:
        streak = 0
        for code in seq:
            streak = streak + 1 if code != 200 else 0
            assert streak <= 2


# ---------------------------------------------------------------- growth, truth, stats


def test_grow_tasks_while_paging() -> None:
    with fault_server(grow_tasks=7) as srv:
        iid = first_instance(srv)
        eid = execution_with(srv, iid, 101)
        first = api(srv, tasks_path(iid, eid), limit=100).json()
        assert first["total"] == 101 and len(first["tasks"]) == 100
        second = api(srv, tasks_path(iid, eid), offset=100, limit=100).json()
        assert second["total"] == 108 and len(second["tasks"]) == 8
        assert second["tasks"][0]["id"] == first["tasks"][-1]["id"] + 1
        execs = api(srv, f"instances/{iid}/replication/executions", limit=100).json()["executions"]
        assert next(e for e in execs if e["id"] == eid)["total"] == 108
        small = execution_with(srv, iid, 100)
        for _ in range(3):
            assert api(srv, tasks_path(iid, small), limit=100).json()["total"] == 100
        truth = requests.get(f"{srv.url}/_sandbox/truth", timeout=10).json()
        assert next(e for e in truth["instances"][0]["executions"] if e["id"] == eid)["tasks"] == 108


def readable(value: Any) -> dict[str, Any] | None:
    """A strict reader: the resource as a dict when well-formed, else None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict) or not isinstance(value.get("metadata"), dict):
        return None
    artifacts = value["metadata"].get("artifacts")
    if not isinstance(artifacts, list):
        return None
    for art in artifacts:
        if not isinstance(art, dict) or not (art.get("tags") is None or isinstance(art["tags"], list)):
            return None
    return value


def test_truth_equals_what_a_client_finds() -> None:
    faults = Faults(rate_bad_resource=0.1, rate_object_resource=0.1)
    with SandboxServer(SandboxConfig(seed=11, scale=0.2, faults=faults)) as srv:
        session = requests.Session()
        session.headers.update(TOKEN)
        base = f"{srv.url}/v2/{PROJECT}/"
        found: dict[tuple[str, int], dict[str, Any]] = {}
        instances = session.get(base + "instances", timeout=10).json()["instances"]
        for inst in instances:
            iid = inst["id"]
            executions = []
            offset = 0
            while True:
                page = session.get(
                    base + f"instances/{iid}/replication/executions", params={"offset": offset, "limit": 100}
                ).json()
                executions += page["executions"]
                offset += 100
                if offset >= page["total"]:
                    break
            for ex in executions:
                row = {"tasks": 0, "src_artifacts": 0, "dst_artifacts": 0, "src_tags": 0, "dst_tags": 0, "bad": []}
                offset, total = 0, 1
                while offset < total:
                    page = session.get(base + tasks_path(iid, ex["id"]), params={"offset": offset, "limit": 100}).json()
                    total = page["total"]
                    offset += 100
                    for task in page["tasks"]:
                        row["tasks"] += 1
                        for side in ("src", "dst"):
                            resource = readable(task.get(f"{side}_resource"))
                            if resource is None:
                                row["bad"].append((task["id"], side))
                                continue
                            arts = resource["metadata"]["artifacts"]
                            row[f"{side}_artifacts"] += len(arts)
                            row[f"{side}_tags"] += sum(len(a["tags"] or ()) for a in arts)
                found[(iid, ex["id"])] = row
        truth = session.get(f"{srv.url}/_sandbox/truth", timeout=30).json()
        assert truth["seed"] == 11 and truth["scale"] == 0.2
        for inst in truth["instances"]:
            for ex in inst["executions"]:
                row = found.pop((inst["id"], ex["id"]))
                bad = sorted((b["task_id"], b["side"]) for b in ex["bad"])
                assert sorted(row.pop("bad")) == bad
                assert row == {k: ex[k] for k in row}
        assert not found
        assert truth["totals"]["bad_sides"] > 0
        stats = srv.stats()
        pages = stats["tasks_pages"]
        assert pages and all(count == 1 for offsets in pages.values() for count in offsets.values())
        assert stats["by_kind"]["tasks"] == sum(len(o) for o in pages.values())
        assert stats["requests"] == sum(stats["by_kind"].values())
        assert requests.post(f"{srv.url}/_sandbox/reset-stats", timeout=10).status_code == 200
        assert srv.stats()["requests"] == 0


def test_registry_credential_present_in_raw_tasks(server: SandboxServer) -> None:
    iid = first_instance(server)
    eid = execution_with(server, iid, 99)
    page = api(server, tasks_path(iid, eid), limit=100)
    assert "sandbox-registry-secret-DO-NOT-STORE" in page.text
    assert "sandbox-registry-ak" in page.text


def test_object_resources_over_http() -> None:
    with fault_server(rate_object_resource=0.5) as srv:
        iid = first_instance(srv)
        eid = execution_with(srv, iid, 99)
        tasks = api(srv, tasks_path(iid, eid), limit=100).json()["tasks"]
        objects = [t for t in tasks if isinstance(t["src_resource"], dict) or isinstance(t["dst_resource"], dict)]
        assert 25 <= len(objects) <= 75
        assert all(readable(t["src_resource"]) and readable(t["dst_resource"]) for t in tasks)


def test_keep_alive_connection_is_reused(server: SandboxServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", f"/v2/{PROJECT}/instances", headers=TOKEN)
        first = conn.getresponse()
        assert first.status == 200 and json.loads(first.read())["total"] == 2
        sock = conn.sock
        conn.request("GET", f"/v2/{PROJECT}/instances?limit=1", headers=TOKEN)
        second = conn.getresponse()
        assert second.status == 200 and len(json.loads(second.read())["instances"]) == 1
        assert conn.sock is sock is not None
    finally:
        conn.close()


def test_concurrent_clients_see_consistent_pages_and_stats() -> None:
    with SandboxServer(SandboxConfig(seed=2, scale=0.05, faults=Faults(rate_429=0.2))) as srv:
        iid = first_instance_after_faults(srv)
        eid = 0
        while not eid:
            resp = api(srv, f"instances/{iid}/replication/executions", limit=100)
            if resp.status_code == 200:
                eid = next(e["id"] for e in resp.json()["executions"] if e["total"] == 2345)
        srv.reset_stats()

        def fetch(offset: int) -> list[int]:
            with requests.Session() as session:
                for _ in range(3):
                    resp = session.get(
                        f"{srv.url}/v2/{PROJECT}/{tasks_path(iid, eid)}",
                        headers=TOKEN,
                        params={"offset": offset, "limit": 100},
                        timeout=10,
                    )
                    if resp.status_code == 200:
                        return [t["id"] for t in resp.json()["tasks"]]
            raise AssertionError(f"offset {offset} never got through")

        with ThreadPoolExecutor(max_workers=8) as pool:
            pages = list(pool.map(fetch, range(0, 2345, 100)))
        ids = [i for page in pages for i in page]
        assert len(ids) == len(set(ids)) == 2345
        assert ids == list(range(ids[0], ids[0] + 2345))
        stats = srv.stats()
        assert stats["tasks_pages"] == {f"{iid}/{eid}": {str(o): 1 for o in range(0, 2345, 100)}}
        assert stats["by_kind"]["tasks"] == stats["requests"] == 24 + stats["faults"]["429"]


def test_serve_forever_returns_on_shutdown() -> None:
    srv = SandboxServer(SandboxConfig(scale=0.05))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            port = srv.port
            break
        except RuntimeError:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert srv.url == f"http://127.0.0.1:{port}"
    assert api(srv, "instances").status_code == 200
    srv.shutdown()
    thread.join(timeout=5)
    assert not thread.is_alive()
    srv.stop()

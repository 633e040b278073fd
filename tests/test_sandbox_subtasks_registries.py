"""Per-tag subtasks, replication registries and the SDK's full Instance: world truth, HTTP and vendor SDK."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkswr.v2 import (
    Credential,
    Instance,
    ListInstanceRegistriesRequest,
    ListInstanceReplicationPolicyExecSubTasksRequest,
    ListInstanceRequest,
    Registry,
    ShowInstanceRegistryRequest,
    SubtaskDetail,
    SwrClient,
)

from pipeline.sandbox import Faults, SandboxConfig, SandboxServer, World
from pipeline.sandbox.subtasks import FAILURE_CLASSES, FAILURE_TEXTS
from pipeline.sandbox.tasks import REGISTRY_SECRET

CONFIG = SandboxConfig(seed=4, scale=0.1)
TOKEN = {"X-Auth-Token": CONFIG.token}
SDK_REGISTRY_TYPES = {"swr-pro", "swr-pro-internal", "huawei-SWR"}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(CONFIG) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Any:
    assert CONFIG.ak and CONFIG.sk  # never build the SDK client without AK/SK (it would call a metadata address)
    credentials = BasicCredentials(CONFIG.ak, CONFIG.sk, CONFIG.project_id)
    return SwrClient.new_builder().with_credentials(credentials).with_endpoints([server.url]).build()


def raw(srv: SandboxServer, path: str, **params: Any) -> Any:
    resp = requests.get(f"{srv.url}/v2/{srv.config.project_id}/{path}", headers=TOKEN, params=params, timeout=10)
    resp.raise_for_status()
    return resp.json()


def sdk_fields(obj: Any) -> Any:
    """Every attribute the SDK model defines, nested models too (``to_dict`` would mask the secret)."""
    if hasattr(obj, "openapi_types"):
        return {name: sdk_fields(getattr(obj, name)) for name in obj.openapi_types}
    if isinstance(obj, list):
        return [sdk_fields(x) for x in obj]
    return obj


def failed_task(world: World) -> tuple[str, int, int]:
    """(instance, execution, task) of the first task with at least two Failed subtasks."""
    for inst in world.instances():
        for ex in world.executions(inst["id"]):
            for offset in range(0, world.task_count(inst["id"], ex["id"]), 100):
                for task in world.tasks(inst["id"], ex["id"], offset, 100):
                    subs = world.subtasks(inst["id"], ex["id"], task["id"]) or []
                    if sum(s["status"] == "Failed" for s in subs) >= 2 and len(subs) >= 3:
                        return inst["id"], ex["id"], task["id"]
    raise AssertionError("no task with failed tags")


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _template_re(template: str) -> re.Pattern[str]:
    literal = template.format_map(_Keep())  # "{{" -> "{", placeholders kept
    parts = re.split(r"\{(?:src|dst|tag|digest|host|ip|port|size)\}", literal)
    return re.compile(".*?".join(re.escape(p) for p in parts), re.DOTALL)


TEMPLATES = {cls: [_template_re(t) for t in texts] for cls, texts in FAILURE_TEXTS.items()}


def classes_of(text: str) -> set[str]:
    return {cls for cls, patterns in TEMPLATES.items() if any(p.fullmatch(text) for p in patterns)}


# ---------------------------------------------------------------- vendor SDK


def test_sdk_pages_and_filters_subtasks(server: SandboxServer, client: Any) -> None:
    iid, eid, tid = failed_task(server.world)
    path = f"instances/{iid}/replication/executions/{eid}/tasks/{tid}/subtasks"
    everything = raw(server, path, limit=100)
    parsed: list[Any] = []
    offset = 0
    while True:
        request = ListInstanceReplicationPolicyExecSubTasksRequest(
            instance_id=iid, execution_id=eid, task_id=tid, offset=offset, limit=2
        )
        page = client.list_instance_replication_policy_exec_sub_tasks(request)
        assert page.total == everything["total"]
        parsed += page.sub_tasks
        offset += 2
        if offset >= page.total:
            break
    assert [sdk_fields(s) for s in parsed] == everything["sub_tasks"]
    assert all(set(s) == set(SubtaskDetail.openapi_types) for s in everything["sub_tasks"])
    request = ListInstanceReplicationPolicyExecSubTasksRequest(
        instance_id=iid, execution_id=eid, task_id=tid, status="Failed", limit=100
    )
    failed = client.list_instance_replication_policy_exec_sub_tasks(request)
    assert failed.total == sum(s["status"] == "Failed" for s in everything["sub_tasks"]) >= 2
    assert {s.status for s in failed.sub_tasks} == {"Failed"}
    assert all(s.end_time for s in failed.sub_tasks)


def test_sdk_lists_and_shows_registries(server: SandboxServer, client: Any) -> None:
    iid = raw(server, "instances")["instances"][0]["id"]
    expected = raw(server, f"instances/{iid}/registries", limit=100)
    assert expected["total"] == len(expected["registries"]) >= 4
    parsed: list[Any] = []
    for offset in range(0, expected["total"], 2):
        request = ListInstanceRegistriesRequest(instance_id=iid, offset=offset, limit=2)
        page = client.list_instance_registries(request)
        assert page.total == expected["total"]
        parsed += page.registries
    assert [sdk_fields(r) for r in parsed] == expected["registries"]
    for registry in expected["registries"]:
        assert set(registry) == set(Registry.openapi_types)
        assert set(registry["credential"]) == set(Credential.openapi_types)
        shown = client.show_instance_registry(ShowInstanceRegistryRequest(instance_id=iid, registry_id=registry["id"]))
        assert {k: sdk_fields(getattr(shown, k)) for k in Registry.openapi_types} == registry
        assert REGISTRY_SECRET in shown.credential.access_secret
    harbor = client.list_instance_registries(ListInstanceRegistriesRequest(instance_id=iid, type="swr-pro", limit=100))
    assert harbor.total >= 1 and {r.type for r in harbor.registries} == {"swr-pro"}
    by_name = client.list_instance_registries(
        ListInstanceRegistriesRequest(instance_id=iid, order_column="name", order_type="asc", limit=100)
    )
    names = [r.name for r in by_name.registries]
    assert names == sorted(names)
    assert server.stats()["by_kind"]["registry"] >= len(expected["registries"])


def test_sdk_parses_every_instance_field(server: SandboxServer, client: Any) -> None:
    expected = raw(server, "instances")["instances"]
    assert all(set(i) == set(Instance.openapi_types) for i in expected)
    response = client.list_instance(ListInstanceRequest())
    assert [sdk_fields(i) for i in response.instances] == expected
    assert all(i.access_address.startswith("https://") and i.vpcep_service_id for i in response.instances)


# ---------------------------------------------------------------- world truth


def test_tag_statuses_follow_the_destination() -> None:
    world = World(seed=0, scale=0.3, faults=Faults(rate_bad_resource=0.05))
    seen: Counter[tuple[str, str]] = Counter()
    for inst in world.instances():
        iid = inst["id"]
        for ex in world.executions(iid):
            for k in range(world.task_count(iid, ex["id"])):
                model = world.task_model(iid, ex["id"], k)
                reached = {(a["digest"], t) for a in model.dst["metadata"]["artifacts"] for t in a["tags"] or ()}
                task_status = model.detail["status"]
                subs = world.subtasks(iid, ex["id"], model.detail["id"])
                assert subs is not None
                src_tags = [(a["digest"], t) for a in model.src["metadata"]["artifacts"] for t in a["tags"] or ()]
                assert [(s["digest"], s["tag"]) for s in subs] == src_tags
                for sub in subs:
                    there = (sub["digest"], sub["tag"]) in reached
                    expected = "Succeed" if there or task_status == "Succeed" else task_status
                    assert sub["status"] == expected, (model.detail["id"], sub)
                    assert f"{sub['namespace']}/{sub['repository']}" == model.src["metadata"]["repository"]["name"]
                    assert bool(sub["end_time"]) == (sub["status"] in ("Succeed", "Failed", "Stopped"))
                    if sub["status"] == "Failed":
                        assert len(classes_of(sub["status_text"])) == 1, sub["status_text"]
                    elif sub["status"] != "Stopped":
                        assert sub["status_text"] == ""
                    seen[(task_status, sub["status"])] += 1
    assert seen[("Failed", "Failed")] and seen[("Failed", "Succeed")] and seen[("Succeed", "Succeed")]
    assert seen[("InProgress", "InProgress")] and seen[("InProgress", "Succeed")]


def test_subtask_truth_counts_and_every_failure_class() -> None:
    world = World(seed=0, scale=1.0)
    truth, tasks_truth = world.subtask_truth(), world.truth()
    json.dumps(truth)
    rows = [e for i in truth["instances"] for e in i["executions"]]
    totals = truth["totals"]
    assert totals["subtasks"] == sum(sum(r["by_status"].values()) for r in rows) == tasks_truth["totals"]["src_tags"]
    assert totals["by_status"]["Succeed"] == tasks_truth["totals"]["dst_tags"]  # the destination's tags
    for cls in FAILURE_CLASSES:
        assert totals["by_class"][cls] == sum(r["by_class"][cls] for r in rows) > 0, cls
    assert sum(totals["by_class"].values()) == totals["by_status"]["Failed"]
    # the failure texts of each execution classify back to its counts
    for inst in truth["instances"]:
        for row in inst["executions"][:6]:
            found: Counter[str] = Counter()
            for offset in range(0, world.task_count(inst["id"], row["id"]), 100):
                for task in world.tasks(inst["id"], row["id"], offset, 100):
                    for sub in world.subtasks(inst["id"], row["id"], task["id"]) or []:
                        if sub["status"] == "Failed":
                            (cls,) = classes_of(sub["status_text"])
                            found[cls] += 1
            assert {c: n for c, n in row["by_class"].items() if n} == dict(found)


def test_unhealthy_destinations_fail_mostly_on_the_network() -> None:
    world = World(seed=1, scale=3.0)
    share: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    for inst in world.subtask_truth()["instances"]:
        dest = {p["id"]: world.registry(inst["id"], p["dest_registry"]["id"]) for p in world.policies(inst["id"])}
        for row in inst["executions"]:
            registry = dest[row["policy_id"]]
            assert registry is not None
            share[registry["status"] == "unhealthy"].update(row["by_class"])
    network = {k: c["network"] / max(1, c.total()) for k, c in share.items()}
    assert network[True] > network[False]


def test_retried_tags_fail_then_succeed_in_a_later_execution() -> None:
    plain, knob = World(seed=0, scale=0.5), World(seed=0, scale=0.5, faults=Faults(rate_retried_tags=0.05))
    truth = knob.subtask_truth()
    exact = [r for r in truth["retries"] if r["same_digest"]]
    assert len(exact) >= 3 and truth["totals"]["retries"] == len(truth["retries"])
    for retry in exact:
        iid, failed, ok = retry["instance_id"], retry["failed"], retry["succeeded"]
        assert failed["execution_id"] < ok["execution_id"]
        for side, status in ((failed, "Failed"), (ok, "Succeed")):
            subs = knob.subtasks(iid, side["execution_id"], side["task_id"]) or []
            sub = next(s for s in subs if s["id"] == side["subtask_id"])
            assert (sub["status"], sub["tag"], sub["digest"]) == (status, retry["tag"], failed["digest"])
            assert f"{sub['namespace']}/{sub['repository']}" == retry["repository"]
        policies = {e["id"]: e["policy_id"] for e in knob.executions(iid)}
        assert policies[failed["execution_id"]] == policies[ok["execution_id"]] == retry["policy_id"]
    # the knob only rewrites the resources of some Succeed tasks: everything else is untouched
    assert plain.instances() == knob.instances()
    changed = 0
    for inst in plain.instances():
        iid = inst["id"]
        assert plain.executions(iid) == knob.executions(iid)
        for ex in plain.executions(iid):
            for offset in range(0, plain.task_count(iid, ex["id"]), 100):
                pages = plain.tasks(iid, ex["id"], offset, 100), knob.tasks(iid, ex["id"], offset, 100)
                for a, b in zip(*pages, strict=True):
                    if a != b:
                        changed += 1
                        assert a["status"] == "Succeed" and a["operation"] == "copy"
                        # the retried resource replaces src, dst and the resource type, nothing else
                        assert {k: v for k, v in a.items() if "resource" not in k} == {
                            k: v for k, v in b.items() if "resource" not in k
                        }
    assert changed >= len(exact)


def test_registries_exist_for_every_policy_and_mix_statuses() -> None:
    world = World(seed=2, scale=0.5)
    statuses, types = Counter(), Counter()
    for inst in world.instances():
        iid = inst["id"]
        registries = world.registries(iid)
        assert [r["id"] for r in registries] == list(range(len(registries)))
        for policy in world.policies(iid):
            assert world.registry(iid, policy["src_registry"]["id"]) is not None
            assert world.registry(iid, policy["dest_registry"]["id"]) is not None
        assert registries[0]["instance_id"] == iid and registries[0]["url"] == inst["access_address"]
        for registry in registries:
            assert set(registry) == set(Registry.openapi_types)
            assert registry["credential"]["access_secret"].startswith(REGISTRY_SECRET)
            statuses[registry["status"]] += 1
            types[registry["type"]] += 1
    assert set(statuses) == {"healthy", "unhealthy"}
    assert set(types) == SDK_REGISTRY_TYPES
    assert [world.registries(i["id"]) for i in world.instances()] == [
        World(seed=2, scale=0.5).registries(i["id"]) for i in world.instances()
    ]


# ---------------------------------------------------------------- HTTP: errors, faults, helper


def test_registry_errors(server: SandboxServer) -> None:
    iid = raw(server, "instances")["instances"][0]["id"]
    base = f"{server.url}/v2/{CONFIG.project_id}/instances/{iid}/registries"
    assert requests.get(f"{base}/999", headers=TOKEN, timeout=10).status_code == 404
    assert requests.get(f"{base}/x", headers=TOKEN, timeout=10).status_code == 400
    for params in ({"order_column": "id"}, {"order_type": "up"}, {"offset": 1, "limit": 2}):
        resp = requests.get(base, headers=TOKEN, params=params, timeout=10)
        assert resp.status_code == 400 and resp.json()["error_code"] == "SWR.0400"
    other = f"{server.url}/v2/{CONFIG.project_id}/instances/00000000-0000-4000-8000-000000000000/registries"
    assert requests.get(other, headers=TOKEN, timeout=10).status_code == 404
    assert requests.get(base, timeout=10).status_code == 401


def test_faults_apply_to_registries_and_subtasks() -> None:
    faults = Faults(rate_429=1.0, max_consecutive=2, retry_after_s=0.1)
    with SandboxServer(SandboxConfig(seed=4, scale=0.05, faults=faults)) as srv:
        iid = srv.world.instances()[0]["id"]
        eid = srv.world.executions(iid)[-1]["id"]
        tid = srv.world.tasks(iid, eid, 0, 1)[0]["id"]
        paths = (
            f"instances/{iid}/registries",
            f"instances/{iid}/registries/1",
            f"instances/{iid}/replication/executions/{eid}/tasks/{tid}/subtasks",
        )
        for path in paths:
            url = f"{srv.url}/v2/{CONFIG.project_id}/{path}"
            codes = [requests.get(url, headers=TOKEN, timeout=10).status_code for _ in range(3)]
            assert codes == [429, 429, 200], path
        stats = srv.stats()
        assert stats["faults"]["429"] == 6
        assert (stats["by_kind"]["registries"], stats["by_kind"]["registry"], stats["by_kind"]["subtasks"]) == (3, 3, 3)


def test_subtask_truth_helper(server: SandboxServer) -> None:
    resp = requests.get(f"{server.url}/_sandbox/subtask-truth", timeout=60)
    assert resp.status_code == 200
    assert resp.json() == json.loads(json.dumps(server.world.subtask_truth()))

"""The synthetic world: determinism, shape, edge cases, bad resources and truth (no HTTP)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from pipeline.sandbox import Faults, SandboxConfig, World
from pipeline.sandbox.tasks import BAD_KINDS, REGISTRY_SECRET
from pipeline.sandbox.world import EDGE_TASK_COUNTS

TASK_KEYS = [
    "id",
    "execution_id",
    "resource_type",
    "src_resource",
    "dst_resource",
    "operation",
    "job_id",
    "status",
    "StatusRevision",
    "start_time",
    "end_time",
]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|\+08:00)$")


def all_pages(world: World) -> str:
    out = [json.dumps(world.instances())]
    for inst in world.instances():
        iid = inst["id"]
        out.append(json.dumps(world.policies(iid)))
        for ex in world.executions(iid):
            out.append(json.dumps(ex))
            out.append(json.dumps(world.tasks(iid, ex["id"], 0, 100), ensure_ascii=False))
    return "\n".join(out)


def edge_executions(world: World) -> dict[int, dict[str, object]]:
    """The first instance's first policy's executions, by task count."""
    iid = world.instances()[0]["id"]
    first_policy = world.policies(iid)[0]["id"]
    return {world.task_count(iid, e["id"]): e for e in world.executions(iid, first_policy)}


def test_same_seed_gives_identical_pages() -> None:
    assert all_pages(World(seed=3, scale=0.2)) == all_pages(World(seed=3, scale=0.2))


def test_other_seed_gives_other_pages() -> None:
    a, b = World(seed=3, scale=0.2), World(seed=4, scale=0.2)
    assert a.instances()[0]["id"] != b.instances()[0]["id"]
    assert all_pages(a) != all_pages(b)


def test_instance_ids_are_uuids_and_running() -> None:
    instances = World(seed=1).instances()
    assert len(instances) == 2
    for inst in instances:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", inst["id"])
        assert inst["status"] == "Running"


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_edge_executions_always_exist(seed: int) -> None:
    for scale in (0.05, 1.0):
        edges = edge_executions(World(seed=seed, scale=scale))
        assert set(EDGE_TASK_COUNTS) <= set(edges)
        for n in EDGE_TASK_COUNTS:
            assert edges[n]["total"] == n


def test_ids_unique_and_task_ids_contiguous_per_execution() -> None:
    world = World(seed=2, scale=0.3)
    for inst in world.instances():
        iid = inst["id"]
        executions = world.executions(iid)
        ids = [e["id"] for e in executions]
        assert ids == sorted(ids, reverse=True)  # newest first
        assert len(set(ids)) == len(ids)
        seen: set[int] = set()
        for ex in executions:
            n = world.task_count(iid, ex["id"])
            tasks = world.tasks(iid, ex["id"], 0, 100)
            if n > 100:
                tasks += world.tasks(iid, ex["id"], n - 100, 100)
            task_ids = [t["id"] for t in tasks]
            if n:
                first = task_ids[0]
                assert world.tasks(iid, ex["id"], n - 1, 1)[0]["id"] == first + n - 1
            assert not seen & set(task_ids)
            seen |= set(task_ids)
            assert all(t["execution_id"] == ex["id"] for t in tasks)


def test_task_detail_shape_and_values() -> None:
    world = World(seed=0, scale=0.2)
    iid = world.instances()[0]["id"]
    eid = edge_executions(world)[2345]["id"]
    tasks = world.tasks(iid, eid, 0, 100) + world.tasks(iid, eid, 2200, 100)
    statuses, operations, types = Counter[str](), Counter[str](), Counter[str]()
    for task in tasks:
        keys = list(task)
        assert keys == TASK_KEYS[: len(keys)]
        assert len(keys) >= 10
        statuses[task["status"]] += 1
        operations[task["operation"]] += 1
        types[task["resource_type"]] += 1
        assert re.fullmatch(r"[0-9a-f]{24}", task["job_id"])
        assert isinstance(task["StatusRevision"], int)
        assert TIME_RE.match(task["start_time"])
        if task["status"] in ("Succeed", "Failed", "Stopped"):
            assert TIME_RE.match(task["end_time"])
        else:
            assert task.get("end_time", "") == ""
        src = json.loads(task["src_resource"])
        dst = json.loads(task["dst_resource"])
        assert list(src) == [
            "type",
            "metadata",
            "registry",
            "extended_info",
            "deleted",
            "is_delete_tag",
            "override",
        ]
        base = src["metadata"]["repository"]["name"].rsplit("/", 1)[-1]
        assert dst["metadata"]["repository"]["name"].endswith("/" + base)
        for art in src["metadata"]["artifacts"]:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", art["digest"])
            assert art["tags"] is None or all(isinstance(t, str) for t in art["tags"])
        assert src["deleted"] == (task["operation"] != "copy")
        if task["status"] == "Succeed":
            assert src["metadata"]["artifacts"] == dst["metadata"]["artifacts"]
    assert statuses["Succeed"] > statuses["Failed"] > 0
    assert operations["copy"] > operations["deletion"] > 0
    assert types["artifact"] > types["image"] > 0


def test_unicode_repositories_and_time_formats_exist() -> None:
    world = World(seed=0, scale=0.2)
    iid = world.instances()[0]["id"]
    eid = edge_executions(world)[2345]["id"]
    names, fractions, offsets = set(), set(), 0
    for offset in range(0, 2300, 100):
        for task in world.tasks(iid, eid, offset, 100):
            names.add(json.loads(task["src_resource"])["metadata"]["repository"]["name"])
            match = TIME_RE.match(task["start_time"])
            assert match
            fractions.add(len(match.group(1) or "") - 1 if match.group(1) else 0)
            offsets += match.group(2) == "+08:00"
    assert any(not n.isascii() for n in names)
    assert {"研发/服务-α", "équipe/café"} & names
    assert fractions >= {0, 1, 5, 6, 9}
    assert offsets > 0


def test_some_failed_tasks_miss_tags_in_the_mirror() -> None:
    world = World(seed=0, scale=0.2)
    truth = world.truth()
    missing = sum(e["src_tags"] - e["dst_tags"] for i in truth["instances"] for e in i["executions"])
    assert missing > 0


def test_total_tasks_grow_linearly_with_scale() -> None:
    def total(world: World) -> tuple[int, int]:
        counts = [world.task_count(i["id"], e["id"]) for i in world.instances() for e in world.executions(i["id"])]
        return sum(counts), len(counts)

    small, _ = total(World(seed=0, scale=1.0))
    assert 4_000 <= small <= 9_000
    for seed in (0, 1, 2):
        tasks, executions = total(World(seed=seed, scale=20))
        assert tasks >= 50_000
        assert executions >= 20


def test_counters_lag_for_some_in_progress_execution() -> None:
    world = World(seed=0, scale=0.2)
    truth = world.truth()
    lagging = [e for i in truth["instances"] for e in i["executions"] if e["counters_lag"]]
    assert 1 <= len(lagging) <= 2
    for row in lagging:
        assert row["status"] == "InProgress"
        assert row["reported_total"] < row["tasks"]
    inst = truth["instances"][0]
    api = {e["id"]: e for e in world.executions(inst["id"])}
    for row in inst["executions"]:
        if not row["counters_lag"]:
            ex = api[row["id"]]
            assert ex["total"] == row["tasks"]
            assert ex["succeed"] + ex["failed"] + ex["stopped"] + ex["in_progress"] == ex["total"]


def test_bad_resources_follow_rate_and_truth() -> None:
    world = World(seed=5, scale=0.2, faults=Faults(rate_bad_resource=0.1))
    truth = world.truth()
    n_tasks = truth["totals"]["tasks"]
    kinds: Counter[str] = Counter()
    bad_tasks: dict[tuple[str, int], list[dict[str, str]]] = {}
    for inst in truth["instances"]:
        for row in inst["executions"]:
            for bad in row["bad"]:
                bad_tasks.setdefault((inst["id"], bad["task_id"]), []).append(bad)
                kinds[bad["kind"]] += 1
    assert 0.07 < len(bad_tasks) / n_tasks < 0.13
    assert set(kinds) == set(BAD_KINDS)
    checked = 0
    for inst in truth["instances"]:
        iid = inst["id"]
        for row in inst["executions"]:
            for offset in range(0, row["tasks"], 100):
                for task in world.tasks(iid, row["id"], offset, 100):
                    for bad in bad_tasks.get((iid, task["id"]), []):
                        assert_bad(task, bad["side"], bad["kind"])
                        checked += 1
                    if (iid, task["id"]) not in bad_tasks:
                        assert isinstance(task["src_resource"], str)
                        json.loads(task["src_resource"])
                        json.loads(task["dst_resource"])
    assert checked == truth["totals"]["bad_sides"]


def assert_bad(task: dict[str, object], side: str, kind: str) -> None:
    key = f"{side}_resource"
    if kind == "seed_shape":
        assert "dst_resource" not in task and "operation" not in task
        text = task["src_resource"]
        assert isinstance(text, str) and re.search(r'", "dst_resource":"\{.*\}", "operation":"[a-z ]+$', text)
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    elif kind == "missing":
        assert key not in task
    elif kind == "null":
        assert task[key] is None
    elif kind == "empty":
        assert task[key] == ""
    elif kind == "harbor_short":
        assert re.fullmatch(r".+ \[\d+ item\(s\) in total\]", str(task[key]))
    elif kind == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(str(task[key]))
    else:
        assert kind == "wrong_type"
        obj = json.loads(str(task[key]))
        meta = obj["metadata"]
        assert (
            not isinstance(meta, dict)
            or not isinstance(meta["artifacts"], list)
            or any(isinstance(a["tags"], str) for a in meta["artifacts"])
        )


def test_object_resources_are_dicts() -> None:
    world = World(seed=0, scale=0.2, faults=Faults(rate_object_resource=0.3))
    iid = world.instances()[0]["id"]
    eid = edge_executions(world)[2345]["id"]
    tasks = world.tasks(iid, eid, 0, 100)
    objects = [t for t in tasks if isinstance(t["src_resource"], dict) or isinstance(t["dst_resource"], dict)]
    assert 15 <= len(objects) <= 45
    for task in objects:
        for key in ("src_resource", "dst_resource"):
            value = task[key]
            resource = value if isinstance(value, dict) else json.loads(value)
            assert resource["metadata"]["artifacts"]


def test_registry_credential_is_in_some_raw_task() -> None:
    world = World(seed=0, scale=0.05)
    iid = world.instances()[0]["id"]
    eid = edge_executions(world)[99]["id"]
    raw = [t for t in world.tasks(iid, eid, 0, 99) if REGISTRY_SECRET in t["src_resource"]]
    assert raw
    registry = json.loads(raw[0]["src_resource"])["registry"]
    assert registry["credential"] == {
        "type": "basic",
        "access_key": "sandbox-registry-ak",
        "access_secret": "sandbox-registry-secret-DO-NOT-STORE",
    }


def test_truth_is_json_and_consistent() -> None:
    truth = World(seed=0, scale=0.1, faults=Faults(rate_bad_resource=0.05)).truth()
    json.dumps(truth)
    totals = truth["totals"]
    rows = [e for i in truth["instances"] for e in i["executions"]]
    assert totals["instances"] == len(truth["instances"]) == 2
    assert totals["executions"] == len(rows)
    for key in ("tasks", "src_artifacts", "dst_artifacts", "src_tags", "dst_tags"):
        assert totals[key] == sum(r[key] for r in rows)
    assert totals["bad_sides"] == sum(len(r["bad"]) for r in rows) > 0


def test_grow_tasks_in_truth_and_on_second_request() -> None:
    world = World(seed=0, scale=0.05, faults=Faults(grow_tasks=5))
    iid = world.instances()[0]["id"]
    edges = edge_executions(world)
    truth = {e["id"]: e["tasks"] for e in world.truth()["instances"][0]["executions"]}
    assert truth[edges[101]["id"]] == 106
    assert truth[edges[100]["id"]] == 100
    eid = edges[101]["id"]
    assert world.task_list_request(iid, eid) == 101
    assert world.task_list_request(iid, eid) == 106
    assert world.task_list_request(iid, eid) == 106
    assert [t["status"] for t in world.tasks(iid, eid, 101, 10)] == ["InProgress"] * 5
    assert world.task_list_request(iid, edges[100]["id"]) == 100
    assert world.task_list_request(iid, edges[100]["id"]) == 100


def test_faults_validate_their_values() -> None:
    with pytest.raises(ValueError, match="rate_429"):
        Faults(rate_429=1.5)
    with pytest.raises(ValueError):
        Faults(max_consecutive=-1)
    with pytest.raises(ValueError):
        World(scale=0)


def test_config_from_env_and_overrides() -> None:
    env = {
        "SWR_AUTH_TOKEN": "tok-env",
        "CLOUD_SDK_AK": "AKENV",
        "CLOUD_SDK_SK": "sk-env",
        "SWR_PROJECT_ID": "proj-env",
        "SWR_IAM_USERNAME": "user-env",
        "SWR_IAM_PASSWORD": "pw-env",
        "SWR_IAM_DOMAIN": "dom-env",
        "UNRELATED": "x",
    }
    cfg = SandboxConfig.from_env(env, seed=9, faults=Faults(rate_429=0.5))
    assert (cfg.token, cfg.ak, cfg.sk, cfg.project_id) == ("tok-env", "AKENV", "sk-env", "proj-env")
    assert (cfg.iam_username, cfg.iam_password, cfg.iam_domain) == ("user-env", "pw-env", "dom-env")
    assert cfg.seed == 9 and cfg.faults.rate_429 == 0.5
    assert SandboxConfig.from_env({}) == SandboxConfig()
    assert SandboxConfig.from_env({"CLOUD_SDK_AK": "A"}, ak="B").ak == "B"


def test_config_repr_hides_secrets() -> None:
    cfg = SandboxConfig(token="tok-secret-1", sk="sk-secret-2", iam_password="pw-secret-3")
    text = repr(cfg)
    for secret in ("tok-secret-1", "sk-secret-2", "pw-secret-3"):
        assert secret not in text
    assert "SANDBOXACCESSKEY0001" in text

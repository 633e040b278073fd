"""The official SDK (huaweicloudsdkswr, AK/SK signing) reads the sandbox and parses what it gets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkswr.v2 import (
    ListInstanceReplicationPoliciesRequest,
    ListInstanceReplicationPolicyExecSubTasksRequest,
    ListInstanceReplicationPolicyExecTasksRequest,
    ListInstanceReplicationPolicyExecutionsRequest,
    ListInstanceRequest,
    SwrClient,
)

from pipeline.sandbox import SandboxConfig, SandboxServer

CONFIG = SandboxConfig(seed=4, scale=0.1)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(CONFIG) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Any:
    assert CONFIG.ak and CONFIG.sk  # never build the SDK client without AK/SK (it would call a metadata address)
    credentials = BasicCredentials(CONFIG.ak, CONFIG.sk, CONFIG.project_id)
    return SwrClient.new_builder().with_credentials(credentials).with_endpoints([server.url]).build()


def raw(server: SandboxServer, path: str, **params: Any) -> dict[str, Any]:
    resp = requests.get(
        f"{server.url}/v2/{CONFIG.project_id}/{path}",
        headers={"X-Auth-Token": CONFIG.token},
        params=params,
        timeout=10,
    )
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def test_sdk_lists_instances_and_policies(server: SandboxServer, client: Any) -> None:
    expected = raw(server, "instances")
    response = client.list_instance(ListInstanceRequest())
    assert response.total == expected["total"] == 2
    assert [i.id for i in response.instances] == [i["id"] for i in expected["instances"]]
    assert response.instances[0].status == "Running"
    iid = expected["instances"][0]["id"]
    policies = client.list_instance_replication_policies(ListInstanceReplicationPoliciesRequest(instance_id=iid))
    raw_policies = raw(server, f"instances/{iid}/replication/policies")["policies"]
    assert [p.id for p in policies.policies] == [p["id"] for p in raw_policies]
    assert policies.policies[0].trigger.type == raw_policies[0]["trigger"]["type"]
    assert policies.policies[0].dest_namespace == raw_policies[0]["dest_namespace"]


def test_sdk_pages_executions_tasks_and_subtasks(server: SandboxServer, client: Any) -> None:
    iid = raw(server, "instances")["instances"][0]["id"]
    executions = []
    offset = 0
    while True:
        request = ListInstanceReplicationPolicyExecutionsRequest(instance_id=iid, offset=offset, limit=100)
        page = client.list_instance_replication_policy_executions(request)
        executions += page.executions
        offset += 100
        if offset >= page.total:
            break
    expected = raw(server, f"instances/{iid}/replication/executions", limit=100)
    assert page.total == expected["total"] == len(executions)
    assert [(e.id, e.total, e.status, e.policy_id) for e in executions] == [
        (e["id"], e["total"], e["status"], e["policy_id"]) for e in expected["executions"]
    ]

    eid = next(e.id for e in executions if e.total == 101)
    tasks = []
    for offset in (0, 100):
        request = ListInstanceReplicationPolicyExecTasksRequest(
            instance_id=iid, execution_id=eid, offset=offset, limit=100
        )
        page = client.list_instance_replication_policy_exec_tasks(request)
        assert page.total == 101
        tasks += page.tasks
    assert len(tasks) == 101
    raw_tasks = raw(server, f"instances/{iid}/replication/executions/{eid}/tasks", limit=100)["tasks"]
    raw_tasks += raw(server, f"instances/{iid}/replication/executions/{eid}/tasks", offset=100, limit=100)["tasks"]
    assert [t.id for t in tasks] == [t["id"] for t in raw_tasks]
    for parsed, sent in zip(tasks, raw_tasks, strict=True):
        assert parsed.status_revision == sent["StatusRevision"]
        assert parsed.src_resource == sent["src_resource"]
        assert parsed.dst_resource == sent["dst_resource"]
        assert (parsed.status, parsed.operation, parsed.job_id) == (sent["status"], sent["operation"], sent["job_id"])
        assert parsed.start_time == sent["start_time"]

    task = tasks[0]
    request = ListInstanceReplicationPolicyExecSubTasksRequest(instance_id=iid, execution_id=eid, task_id=task.id)
    subtasks = client.list_instance_replication_policy_exec_sub_tasks(request)
    path = f"instances/{iid}/replication/executions/{eid}/tasks/{task.id}/subtasks"
    expected_subtasks = raw(server, path)
    assert subtasks.total == expected_subtasks["total"]
    assert [(s.tag, s.digest) for s in subtasks.sub_tasks] == [
        (s["tag"], s["digest"]) for s in expected_subtasks["sub_tasks"]
    ]
    assert server.stats()["by_kind"]["subtasks"] >= 2

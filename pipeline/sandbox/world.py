"""The deterministic synthetic SWR Enterprise Edition world served by the sandbox.

Instances, policies and executions are built once (they are small); tasks are generated lazily by
:mod:`pipeline.sandbox.tasks` (subtasks by :mod:`pipeline.sandbox.subtasks`), so a world of a million tasks
costs a few megabytes.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.sandbox.faults import NO_FAULTS, Faults
from pipeline.sandbox.registries import build_registries
from pipeline.sandbox.subtasks import FAILURE_CLASSES, SubtaskModel, subtasks
from pipeline.sandbox.tasks import ExecSpec, Pools, TaskModel, make_task

__all__ = ["EDGE_TASK_COUNTS", "World"]

JSON = dict[str, Any]

#: Task counts of the executions always present on the first instance's first policy.
EDGE_TASK_COUNTS = (0, 1, 99, 100, 101, 2345)
_EDGE_STATUS = {0: "Succeed", 1: "Succeed", 99: "Failed", 100: "Succeed", 101: "Failed", 2345: "Failed"}
_EPOCH = 1704067200.0  # 2024-01-01T00:00:00Z
_SPAN = 180 * 86400.0
_TRIGGERS = ("manual", "scheduled", "event_based")


def _iso(t: float) -> str:
    whole = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((t - whole) * 1e6):06d}Z"


@dataclass(frozen=True, slots=True)
class _Policy:
    id: int
    dest_namespace: str
    override: bool
    trigger: str
    body: JSON


@dataclass(frozen=True, slots=True)
class _Execution:
    spec: ExecSpec
    policy_id: int
    status: str
    trigger: str
    lag: int  # how far the API counters trail the real task list (Harbor #16028)
    created: float
    updated: float
    growable: bool


@dataclass(frozen=True, slots=True)
class _Instance:
    index: int
    id: str
    body: JSON
    policies: tuple[_Policy, ...]
    executions: tuple[_Execution, ...]  # ascending id
    by_id: dict[int, _Execution]
    registries: tuple[JSON, ...]  # ascending id; registry 0 is the instance itself


@dataclass(slots=True)
class _Plan:
    policy: _Policy
    n: int
    status: str
    edge: bool
    lag: int = 0


class World:
    """Deterministic synthetic data: same ``(seed, scale, faults)`` give byte-identical responses.

    Shape: ``2 + scale // 10`` instances (at most 5), 3 policies each. The first instance's first policy
    always has executions of exactly 0, 1, 99, 100, 101 and 2345 tasks (2,646 tasks). On top of these come
    ``max(3, round(24 * sqrt(scale)))`` executions spread over all policies, with skewed (log-normal) task
    counts of mean ``150 * sqrt(scale)``. That is roughly **3,600 tasks per unit of scale plus the fixed
    2,646** (the skew makes a given seed vary by about +-20%): scale 1 gives ~6,700 tasks in 30
    executions, scale 14 ~52,000 in ~96, scale 20 at least 50,000 for any seed (~75,000 in ~120
    executions), scale 280 about a million. The newest regular execution of each of the first two
    instances is ``InProgress`` with API counters that lag the task list (``counters_lag`` in :meth:`truth`).
    Each instance has registries 0..3 or more (:mod:`pipeline.sandbox.registries`); each task has one
    subtask per source tag (:mod:`pipeline.sandbox.subtasks`), whose outcomes :meth:`subtask_truth` counts.
    """

    def __init__(self, seed: int = 0, scale: float = 1.0, faults: Faults = NO_FAULTS) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.seed = seed
        self.scale = float(scale)  # 28 and 28.0 are the same world
        self.faults = faults
        self._pools = Pools(seed)
        self._mix = int.from_bytes(hashlib.sha256(f"swr-sandbox/{seed}".encode()).digest()[:8], "big")
        self._lock = threading.Lock()
        self._grown: set[tuple[str, int]] = set()
        self._list_requests: dict[tuple[str, int], int] = {}
        self._instances = self._build()
        self._by_id = {inst.id: inst for inst in self._instances}

    # ---------------------------------------------------------------- building

    def _build(self) -> tuple[_Instance, ...]:
        rng = random.Random(f"swr-sandbox-world/{self.seed}/{self.scale!r}")
        n_inst = min(5, 2 + int(self.scale // 10))
        policies = [self._policies(rng, i) for i in range(n_inst)]
        plans: list[list[_Plan]] = [[] for _ in range(n_inst)]
        first = policies[0][0]
        plans[0] = [_Plan(first, n, _EDGE_STATUS[n], True) for n in EDGE_TASK_COUNTS]
        mean = 150.0 * math.sqrt(self.scale)
        sigma = 1.1
        mu = math.log(mean) - sigma * sigma / 2
        for r in range(max(3, round(24 * math.sqrt(self.scale)))):
            inst = r % n_inst
            n = min(int(rng.lognormvariate(mu, sigma)), int(40 * mean))
            status = rng.choices(("Succeed", "Failed", "Stopped"), (0.6, 0.3, 0.1))[0]
            plans[inst].append(_Plan(policies[inst][(r // n_inst) % 3], n, status, False))
        instances = []
        for i in range(n_inst):
            rng.shuffle(plans[i])
            regular = [p for p in plans[i] if not p.edge]
            if i < 2 and regular:  # the newest regular execution is running, its counters lag
                newest = regular[-1]
                newest.n = max(newest.n, 20)
                newest.status = "InProgress"
                newest.lag = max(1, newest.n // 4)
            instances.append(self._instance(rng, i, policies[i], plans[i]))
        return tuple(instances)

    def _policies(self, rng: random.Random, index: int) -> tuple[_Policy, ...]:
        out = []
        pid = 1 + rng.randrange(40)
        for j in range(3):
            trigger = _TRIGGERS[(index + j) % 3]
            namespace = f"mirror-{chr(ord('a') + j)}{index}"
            created = _EPOCH - rng.uniform(30, 300) * 86400
            body = {
                "id": pid,
                "name": f"replicate-{namespace}",
                "description": f"sandbox policy {j} of instance {index}",
                "src_registry": {"id": 0},
                "dest_registry": {"id": 1 + j},
                "dest_namespace": namespace,
                "filters": [{"type": "name", "value": "**"}, {"type": "tag", "value": "**"}],
                "repo_scope_mode": "regular",
                "trigger": {
                    "type": trigger,
                    "trigger_settings": {"cron": "0 0 2 * * *" if trigger == "scheduled" else ""},
                },
                "override": j != 1,
                "enabled": j != 2 or index % 2 == 0,
                "created_at": _iso(created),
                "updated_at": _iso(created + rng.uniform(0, 20) * 86400),
            }
            out.append(_Policy(pid, namespace, j != 1, trigger, body))
            pid += 1 + rng.randrange(3)
        return tuple(out)

    def _instance(self, rng: random.Random, index: int, policies: tuple[_Policy, ...], plans: list[_Plan]) -> _Instance:
        iid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        name = f"swr-ee-{('alpha', 'beta', 'gamma', 'delta', 'epsilon')[index]}"
        created = _EPOCH - rng.uniform(300, 600) * 86400
        body: JSON = {
            "id": iid,
            "name": name,
            "description": "sandbox instance",
            "vpc_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "subnet_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "spec": ("swr.ee.professional", "swr.ee.enterprise", "swr.ee.basic")[index % 3],
            "version": "v2.10.1.2",
            "charge_mode": "postPaid",
            "access_address": f"https://{name}-{iid[:8]}.swr.cn-north-4.myhuaweicloud.com",
            "created_at": _iso(created),
            "updated_at": _iso(created + 86400),
            "expires_at": "",
            "status": "Running",
            "obs_bucket_name": f"swr-ee-bucket-{iid[:8]}",
            "project_id": "",  # filled by the server with the configured project id
            "enterprise_project_id": "0",
            "user_def_obs": False,
            "vpc_name": "vpc-sandbox",
            "vpc_cidr": "192.168.0.0/16",
            "subnet_name": "subnet-sandbox",
            "subnet_cidr": "192.168.0.0/24",
            # the SDK's remaining Instance fields, from the id (not from rng: existing values stay put)
            "product_id": f"OFFI{int(iid.replace('-', ''), 16) % 10**18:018d}",
            "order_id": "",  # set for yearly/monthly instances only
            "vpcep_service_id": str(uuid.UUID(hashlib.sha256(f"vpcep/{iid}".encode()).hexdigest()[:32], version=4)),
        }
        registries = build_registries(self.seed, index, body, created)
        eid = 40 + rng.randrange(60)
        tid = 1000 + rng.randrange(500)
        executions = []
        by_policy: dict[int, list[ExecSpec]] = {}  # earlier executions of each policy, for retried tags
        step = _SPAN / max(1, len(plans))
        for pos, plan in enumerate(plans):
            n = plan.n
            reserve = self.faults.grow_tasks if n > 100 else 0
            a = 1 + rng.randrange(max(1, n))
            while n and math.gcd(a, n) != 1:
                a += 1
            failed = stopped = in_progress = 0
            if plan.status == "Failed" and n:
                failed = max(1, int(n * (0.02 if plan.edge else rng.uniform(0.01, 0.25))))
            elif plan.status == "Stopped" and n:
                stopped = max(1, int(n * rng.uniform(0.1, 0.6)))
                failed = int(n * rng.uniform(0, 0.05))
            elif plan.status == "InProgress" and n:
                in_progress = max(1, int(n * rng.uniform(0.2, 0.6)))
                failed = int(n * rng.uniform(0, 0.05))
            elif plan.status == "Failed":
                plan.status = "Succeed"
            created = _EPOCH + index * 86400 + pos * step + rng.uniform(0, step / 2)
            spec = ExecSpec(
                instance_index=index,
                execution_id=eid,
                dest_namespace=plan.policy.dest_namespace,
                override=plan.policy.override,
                first_task_id=tid,
                n=n,
                failed=failed,
                stopped=stopped,
                in_progress=in_progress,
                perm_a=a,
                perm_b=rng.randrange(max(1, n)),
                start=created + 1.0,
                seed=(self._mix ^ (index * 0xBF58476D1CE4E5B9) ^ (eid * 0x94D049BB133111EB)) & ((1 << 64) - 1),
                registry_task=7 if plan.edge and n == 99 else -1,
                earlier=tuple(by_policy.get(plan.policy.id, ())),
            )
            by_policy.setdefault(plan.policy.id, []).append(spec)
            trigger = plan.policy.trigger if rng.random() < 0.7 else "manual"
            updated = created + 5.0 + n * 0.7 + rng.uniform(0, 600)
            executions.append(
                _Execution(spec, plan.policy.id, plan.status, trigger, plan.lag, created, updated, reserve > 0)
            )
            eid += 1 + (rng.randrange(1, 6) if rng.random() < 0.2 else 0)
            tid += n + reserve + rng.randrange(4)
        by_id = {e.spec.execution_id: e for e in executions}
        return _Instance(index, iid, body, policies, tuple(executions), by_id, registries)

    # ---------------------------------------------------------------- lookups used by the server

    def _growth(self, iid: str, ex: _Execution) -> int:
        return self.faults.grow_tasks if (iid, ex.spec.execution_id) in self._grown else 0

    def instances(self, status: str | None = None) -> list[JSON]:
        return [i.body for i in self._instances if status is None or i.body["status"] == status]

    def has_instance(self, iid: str) -> bool:
        return iid in self._by_id

    def policies(self, iid: str, name: str | None = None) -> list[JSON]:
        inst = self._by_id[iid]
        return [p.body for p in inst.policies if not name or name in p.body["name"]]

    def executions(self, iid: str, policy_id: int | None = None) -> list[JSON]:
        """Executions of an instance, newest (highest id) first, with their current counters."""
        inst = self._by_id[iid]
        chosen = [e for e in reversed(inst.executions) if policy_id is None or e.policy_id == policy_id]
        with self._lock:
            return [self._execution_body(e, self._growth(iid, e)) for e in chosen]

    @staticmethod
    def _execution_body(ex: _Execution, grown: int) -> JSON:
        s = ex.spec
        in_progress = max(0, s.in_progress - ex.lag)
        return {
            "id": s.execution_id,
            "policy_id": ex.policy_id,
            "status": ex.status,
            "status_text": {"Failed": "some tasks failed", "Stopped": "stopped by user"}.get(ex.status, ""),
            "total": s.n - ex.lag + grown,
            "failed": s.failed,
            "succeed": max(0, s.n - ex.lag - s.failed - s.stopped - in_progress),
            "in_progress": in_progress + grown,
            "stopped": s.stopped,
            "trigger": ex.trigger,
            "created_at": _iso(ex.created),
            "updated_at": _iso(ex.updated),
        }

    def has_execution(self, iid: str, eid: int) -> bool:
        inst = self._by_id.get(iid)
        return inst is not None and eid in inst.by_id

    def task_list_request(self, iid: str, eid: int) -> int:
        """Note one request to an execution's task list and return its task count for that answer.

        With ``Faults.grow_tasks``, an execution of more than 100 tasks grows on the 2nd request.
        """
        ex = self._by_id[iid].by_id[eid]
        with self._lock:
            key = (iid, eid)
            seen = self._list_requests[key] = self._list_requests.get(key, 0) + 1
            if seen == 2 and ex.growable:
                self._grown.add(key)
            return ex.spec.n + self._growth(iid, ex)

    def task_count(self, iid: str, eid: int) -> int:
        ex = self._by_id[iid].by_id[eid]
        with self._lock:
            return ex.spec.n + self._growth(iid, ex)

    def tasks(
        self, iid: str, eid: int, offset: int, limit: int, total: int | None = None, request_no: int = 0
    ) -> list[JSON]:
        """TaskDetail objects ``offset .. offset+limit`` (ascending id) of the current task list.

        With ``Faults.shuffle_tasks`` the list is in a random order that changes with ``request_no``.
        """
        ex = self._by_id[iid].by_id[eid]
        count = self.task_count(iid, eid) if total is None else total
        order: Sequence[int] = range(count)
        if self.faults.shuffle_tasks:
            shuffled = list(order)
            random.Random(f"shuffle/{self.seed}/{iid}/{eid}/{request_no}").shuffle(shuffled)
            order = shuffled
        return [make_task(self._pools, self.faults, ex.spec, k).detail for k in order[offset : offset + limit]]

    def list_requests(self, iid: str, eid: int) -> int:
        """How many requests the task list of an execution has had."""
        with self._lock:
            return self._list_requests.get((iid, eid), 0)

    def task_model(self, iid: str, eid: int, k: int) -> TaskModel:
        return make_task(self._pools, self.faults, self._by_id[iid].by_id[eid].spec, k)

    def _subtask_models(self, inst: _Instance, ex: _Execution, model: TaskModel) -> list[SubtaskModel]:
        """Subtasks of one task; its policy's destination registry gives the host and the health."""
        policy = next(p for p in inst.policies if p.id == ex.policy_id)
        dest = inst.registries[policy.body["dest_registry"]["id"]]
        host = dest["url"].partition("://")[2] or dest["url"]
        return subtasks(model, host, dest["status"] == "unhealthy")

    def subtasks(self, iid: str, eid: int, task_id: int) -> list[JSON] | None:
        """SubtaskDetail objects of one task, or None when the task does not exist."""
        inst = self._by_id[iid]
        ex = inst.by_id[eid]
        k = task_id - ex.spec.first_task_id
        if not 0 <= k < self.task_count(iid, eid):
            return None
        return [s.detail for s in self._subtask_models(inst, ex, self.task_model(iid, eid, k))]

    def registries(self, iid: str) -> tuple[JSON, ...]:
        """The registries (replication targets) of an instance, ascending id."""
        return self._by_id[iid].registries

    def registry(self, iid: str, rid: int) -> JSON | None:
        return next((r for r in self._by_id[iid].registries if r["id"] == rid), None)

    # ---------------------------------------------------------------- truth

    def truth(self) -> JSON:
        """What a correct pipeline should find: counts per execution, bad sides, lagging counters.

        Generates every task (seconds for large worlds). Artifact and tag counts cover readable sides
        only, one per artifact and one per tag string (null tags count 0). With ``grow_tasks`` the
        counts describe the final state after growth.
        """
        keys = ("tasks", "src_artifacts", "dst_artifacts", "src_tags", "dst_tags", "bad_sides")
        totals = dict.fromkeys(("instances", "executions", *keys), 0)
        instances = []
        for inst in self._instances:
            execs = []
            for ex in inst.executions:
                n = ex.spec.n + (self.faults.grow_tasks if ex.growable else 0)
                row: JSON = {"id": ex.spec.execution_id, "policy_id": ex.policy_id, "status": ex.status}
                row.update(dict.fromkeys(keys[1:5], 0), tasks=n, bad=[], counters_lag=ex.lag > 0)
                row["reported_total"] = ex.spec.n - ex.lag
                for k in range(n):
                    model = make_task(self._pools, self.faults, ex.spec, k)
                    bad_sides = {b.side for b in model.bad}
                    row["bad"].extend(
                        {"task_id": model.detail["id"], "side": b.side, "kind": b.kind} for b in model.bad
                    )
                    for side, res in (("src", model.src), ("dst", model.dst)):
                        if side in bad_sides:
                            continue
                        artifacts = res["metadata"]["artifacts"]
                        row[f"{side}_artifacts"] += len(artifacts)
                        row[f"{side}_tags"] += sum(len(a["tags"] or ()) for a in artifacts)
                for key in keys[:5]:
                    totals[key] += row[key]
                totals["bad_sides"] += len(row["bad"])
                execs.append(row)
            totals["executions"] += len(execs)
            instances.append({"id": inst.id, "executions": execs})
        totals["instances"] = len(instances)
        return {"seed": self.seed, "scale": self.scale, "instances": instances, "totals": totals}

    def subtask_truth(self) -> JSON:
        """Per-tag outcomes a correct pipeline should find (kept out of :meth:`truth`, which stays as it is).

        Per execution: subtasks by status and ``Failed`` subtasks by failure class (see
        :data:`pipeline.sandbox.subtasks.FAILURE_TEXTS`). ``retries``: per (instance, policy, source
        repository, tag), a ``Failed`` subtask followed by a ``Succeed`` one in a later execution of the same
        policy; ``same_digest`` is false when the tag was pushed again in between. Generates every task.
        """
        statuses = ("Succeed", "Failed", "Stopped", "InProgress", "Pending", "Initialized")
        by_status = dict.fromkeys(statuses, 0)
        by_class = dict.fromkeys(FAILURE_CLASSES, 0)
        instances, retries = [], []
        for inst in self._instances:
            execs = []
            pending: dict[tuple[int, str, str], JSON] = {}  # last failure not yet retried
            for ex in inst.executions:  # ascending id: oldest first
                row: JSON = {"id": ex.spec.execution_id, "policy_id": ex.policy_id}
                row["by_status"], row["by_class"] = dict.fromkeys(statuses, 0), dict.fromkeys(FAILURE_CLASSES, 0)
                row["tasks_with_failed_tags"] = 0
                for k in range(ex.spec.n + (self.faults.grow_tasks if ex.growable else 0)):
                    model = make_task(self._pools, self.faults, ex.spec, k)
                    subs = self._subtask_models(inst, ex, model)
                    row["tasks_with_failed_tags"] += any(s.failure_class for s in subs)
                    for sub in subs:
                        d = sub.detail
                        row["by_status"][d["status"]] += 1
                        if sub.failure_class:
                            row["by_class"][sub.failure_class] += 1
                        key = (ex.policy_id, sub.source_repo, d["tag"])
                        here = {"execution_id": ex.spec.execution_id, "task_id": model.detail["id"]}
                        here.update(subtask_id=d["id"], digest=d["digest"])
                        if d["status"] == "Failed":
                            pending[key] = here
                        elif d["status"] == "Succeed" and key in pending:
                            failed = pending[key]
                            if failed["execution_id"] != ex.spec.execution_id:
                                del pending[key]
                                retries.append(
                                    {"instance_id": inst.id, "policy_id": ex.policy_id, "repository": key[1]}
                                    | {"tag": key[2], "failed": failed, "succeeded": here}
                                    | {"same_digest": failed["digest"] == d["digest"]}
                                )
                for status, count in row["by_status"].items():
                    by_status[status] += count
                for cls, count in row["by_class"].items():
                    by_class[cls] += count
                execs.append(row)
            instances.append({"id": inst.id, "executions": execs})
        totals = {"subtasks": sum(by_status.values()), "by_status": by_status, "by_class": by_class}
        totals["retries"] = len(retries)
        return {"seed": self.seed, "scale": self.scale, "instances": instances, "totals": totals, "retries": retries}

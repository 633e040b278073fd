"""Lazy generation of replication tasks (TaskDetail); their subtasks are in :mod:`pipeline.sandbox.subtasks`.

Task ``k`` of an execution is a pure function of the world's seed, the execution (:class:`ExecSpec`) and
``k``: one cheap ``random.Random`` per task draws from pools precomputed once per world (:class:`Pools`),
so a page of 100 tasks costs a few milliseconds and nothing is kept in memory.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline.sandbox.faults import Faults

__all__ = ["BAD_KINDS", "REGISTRY_SECRET", "BadSide", "ExecSpec", "Pools", "TaskModel", "format_time", "make_task"]

JSON = dict[str, Any]

#: Kinds of malformed embedded resource, rotated among bad tasks.
BAD_KINDS = ("invalid_json", "seed_shape", "wrong_type", "null", "empty", "harbor_short", "missing")
#: The registry secret some tasks carry inside ``src_resource``: a pipeline must never store it.
REGISTRY_SECRET = "sandbox-registry-secret-DO-NOT-STORE"  # noqa: S105 - a fake secret, on purpose

_MASK = (1 << 64) - 1
_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))
# Artifacts per task (mean ~3.5) and tags per artifact (mean ~2.6 before the 6% of null lists).
_ART_COUNTS = [1] * 22 + [2] * 20 + [3] * 16 + [4] * 13 + [5] * 10 + [6] * 7 + [7] * 5 + [8] * 4 + [10, 10, 12]
_TAG_COUNTS = [0] * 6 + [1] * 18 + [2] * 30 + [3] * 22 + [4] * 12 + [5] * 6 + [6] * 4 + [8] * 2
_FRACTION_DIGITS = (0, 0, 1, 2, 3, 3, 4, 5, 5, 6, 6, 6, 7, 8, 9, 9)
_NAMESPACES = ("team-a", "team-b", "root", "library", "ml", "infra", "data", "研发", "équipe", "frontend")
_IMAGES = (
    "nginx", "nats", "redis", "postgres", "bert-base", "服务-α", "café", "api-gateway", "prometheus",
    "busybox", "alpine", "python", "node", "golang", "resnet50", "tools/kubectl", "etcd", "grafana",
)  # fmt: skip
_REPO_METADATA: tuple[JSON, ...] = (
    {"public": "false"},
    {"public": "true"},
    {
        "auto_scan": "true",
        "enable_content_trust": "false",
        "prevent_vul": "false",
        "public": "false",
        "retention_id": "2",
        "reuse_sys_cve_allowlist": "true",
        "severity": "low",
    },
)
_LABELS: list[JSON] = [{"id": 3, "name": "prod", "color": "#C92100", "scope": "g"}]
_REGISTRY: JSON = {
    "id": 7,
    "name": "upstream-harbor",
    "type": "harbor",
    "url": "https://harbor.example.invalid",
    "credential": {
        "type": "basic",
        "access_key": "sandbox-registry-ak",
        "access_secret": REGISTRY_SECRET,
    },
    "insecure": False,
    "status": "healthy",
}


class Pools:
    """Repository names, digests and tags drawn by every task of one world."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"swr-sandbox-pools/{seed}")
        repos = [f"{ns}/{img}" for ns in _NAMESPACES for img in _IMAGES]
        rng.shuffle(repos)
        self.repos: list[tuple[str, JSON]] = [
            (name, _REPO_METADATA[i % len(_REPO_METADATA)]) for i, name in enumerate(repos)
        ]
        self.digests = ["sha256:" + hashlib.sha256(f"{seed}/digest/{i}".encode()).hexdigest() for i in range(2048)]
        tags: list[str] = ["latest", "stable", "发布-1.0", "linux"]
        while len(tags) < 640:
            major, minor, patch = rng.randrange(6), rng.randrange(20), rng.randrange(12)
            version = f"{major}.{minor}.{patch}"
            tags.extend((version, f"{version}-linux", f"v{version}-alpine", f"sha-{rng.getrandbits(28):07x}"))
        rng.shuffle(tags)
        self.tags = list(dict.fromkeys(tags))


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """What task generation needs to know about its execution (fixed when the world is built)."""

    instance_index: int
    execution_id: int
    dest_namespace: str
    override: bool
    first_task_id: int
    n: int  # tasks before any growth
    failed: int
    stopped: int
    in_progress: int
    perm_a: int  # task k has status slot (perm_a * k + perm_b) % n
    perm_b: int
    start: float  # epoch seconds of the first task
    seed: int
    registry_task: int  # k that always carries the registry credential, or -1
    #: earlier executions of the same policy (ascending id): where ``Faults.rate_retried_tags`` finds
    #: failed tags to replicate again
    earlier: tuple[ExecSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class BadSide:
    side: str  # "src" | "dst"
    kind: str  # one of BAD_KINDS


@dataclass(frozen=True, slots=True)
class TaskModel:
    """One generated task: the JSON sent, the underlying resources, and what is wrong with it."""

    detail: JSON
    src: JSON
    dst: JSON
    bad: tuple[BadSide, ...]
    start: float
    end: float | None


def _status(spec: ExecSpec, k: int, r: float) -> str:
    if k >= spec.n:
        return "InProgress"
    slot = (spec.perm_a * k + spec.perm_b) % spec.n
    if slot < spec.failed:
        return "Failed"
    slot -= spec.failed
    if slot < spec.stopped:
        return "Stopped"
    slot -= spec.stopped
    if slot < spec.in_progress:
        return "InProgress" if r < 0.8 else ("Pending" if r < 0.93 else "Initialized")
    return "Succeed"


def format_time(t: float, rng: random.Random) -> str:
    """``2021-02-06T08:01:06.04266Z``: 0..9 fraction digits, sometimes a ``+08:00`` offset instead of Z."""
    digits = _FRACTION_DIGITS[int(rng.random() * len(_FRACTION_DIGITS))]
    fraction = f".{int((t % 1) * 1e9):09d}"[: digits + 1] if digits else ""
    if rng.random() < 0.08:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + 8 * 3600)) + fraction + "+08:00"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + fraction + "Z"


def _resource(rtype: str, repo: str, meta: JSON, artifacts: list[JSON], **flags: Any) -> JSON:
    return {
        "type": rtype,
        "metadata": {"repository": {"name": repo, "metadata": meta}, "artifacts": artifacts, "v_tags": None},
        "registry": flags.get("registry"),
        "extended_info": None,
        "deleted": flags["deleted"],
        "is_delete_tag": flags["is_delete_tag"],
        "override": flags["override"],
    }


def _wrong_type(obj: JSON, variant: int) -> JSON:
    bad = dict(obj)
    if variant == 1 and not obj["metadata"]["artifacts"]:
        variant = 0
    if variant == 0:
        bad["metadata"] = {**obj["metadata"], "artifacts": "oops"}
    elif variant == 1:
        artifacts = [dict(a) for a in obj["metadata"]["artifacts"]]
        artifacts[0]["tags"] = "latest"
        bad["metadata"] = {**obj["metadata"], "artifacts": artifacts}
    else:
        bad["metadata"] = []
    return bad


def _retried(pools: Pools, faults: Faults, spec: ExecSpec, k: int) -> tuple[str, str, JSON, list[JSON]] | None:
    """The resource of a failed task of an earlier execution of the policy, for task ``k`` to replicate again.

    Draws from its own stream (never the task's), so the knob at 0 leaves every task byte-identical.
    """
    rng = random.Random(f"retry/{spec.seed}/{k}")
    if rng.random() >= faults.rate_retried_tags:
        return None
    earlier = spec.earlier[int(rng.random() * len(spec.earlier))]
    if not earlier.failed:
        return None
    # invert the status permutation: the task whose status slot is a "Failed" one
    slot = int(rng.random() * earlier.failed)
    j = ((slot - earlier.perm_b) * pow(earlier.perm_a, -1, earlier.n)) % earlier.n
    failed = make_task(pools, faults, earlier, j)
    if (
        failed.detail["operation"] != "copy"
        or failed.dst["metadata"]["artifacts"] == failed.src["metadata"]["artifacts"]
    ):
        return None  # nothing failed to reach the destination
    src = failed.src
    return (
        src["type"],
        src["metadata"]["repository"]["name"],
        src["metadata"]["repository"]["metadata"],
        src["metadata"]["artifacts"],
    )


def make_task(pools: Pools, faults: Faults, spec: ExecSpec, k: int) -> TaskModel:
    """Task ``k`` (0-based) of the execution ``spec``; deterministic."""
    rng = random.Random((spec.seed ^ (k * 0x9E3779B97F4A7C15)) & _MASK)
    rnd = rng.random
    # Fault draws come first and always, so a rate change flips a threshold and nothing else.
    r_bad, r_kind, r_side, r_obj, r_obj_side, r_reg = rnd(), rnd(), rnd(), rnd(), rnd(), rnd()
    status = _status(spec, k, rnd())
    r = rnd()
    operation = "copy" if r < 0.92 else ("deletion" if r < 0.98 else "tag deletion")
    r = rnd()
    rtype = "artifact" if r < 0.9 else ("image" if r < 0.97 else "chart")
    atype = "CHART" if rtype == "chart" else "IMAGE"
    repo, meta = pools.repos[int(rnd() * len(pools.repos))]
    n_art = _ART_COUNTS[int(rnd() * len(_ART_COUNTS))]
    digests, tag_pool = pools.digests, pools.tags
    d0 = int(rnd() * len(digests))
    ti = int(rnd() * (len(tag_pool) - 100))
    artifacts: list[JSON] = []
    for j in range(n_art):
        tags: list[str] | None = None
        if rnd() >= 0.06:
            nt = _TAG_COUNTS[int(rnd() * len(_TAG_COUNTS))]
            tags = tag_pool[ti : ti + nt]
            ti += nt
        labels = _LABELS if rnd() < 0.1 else None
        artifacts.append({"type": atype, "digest": digests[(d0 + j) % len(digests)], "labels": labels, "tags": tags})
    dst_artifacts = artifacts
    if status != "Succeed" and operation == "copy" and rnd() < 0.6:
        keep = int(rnd() * n_art)
        dst_artifacts = artifacts[:keep]
        partial_tags = artifacts[keep]["tags"]
        if partial_tags:
            dst_artifacts.append({**artifacts[keep], "tags": partial_tags[: len(partial_tags) // 2]})
    if faults.rate_retried_tags and spec.earlier and status == "Succeed" and operation == "copy":
        retried = _retried(pools, faults, spec, k)
        if retried is not None:
            rtype, repo, meta, artifacts = retried
            n_art, dst_artifacts = len(artifacts), artifacts
    is_bad = r_bad < faults.rate_bad_resource and k != spec.registry_task
    registry = _REGISTRY if not is_bad and (k == spec.registry_task or r_reg < 0.004) else None
    flags = {"deleted": operation != "copy", "is_delete_tag": operation == "tag deletion"}
    dst_repo = f"{spec.dest_namespace}/{repo.rsplit('/', 1)[-1]}"
    src = _resource(rtype, repo, meta, artifacts, registry=registry, override=False, **flags)
    dst = _resource(rtype, dst_repo, meta, dst_artifacts, override=spec.override, **flags)

    start = spec.start + k * 0.7 + rnd() * 5.0
    end = start + 1.0 + rnd() * 300.0 if status in ("Succeed", "Failed", "Stopped") else None
    task_id = spec.first_task_id + k
    job_id = f"{rng.getrandbits(96):024x}"
    start_s = format_time(start, rng)
    end_s = format_time(end, rng) if end is not None else ("" if rnd() < 0.5 else None)

    src_value: Any = _dumps(src)
    dst_value: Any = _dumps(dst)
    bad: tuple[BadSide, ...] = ()
    omit: set[str] = set()
    if is_bad:
        kind = BAD_KINDS[int(r_kind * len(BAD_KINDS))]
        side = "src" if r_side < 0.5 else "dst"
        if kind == "seed_shape":  # the vendor's own example: src swallows dst and operation
            src_value = f'{src_value}", "dst_resource":"{dst_value}", "operation":"{operation}'
            omit = {"dst_resource", "operation"}
            bad = (BadSide("src", kind), BadSide("dst", kind))
        else:
            if kind == "missing":
                side = "src"
                omit = {"src_resource"}
            value: Any
            text = src_value if side == "src" else dst_value
            if kind == "invalid_json":
                value = text[: len(text) // 2]
            elif kind == "wrong_type":
                value = _dumps(_wrong_type(src if side == "src" else dst, int(r_side * 1000) % 3))
            elif kind == "null":
                value = None
            elif kind == "empty":
                value = ""
            elif kind == "harbor_short":
                value = f"{repo} [{n_art} item(s) in total]"
            else:
                value = None
            if side == "src":
                src_value = value
            else:
                dst_value = value
            bad = (BadSide(side, kind),)
    elif r_obj < faults.rate_object_resource:
        which = int(r_obj_side * 3)
        if which != 1:
            src_value = src
        if which != 0:
            dst_value = dst

    detail: JSON = {
        "id": task_id,
        "execution_id": spec.execution_id,
        "resource_type": rtype,
        "src_resource": src_value,
        "dst_resource": dst_value,
        "operation": operation,
        "job_id": job_id,
        "status": status,
        "StatusRevision": int(end if end is not None else start),
        "start_time": start_s,
        "end_time": end_s,
    }
    for key in omit:
        del detail[key]
    if end_s is None:
        del detail["end_time"]
    return TaskModel(detail, src, dst, bad, start, end)

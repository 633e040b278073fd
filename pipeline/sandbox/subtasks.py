"""Per-tag subtasks (SubtaskDetail) of a generated task, with Harbor-style failure texts.

A tag present on the destination resource is ``Succeed``; a tag that did not reach it follows its task:
``Failed`` (with a failure text drawn from :data:`FAILURE_TEXTS`), ``Stopped``, or still running. Every
draw comes from a ``random.Random`` seeded by the task's ``job_id``, so subtasks never disturb tasks.
"""

from __future__ import annotations

import random
from typing import Any

from pipeline.sandbox.tasks import TaskModel, format_time

__all__ = ["FAILURE_CLASSES", "FAILURE_TEXTS", "SubtaskModel", "subtasks"]

JSON = dict[str, Any]

#: Failure texts of Harbor-style replication jobs by class. Placeholders: ``{src}``/``{dst}`` (repository
#: with namespace), ``{tag}``, ``{digest}``, ``{host}`` (the destination registry), ``{ip}``, ``{port}``,
#: ``{size}``. The ``unknown`` class holds texts no classifier should be able to place (one is empty).
FAILURE_TEXTS: dict[str, tuple[str, ...]] = {
    "auth": (
        "failed to pull {src}:{tag}: unauthorized: authentication required",
        "failed to push manifest {dst}:{tag}: unauthorized: unauthorized to access repository: {dst}, "
        "action: push: unauthorized to access repository: {dst}, action: push",
        'http status code: 401, body: {{"errors":[{{"code":"UNAUTHORIZED","message":"invalid credential"}}]}}',
        "denied: requested access to the resource is denied",
        'http status code: 403, body: {{"errors":[{{"code":"FORBIDDEN","message":"forbidden"}}]}}',
    ),
    "not_found": (
        "failed to pull manifest {src}:{tag}: manifest unknown: manifest unknown",
        'http status code: 404, body: {{"errors":[{{"code":"NOT_FOUND","message":"repository {src} not found"}}]}}',
        "failed to copy blob {digest}: blob unknown: blob unknown to registry",
        "artifact {src}@{digest} not found",
    ),
    "network": (
        "dial tcp {ip}:443: i/o timeout",
        'Get "https://{host}/v2/": read tcp 192.168.0.{port}->{ip}:443: read: connection reset by peer',
        'Get "https://{host}/v2/": net/http: TLS handshake timeout',
        'Head "https://{host}/v2/{dst}/blobs/{digest}": dial tcp: lookup {host}: no such host',
        'Put "https://{host}/v2/{dst}/manifests/{tag}": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    ),
    "quota": (
        "http status code: 429, body: 429 Too Many Requests",
        "toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating",
        'http status code: 412, body: {{"errors":[{{"code":"DENIED","message":"Quota exceeded when processing '
        "the request of adding {size} MiB of storage resource, which when updated to current usage will "
        'exceed the configured upper limit"}}]}}',
        "failed to push blob {digest}: quota exceeded: the namespace has reached its storage quota",
    ),
    "destination": (
        "failed to push manifest {dst}:{tag}: http status code: 500, body: "
        "500 Internal Server Error from the destination registry",
        "failed to push blob {digest}: blob upload unknown: blob upload unknown to registry",
        "http status code: 502, body: <html><head><title>502 Bad Gateway</title></head></html>",
        "http status code: 503, body: the destination registry is in maintenance mode, please retry later",
    ),
    "unknown": (
        "",
        "unexpected EOF",
        "job exited with code 1",
        "failed to copy artifact: error code 0x2f1",
    ),
}
#: Failure classes, in the order of :data:`FAILURE_TEXTS`.
FAILURE_CLASSES = tuple(FAILURE_TEXTS)
# How often a task's failing tags fail for each class; an unhealthy destination shifts weight to network.
_WEIGHTS = (0.16, 0.14, 0.26, 0.14, 0.20, 0.10)
_WEIGHTS_UNHEALTHY = (0.08, 0.06, 0.60, 0.06, 0.14, 0.06)


class SubtaskModel:
    """One subtask: the JSON sent and the failure class of its text (None unless ``Failed``)."""

    __slots__ = ("detail", "failure_class", "source_repo")

    def __init__(self, detail: JSON, failure_class: str | None, source_repo: str) -> None:
        self.detail = detail
        self.failure_class = failure_class
        self.source_repo = source_repo


def _failure(rng: random.Random, cls: str, model: TaskModel, digest: str, tag: str, host: str) -> str:
    texts = FAILURE_TEXTS[cls]
    template = texts[int(rng.random() * len(texts))]
    return template.format(
        src=model.src["metadata"]["repository"]["name"],
        dst=model.dst["metadata"]["repository"]["name"],
        tag=tag,
        digest=digest,
        host=host,
        ip=f"10.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        port=f"{rng.randrange(2, 254)}:{rng.randrange(32768, 61000)}",
        size=f"{rng.uniform(1, 900):.1f}",
    )


def subtasks(
    model: TaskModel, dest_host: str = "registry.example.invalid", unhealthy: bool = False
) -> list[SubtaskModel]:
    """One subtask per tag of the source resource (untagged artifacts have none), in source order.

    ``dest_host`` appears in network failure texts; ``unhealthy`` (the destination registry's status)
    makes network failures the most likely class.
    """
    detail = model.detail
    rng = random.Random(f"{detail['job_id']}/sub")
    source = model.src["metadata"]["repository"]["name"]
    namespace, _, repository = source.partition("/")
    reached = {(a["digest"], t) for a in model.dst["metadata"]["artifacts"] for t in (a["tags"] or ()) if t is not None}
    status = detail["status"]
    weights = _WEIGHTS_UNHEALTHY if unhealthy else _WEIGHTS
    # one root cause for most failing tags of a task, some tags fail for another reason
    main_class = rng.choices(FAILURE_CLASSES, weights)[0]
    end = model.end
    span = (end - model.start) if end is not None else 60.0
    out: list[SubtaskModel] = []
    for artifact in model.src["metadata"]["artifacts"]:
        for tag in artifact["tags"] or ():
            digest = artifact["digest"]
            ok = (digest, tag) in reached
            start = model.start + rng.random() * span * 0.5
            cls: str | None = None
            text = ""
            sub_end: float | None
            if ok or status == "Succeed":
                sub_status, sub_end = "Succeed", start + rng.random() * span * 0.5
            elif status == "Failed":
                sub_status, sub_end = "Failed", start + rng.random() * span * 0.5
                cls = main_class if rng.random() < 0.8 else rng.choices(FAILURE_CLASSES, weights)[0]
                text = _failure(rng, cls, model, digest, tag, dest_host)
            elif status == "Stopped":
                sub_status, sub_end, text = "Stopped", end, "stopped by user"
            else:  # InProgress, Pending, Initialized: the tag is not there yet
                sub_status, sub_end = status, None
            out.append(
                SubtaskModel(
                    {
                        "id": detail["id"] * 1000 + len(out),
                        "job_id": f"{rng.getrandbits(96):024x}",
                        "namespace": namespace,
                        "repository": repository,
                        "tag": tag,
                        "digest": digest,
                        "status": sub_status,
                        "status_text": text,
                        "start_time": format_time(start, rng),
                        "end_time": format_time(sub_end, rng) if sub_end is not None else "",
                    },
                    cls,
                    source,
                )
            )
    return out

"""Replication targets (SDK ``Registry``) of each sandbox instance, and their list/show queries.

Every instance has registry 0 (itself, the ``src_registry`` of its policies), registries 1..3 (the
``dest_registry`` of its policies 0..2) and sometimes one or two unused ones. Each one carries a
``credential`` whose ``access_secret`` contains :data:`~pipeline.sandbox.tasks.REGISTRY_SECRET`: a
pipeline must never store it. Randomness comes from its own seed string, never from the world's stream.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from pipeline.sandbox.tasks import REGISTRY_SECRET

__all__ = ["ORDER_COLUMNS", "build_registries", "query_registries"]

JSON = dict[str, Any]

#: ``order_column`` values accepted by the list endpoint (the SDK's documented ones).
ORDER_COLUMNS = ("created_at", "updated_at", "name")
_REGIONS = ("cn-north-4", "cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3")
# (type, name stem, url template) of destination registries, rotated by instance and policy
_KINDS = (
    ("swr-pro-internal", "ee-mirror", "https://swr-ee-mirror-{tag}.swr.{region}.myhuaweicloud.com"),
    ("swr-pro", "harbor", "https://harbor-{tag}.example.invalid"),
    ("huawei-SWR", "swr-basic", "https://swr.{region}.myhuaweicloud.com"),
)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _credential(iid: str, rid: int) -> JSON:
    return {
        "type": "basic",
        "access_key": f"sandbox-registry-ak-{rid}",
        "access_secret": f"{REGISTRY_SECRET}-{iid[:8]}-{rid}",
    }


def build_registries(seed: int, index: int, instance: JSON, created: float) -> tuple[JSON, ...]:
    """The registries of instance ``index`` (``instance``: its body), ascending id.

    Per instance, the destination of policy ``(index + 1) % 3`` is ``unhealthy``; an unused extra
    registry is unhealthy half the time.
    """
    iid = instance["id"]
    rng = random.Random(f"swr-sandbox-registries/{seed}/{iid}")
    local = {
        "id": 0,
        "name": f"{instance['name']}-local",
        "description": "this instance: the source of its replication policies",
        "region_id": "cn-north-4",
        "instance_id": iid,
        "type": "swr-pro-internal",
        "url": instance["access_address"],
        "credential": _credential(iid, 0),
        "insecure": False,
        "status": "healthy",
        "created_at": _iso(created),
        "updated_at": _iso(created),
    }
    out = [local]
    n = 3 + (rng.random() < 0.5) + (rng.random() < 0.25)
    for rid in range(1, n + 1):
        rtype, stem, url = _KINDS[(index + rid - 1) % len(_KINDS)]
        region = _REGIONS[rng.randrange(len(_REGIONS))]
        tag = f"{rng.getrandbits(24):06x}"
        used = rid <= 3
        unhealthy = rid - 1 == (index + 1) % 3 if used else rng.random() < 0.5
        made = created + rng.uniform(1, 60) * 86400
        out.append(
            {
                "id": rid,
                "name": f"{stem}-{tag}",
                "description": f"destination of policy {rid - 1}" if used else "not used by any policy",
                "region_id": region,
                "instance_id": str(uuid.UUID(int=rng.getrandbits(128), version=4))
                if rtype == "swr-pro-internal"
                else "",
                "type": rtype,
                "url": url.format(tag=tag, region=region),
                "credential": _credential(iid, rid),
                "insecure": rtype == "swr-pro" and rng.random() < 0.5,
                "status": "unhealthy" if unhealthy else "healthy",
                "created_at": _iso(made),
                "updated_at": _iso(made + rng.uniform(0, 90) * 86400),
            }
        )
    return tuple(out)


def query_registries(
    registries: tuple[JSON, ...], name: str | None, rtype: str | None, order_column: str, order_type: str
) -> list[JSON]:
    """The list endpoint's rows: ``name`` is a substring match, ``type`` exact; sorted by ``order_column``."""
    rows = [r for r in registries if (not name or name in r["name"]) and (not rtype or r["type"] == rtype)]
    rows.sort(key=lambda r: (r[order_column], r["id"]), reverse=order_type == "desc")
    return rows

"""Routing table, parameter validation and the bodies of the sandbox's plain API endpoints.

Everything here is a pure function of the world and the request; the task list (with its page cache and
growth), auth, faults and statistics stay in :mod:`pipeline.sandbox.server`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline.sandbox.registries import ORDER_COLUMNS, query_registries
from pipeline.sandbox.world import World

__all__ = ["KINDS", "LIST_KEYS", "ROUTES", "ApiError", "dumps", "error_body", "int_param", "paging", "plain_body"]

JSON = dict[str, Any]
_P = r"^/v2/(?P<project>[^/]+)/instances"
_ID = rf"{_P}/(?P<iid>[^/]+)/replication"
ROUTES = (
    ("instances", re.compile(rf"{_P}/?$")),
    ("policies", re.compile(rf"{_ID}/policies/?$")),
    ("executions", re.compile(rf"{_ID}/executions/?$")),
    ("tasks", re.compile(rf"{_ID}/executions/(?P<eid>[^/]+)/tasks/?$")),
    ("subtasks", re.compile(rf"{_ID}/executions/(?P<eid>[^/]+)/tasks/(?P<tid>[^/]+)/subtasks/?$")),
    ("registries", re.compile(rf"{_P}/(?P<iid>[^/]+)/registries/?$")),
    ("registry", re.compile(rf"{_P}/(?P<iid>[^/]+)/registries/(?P<rid>[^/]+)/?$")),
)
#: The key holding the rows of each list endpoint.
LIST_KEYS = {
    "instances": "instances",
    "policies": "policies",
    "executions": "executions",
    "tasks": "tasks",
    "subtasks": "sub_tasks",
    "registries": "registries",
}
#: Every request kind counted in the statistics (``registry`` is the show endpoint).
KINDS = (*LIST_KEYS, "registry")
_ERROR_CODES = {
    400: "SWR.0400",
    401: "APIGW.0301",
    404: "SWR.0404",
    405: "SWR.0405",
    429: "APIGW.0308",
    500: "SWR.0500",
    502: "SWR.0502",
    503: "SWR.0503",
}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def error_body(status: int, message: str) -> bytes:
    code = _ERROR_CODES.get(status, f"SWR.0{status}")
    return dumps({"error_code": code, "error_msg": message, "encoded_authorization_message": ""})


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ApiError(400, f"invalid parameter {name}: must be a non-negative integer")
    return int(raw)


def paging(params: dict[str, str], default_limit: int) -> tuple[int, int]:
    limit = int_param(params, "limit", default_limit)
    offset = int_param(params, "offset", 0)
    assert limit is not None and offset is not None
    if not 1 <= limit <= 100:
        raise ApiError(400, "invalid parameter limit: must be between 1 and 100")
    if offset % limit:
        raise ApiError(400, "invalid parameter offset: must be 0 or a multiple of limit")
    return offset, limit


def check_registry_params(params: dict[str, str]) -> None:
    """400 on an ``order_column`` or ``order_type`` the API does not know (checked before any fault)."""
    if params.get("order_column", "created_at") not in ORDER_COLUMNS:
        raise ApiError(400, f"invalid parameter order_column: must be one of {', '.join(ORDER_COLUMNS)}")
    if params.get("order_type", "desc") not in ("asc", "desc"):
        raise ApiError(400, "invalid parameter order_type: must be asc or desc")


def plain_body(
    world: World, kind: str, ids: dict[str, Any], params: dict[str, str], offset: int, limit: int, project: str
) -> JSON:
    """The body of every endpoint but the task list: a page of rows and their total, or one registry."""
    iid: str = ids["iid"] or ""
    rows: list[JSON]
    if kind == "instances":
        rows = [{**i, "project_id": project} for i in world.instances(params.get("status"))]
    elif kind == "policies":
        rows = world.policies(iid, params.get("name"))
    elif kind == "executions":
        rows = world.executions(iid, ids["policy_id"])
    elif kind == "subtasks":
        subs = world.subtasks(iid, ids["eid"], ids["tid"])
        if subs is None:
            raise ApiError(404, "the task does not exist")
        status = params.get("status")
        rows = [s for s in subs if not status or s["status"] == status]
    elif kind == "registries":
        order = params.get("order_column", "created_at"), params.get("order_type", "desc")
        rows = query_registries(world.registries(iid), params.get("name"), params.get("type"), *order)
    else:
        registry = world.registry(iid, ids["rid"])
        if registry is None:
            raise ApiError(404, "the registry does not exist")
        return registry
    return {LIST_KEYS[kind]: rows[offset : offset + limit], "total": len(rows)}

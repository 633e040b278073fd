"""A small SWR API on loopback that serves exactly the records a test gives it, odd values included.

The sandbox (``pipeline.sandbox``) builds a plausible world; this one serves a hostile one verbatim: ids of
any type and text, counters out of range, records that are not objects. Listings page by ``offset`` and
``limit`` and report ``total`` as the number of records.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from conftest import clean_env

TOKEN = "tok-SECRET-123456"


class World:
    """What the fake API serves: instances; per instance id, policies and executions; per (instance id,
    execution id as the URL spells it), tasks."""

    def __init__(self) -> None:
        self.instances: list[Any] = []
        self.policies: dict[str, list[Any]] = {}
        self.executions: dict[str, list[Any]] = {}
        self.tasks: dict[tuple[str, str], list[Any]] = {}
        self.requests: list[str] = []

    def add_instance(self, iid: Any, executions: list[Any], policies: list[Any] | None = None) -> None:
        self.instances.append({"id": iid, "name": f"name of {iid}", "status": "Running"})
        self.policies[str(iid)] = policies or []
        self.executions[str(iid)] = executions

    def listing(self, path: str) -> tuple[str, list[Any]] | None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) == 3 and parts[2] == "instances":
            return "instances", self.instances
        if len(parts) == 6 and parts[4] == "replication" and parts[5] in ("policies", "executions"):
            return parts[5], getattr(self, parts[5]).get(parts[3], [])
        if len(parts) == 8 and parts[7] == "tasks":
            return "tasks", self.tasks.get((parts[3], parts[6]), [])
        return None


def execution(eid: Any, **fields: Any) -> dict[str, Any]:
    return {"id": eid, "policy_id": 1, "status": "Succeed", "trigger": "manual",
            "created_at": "2026-11-02T03:04:05Z", "total": 2, "succeed": 2, "failed": 0, **fields}  # fmt: skip


def tasks(eid: int, n: int = 2) -> list[dict[str, Any]]:
    resource = json.dumps({"repository": "lib/app", "artifacts": [{"digest": f"sha256:{eid:064x}", "tags": ["v1"]}]})
    return [
        {"id": eid * 100 + k, "execution_id": eid, "status": "Succeed", "operation": "copy", "job_id": f"j{k}",
         "resource_type": "artifact", "src_resource": resource, "dst_resource": resource,
         "start_time": "2026-11-02T03:04:05Z", "end_time": "2026-11-02T03:04:06Z"}
        for k in range(n)
    ]  # fmt: skip


def handler(world: World) -> type[BaseHTTPRequestHandler]:
    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            world.requests.append(url.path)
            found = world.listing(url.path)
            if found is None:
                status, body = 404, {"error_code": "SWR.0404", "error_msg": "not found"}
            else:
                key, rows = found
                query = dict(parse_qsl(url.query))
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
                status, body = 200, {key: rows[offset : offset + limit], "total": len(rows)}
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    return Api


@contextmanager
def serve(world: World) -> Iterator[str]:
    """The fake API on a free loopback port: yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(world))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def env(url: str, data_dir: Any, **extra: str) -> dict[str, str]:
    return clean_env(
        SWR_ENDPOINT=url, SWR_PROJECT_ID="p", SWR_AUTH_TOKEN=TOKEN, SWR_ETL_DATA_DIR=str(data_dir), **extra
    )

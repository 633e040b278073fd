"""The sandbox HTTP server: SWR Enterprise Edition's replication API on loopback.

API endpoints (GET, under ``/v2/{project_id}/``): ``instances``, ``instances/{iid}/replication/policies``,
``.../replication/executions``, ``.../executions/{eid}/tasks``, ``.../tasks/{tid}/subtasks``,
``instances/{iid}/registries`` and ``.../registries/{rid}`` (routes in :mod:`pipeline.sandbox.routes`);
plus ``POST /v3/auth/tokens`` (IAM password login). Helpers without auth and without faults:

* ``GET /_sandbox/truth``: :meth:`World.truth` as JSON (computed once, cached);
* ``GET /_sandbox/subtask-truth``: :meth:`World.subtask_truth` as JSON (computed once, cached);
* ``GET /_sandbox/stats``: :meth:`SandboxServer.stats`;
* ``POST /_sandbox/reset-stats``: zero the statistics.

``stats()["tasks_pages"]`` counts, per ``"<iid>/<eid>"`` and offset, the task pages answered 200 and
delivered whole (429/5xx answers and cut connections are not counted: a client rightly asks again).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pipeline.sandbox.auth import Authenticator, AuthError
from pipeline.sandbox.faults import FaultDecision, FaultInjector, format_retry_after
from pipeline.sandbox.routes import KINDS, ROUTES, check_registry_params, int_param, paging, plain_body
from pipeline.sandbox.routes import ApiError as _ApiError
from pipeline.sandbox.routes import dumps as _dumps
from pipeline.sandbox.routes import error_body as _error_body
from pipeline.sandbox.settings import DEFAULT_CONFIG, SandboxConfig
from pipeline.sandbox.world import World

__all__ = ["SandboxServer"]

logger = logging.getLogger(__name__)

JSON = dict[str, Any]


@dataclass
class _Response:
    status: int
    payload: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    fault: FaultDecision | None = None

    @classmethod
    def error(cls, status: int, message: str) -> _Response:
        return cls(status, _error_body(status, message))


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_kind: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.status: Counter[str] = Counter()
            self.tasks_pages: dict[str, Counter[str]] = {}

    def record(self, kind: str | None, resp: _Response, page: str | None, offset: int) -> None:
        with self._lock:
            self.requests += 1
            if kind:
                self.by_kind[kind] += 1
            if resp.fault:
                self.faults[resp.fault.kind] += 1
            self.status[str(resp.status)] += 1
            cut = resp.fault is not None and resp.fault.kind == "cut"
            if page and resp.status == 200 and not cut:
                self.tasks_pages.setdefault(page, Counter())[str(offset)] += 1

    def snapshot(self) -> JSON:
        with self._lock:
            return {
                "requests": self.requests,
                "by_kind": {k: self.by_kind[k] for k in (*KINDS, "iam")},
                "faults": {k: self.faults[k] for k in ("429", "5xx", "cut", "slow", "html")},
                "status": dict(sorted(self.status.items())),
                "tasks_pages": {page: dict(offsets) for page, offsets in self.tasks_pages.items()},
            }


class _App:
    """Everything but the socket: routing, auth, validation, faults, statistics."""

    def __init__(self, config: SandboxConfig, world: World) -> None:
        self.config = config
        self.world = world
        self.auth = Authenticator(config)
        self.injector = FaultInjector(config.seed, config.faults)
        self.stats = _Stats()
        self._truths: dict[str, bytes] = {}
        self._truth_lock = threading.Lock()
        self._page_cache: dict[tuple[str, int, int, int, int], bytes] | None = {} if config.cache_pages else None

    def truth_bytes(self, which: str = "truth") -> bytes:
        """``truth`` or ``subtask-truth`` of the world as JSON, computed once."""
        with self._truth_lock:
            if which not in self._truths:
                truth = self.world.truth() if which == "truth" else self.world.subtask_truth()
                self._truths[which] = _dumps(truth)
            return self._truths[which]

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        split = urlsplit(target)
        path = unquote(split.path)
        if path.startswith("/_sandbox/"):
            return self._helper(method, path)
        # latency is the time the server takes to answer: the work below counts towards it, so eight
        # requests arriving together are all answered after ``latency_ms``, not one after the other
        deadline = time.monotonic() + self.config.faults.latency_ms / 1000.0
        kind: str | None = None
        page: str | None = None
        offset = 0
        try:
            if path.rstrip("/") == "/v3/auth/tokens":
                kind = "iam"
                resp = self._iam(method, body)
            else:
                route = next(((k, m) for k, rx in ROUTES if (m := rx.match(path))), None)
                if route is None:
                    raise _ApiError(404, "the requested resource does not exist")
                kind, match = route
                if method != "GET":
                    raise _ApiError(405, f"method {method} is not allowed here")
                self.auth.check(method, split.path, split.query, headers, body)
                query = parse_qsl(split.query, keep_blank_values=True)
                resp, page, offset = self._api(route[0], match.groupdict(), dict(query), path, query)
        except AuthError as exc:
            resp = _Response.error(exc.status, f"Incorrect IAM authentication information: {exc.reason}")
        except _ApiError as exc:
            resp = _Response.error(exc.status, exc.message)
        self.stats.record(kind, resp, page, offset)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        return resp

    def _helper(self, method: str, path: str) -> _Response:
        if method == "GET" and path in ("/_sandbox/truth", "/_sandbox/subtask-truth"):
            return _Response(200, self.truth_bytes(path.rsplit("/", 1)[1]))
        if method == "GET" and path == "/_sandbox/stats":
            return _Response(200, _dumps(self.stats.snapshot()))
        if method == "POST" and path == "/_sandbox/reset-stats":
            self.stats.reset()
            return _Response(200, _dumps({"reset": True}))
        return _Response.error(404, "unknown sandbox helper")

    def _iam(self, method: str, body: bytes) -> _Response:
        if method != "POST":
            raise _ApiError(405, "use POST to obtain a token")
        issued = self.auth.issue_token(body)
        cfg = self.config
        payload = {
            "token": {
                "expires_at": issued.expires_at,
                "issued_at": issued.issued_at,
                "methods": ["password"],
                "project": {"id": cfg.project_id, "name": cfg.project_id},
                "user": {"name": cfg.iam_username, "domain": {"name": cfg.iam_domain}},
            }
        }
        return _Response(201, _dumps(payload), [("X-Subject-Token", issued.token)])

    def _api(
        self, kind: str, ids: dict[str, str], params: dict[str, str], path: str, query: list[tuple[str, str]]
    ) -> tuple[_Response, str | None, int]:
        world = self.world
        if ids["project"] != self.config.project_id:
            raise _ApiError(404, "the project does not exist")
        offset, limit = (0, 1) if kind == "registry" else paging(params, 100 if kind == "instances" else 10)
        iid = ids.get("iid")
        if iid is not None and not world.has_instance(iid):
            raise _ApiError(404, "the instance does not exist")
        found: dict[str, Any] = {"iid": iid}
        if "eid" in ids:
            found["eid"] = eid = int_param(ids, "eid")
            if eid is None or iid is None or not world.has_execution(iid, eid):
                raise _ApiError(404, "the execution does not exist")
        if "tid" in ids:
            found["tid"] = int_param(ids, "tid")
        if "rid" in ids:
            found["rid"] = rid = int_param(ids, "rid")
            if rid is None or iid is None or world.registry(iid, rid) is None:
                raise _ApiError(404, "the registry does not exist")
        if kind == "registries":
            check_registry_params(params)
        found["policy_id"] = int_param(params, "policy_id") if kind == "executions" else None

        fault = self.injector.decide("GET", path, query)
        if fault is not None and fault.kind == "429":
            resp = _Response.error(429, "The throttling threshold has been reached")
            resp.headers.append(("Retry-After", format_retry_after(self.config.faults.retry_after_s)))
            resp.fault = fault
            return resp, None, offset
        if fault is not None and fault.kind == "5xx":
            resp = _Response.error(fault.status, "internal error, please retry later")
            resp.fault = fault
            return resp, None, offset
        if fault is not None and fault.kind == "html":
            resp = _Response(200, b"<html><body><h1>Proxy authentication required</h1></body></html>", fault=fault)
            return resp, None, offset

        if kind == "tasks":
            eid = found["eid"]
            assert iid is not None and eid is not None
            total = world.task_list_request(iid, eid)
            request_no = world.list_requests(iid, eid) if self.config.faults.shuffle_tasks else 0
            key = (iid, eid, offset, limit, total)
            payload = self._page_cache.get(key) if self._page_cache is not None and not request_no else None
            if payload is None:
                tasks = world.tasks(iid, eid, offset, limit, total, request_no)
                payload = _dumps({"tasks": tasks, "total": total})
                if self._page_cache is not None:
                    self._page_cache[key] = payload
            return _Response(200, payload, fault=fault), f"{iid}/{eid}", offset
        body = plain_body(world, kind, found, params, offset, limit, self.config.project_id)
        return _Response(200, _dumps(body), fault=fault), None, offset


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        super().__init__(address, _Handler)
        self.app = app


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SWRSandbox/1.0"
    # headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the client's
    # delayed ACK add 40 ms to every small response, as no production HTTP server would
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr lines; :meth:`_serve` logs at DEBUG."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started = time.perf_counter()
        app = self.server.app if isinstance(self.server, _HTTPServer) else None
        assert app is not None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            resp = app.handle(self.command, self.path, headers, body)
        except Exception:
            logger.exception("sandbox: internal error on %s %s", self.command, urlsplit(self.path).path)
            resp = _Response.error(500, "internal error")
        fault = resp.fault
        try:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay_s)
            self.send_response(resp.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(resp.payload)))
            self.send_header("X-Request-Id", str(uuid.uuid4()))
            for name, value in resp.headers:
                self.send_header(name, value)
            self.end_headers()
            if fault is not None and fault.kind == "cut":
                self.wfile.write(resp.payload[: len(resp.payload) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self.wfile.write(resp.payload)
        except OSError:  # the client went away
            self.close_connection = True
        logger.debug(
            "sandbox %s %s -> %d%s in %.1f ms",
            self.command,
            urlsplit(self.path).path,
            resp.status,
            f" (fault {fault.kind})" if fault else "",
            (time.perf_counter() - started) * 1000,
        )


class SandboxServer:
    """A real HTTP server on loopback behaving like SWR Enterprise Edition (see the module docstring)."""

    def __init__(
        self,
        config: SandboxConfig = DEFAULT_CONFIG,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """``tls``: (certificate file, key file) to serve HTTPS instead of plain HTTP."""
        self.config = config
        self._tls = tls
        self.world = World(config.seed, config.scale, config.faults)
        self._app = _App(config, self.world)
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _bind(self) -> _HTTPServer:
        if self._httpd is None:
            self._httpd = _HTTPServer(self._address, self._app)
            if self._tls is not None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*self._tls)
                self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            logger.info("sandbox listening on %s (seed=%d, scale=%g)", self.url, self.config.seed, self.config.scale)
        return self._httpd

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the sandbox server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._address[0]}:{self.port}"

    def start(self) -> SandboxServer:
        """Serve in a background daemon thread; returns self."""
        if self._thread is not None:
            return self
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="swr-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`shutdown` (or :meth:`stop`) is called."""
        httpd = self._bind()
        try:
            httpd.serve_forever(poll_interval=0.1)
        finally:
            httpd.server_close()

    def shutdown(self) -> None:
        """Make :meth:`serve_forever` return (call from another thread)."""
        if self._httpd is not None:
            self._httpd.shutdown()

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        if thread is not None:
            httpd.shutdown()
            thread.join(timeout=5)
        httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> JSON:
        """Requests, by kind, faults, statuses and task pages served (see the module docstring)."""
        return self._app.stats.snapshot()

    def reset_stats(self) -> None:
        self._app.stats.reset()

    def truth(self) -> JSON:
        """The world's truth (cached, same as ``GET /_sandbox/truth``)."""
        result: JSON = json.loads(self._app.truth_bytes())
        return result

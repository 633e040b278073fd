"""The client against a scripted HTTP server on loopback: classification, retries, auth, secrets."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tenacity import RetryCallState

from pipeline.api.answers import parse_retry_after
from pipeline.api.auth import IamAuth
from pipeline.api.client import AdaptiveLimiter, BackoffWait, SwrClient
from pipeline.config import Credentials, Settings
from pipeline.errors import ApiError, AuthError, BadResponseError, RetryableApiError, TransportError

TOKEN = "tok-SECRET-0123456789"


class Script:
    """Responses to hand out in order: (status, headers, body bytes) or "cut" to drop the connection."""

    def __init__(self) -> None:
        self.responses: list[tuple[int, dict[str, str], bytes] | str] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def add(self, status: int, body: object = None, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        self.responses.append((status, {"X-Request-Id": f"req-{len(self.responses)}", **(headers or {})}, raw))


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with script.lock:
                script.requests.append((self.command, self.path, dict(self.headers), body))
                item = script.responses.pop(0) if script.responses else (500, {}, b"{}")
            if item == "cut":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'{"tasks": [')
                self.wfile.flush()
                self.close_connection = True
                return
            assert not isinstance(item, str)
            status, headers, raw = item
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def make_client(url: str, credentials: Credentials | None = None, **kw: object) -> SwrClient:
    settings = Settings(
        endpoint=url,
        project_id="proj-1",
        credentials=credentials or Credentials("token", token=TOKEN),
        data_dir=Path("unused"),
        concurrency=4,
        read_timeout=5,
        max_attempts=4,
    )
    return SwrClient(replace(settings, **kw), backoff_initial=0.01)  # type: ignore[arg-type]


def test_success_keeps_the_body_exactly_and_sends_the_token(server: tuple[str, Script]) -> None:
    url, script = server
    raw = b'{"instances": [{"id": "i-1"}], "total": 1}'
    script.add(200, raw)
    with make_client(url) as client:
        response = client.get(client.path("instances"), {"offset": 0, "limit": 100})
    assert response.body == raw
    assert response.data == {"instances": [{"id": "i-1"}], "total": 1}
    assert response.request_id == "req-0"
    assert response.attempts == 1
    method, path, headers, _ = script.requests[0]
    assert (method, path) == ("GET", "/v2/proj-1/instances?offset=0&limit=100")
    assert headers["X-Auth-Token"] == TOKEN


def test_path_segments_are_encoded_so_ids_cannot_add_levels(server: tuple[str, Script]) -> None:
    url, _ = server
    with make_client(url) as client:
        assert client.path("instances", "../x", "replication") == "/v2/proj-1/instances/..%2Fx/replication"


def test_a_client_error_fails_at_once_with_everything_an_operator_needs(
    server: tuple[str, Script], caplog: pytest.LogCaptureFixture
) -> None:
    url, script = server
    script.add(400, {"error_code": "SWR.0400", "error_msg": "offset must be a multiple of limit"})
    caplog.set_level(logging.DEBUG)
    with make_client(url) as client, pytest.raises(ApiError) as info:
        client.get(client.path("instances", "i-1", "replication", "executions"), {"offset": 5, "limit": 10})
    assert not isinstance(info.value, RetryableApiError)
    assert str(info.value) == (
        "HTTP 400 from GET /v2/proj-1/instances/i-1/replication/executions, "
        "SWR.0400: offset must be a multiple of limit, request id req-0"
    )
    assert len(script.requests) == 1
    assert TOKEN not in caplog.text


def test_401_is_an_auth_error_and_is_not_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.add(401, {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information"})
    with make_client(url) as client, pytest.raises(AuthError) as info:
        client.get(client.path("instances"))
    assert info.value.status == 401
    assert info.value.error_code == "APIGW.0301"
    assert TOKEN not in str(info.value)
    assert len(script.requests) == 1


def test_5xx_429_and_cut_connections_are_retried_until_success(server: tuple[str, Script]) -> None:
    url, script = server
    script.add(503, {"error_code": "SWR.0503", "error_msg": "busy"})
    script.add(429, {"error_code": "SWR.0429", "error_msg": "slow down"}, {"Retry-After": "0.05"})
    script.responses.append("cut")
    script.add(200, {"tasks": [], "total": 0})
    with make_client(url) as client:
        response = client.get(client.path("instances"))
        stats = client.stats.as_dict()
        assert client.limiter.lowest == 2  # 429 halved the bound of 4
    assert response.attempts == 4
    assert response.data == {"tasks": [], "total": 0}
    assert stats["retries"] == 3
    assert stats["throttled"] == 1
    assert stats["server_errors"] == 1
    assert stats["transport_errors"] == 1


def test_retries_are_bounded_and_the_last_error_is_raised(server: tuple[str, Script]) -> None:
    url, script = server
    for _ in range(4):
        script.add(502, b"<html>bad gateway</html>")
    with make_client(url) as client, pytest.raises(RetryableApiError) as info:
        client.get(client.path("instances"))
    assert info.value.status == 502
    assert "body: <html>bad gateway</html>" in str(info.value)
    assert len(script.requests) == 4


def test_a_200_that_is_not_json_is_retried_then_reported(server: tuple[str, Script]) -> None:
    url, script = server
    script.add(200, b"<html>proxy login</html>", {"Content-Type": "text/html"})
    script.add(200, {"total": 0, "instances": []})
    with make_client(url) as client:
        assert client.get(client.path("instances")).attempts == 2
    for _ in range(4):
        script.add(200, b"<html>proxy login</html>")
    with make_client(url) as client, pytest.raises(BadResponseError, match="is not JSON"):
        client.get(client.path("instances"))


def test_a_refused_connection_is_a_transport_error() -> None:
    with make_client("http://127.0.0.1:9", max_attempts=2) as client, pytest.raises(TransportError):
        client.get(client.path("instances"))


def test_iam_token_is_fetched_once_cached_and_refreshed_once_on_401(server: tuple[str, Script]) -> None:
    url, script = server
    creds = Credentials("iam", iam_username="alice", iam_password="pw-SECRET-42", iam_domain="acme", iam_endpoint=url)
    script.add(201, {"token": {}}, {"X-Subject-Token": "iam-token-1"})
    script.add(200, {"instances": [], "total": 0})
    script.add(200, {"instances": [], "total": 0})
    script.add(401, {"error_code": "APIGW.0307", "error_msg": "token expired"})
    script.add(201, {"token": {}}, {"X-Subject-Token": "iam-token-2"})
    script.add(200, {"instances": [], "total": 0})
    with make_client(url, credentials=creds) as client:
        for _ in range(3):
            client.get(client.path("instances"))
    seen = [(m, p.split("?")[0], h.get("X-Auth-Token")) for m, p, h, _ in script.requests]
    assert seen == [
        ("POST", "/v3/auth/tokens", None),
        ("GET", "/v2/proj-1/instances", "iam-token-1"),
        ("GET", "/v2/proj-1/instances", "iam-token-1"),
        ("GET", "/v2/proj-1/instances", "iam-token-1"),
        ("POST", "/v3/auth/tokens", None),
        ("GET", "/v2/proj-1/instances", "iam-token-2"),
    ]
    body = json.loads(script.requests[0][3])
    assert body["auth"]["identity"]["password"]["user"] == {
        "name": "alice",
        "password": "pw-SECRET-42",
        "domain": {"name": "acme"},
    }
    assert body["auth"]["scope"] == {"project": {"id": "proj-1"}}


def test_iam_refusal_is_an_auth_error_without_the_password(server: tuple[str, Script]) -> None:
    url, script = server
    creds = Credentials("iam", iam_username="alice", iam_password="pw-SECRET-42", iam_domain="acme", iam_endpoint=url)
    script.add(401, {"error_code": "IAM.0004", "error_msg": "wrong password"})
    with make_client(url, credentials=creds) as client, pytest.raises(AuthError) as info:
        client.get(client.path("instances"))
    assert "IAM.0004" in str(info.value)
    assert "pw-SECRET-42" not in str(info.value)


def test_aksk_requests_carry_a_signature_and_never_the_secret_key(server: tuple[str, Script]) -> None:
    url, script = server
    script.add(200, {"instances": [], "total": 0})
    creds = Credentials("aksk", ak="AKID0000000000001", sk="SK-SECRET-abcdef")
    with make_client(url, credentials=creds) as client:
        client.get(client.path("instances"), {"limit": 100, "offset": 0})
    _, path, headers, _ = script.requests[0]
    assert path == "/v2/proj-1/instances?limit=100&offset=0"  # the signer's canonical (sorted) query
    assert headers["Authorization"].startswith("SDK-HMAC-SHA256 Access=AKID0000000000001, SignedHeaders=")
    assert headers["X-Project-Id"] == "proj-1"
    assert "X-Sdk-Date" in headers
    assert all("SK-SECRET-abcdef" not in v for v in headers.values())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("3", 3.0), ("0.25", 0.25), ("-4", 0.0), ("9999", 120.0), ("soon", None)],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None
    assert 25 <= seconds <= 30


def _state(attempt: int, exc: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_backoff_honours_retry_after_and_otherwise_grows_with_jitter() -> None:
    wait = BackoffWait(initial=0.5, maximum=4.0)
    throttled = RetryableApiError(429, "/p", retry_after=2.5)
    assert 2.5 <= wait(_state(1, throttled)) <= 2.6
    cut = TransportError("cut")
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = [wait(_state(attempt, cut)) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jitter


def test_limiter_halves_on_throttling_and_recovers_on_success() -> None:
    limiter = AdaptiveLimiter(8, cooldown_s=0.0)
    limiter.throttled()
    assert limiter.limit == 4
    limiter.throttled()
    limiter.throttled()
    limiter.throttled()
    assert limiter.limit == 1
    assert limiter.lowest == 1
    for _ in range(1 + 2 + 3):
        limiter.succeeded()
    assert limiter.limit == 4


def test_limiter_keeps_callers_inside_the_bound() -> None:
    limiter = AdaptiveLimiter(3)
    inside = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        nonlocal inside, peak
        with limiter:
            with lock:
                inside += 1
                peak = max(peak, inside)
            release.wait(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3


def test_redirects_are_never_followed_so_credentials_stay_home(server: tuple[str, Script]) -> None:
    url, script = server
    elsewhere = Script()

    class Trap(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # pragma: no cover - must never be reached
            elsewhere.requests.append(("GET", self.path, dict(self.headers), b""))
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

    trap = ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    try:
        target = f"http://127.0.0.1:{trap.server_address[1]}/v2/proj-1/instances"
        script.add(307, b"", {"Location": target})
        with make_client(url) as client, pytest.raises(ApiError) as info:
            client.get(client.path("instances"))
        assert info.value.status == 307
        assert "redirected to" in str(info.value)
        creds = Credentials("iam", iam_username="u", iam_password="pw-SECRET-42", iam_domain="d", iam_endpoint=url)
        script.add(307, b"", {"Location": target.replace("/v2/proj-1/instances", "/v3/auth/tokens")})
        with make_client(url, credentials=creds) as client, pytest.raises(AuthError):
            client.get(client.path("instances"))
    finally:
        trap.shutdown()
        trap.server_close()
    assert elsewhere.requests == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_retry_after_that_is_not_a_finite_number_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


def test_one_expired_iam_token_costs_one_call_to_iam_whatever_the_threads(server: tuple[str, Script]) -> None:
    url, script = server
    creds = Credentials("iam", iam_username="u", iam_password="pw", iam_domain="d", iam_endpoint=url)
    script.add(201, {"token": {}}, {"X-Subject-Token": "token-0"})
    script.add(201, {"token": {}}, {"X-Subject-Token": "token-1"})
    script.add(201, {"token": {}}, {"X-Subject-Token": "token-2"})
    with make_client(url, credentials=creds) as client:
        auth = client.auth
        assert isinstance(auth, IamAuth)
        first = auth.token()
        assert first == "token-0"
        results: list[str] = []
        threads = [threading.Thread(target=lambda: results.append(auth.refresh(stale=first))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [m for m, *_ in script.requests] == ["POST", "POST"]  # eight threads refused with token-0: one new token
    assert results == ["token-1"] * 8


def test_a_stopped_client_gives_up_instead_of_waiting_to_retry(server: tuple[str, Script]) -> None:
    from pipeline.errors import Stopped

    url, script = server
    script.add(429, {"error_code": "SWR.0429", "error_msg": "later"}, {"Retry-After": "100"})
    with make_client(url) as client:
        threading.Timer(0.2, client.stop).start()
        with pytest.raises(Stopped):
            client.get(client.path("instances"))  # would otherwise wait 100 s

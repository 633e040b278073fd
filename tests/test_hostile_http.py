"""What a hostile or misconfigured server can make the client spend, and what the user is told.

Real servers on loopback (http.server in a thread), the real CLI in a subprocess where the behaviour is
user-facing, :class:`SwrClient` directly where a counter or a retry is the point.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ROOT, all_landed_text, clean_env, run_cli, sandbox_env

from pipeline.api.client import SwrClient
from pipeline.api.deadline import Watchdog
from pipeline.config import Credentials, Settings
from pipeline.errors import ResponseTooLarge, TransportError
from pipeline.landing import Landing
from pipeline.logs import RedactSecrets, register_secret
from pipeline.sandbox import SandboxServer

TOKEN = "tok-SECRET-123456"
MIB = 1 << 20
TASKS_1 = {"tasks": [{"id": 10, "execution_id": 1, "status": "Succeed", "operation": "copy"}], "total": 1}
TASKS_2 = {"tasks": [{"id": 20, "execution_id": 2, "status": "Succeed", "operation": "copy"}], "total": 1}


@functools.cache
def gzip_bomb(mib: int = 512) -> bytes:
    """A valid JSON page of ``mib`` MiB (a task list padded with spaces), gzipped to about 1/1000 of that."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b'{"tasks": [], "total": 0, "pad": "')]
    block = b" " * MIB
    parts.extend(packer.compress(block) for _ in range(mib))
    parts += [packer.compress(b'"}'), packer.flush()]
    return b"".join(parts)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler still dripping must not hold up the shutdown

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on an oversized or endless answer is what these tests want


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on a loopback port; yields its base URL."""
    httpd = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def api_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        SWR_ENDPOINT=url, SWR_PROJECT_ID="p", SWR_AUTH_TOKEN=TOKEN, SWR_ETL_DATA_DIR=str(data_dir), **extra
    )


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def send_json(self, body: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_raw(json.dumps(body).encode(), status, headers)

    def send_raw(self, raw: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"X-Request-Id": "req-fake", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        try:
            self.wfile.write(raw)
        except OSError:  # the client hung up, as it should on an oversized answer
            self.close_connection = True


def two_executions(tasks_of_2: Callable[[Quiet], None]) -> type[BaseHTTPRequestHandler]:
    """One instance, two executions; execution 1 has one task, execution 2 answers with ``tasks_of_2``."""

    class Api(Quiet):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path.endswith("/instances"):
                self.send_json({"instances": [{"id": "i-1", "name": "one", "status": "Running"}], "total": 1})
            elif path.endswith("/policies"):
                self.send_json({"policies": [], "total": 0})
            elif path.endswith("/executions"):
                records = [{"id": n, "policy_id": 1, "status": "Succeed", "created_at": "2026-11-01T00:00:00Z"}
                           for n in (1, 2)]  # fmt: skip
                self.send_json({"executions": records, "total": 2})
            elif path.endswith("/executions/1/tasks"):
                self.send_json(TASKS_1)
            elif path.endswith("/executions/2/tasks"):
                tasks_of_2(self)
            else:
                self.send_json({"error_code": "SWR.0404", "error_msg": "no such path"}, 404)

    return Api


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes, of the CLI process alone
    wall_s: float


def run_measured(args: list[str], env: dict[str, str], timeout: float = 240) -> Measured:
    """The CLI in a subprocess, with the peak RSS of that one process (``wait4``, not every child's)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], env=env, cwd=ROOT, stdout=out, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            proc.returncode,
            out.read().decode(),
            err.read().decode(),
            usage.ru_maxrss * 1024,
            time.monotonic() - started,
        )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- 1. the size of an answer ---------------------------------------------------------------------------------


def test_a_gzip_bomb_fails_its_execution_alone_within_the_memory_of_a_normal_run(tmp_path: Path) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < MIB  # 512 MiB once inflated
    normal_api = two_executions(lambda h: h.send_json(TASKS_2))
    bomb_api = two_executions(lambda h: h.send_raw(bomb, headers={"Content-Encoding": "gzip"}))
    with serve(normal_api) as url:
        normal = run_measured(["-v", "run"], api_env(url, tmp_path / "normal"))
    assert normal.returncode == 0, normal.stderr
    with serve(bomb_api) as url:
        bombed = run_measured(["-v", "run"], api_env(url, tmp_path / "bomb"))
    print(f"peak RSS: normal run {normal.peak_rss / MIB:.0f} MiB, gzip bomb run {bombed.peak_rss / MIB:.0f} MiB")

    assert bombed.returncode == 1, bombed.stderr
    lines = bombed.stdout.strip().splitlines()
    assert lines[0].startswith("extract: 2 executions in 1 instances (1 complete, 1 FAILED), ")
    assert lines[1].startswith("load: 1 executions, 1 tasks")
    (error,) = error_lines(bombed.stderr)
    assert error.startswith("error: 1 executions could not be fetched; first: the answer to GET /v2/p/instances/i-1/")
    assert "larger than the 64 MiB limit once decompressed" in error
    assert "--max-response-mb" in error and "SWR_ETL_MAX_RESPONSE_MB" in error
    assert "execution 2 of instance i-1 failed: the answer to GET" in bombed.stderr  # the others went on
    assert "retrying" not in bombed.stderr  # the same request would get the same answer (-v shows retries)
    assert [m["execution_id"] for m in Landing(tmp_path / "bomb").manifests("tasks")] == [1]
    assert bombed.peak_rss < normal.peak_rss + 200 * MIB


def test_a_body_over_the_limit_is_refused_from_its_content_length_without_reading_it(tmp_path: Path) -> None:
    api = two_executions(lambda h: h.send_json({"tasks": [], "total": 0, "pad": "x" * (2 * MIB)}))
    with serve(api) as url:
        result = run_cli(["extract", "--max-response-mb", "1"], api_env(url, tmp_path))
    assert result.returncode == 1
    (error,) = error_lines(result.stderr)
    assert "is larger than the 1 MiB limit (Content-Length 2097" in error
    assert "raise it with --max-response-mb" in error


def test_the_limit_comes_from_the_environment_and_the_config_file(tmp_path: Path) -> None:
    api = two_executions(lambda h: h.send_json({"tasks": [], "total": 0, "pad": "x" * (2 * MIB)}))
    config = tmp_path / "swr.toml"
    config.write_text("max-response-mb = 1.5\n")
    with serve(api) as url:
        from_env = run_cli(["extract"], api_env(url, tmp_path / "a", SWR_ETL_MAX_RESPONSE_MB="1"))
        from_file = run_cli(["extract", "--config", str(config)], api_env(url, tmp_path / "b"))
        raised = run_cli(["extract", "--max-response-mb", "3"], api_env(url, tmp_path / "c"))
    assert "larger than the 1 MiB limit" in from_env.stderr
    assert "larger than the 1.5 MiB limit" in from_file.stderr
    assert raised.returncode == 0, raised.stderr


class Chunked(BaseHTTPRequestHandler):
    """Answers with chunked transfer encoding, no Content-Length: ``body`` and ``encoding`` set per test."""

    protocol_version = "HTTP/1.1"
    body = b""
    encoding = ""
    served: list[str] = []  # noqa: RUF012 - shared with the test on purpose

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.served.append(self.path)
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        if self.encoding:
            self.send_header("Content-Encoding", self.encoding)
        self.end_headers()
        try:
            for start in range(0, len(self.body), 8192):
                piece = self.body[start : start + 8192]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


def make_client(url: str, **kw: object) -> SwrClient:
    settings = Settings(
        endpoint=url,
        project_id="proj-1",
        credentials=Credentials("token", token=TOKEN),
        data_dir=Path("unused"),
        concurrency=2,
        read_timeout=5,
        max_attempts=3,
    )
    return SwrClient(replace(settings, **kw), backoff_initial=0.01)  # type: ignore[arg-type]


def chunked_server(body: bytes, encoding: str = "") -> type[Chunked]:
    return type("Answer", (Chunked,), {"body": body, "encoding": encoding, "served": []})


def test_an_oversized_answer_is_counted_and_not_retried() -> None:
    page = json.dumps({"tasks": [], "total": 0, "pad": "x" * 300_000}).encode()
    handler = chunked_server(page)  # no Content-Length: only counting the bytes as they arrive can tell
    with serve(handler) as url, make_client(url, max_response_mb=0.25) as client:
        with pytest.raises(ResponseTooLarge) as info:
            client.get(client.path("instances"))
        assert client.stats.as_dict()["oversized"] == 1
        assert client.stats.as_dict()["retries"] == 0
    assert len(handler.served) == 1
    assert str(info.value).startswith("the answer to GET /v2/proj-1/instances is larger than the 0.25 MiB limit")
    assert "once decompressed" not in str(info.value)


def deflate_raw(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


PAGE = json.dumps({"tasks": [{"id": n, "status": "Succeed"} for n in range(2000)], "total": 2000}).encode()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("", PAGE),
        ("identity", PAGE),
        ("gzip", gzip.compress(PAGE)),
        ("x-gzip", gzip.compress(PAGE)),
        ("gzip", gzip.compress(PAGE[:1000]) + gzip.compress(PAGE[1000:])),  # two gzip members
        ("deflate", zlib.compress(PAGE)),  # deflate as the RFC says: zlib-wrapped
        ("deflate", deflate_raw(PAGE)),  # deflate as some servers send it: raw
        ("gzip, deflate", zlib.compress(gzip.compress(PAGE))),  # applied in order, undone in reverse
    ],
)
def test_compressed_answers_under_the_limit_are_decoded_whole(encoding: str, body: bytes) -> None:
    with serve(chunked_server(body, encoding)) as url, make_client(url, max_response_mb=1) as client:
        response = client.get(client.path("instances"))
    assert response.body == PAGE
    assert response.data["total"] == 2000


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, gzip"])
def test_a_bomb_of_any_encoding_stops_at_the_limit(encoding: str) -> None:
    plain = b" " * (8 * MIB)
    body = {
        "gzip": gzip.compress(plain),
        "deflate": zlib.compress(plain),
        "gzip, gzip": gzip.compress(gzip.compress(plain)),
    }[encoding]
    with (
        serve(chunked_server(body, encoding)) as url,
        make_client(url, max_response_mb=1) as client,
        pytest.raises(ResponseTooLarge, match="larger than the 1 MiB limit once decompressed"),
    ):
        client.get(client.path("instances"))


def test_an_encoding_we_did_not_ask_for_is_an_undecodable_answer() -> None:
    with (
        serve(chunked_server(b"\x28\xb5\x2f\xfd", "zstd")) as url,
        make_client(url, max_attempts=1) as client,
        pytest.raises(TransportError, match=r"undecodable body on GET .*Content-Encoding 'zstd'"),
    ):
        client.get(client.path("instances"))


# -- 2. a deadline for a whole request ------------------------------------------------------------------------


class Drip(BaseHTTPRequestHandler):
    """Sends its answer one byte every 0.3 s, each well within any read timeout: forever, unless cut."""

    protocol_version = "HTTP/1.1"
    in_headers = False
    requests: list[float] = []  # noqa: RUF012 - shared with the test on purpose

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(time.monotonic())
        if self.in_headers:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
        else:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b"a" if self.in_headers else b" ")
                self.wfile.flush()
                time.sleep(0.3)
        except OSError:
            pass
        self.close_connection = True


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_server_that_drips_its_answer_is_cut_at_the_request_deadline(tmp_path: Path, in_headers: bool) -> None:
    handler = type("Dripping", (Drip,), {"in_headers": in_headers, "requests": []})
    args = ["extract", "--read-timeout", "2", "--request-deadline", "3", "--max-attempts", "1"]
    with serve(handler) as url:
        started = time.monotonic()
        result = run_cli(args, api_env(url, tmp_path), timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    (error,) = error_lines(result.stderr)
    assert error == "error: no complete answer within 3 s (--request-deadline) on GET /v2/p/instances"
    assert elapsed < 15  # a behaviour bound: without the deadline this runs for a minute (the drip's length)


def test_a_request_cut_at_its_deadline_is_retried_like_a_timeout() -> None:
    handler = type("Dripping", (Drip,), {"requests": []})
    with serve(handler) as url, make_client(url, request_deadline=0.5, max_attempts=2) as client:
        with pytest.raises(TransportError, match=r"no complete answer within 0.5 s \(--request-deadline\)"):
            client.get(client.path("instances"))
        assert client.stats.as_dict()["retries"] == 1
        assert client.stats.as_dict()["transport_errors"] == 2
    assert len(handler.requests) == 2


def test_finished_deadlines_do_not_pile_up_in_the_watchdog() -> None:
    watchdog = Watchdog()
    try:
        for _ in range(10_000):  # quick requests under a long deadline
            with watchdog.arm(300):
                pass
        assert watchdog.live == 0
        assert len(watchdog._heap) <= 66  # swept when over 64 and more than twice what is in flight
    finally:
        watchdog.close()


# -- 3. timeouts and limits that are not finite positive numbers ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        (["--read-timeout", "nan"], {}, "--read-timeout must be a finite number above 0, got nan"),
        (["--read-timeout", "inf"], {}, "--read-timeout must be a finite number above 0, got inf"),
        (["--connect-timeout", "-inf"], {}, "--connect-timeout must be a finite number above 0, got -inf"),
        (["--connect-timeout", "0"], {}, "--connect-timeout must be a finite number above 0, got 0"),
        (["--request-deadline", "nan"], {}, "--request-deadline must be a finite number above 0, got nan"),
        (["--max-response-mb", "0"], {}, "--max-response-mb must be a finite number above 0, got 0"),
        ([], {"SWR_ETL_MAX_RESPONSE_MB": "inf"}, "SWR_ETL_MAX_RESPONSE_MB must be a finite number above 0, got inf"),
        ([], {"SWR_ETL_READ_TIMEOUT": "NaN"}, "SWR_ETL_READ_TIMEOUT must be a finite number above 0, got nan"),
    ],
)
def test_a_timeout_or_limit_that_is_not_a_finite_positive_number_is_a_usage_error(
    sandbox: SandboxServer, tmp_path: Path, args: list[str], env: dict[str, str], problem: str
) -> None:
    result = run_cli(["extract", *args], sandbox_env(sandbox, tmp_path, **env))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == f"error: {problem}"


# -- 4. IAM tokens --------------------------------------------------------------------------------------------


def iam_api(refuse: Callable[[int], bool]) -> tuple[type[BaseHTTPRequestHandler], list[str]]:
    """IAM issues ``iam-tok-SECRET-<n>``; the API refuses token n when ``refuse(n)``, echoing it back."""
    issued: list[str] = []

    class Api(Quiet):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            issued.append(f"iam-tok-SECRET-{len(issued) + 1}")
            self.send_json({"token": {}}, 201, {"X-Subject-Token": issued[-1]})

        def do_GET(self) -> None:
            token = self.headers.get("X-Auth-Token", "")
            if token not in issued or refuse(issued.index(token) + 1):
                message = f"The token {token} is invalid"  # a gateway that repeats what it was sent
                self.send_json({"error_code": "APIGW.0301", "error_msg": message}, 401)
            else:
                self.send_json({"instances": [], "total": 0})

    return Api, issued


def iam_env(url: str, data_dir: Path) -> dict[str, str]:
    return clean_env(
        SWR_ENDPOINT=url,
        SWR_PROJECT_ID="p",
        SWR_ETL_DATA_DIR=str(data_dir),
        SWR_IAM_USERNAME="alice",
        SWR_IAM_PASSWORD="pw-SECRET-0042",
        SWR_IAM_DOMAIN="acme",
        SWR_IAM_ENDPOINT=url,
    )


def test_a_401_on_the_first_request_fetches_a_new_iam_token_once(tmp_path: Path) -> None:
    handler, issued = iam_api(refuse=lambda n: n == 1)
    with serve(handler) as url:
        result = run_cli(["-v", "extract"], iam_env(url, tmp_path))
    assert result.returncode == 0, result.stderr
    assert issued == ["iam-tok-SECRET-1", "iam-tok-SECRET-2"]
    assert "IAM token refused (HTTP 401); fetching a new one once" in result.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_iam_token_echoed_by_a_refusal_is_never_printed(tmp_path: Path, log_format: str) -> None:
    handler, issued = iam_api(refuse=lambda n: True)
    with serve(handler) as url:
        result = run_cli(["--log-format", log_format, "-vv", "extract"], iam_env(url, tmp_path))
    assert result.returncode == 1
    assert issued == ["iam-tok-SECRET-1", "iam-tok-SECRET-2"]  # a new token once, then the refusal stands
    if log_format == "json":  # the error is the last JSON line, as every line is
        error = "error: " + json.loads(result.stderr.splitlines()[-1])["msg"]
    else:
        (error,) = error_lines(result.stderr)
    assert error.startswith("error: HTTP 401 from GET /v2/p/instances, APIGW.0301: The token *** is invalid")
    printed = result.stdout + result.stderr + all_landed_text(tmp_path)
    for secret in (*issued, "pw-SECRET-0042"):
        assert secret not in printed


def test_a_secret_registered_later_is_masked_by_every_redactor_already_made() -> None:
    redactor = RedactSecrets(["env-SECRET-1"])  # made at start-up, before any IAM token exists
    register_secret("iam-tok-SECRET-late")
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "%s and %s", ("iam-tok-SECRET-late", "env-SECRET-1"), None
    )
    redactor.filter(record)
    assert record.getMessage() == "*** and ***"
    assert RedactSecrets([]).redact("token iam-tok-SECRET-late") == "token ***"


# -- 5. plain http:// beyond loopback -------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_plain_http_to_a_host_beyond_loopback_is_warned_about_once(
    sandbox: SandboxServer, tmp_path: Path, host: str, warned: bool
) -> None:
    # 0.0.0.0 reaches the loopback sandbox on Linux, yet is not a loopback name: the client cannot know
    endpoint = sandbox.url.replace("127.0.0.1", host)
    result = run_cli(["extract", "--execution-id", "1"], sandbox_env(sandbox, tmp_path, SWR_ENDPOINT=endpoint))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("plain http://") == int(warned), result.stderr
    if warned:
        assert f"{endpoint} is plain http://: the credentials and the data travel in clear text" in result.stderr


# -- 6. https:// to a server that speaks plain HTTP ----------------------------------------------------------


def test_https_to_a_plain_http_server_says_so_rather_than_blame_the_certificate(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    endpoint = sandbox.url.replace("http://", "https://")
    result = run_cli(["extract"], sandbox_env(sandbox, tmp_path, SWR_ENDPOINT=endpoint))
    assert result.returncode == 1
    (error,) = error_lines(result.stderr)
    assert error == (
        f"error: the server at {endpoint} answers plain HTTP, not TLS: use http:// in the endpoint (or check the port)"
    )

"""The request budget (--max-rps): the token bucket on a fake clock, then the client against a loopback server
that notes when each request arrives, then the command line's refusal of bad values."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import clean_env, run_cli

from pipeline.api.client import SwrClient
from pipeline.api.ratelimit import TokenBucket
from pipeline.config import Credentials, Settings
from pipeline.errors import Stopped


class FakeClock:
    """A clock that moves only when told to; ``wait`` moves it by the time asked for, as a sleep would."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False  # not stopping


def bucket(rate: float, burst: float = 1.0, clock: FakeClock | None = None) -> tuple[TokenBucket, FakeClock]:
    clock = clock or FakeClock()
    return TokenBucket(rate, burst, clock=clock, wait=clock.wait), clock


# -- the bucket, on a fake clock ------------------------------------------------------------------------------


def test_tokens_are_counted_exactly() -> None:
    tb, clock = bucket(rate=4)
    assert tb.acquire() == 0.0  # the one token it starts with
    assert tb.available() == 0.0
    assert [tb.acquire() for _ in range(3)] == [0.25, 0.25, 0.25]  # then one every 1/rate s
    assert clock.now == pytest.approx(100.75)
    clock.advance(0.125)
    assert tb.available() == pytest.approx(0.5)
    assert tb.acquire() == pytest.approx(0.125)  # the half token still missing
    clock.advance(10)
    assert tb.available() == 1.0  # a quiet spell fills it up to the burst, no further
    assert tb.acquire() == 0.0
    assert tb.acquire() == pytest.approx(0.25)


def test_a_burst_goes_at_once_then_the_rate_holds() -> None:
    tb, clock = bucket(rate=2, burst=3)
    assert [tb.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert tb.acquire() == pytest.approx(0.5)
    clock.advance(60)
    assert tb.available() == 3.0
    start = clock.now
    for _ in range(3 + 10):
        tb.acquire()
    assert clock.now - start == pytest.approx(10 / 2)  # (n - burst) / rate


def test_threads_queue_for_tokens_each_reserving_the_next_one_due() -> None:
    # the clock stands still and waits do not move it: every caller reserves a token and is told when it is due
    clock = FakeClock()
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> bool:
        with lock:
            waits.append(seconds)
        return False

    tb = TokenBucket(10, burst=2, clock=clock, wait=record)
    start = threading.Barrier(16)
    delays: list[float] = []

    def take() -> None:
        start.wait()
        delay = tb.acquire()
        with lock:
            delays.append(delay)

    threads = [threading.Thread(target=take) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(delays) == pytest.approx([0.0, 0.0] + [k / 10 for k in range(1, 15)])
    assert sorted(waits) == pytest.approx([k / 10 for k in range(1, 15)])  # no one waited twice, or for nothing
    assert tb.available() == pytest.approx(2 - 16)


def test_threads_on_the_real_clock_share_one_rate() -> None:
    tb = TokenBucket(100, burst=1)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: tb.acquire(), range(40)))
    assert time.monotonic() - started >= (40 - 1) / 100 - 0.005  # a lower bound only


def test_a_stop_wakes_every_waiting_thread_with_stopped() -> None:
    tb = TokenBucket(0.01)  # after the first token, the next ones are 100 s apart
    tb.acquire()
    outcomes: list[BaseException | None] = []

    def take() -> None:
        try:
            tb.acquire()
            outcomes.append(None)
        except Stopped as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=take, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert tb.available() < -3  # all four are waiting
    tb.stop()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert len(outcomes) == 4 and all(isinstance(o, Stopped) for o in outcomes)
    with pytest.raises(Stopped):
        tb.acquire()  # refused at once, whatever the tokens


def test_a_wait_that_reports_a_stop_raises_stopped() -> None:
    clock = FakeClock()
    tb = TokenBucket(1, clock=clock, wait=lambda seconds: True)
    tb.acquire()
    with pytest.raises(Stopped):
        tb.acquire()


def test_the_stop_signal_can_be_shared() -> None:
    stopping = threading.Event()
    tb = TokenBucket(5, stopping=stopping)
    stopping.set()
    with pytest.raises(Stopped):
        tb.acquire()


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("nan"), 1), (float("inf"), 1), (5, 0.5)])
def test_a_bucket_needs_a_finite_positive_rate_and_a_burst_of_one_or_more(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


# -- the client against a loopback server ---------------------------------------------------------------------


@dataclass
class Recorder:
    """When each request arrived (monotonic seconds), and what it was; answers from ``statuses`` first."""

    arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def recorder() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            arrived = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with rec.lock:
                rec.arrivals.append((arrived, self.command, self.path))
                status = rec.statuses.pop(0) if rec.statuses and self.command == "GET" else 200
            headers: dict[str, str] = {}
            if self.command == "POST":  # IAM
                status, headers = 201, {"X-Subject-Token": "iam-token-1"}
            body = json.dumps({"instances": [], "total": 0} if status < 300 else {"error_code": "X"}).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", rec
    httpd.shutdown()
    httpd.server_close()


def client_for(url: str, max_rps: float, credentials: Credentials | None = None, **kw: object) -> SwrClient:
    settings = Settings(
        endpoint=url,
        project_id="p",
        credentials=credentials or Credentials("token", token="tok-123456"),
        data_dir=Path("unused"),
        concurrency=8,
        read_timeout=10,
        max_attempts=3,
        max_rps=max_rps,
        **kw,  # type: ignore[arg-type]
    )
    return SwrClient(settings, backoff_initial=0.01)


def test_the_budget_caps_requests_per_second_across_eight_threads(recorder: tuple[str, Recorder]) -> None:
    url, rec = recorder
    rate, burst, n = 8, 1, 20
    with client_for(url, rate) as client:
        assert client.budget is not None and client.budget.burst == burst
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: client.get(client.path("instances"), {"offset": i}), range(n)))
        wall = time.monotonic() - started
        assert client.stats.requests == n
        assert client.stats.budget_wait_s > 0
    times = sorted(t for t, _, _ in rec.arrivals)
    assert len(times) == n
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest <= rate + burst, f"{busiest} requests arrived within one second"
    assert wall >= (n - burst) / rate  # a lower bound only: a busy machine may take longer


def test_without_a_budget_nothing_waits(recorder: tuple[str, Recorder]) -> None:
    url, _ = recorder
    with client_for(url, 0) as client:
        assert client.budget is None
        for _ in range(3):
            client.get(client.path("instances"))
        assert client.stats.budget_wait_s == 0.0
        assert client.stats.requests == 3


def test_retries_and_the_iam_token_request_take_tokens_too(recorder: tuple[str, Recorder]) -> None:
    url, rec = recorder
    rec.statuses = [503]  # the first GET fails, its retry succeeds
    creds = Credentials("iam", iam_username="u", iam_password="pw-1", iam_domain="d", iam_endpoint=url)
    with client_for(url, 1000, credentials=creds) as client:
        assert client.budget is not None
        taken: list[float] = []
        original = client.budget.acquire

        def counting() -> float:
            taken.append(time.monotonic())
            return original()

        client.budget.acquire = counting  # type: ignore[method-assign]
        client.get(client.path("instances"))
    assert [m for _, m, _ in rec.arrivals] == ["POST", "GET", "GET"]
    assert len(taken) == 3  # IAM, the attempt, its retry


def test_a_stopped_client_stops_waiting_for_a_token(recorder: tuple[str, Recorder]) -> None:
    url, rec = recorder
    with client_for(url, 0.01) as client:  # one request now, the next in 100 s
        client.get(client.path("instances"))
        threading.Timer(0.2, client.stop).start()
        with pytest.raises(Stopped):
            client.get(client.path("instances"))
        assert client.stats.requests == 1  # the stopped one was never sent, so not counted
    assert len(rec.arrivals) == 1


# -- the command line ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        (["--max-rps", "abc"], {}, "Invalid value for '--max-rps': 'abc' is not a valid float."),
        (["--max-rps", "-1"], {}, "--max-rps must be a finite number of requests per second, or 0 for no budget"),
        (["--max-rps", "nan"], {}, "--max-rps must be a finite number of requests per second, or 0 for no budget"),
        ([], {"SWR_ETL_MAX_RPS": "inf"}, "SWR_ETL_MAX_RPS must be a finite number of requests per second"),
        ([], {"SWR_ETL_MAX_RPS": "abc"}, "SWR_ETL_MAX_RPS: expected a number, got 'abc'"),
    ],
)
def test_a_bad_budget_is_a_usage_error(tmp_path: Path, args: list[str], env: dict[str, str], problem: str) -> None:
    environ = clean_env(
        SWR_ENDPOINT="http://127.0.0.1:9",  # never reached: the settings are refused first
        SWR_PROJECT_ID="p",
        SWR_AUTH_TOKEN="tok-123456",
        SWR_ETL_DATA_DIR=str(tmp_path / "data"),
        **env,
    )
    result = run_cli(["extract", *args], environ)
    assert result.returncode == 2
    assert problem in result.stderr
    assert not (tmp_path / "data" / "raw").exists()

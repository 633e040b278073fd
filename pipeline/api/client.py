"""HTTP for the SWR API: one session, authentication, retries, politeness. Knows nothing of paging plans.

- One :class:`requests.Session` (:mod:`pipeline.api.transport`) with a connection pool sized to the concurrency,
  explicit connect and read timeouts, query values always in ``params=``. What a server can make one attempt
  cost is bounded: its body by ``--max-response-mb``, as sent and once decompressed, its time by
  ``--request-deadline``.
- Authentication (:mod:`pipeline.api.auth`): ``X-Auth-Token``; AK/SK signed per attempt with the vendor's
  own signer (``huaweicloudsdkcore``); or an IAM user and password exchanged for a token, cached, and
  refreshed once when the API answers 401.
- Retries (429, 500/502/503/504, dropped or cut connections, timeouts, a 2xx that is not JSON) through tenacity:
  bounded, exponential backoff with full jitter, ``Retry-After`` honoured. Everything else fails at once.
  Which is which is decided in one place, :func:`pipeline.api.answers.classify`.
- An adaptive limiter keeps the requests in flight at or under ``concurrency`` and halves that bound when
  the server answers 429, growing it back one step at a time as requests succeed.
- With ``--max-rps``, a request budget (:mod:`pipeline.api.ratelimit`) caps the requests sent per second by all
  threads together: every attempt, retries and IAM token requests included, takes a token before it is sent.
- No header value, token, key or password is ever logged or put into an exception.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from pipeline.api.answers import classify
from pipeline.api.auth import SwrAuth, auth_for
from pipeline.api.ratelimit import TokenBucket
from pipeline.api.transport import Transport
from pipeline.config import Settings
from pipeline.errors import (
    AuthError,
    ResponseTooLarge,
    RetryableApiError,
    Stopped,
    TlsError,
    TransportError,
)
from pipeline.logs import register_secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiResponse:
    """One successful answer: the body exactly as received, and what is needed to replay the request."""

    method: str
    path: str
    params: Mapping[str, Any]
    status: int
    body: bytes
    data: dict[str, Any]
    request_id: str | None
    fetched_at: str
    elapsed_s: float
    attempts: int


@dataclass
class ClientStats:
    """Counters for the run summary and the benchmark. Updated under a lock."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    bytes_received: int = 0
    oversized: int = 0  # answers over --max-response-mb
    budget_wait_s: float = 0.0  # seconds threads waited, all added, for a token of the --max-rps budget
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: float) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "throttled": self.throttled,
                "server_errors": self.server_errors,
                "transport_errors": self.transport_errors,
                "bytes_received": self.bytes_received,
                "oversized": self.oversized,
            }


class AdaptiveLimiter:
    """At most ``limit`` callers inside at once; the limit halves on throttling and creeps back on success."""

    def __init__(self, maximum: int, cooldown_s: float = 1.0) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.lowest = maximum
        self._inside = 0
        self._successes = 0
        self._last_cut = 0.0
        self._cooldown_s = cooldown_s
        self._cond = threading.Condition()

    def __enter__(self) -> AdaptiveLimiter:
        with self._cond:
            while self._inside >= self.limit:
                self._cond.wait()
            self._inside += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._inside -= 1
            self._cond.notify_all()

    def throttled(self) -> None:
        """The server said 429: halve the bound (once per cool-down, so a burst of 429s counts once)."""
        with self._cond:
            now = time.monotonic()
            if now - self._last_cut >= self._cooldown_s and self.limit > 1:
                self.limit = max(1, self.limit // 2)
                self.lowest = min(self.lowest, self.limit)
                self._last_cut = now
                log.info("server is throttling: %d requests in flight at most for now", self.limit)
            self._successes = 0

    def succeeded(self) -> None:
        with self._cond:
            self._successes += 1
            if self.limit < self.maximum and self._successes >= self.limit:
                self.limit += 1
                self._successes = 0
                self._cond.notify_all()


class BudgetedTransport(Transport):
    """The client's transport: with a budget, every exchange takes a token first, the IAM token's too (it goes
    through this transport as well), and the time spent waiting for it is counted in ``stats``."""

    def __init__(self, settings: Settings, budget: TokenBucket | None, stats: ClientStats) -> None:
        super().__init__(settings)
        self.budget = budget
        self.stats = stats

    def exchange(self, method: str, url: str, path: str, **kwargs: Any) -> requests.Response:
        if self.budget is not None:
            waited = self.budget.acquire()  # raises Stopped when the run stops meanwhile
            if waited:
                self.stats.add(budget_wait_s=waited)
        return super().exchange(method, url, path, **kwargs)


class BackoffWait:
    """tenacity wait: the server's ``Retry-After`` when it gave one, else exponential backoff, full jitter."""

    def __init__(self, initial: float = 0.25, maximum: float = 20.0, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.rng = rng or random.Random()

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableApiError) and exc.retry_after is not None:
            return exc.retry_after + self.rng.uniform(0, 0.1)
        ceiling = min(self.maximum, self.initial * 2 ** (state.attempt_number - 1))
        return self.rng.uniform(ceiling / 2, ceiling)


class SwrClient:
    """The SWR EE API over one pooled session. Thread-safe; share one per run."""

    def __init__(self, settings: Settings, *, backoff_initial: float = 0.25) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint.rstrip("/")
        parts = urlsplit(self.endpoint)
        self._scheme, self._host, self._base_path = parts.scheme, parts.netloc, parts.path.rstrip("/")
        self.stopping = threading.Event()  # set by stop(): no new attempt, no more waiting for one
        self.stats = ClientStats()
        # burst 1: requests evenly spaced, so no second of a gateway's count holds more than max_rps + 1
        self.budget = TokenBucket(settings.max_rps, burst=1.0, stopping=self.stopping) if settings.max_rps > 0 else None
        if self.budget is not None:
            log.info("request budget: at most %g requests per second (--max-rps)", settings.max_rps)
        self.transport: Transport = BudgetedTransport(settings, self.budget, self.stats)
        self.session = self.transport.session
        self.limiter = AdaptiveLimiter(settings.concurrency)
        self._wait = BackoffWait(initial=backoff_initial)
        for secret in settings.credentials.secrets():
            register_secret(secret)  # masked in every error and log line, whoever uses this client
        self.auth: SwrAuth = auth_for(settings, self.transport)

    # -- paths -------------------------------------------------------------------------------------
    def path(self, *segments: str | int) -> str:
        """``/v2/{project_id}/...`` with every segment percent-encoded (ids cannot add path levels)."""
        parts = [self.settings.project_id, *map(str, segments)]
        # "." and ".." are encoded too: URL parsers drop or resolve them as dot segments
        return f"{self._base_path}/v2/" + "/".join(
            quote(p, safe="") if p.strip(".") else p.replace(".", "%2E") for p in parts
        )

    # -- requests ----------------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> ApiResponse:
        """GET with retries. Raises :class:`ApiError` / :class:`TransportError` subclasses when it gives up."""
        params = dict(params or {})
        started = time.monotonic()
        attempts = 0
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type((RetryableApiError, TransportError))
            & retry_if_not_exception_type((TlsError, ResponseTooLarge)),
            sleep=self._sleep,
            before_sleep=self._before_sleep(path),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                response, data = self._attempt_with_auth_refresh(path, params)
        return ApiResponse(
            method="GET",
            path=path,
            params=params,
            status=response.status_code,
            body=response.content,
            data=data,
            request_id=response.headers.get("X-Request-Id"),
            fetched_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            elapsed_s=time.monotonic() - started,
            attempts=attempts,
        )

    def _before_sleep(self, path: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.stats.add(retries=1)
            delay = state.next_action.sleep if state.next_action else 0.0
            log.info(
                "retrying GET %s in %.2fs (attempt %d of %d): %s",
                path,
                delay,
                state.attempt_number + 1,
                self.settings.max_attempts,
                exc,
            )

        return before_sleep

    def _attempt_with_auth_refresh(
        self, path: str, params: Mapping[str, Any]
    ) -> tuple[requests.Response, dict[str, Any]]:
        """One attempt; after a 401, one more when the authentication could renew its credentials (IAM)."""
        self.auth.ready()  # e.g. the first IAM token, fetched before taking a place among the requests in flight
        response = self._send(path, params)
        try:
            return response, self._check(response, path)
        except AuthError as exc:
            if exc.status != 401 or not self.auth.renew_after_401(response.request):
                raise  # 403, or credentials that cannot be renewed: asking again would not help
        response = self._send(path, params)
        return response, self._check(response, path)

    def _send(self, path: str, params: Mapping[str, Any]) -> requests.Response:
        """One GET, authenticated by :attr:`auth` as it is sent, its body read whole."""
        if self.stopping.is_set():
            raise Stopped("the run is stopping")
        url = f"{self._scheme}://{self._host}{path}"
        # the budget's token is taken in exchange(), inside the limiter: sent as soon as taken, so the budget's
        # spacing is the spacing on the wire
        with self.limiter:
            sent = True
            try:
                response = self.transport.exchange("GET", url, path, params=params, auth=self.auth)
            except Stopped:
                sent = False  # stopped while waiting for a token of the budget: nothing went out
                raise
            except ResponseTooLarge:
                self.stats.add(oversized=1)
                raise
            except TlsError:
                raise
            except TransportError:
                self.stats.add(transport_errors=1)
                raise
            finally:
                if sent:
                    self.stats.add(requests=1)
        self.stats.add(bytes_received=len(response.content))
        log.debug(
            "GET %s %s -> %d in %.0f ms",
            path,
            dict(params),
            response.status_code,
            response.elapsed.total_seconds() * 1e3,
        )
        return response

    def _check(self, response: requests.Response, path: str) -> dict[str, Any]:
        """The answer's JSON object, or its error; a throttled or failing server slows the limiter down."""
        try:
            data = classify(response, path)
        except RetryableApiError as exc:
            if exc.status == 429:
                self.stats.add(throttled=1)
                self.limiter.throttled()
            else:
                self.stats.add(server_errors=1)
            raise
        self.limiter.succeeded()
        return data

    def _sleep(self, seconds: float) -> None:
        """tenacity's pause between attempts, cut short by :meth:`stop`."""
        if self.stopping.wait(seconds):
            raise Stopped("the run is stopping")

    def stop(self) -> None:
        """Make every request that is waiting to retry, or for a token of the budget, give up now (Ctrl-C, or
        a fatal error elsewhere)."""
        self.stopping.set()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> SwrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

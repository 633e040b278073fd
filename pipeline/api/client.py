"""HTTP for the SWR API: one session, authentication, retries, politeness. Knows nothing of paging plans.

- One :class:`requests.Session` (:mod:`pipeline.api.transport`) with a connection pool sized to the concurrency,
  explicit connect and read timeouts, query values always in ``params=``. What a server can make one attempt
  cost is bounded: its body by ``--max-response-mb``, as sent and once decompressed, its time by
  ``--request-deadline``.
- Authentication: ``X-Auth-Token``; AK/SK signed per attempt with the vendor's own signer
  (``huaweicloudsdkcore``); or an IAM user and password exchanged for a token, cached, and refreshed
  once when the API answers 401.
- Retries (429, 500/502/503/504, dropped or cut connections, timeouts, a 2xx that is not JSON) through tenacity:
  bounded, exponential backoff with full jitter, ``Retry-After`` honoured. Everything else fails at once.
  Which is which is decided in one place, :func:`classify`.
- An adaptive limiter keeps the requests in flight at or under ``concurrency`` and halves that bound when
  the server answers 429, growing it back one step at a time as requests succeed.
- No header value, token, key or password is ever logged or put into an exception.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from pipeline.api.transport import Transport
from pipeline.config import Settings
from pipeline.errors import (
    ApiError,
    AuthError,
    BadResponseError,
    ResponseTooLarge,
    RetryableApiError,
    Stopped,
    TlsError,
    TransportError,
)
from pipeline.logs import RedactSecrets, register_secret

log = logging.getLogger(__name__)

# 429 and the 5xx answers that mean "try again later"; 501 and 505 do not
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 120.0
BODY_EXCERPT = 300
_redact = RedactSecrets(()).redact  # every secret registered (credentials, IAM tokens): none in an error


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
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
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


def classify(response: requests.Response, path: str) -> dict[str, Any]:
    """Turn a response into its JSON object, or raise the error class that decides retry or fail."""
    status = response.status_code
    request_id = response.headers.get("X-Request-Id")
    if 200 <= status < 300:
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise BadResponseError(
                f"HTTP {status} from GET {path} is not JSON (request id {request_id or '-'}): "
                f"{_redact(_excerpt(response.content))!r}",
                path=path,
            ) from exc
        if not isinstance(data, dict):
            raise BadResponseError(f"HTTP {status} from GET {path} is JSON but not an object", path=path)
        return data
    error_code = error_msg = None
    try:
        body = json.loads(response.content)
        if isinstance(body, dict):
            error_code = _str_or_none(body.get("error_code"))
            error_msg = _str_or_none(body.get("error_msg"))
            error_msg = None if error_msg is None else _redact(error_msg)  # a gateway may repeat the token
    except ValueError:
        pass
    details: dict[str, Any] = {
        "error_code": error_code,
        "error_msg": error_msg,
        "request_id": request_id,
        "body_excerpt": _redact(_excerpt(response.content)),
        "method": response.request.method or "GET",
    }
    if 300 <= status < 400:
        # never followed: a redirect to another host would carry our credentials there
        details["error_msg"] = f"redirected to {response.headers.get('Location', '?')}; check the endpoint"
        raise ApiError(status, path, **details)
    if status in RETRYABLE_STATUS:
        raise RetryableApiError(
            status, path, retry_after=parse_retry_after(response.headers.get("Retry-After")), **details
        )
    if status in (401, 403):
        raise AuthError(status, path, **details)
    raise ApiError(status, path, **details)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number (fractions accepted) or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _excerpt(body: bytes) -> str:
    return body[:BODY_EXCERPT].decode("utf-8", "replace")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


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
        self.transport = Transport(settings)
        self.session = self.transport.session
        self.limiter = AdaptiveLimiter(settings.concurrency)
        self.stats = ClientStats()
        self._wait = BackoffWait(initial=backoff_initial)
        creds = settings.credentials
        for secret in creds.secrets():
            register_secret(secret)  # masked in every error and log line, whoever uses this client
        self._signer = Signer(BasicCredentials(creds.ak, creds.sk)) if creds.kind == "aksk" else None
        self._iam_token: str | None = None
        self._iam_lock = threading.Lock()
        self.stopping = threading.Event()  # set by stop(): no new attempt, no more waiting between attempts

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
        if self.settings.credentials.kind != "iam":
            return self._attempt(path, params)
        sent = self._refresh_iam_token()  # the cached token, or the first one
        try:
            return self._attempt(path, params, token=sent)
        except AuthError as exc:
            if exc.status != 401 or exc.method != "GET":
                raise  # 403, or IAM itself refused: asking IAM again would not help
            log.info("IAM token refused (HTTP 401); fetching a new one once")
            return self._attempt(path, params, token=self._refresh_iam_token(stale=sent))

    def _attempt(
        self, path: str, params: Mapping[str, Any], *, token: str | None = None
    ) -> tuple[requests.Response, dict[str, Any]]:
        if self.stopping.is_set():
            raise Stopped("the run is stopping")
        url, query, headers = self._prepare(path, params, token)
        with self.limiter:
            self.stats.add(requests=1)
            try:
                response = self.transport.exchange("GET", url, path, params=query, headers=headers)
            except ResponseTooLarge:
                self.stats.add(oversized=1)
                raise
            except TlsError:
                raise
            except TransportError:
                self.stats.add(transport_errors=1)
                raise
        self.stats.add(bytes_received=len(response.content))
        log.debug(
            "GET %s %s -> %d in %.0f ms",
            path,
            dict(params),
            response.status_code,
            response.elapsed.total_seconds() * 1e3,
        )
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
        return response, data

    def _prepare(
        self, path: str, params: Mapping[str, Any], token: str | None = None
    ) -> tuple[str, Mapping[str, Any] | None, dict[str, str]]:
        """URL, query and authentication headers for one attempt (AK/SK signatures are made per attempt).

        A signed request carries its query already in the URL, in exactly the signer's canonical form.
        ``token`` is the IAM token to send.
        """
        creds = self.settings.credentials
        url = f"{self._scheme}://{self._host}{path}"
        if creds.kind == "token":
            return url, params, {"X-Auth-Token": creds.token or ""}
        if creds.kind == "iam":
            return url, params, {"X-Auth-Token": token or self._refresh_iam_token()}
        assert self._signer is not None
        headers = {"X-Project-Id": self.settings.project_id}
        if creds.security_token:
            headers["X-Security-Token"] = creds.security_token
        request = SdkRequest(
            method="GET",
            schema=self._scheme,
            host=self._host,
            resource_path=path,
            query_params=[(k, str(v)) for k, v in params.items()],
            header_params=headers,
            body="",
        )
        signed = self._signer.sign(request)
        return signed.url, None, dict(signed.header_params)

    # -- IAM ---------------------------------------------------------------------------------------
    def _refresh_iam_token(self, *, stale: str | None = None) -> str:
        """The cached IAM token; a new one when there is none, or when the cached one is ``stale`` (refused).

        Threads refused with the same token wait on one lock: the first fetches a new token, the others
        find it already replaced and use it, so one expiry costs one call to IAM whatever the concurrency.
        """
        with self._iam_lock:
            if self._iam_token is None or (stale is not None and self._iam_token == stale):
                self._iam_token = self._fetch_iam_token()
            return self._iam_token

    def _fetch_iam_token(self) -> str:
        creds = self.settings.credentials
        path = "/v3/auth/tokens"
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": creds.iam_username,
                            "password": creds.iam_password,
                            "domain": {"name": creds.iam_domain},
                        }
                    },
                },
                "scope": {"project": {"id": self.settings.project_id}},
            }
        }
        response = self.transport.exchange("POST", f"{creds.iam_endpoint}{path}", path, json=body)
        token = response.headers.get("X-Subject-Token", "").strip()
        if response.status_code in (200, 201) and token:
            register_secret(token)  # before anything can print it: an error body that echoes it, a debug line
            log.info("got an IAM token for user %s", creds.iam_username)
            return token
        try:
            classify(response, path)
        except RetryableApiError:
            raise
        except ApiError as exc:
            raise AuthError(
                exc.status,
                path,
                error_code=exc.error_code,
                error_msg=exc.error_msg,
                request_id=exc.request_id,
                method="POST",
            ) from exc
        raise AuthError(response.status_code, path, error_msg="IAM answered without X-Subject-Token", method="POST")

    def _sleep(self, seconds: float) -> None:
        """tenacity's pause between attempts, cut short by :meth:`stop`."""
        if self.stopping.wait(seconds):
            raise Stopped("the run is stopping")

    def stop(self) -> None:
        """Make every request that is waiting to retry give up now (Ctrl-C, or a fatal error elsewhere)."""
        self.stopping.set()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> SwrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Fault knobs of the sandbox and the deterministic injector that applies them.

Every decision is a pure function of ``(seed, knob, request key, attempt number)`` where the request key
is ``METHOD path?sorted-query`` and the attempt number counts how many times that exact request has been
seen. A request is never faulted more than ``Faults.max_consecutive`` times in a row, so a client that
tries at least ``max_consecutive + 1`` times always gets through.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["NO_FAULTS", "FaultDecision", "FaultInjector", "Faults", "format_retry_after"]

_RATE_FIELDS = (
    "rate_429",
    "rate_5xx",
    "rate_cut",
    "rate_slow",
    "rate_html",
    "rate_bad_resource",
    "rate_object_resource",
    "rate_retried_tags",
)


@dataclass(frozen=True)
class Faults:
    """What the sandbox does wrong on purpose. Every knob is off by default.

    ``rate_*`` values are fractions in ``[0, 1]``. The HTTP faults (429, 5xx, cut, slow) apply to the ``/v2``
    API endpoints only, never to ``/_sandbox/`` helpers or the IAM endpoint; ``latency_ms`` applies to every
    ``/v2`` and IAM request. ``rate_bad_resource``, ``rate_object_resource``, ``rate_retried_tags`` and
    ``grow_tasks`` change the synthetic data itself (see :class:`pipeline.sandbox.world.World`).
    """

    latency_ms: float = 0.0
    rate_429: float = 0.0
    retry_after_s: float = 1.0
    rate_5xx: float = 0.0
    rate_cut: float = 0.0
    rate_slow: float = 0.0
    slow_ms: float = 0.0
    rate_html: float = 0.0  # fraction answered 200 with an HTML page, as a proxy in the way would
    max_consecutive: int = 2
    rate_bad_resource: float = 0.0
    rate_object_resource: float = 0.0
    grow_tasks: int = 0
    #: fraction of ``Succeed`` copy tasks, in executions after a policy's first, that replicate again the
    #: artifacts of a task that failed in an earlier execution of the same policy (failed, then retried)
    rate_retried_tags: float = 0.0
    iam_token_ttl_s: float | None = None
    #: serve every task list in a new random order on each request: the unstable order of a running
    #: execution at its worst, under which a single pass of paging misses and repeats tasks
    shuffle_tasks: bool = False

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be within [0, 1], got {value!r}")
        for name in ("latency_ms", "retry_after_s", "slow_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"Faults.{name} must be >= 0")
        if self.max_consecutive < 0 or self.grow_tasks < 0:
            raise ValueError("Faults.max_consecutive and Faults.grow_tasks must be >= 0")
        if self.iam_token_ttl_s is not None and self.iam_token_ttl_s <= 0:
            raise ValueError("Faults.iam_token_ttl_s must be > 0 or None")


#: Every knob off.
NO_FAULTS = Faults()


@dataclass(frozen=True)
class FaultDecision:
    """One injected fault: ``kind`` is ``"429"``, ``"5xx"``, ``"cut"`` or ``"slow"``."""

    kind: str
    status: int = 200
    delay_s: float = 0.0


def format_retry_after(seconds: float) -> str:
    """``Retry-After`` as whole seconds when whole (``"1"``), else the short decimal (``"0.2"``)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return format(seconds, "g")


def request_key(method: str, path: str, query: list[tuple[str, str]]) -> str:
    """The identity of "the same request": method, path and the query sorted by (key, value)."""
    return f"{method.upper()} {path}?{urlencode(sorted(query))}"


class FaultInjector:
    """Decides, thread-safely and deterministically, whether a list request gets a fault."""

    _STATUS_5XX = (500, 502, 503)

    def __init__(self, seed: int, faults: Faults) -> None:
        self._seed = seed
        self._faults = faults
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._streak: dict[str, int] = {}

    @property
    def faults(self) -> Faults:
        return self._faults

    def _roll(self, knob: str, key: str, attempt: int) -> float:
        digest = hashlib.blake2b(f"{self._seed}\x00{knob}\x00{key}\x00{attempt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def decide(self, method: str, path: str, query: list[tuple[str, str]]) -> FaultDecision | None:
        """Count one more attempt of this request and return the fault to apply, if any."""
        f = self._faults
        if not (f.rate_429 or f.rate_5xx or f.rate_cut or f.rate_slow or f.rate_html):
            return None
        key = request_key(method, path, query)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            if self._streak.get(key, 0) >= f.max_consecutive:
                self._streak[key] = 0
                return None
            decision = self._pick(key, attempt)
            self._streak[key] = self._streak.get(key, 0) + 1 if decision else 0
            return decision

    def _pick(self, key: str, attempt: int) -> FaultDecision | None:
        f = self._faults
        if f.rate_429 and self._roll("rate_429", key, attempt) < f.rate_429:
            return FaultDecision("429", 429)
        if f.rate_5xx and self._roll("rate_5xx", key, attempt) < f.rate_5xx:
            which = int(self._roll("status_5xx", key, attempt) * 3) + attempt
            return FaultDecision("5xx", self._STATUS_5XX[which % 3])
        if f.rate_cut and self._roll("rate_cut", key, attempt) < f.rate_cut:
            return FaultDecision("cut", 200)
        if f.rate_slow and self._roll("rate_slow", key, attempt) < f.rate_slow:
            return FaultDecision("slow", 200, f.slow_ms / 1000.0)
        if f.rate_html and self._roll("rate_html", key, attempt) < f.rate_html:
            return FaultDecision("html", 200)
        return None

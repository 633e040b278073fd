"""A request budget: at most ``rate`` requests per second across every thread of a run (``--max-rps``).

:class:`TokenBucket` is refilled continuously at ``rate`` tokens per second and holds at most ``burst``. A caller
that finds it empty reserves the next token due (the count goes below zero) and sleeps, outside the lock, until
that token's time: callers are served in the order they came, each computes its sleep once, and no thread is
woken for nothing. Stopping the run wakes every sleeper, which raises :class:`Stopped` instead of sleeping on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from pipeline.errors import Stopped


class TokenBucket:
    """Thread-safe token bucket. ``acquire()`` takes one token, waiting for it when none is left.

    ``burst`` (at least 1) is how many requests may go at once after a quiet spell; any window of ``T``
    seconds then holds at most ``burst + rate * T`` acquisitions. ``stopping`` is the run's stop signal: once
    set, waiting callers wake and new ones are refused, both with :class:`Stopped`. ``clock`` and ``wait``
    are for tests: ``wait(seconds)`` pauses and returns whether the run is stopping (default: the event's own
    ``wait``, which a stop cuts short).
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number above 0, got {rate!r}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"burst must be a finite number of at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.stopping = stopping if stopping is not None else threading.Event()
        self._clock = clock
        self._wait = wait if wait is not None else self.stopping.wait
        self._lock = threading.Lock()
        self._tokens = self.burst  # full at the start: the first ``burst`` requests go at once
        self._updated = clock()

    def acquire(self) -> float:
        """Take one token; return the seconds this caller was made to wait (0.0 when one was there).

        Raises :class:`Stopped` when the run is stopping, before or during the wait. A token reserved by a
        caller that is then stopped is not given back: the run is ending, and no one needs it.
        """
        if self.stopping.is_set():
            raise Stopped("the run is stopping")
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            delay = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if delay > 0 and self._wait(delay):
            raise Stopped("the run is stopping")
        return delay

    def available(self) -> float:
        """Tokens in the bucket now; negative when callers are waiting for tokens not yet due (for tests)."""
        with self._lock:
            return min(self.burst, self._tokens + (self._clock() - self._updated) * self.rate)

    def stop(self) -> None:
        """Wake every waiting caller with :class:`Stopped`, and refuse new ones."""
        self.stopping.set()

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}, burst={self.burst:g})"

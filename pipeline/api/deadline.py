"""A total deadline per HTTP attempt: connecting, the headers and every read of the body, together.

The read timeout bounds one wait for bytes, so a server that sends a byte just inside it, again and again,
holds a request open for ever. A :class:`Watchdog` (one thread per client) shuts down the sockets of every
attempt whose deadline has passed: a read blocked on them returns at once, the attempt fails, and its
caller, seeing :meth:`Deadline.finish` answer True, reports the deadline rather than a cut connection.

The sockets are found through urllib3's own extension point: :class:`DeadlineAdapter` gives its pools
connection classes that hand each socket, when it is opened and whenever it is reused for a request, to
the deadline armed in the current thread (requests sends a request in the thread that called it).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection

_current = threading.local()  # .deadline: the Deadline armed in this thread, if any


class Deadline:
    """One attempt's deadline. ``with`` arms it in the current thread; the sockets used inside are watched."""

    def __init__(self, watchdog: Watchdog, seconds: float) -> None:
        self.when = time.monotonic() + seconds
        self._watchdog = watchdog
        self._sockets: list[socket.socket] = []
        self.expired = False
        self.over = False
        self._outer: Deadline | None = None

    def watch(self, sock: socket.socket) -> None:
        with self._watchdog.lock:
            if self.over:
                return
            if not self.expired:
                self._sockets.append(sock)
                return
        _shut(sock)  # opened after the deadline passed: this attempt is over already

    def finish(self) -> bool:
        """Stop watching; True when the deadline passed first (whatever the attempt got was cut short)."""
        with self._watchdog.lock:
            if not self.over:
                self.over = True
                self._sockets = []
                self._watchdog.live -= 1
            return self.expired

    def _fire(self) -> list[socket.socket]:
        """Called by the watchdog, under its lock: the sockets to shut down."""
        if self.over:
            return []
        self.expired = True
        sockets, self._sockets = self._sockets, []
        return sockets

    def __enter__(self) -> Deadline:
        self._outer = getattr(_current, "deadline", None)
        _current.deadline = self
        self._watchdog.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.deadline = self._outer
        self.finish()


class Watchdog:
    """Shuts down the sockets of attempts past their deadline. One daemon thread, started on first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live = 0  # deadlines armed and not finished
        self._wake = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now; use it as a context manager around the whole attempt."""
        return Deadline(self, seconds)

    def add(self, deadline: Deadline) -> None:
        with self.lock:
            self.live += 1
            # finished deadlines are dropped when they come due; when they pile up (long deadlines, many
            # quick requests) they are swept out, so the heap stays about the size of what is in flight
            if len(self._heap) > 64 and len(self._heap) > 2 * self.live:
                self._heap = [entry for entry in self._heap if not entry[2].over]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline.when, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="request-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wake.notify()

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self.lock:
                due: list[socket.socket] = []
                while not due:
                    if self._closed:
                        return
                    now = time.monotonic()
                    while self._heap and (self._heap[0][2].over or self._heap[0][0] <= now):
                        due += heapq.heappop(self._heap)[2]._fire()
                    if not due:
                        self._wake.wait(self._heap[0][0] - now if self._heap else None)
            for sock in due:  # outside the lock: a shutdown is a system call
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Shut the socket down both ways: a read blocked on it returns now (closing it would not wake it).

    Plain ``socket.shutdown`` even on a TLS socket: its own would drop the TLS state under the reading thread.
    """
    with contextlib.suppress(OSError):  # closed or reset already
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _HTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a kept-alive connection, reused: no new socket is opened
        super().request(*args, **kwargs)


class _HTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before the TLS handshake, which a server can drip too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections that a :class:`Deadline` armed around a request can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:  # a SOCKS proxy has connection classes of its own: left as they are
            manager.pool_classes_by_scheme = _POOLS
        return manager

"""Offset arithmetic for the SWR list endpoints. No HTTP here: this module is tested without a server.

The API pages with ``offset`` and ``limit`` (at most 100); ``offset`` must be 0 or a multiple of ``limit``;
the body carries ``total``. :class:`OffsetPaginator` plans which offsets to ask for, lets a caller ask for
several at once (pages may come back in any order), and stops when the total is reached or a page comes
back short or empty. It never hands out the same offset twice, and it raises if told about an offset it
did not hand out, so a bug upstream cannot turn into a loop or a silent double fetch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.errors import PagingError

MAX_LIMIT = 100

T = TypeVar("T")


class OffsetPaginator:
    """Plans the offsets of one listing.

    >>> p = OffsetPaginator(limit=100)
    >>> p.take(8)             # only the first page is known to be needed
    [0]
    >>> p.record(0, rows=100, total=250)
    >>> p.take(8)             # now the rest can be asked for at once
    [100, 200]
    >>> p.record(200, rows=50, total=250); p.record(100, rows=100, total=250)
    >>> p.done
    True
    """

    def __init__(self, limit: int = MAX_LIMIT) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise PagingError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
        self.limit = limit
        self._next = 0  # the lowest offset not handed out yet
        self._known_end = 1  # offsets below this are known to hold rows (0 is always asked once)
        self._end: int | None = None  # a short or empty page ended the listing here
        self._outstanding: set[int] = set()
        self._recorded: set[int] = set()
        self.total = 0  # the largest total any page reported

    def take(self, n: int) -> list[int]:
        """Hand out up to ``n`` offsets that are known to be needed and were never handed out."""
        stop = self._stop()
        out: list[int] = []
        while len(out) < n and self._next < stop:
            if self._next not in self._recorded:  # a page landed by an earlier, interrupted run
                out.append(self._next)
                self._outstanding.add(self._next)
            self._next += self.limit
            stop = self._stop()
        return out

    def record(self, offset: int, rows: int, total: int) -> None:
        """Tell the paginator what the page at ``offset`` held: ``rows`` rows and the ``total`` it reported."""
        if offset not in self._outstanding:
            state = "already recorded" if offset in self._recorded else "never handed out"
            raise PagingError(f"page at offset {offset} was {state}")
        self._outstanding.discard(offset)
        self._note(offset, rows, total)

    def already(self, offset: int, rows: int, total: int) -> None:
        """A page fetched before (by a run that was interrupted): never handed out again in this pass."""
        if offset % self.limit or offset in self._recorded or offset in self._outstanding:
            raise PagingError(f"page at offset {offset} cannot be taken as already fetched")
        self._note(offset, rows, total)

    def _note(self, offset: int, rows: int, total: int) -> None:
        if rows < 0 or total < 0:
            raise PagingError(f"page at offset {offset} reported rows={rows}, total={total}")
        self._recorded.add(offset)
        self.total = max(self.total, total)
        if rows < self.limit:
            end = offset + rows
            self._end = end if self._end is None else min(self._end, end)
        self._known_end = max(self._known_end, self.total)

    @property
    def done(self) -> bool:
        """Nothing outstanding and nothing left to hand out."""
        return not self._outstanding and self._next >= self._stop()

    def _stop(self) -> int:
        return self._known_end if self._end is None else min(self._known_end, self._end)


@dataclass(frozen=True)
class Page(Generic[T]):
    offset: int
    limit: int
    rows: Sequence[T]
    total: int


def iterate_pages(fetch: Callable[[int, int], tuple[Sequence[T], int]], limit: int = MAX_LIMIT) -> Iterator[Page[T]]:
    """Page through a listing one request at a time. ``fetch(offset, limit)`` returns ``(rows, total)``."""
    paginator = OffsetPaginator(limit)
    while offsets := paginator.take(1):
        (offset,) = offsets
        rows, total = fetch(offset, limit)
        paginator.record(offset, len(rows), total)
        yield Page(offset, limit, rows, total)

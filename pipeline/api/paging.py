"""Offset arithmetic for the SWR list endpoints. No HTTP here: this module is tested without a server.

The API pages with ``offset`` and ``limit`` (at most 100); ``offset`` must be 0 or a multiple of ``limit``;
the body carries ``total``. :class:`OffsetPaginator` plans which offsets to ask for, lets a caller ask for
several at once (pages may come back in any order), and stops when the total is reached or a page comes
back short or empty. It never hands out the same offset twice, and it raises if told about an offset it
did not hand out, so a bug upstream cannot turn into a loop or a silent double fetch.

A server's ``total`` is not trusted to end a listing on its own, in either direction. Paging stops early
(:attr:`OffsetPaginator.stopped` says why) when a full page adds no row not seen before (the server repeats
itself, whatever total it claims), when full pages keep coming past the largest total by a margin, and at a
hard cap of pages; and it goes on past a total that a full page runs beyond.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.errors import PagingError

MAX_LIMIT = 100
# The most pages one listing is paged to: 1 M tasks at 100 a page, far beyond a real execution's task list,
# and minutes of requests. A server whose totals keep growing, or whose list never ends, stops here instead of
# running for hours and filling the disk.
MAX_PAGES = 10_000
# How far past the largest total (the pages' or the expected count) full pages are followed: 10 pages or
# 10% of that total, the larger. Room for a list that grows while it is paged; a list that never ends stops.
MARGIN_PAGES = 10
MARGIN_SHARE = 10  # 1/10 of the total

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

    ``expected`` is a count of the listing's rows known before paging (an execution record's own ``total``):
    offsets below it are asked for at once, and it outranks a smaller total in the pages.
    """

    def __init__(self, limit: int = MAX_LIMIT, *, expected: int = 0, max_pages: int = MAX_PAGES) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise PagingError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
        self.limit = limit
        self.expected = 0
        self.max_pages = max_pages
        self._next = 0  # the lowest offset not handed out yet
        self._known_end = 1  # offsets below this are worth asking for (0 is always asked once)
        self._end: int | None = None  # a short or empty page ended the listing here, or paging was halted
        self._halted: str | None = None  # why a page ended paging before the listing's end
        self._outstanding: set[int] = set()
        self._recorded: set[int] = set()
        self.total = 0  # the largest total any page reported
        self.expect(expected)

    def expect(self, rows: int) -> None:
        """Take ``rows`` as a count of the listing known before paging (see ``expected`` above)."""
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise PagingError(f"expected must be a non-negative integer, got {rows!r}")
        self.expected = max(self.expected, rows)
        self._known_end = max(self._known_end, rows)

    def take(self, n: int) -> list[int]:
        """Hand out up to ``n`` offsets that are known to be needed and were never handed out."""
        stop = self._bound()
        out: list[int] = []
        while len(out) < n and self._next < stop:
            if self._next not in self._recorded:  # a page landed by an earlier, interrupted run
                out.append(self._next)
                self._outstanding.add(self._next)
            self._next += self.limit
            stop = self._bound()
        return out

    def record(self, offset: int, rows: int, total: int, *, fresh: int | None = None) -> None:
        """Tell the paginator what the page at ``offset`` held: ``rows`` rows and the ``total`` it reported;
        ``fresh``, when the caller can tell, how many of the rows were not seen before in this listing."""
        if offset not in self._outstanding:
            state = "already recorded" if offset in self._recorded else "never handed out"
            raise PagingError(f"page at offset {offset} was {state}")
        self._outstanding.discard(offset)
        self._note(offset, rows, total, fresh)

    def already(self, offset: int, rows: int, total: int) -> None:
        """A page fetched before (by a run that was interrupted): never handed out again in this pass."""
        if offset % self.limit or offset in self._recorded or offset in self._outstanding:
            raise PagingError(f"page at offset {offset} cannot be taken as already fetched")
        self._note(offset, rows, total, None)

    def _note(self, offset: int, rows: int, total: int, fresh: int | None) -> None:
        if rows < 0 or total < 0 or (fresh is not None and not 0 <= fresh <= rows):
            raise PagingError(f"page at offset {offset} reported rows={rows}, total={total}, fresh={fresh}")
        self._recorded.add(offset)
        self.total = max(self.total, total)
        if rows < self.limit:
            self._end_at(offset + rows)
        elif fresh == 0:
            self._end_at(offset)
            reason = f"the full page at offset {offset} holds no task not seen before: the server repeats itself"
            self._halted = self._halted or reason
        elif offset + rows > max(self.total, self.expected):  # a full page past every total: the totals are low
            self._known_end = max(self._known_end, offset + rows + 1)
        self._known_end = max(self._known_end, self.total)

    def _end_at(self, end: int) -> None:
        self._end = end if self._end is None else min(self._end, end)

    @property
    def done(self) -> bool:
        """Nothing outstanding and nothing left to hand out."""
        return not self._outstanding and self._next >= self._bound()

    @property
    def stopped(self) -> str | None:
        """Why paging ended before the listing did (the server repeated itself, or never stopped sending full
        pages), or None: the listing ended, or has not yet."""
        if self._halted is not None:
            return self._halted
        ceiling = self._ceiling()
        if not ceiling <= self._next < self._natural_end():
            return None
        if ceiling == self.max_pages * self.limit:
            return f"stopped at offset {ceiling}: {self.max_pages} pages is the most one listing is paged to"
        largest = max(self.total, self.expected)
        return (
            f"full pages kept coming past offset {ceiling}, beyond the largest total ({largest}) by "
            f"{ceiling - largest}: {MARGIN_PAGES} pages or {100 // MARGIN_SHARE}% of it, the larger"
        )

    def _natural_end(self) -> int:
        """Where the listing ends, as far as its pages and totals tell."""
        return self._known_end if self._end is None else min(self._known_end, self._end)

    def _ceiling(self) -> int:
        """No offset at or past this is handed out: the margin past the largest total, and the page cap."""
        largest = max(self.total, self.expected)
        margin = max(MARGIN_PAGES * self.limit, largest // MARGIN_SHARE)
        return min(largest + margin, self.max_pages * self.limit)

    def _bound(self) -> int:
        return min(self._natural_end(), self._ceiling())


@dataclass(frozen=True)
class Page(Generic[T]):
    offset: int
    limit: int
    rows: Sequence[T]
    total: int


def iterate_pages(
    fetch: Callable[[int, int], tuple[Sequence[T], int]],
    limit: int = MAX_LIMIT,
    key: Callable[[T], Hashable] | None = None,
) -> Iterator[Page[T]]:
    """Page through a listing one request at a time. ``fetch(offset, limit)`` returns ``(rows, total)``;
    ``key``, when given, tells rows apart, so that a full page of rows seen before ends the listing."""
    paginator = OffsetPaginator(limit)
    seen: set[Hashable] = set()
    while offsets := paginator.take(1):
        (offset,) = offsets
        rows, total = fetch(offset, limit)
        fresh = None
        if key is not None:
            before = len(seen)
            seen.update(key(row) for row in rows)
            fresh = len(seen) - before
        paginator.record(offset, len(rows), total, fresh=fresh)
        yield Page(offset, limit, rows, total)

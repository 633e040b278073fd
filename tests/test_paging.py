"""The paginator alone: no HTTP, no server."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import PagingError
from pipeline.paging import MAX_LIMIT, OffsetPaginator, iterate_pages


class FakeListing:
    """A listing of ``n`` rows that records which offsets were asked for."""

    def __init__(self, n: int) -> None:
        self.rows = list(range(n))
        self.asked: list[int] = []

    def fetch(self, offset: int, limit: int) -> tuple[list[int], int]:
        assert offset % limit == 0, "offset must be a multiple of limit"
        self.asked.append(offset)
        return self.rows[offset : offset + limit], len(self.rows)


def drain(paginator: OffsetPaginator, listing: FakeListing, width: int, rng: random.Random) -> list[int]:
    """Ask ``width`` pages at a time and answer them in a random order, as a thread pool would."""
    got: dict[int, list[int]] = {}
    outstanding: list[int] = []
    while True:
        outstanding.extend(paginator.take(width - len(outstanding)))
        if not outstanding:
            break
        offset = outstanding.pop(rng.randrange(len(outstanding)))
        rows, total = listing.fetch(offset, paginator.limit)
        got[offset] = rows
        paginator.record(offset, len(rows), total)
    assert paginator.done
    return [row for offset in sorted(got) for row in got[offset]]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 1500), limit=st.integers(1, MAX_LIMIT))
def test_sequential_pages_join_to_the_rows_and_each_offset_is_asked_once(n: int, limit: int) -> None:
    listing = FakeListing(n)
    pages = list(iterate_pages(listing.fetch, limit))
    assert [row for page in pages for row in page.rows] == listing.rows
    assert len(listing.asked) == len(set(listing.asked))
    # one request per page, and one for an empty listing: a full last page is not followed by an empty one
    assert len(listing.asked) == max(1, -(-n // limit))


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 1500),
    limit=st.integers(1, MAX_LIMIT),
    width=st.integers(1, 16),
    seed=st.integers(0, 2**32),
)
def test_parallel_pages_in_any_order_join_to_the_rows(n: int, limit: int, width: int, seed: int) -> None:
    listing = FakeListing(n)
    rows = drain(OffsetPaginator(limit), listing, width, random.Random(seed))
    assert rows == listing.rows
    assert len(listing.asked) == len(set(listing.asked))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 800),
    limit=st.integers(1, MAX_LIMIT),
    grow=st.integers(1, 250),
    width=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_a_total_that_grows_while_paging_is_followed(n: int, limit: int, grow: int, width: int, seed: int) -> None:
    # rows are appended right after the first answer, so every later answer reports the final total
    listing = FakeListing(n)
    paginator = OffsetPaginator(limit)
    first = paginator.take(1)
    rows, total = listing.fetch(first[0], limit)
    paginator.record(first[0], len(rows), total)
    listing.rows.extend(range(n, n + grow))
    rest = drain(paginator, listing, width, random.Random(seed))
    collected = rows + rest
    if n > limit:
        # a later page is asked for, reports the grown total, and the paginator follows it
        assert collected == listing.rows
    else:
        # the first page already reached its total: the pass ends there (rows added later are the next run's)
        assert collected == list(range(n))
    assert len(listing.asked) == len(set(listing.asked))


def test_a_short_page_ends_the_listing_even_below_a_larger_total() -> None:
    p = OffsetPaginator(10)
    assert p.take(5) == [0]
    p.record(0, rows=10, total=30)
    assert p.take(5) == [10, 20]
    p.record(10, rows=4, total=30)  # the listing shrank (or shifted) under us
    p.record(20, rows=0, total=30)
    assert p.done
    assert p.total == 30  # the largest total seen: what the caller compares with the rows it got
    assert p.take(5) == []


def test_empty_listing_takes_one_request() -> None:
    p = OffsetPaginator(100)
    assert p.take(8) == [0]
    p.record(0, rows=0, total=0)
    assert p.done
    assert p.take(8) == []


def test_exactly_full_last_page_stops_on_the_total() -> None:
    p = OffsetPaginator(100)
    p.take(1)
    p.record(0, rows=100, total=100)
    assert p.done


@pytest.mark.parametrize("limit", [0, -1, 101, 1.5, True, "10"])
def test_a_limit_that_could_never_work_is_refused(limit: object) -> None:
    with pytest.raises(PagingError, match="limit must be an integer from 1 to 100"):
        OffsetPaginator(limit)  # type: ignore[arg-type]


def test_an_offset_is_never_handed_out_or_recorded_twice() -> None:
    p = OffsetPaginator(10)
    p.take(1)
    p.record(0, rows=10, total=50)
    taken = p.take(100)
    assert taken == [10, 20, 30, 40]
    assert p.take(100) == []
    p.record(10, rows=10, total=50)
    with pytest.raises(PagingError, match="offset 10 was already recorded"):
        p.record(10, rows=10, total=50)
    with pytest.raises(PagingError, match="offset 15 was never handed out"):
        p.record(15, rows=10, total=50)


def test_negative_counts_are_refused() -> None:
    p = OffsetPaginator(10)
    p.take(1)
    with pytest.raises(PagingError, match="rows=-1"):
        p.record(0, rows=-1, total=5)

"""The paginator alone: no HTTP, no server."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api.paging import MAX_LIMIT, MAX_PAGES, OffsetPaginator, iterate_pages
from pipeline.errors import PagingError


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


# -- a server that lies: totals too large or too small, pages that repeat, lists that never end --------------


def record_all(p: OffsetPaginator, pages: dict[int, tuple[int, int, int | None]]) -> list[int]:
    """Take every offset one at a time and answer it from ``pages`` (offset -> rows, total, fresh); the
    offsets asked, in order."""
    asked = []
    while offsets := p.take(1):
        (offset,) = offsets
        asked.append(offset)
        rows, total, fresh = pages[offset]
        p.record(offset, rows, total, fresh=fresh)
    assert p.done
    return asked


def test_a_full_page_that_adds_no_new_task_ends_paging_whatever_the_total() -> None:
    p = OffsetPaginator(100)
    assert p.take(4) == [0]
    p.record(0, rows=100, total=10**7, fresh=100)
    assert p.take(4) == [100, 200, 300, 400]
    p.record(200, rows=100, total=10**7, fresh=0)  # the server sends the same 100 tasks again
    assert p.take(4) == []
    assert p.stopped == "the full page at offset 200 holds no task not seen before: the server repeats itself"
    for offset in (100, 300, 400):  # what was already asked for still comes back and is recorded
        p.record(offset, rows=100, total=10**7, fresh=0)
    assert p.done
    assert p.stopped.startswith("the full page at offset 200 ")  # the first stop is the one told


def test_a_short_page_of_tasks_seen_before_is_an_ordinary_end() -> None:
    p = OffsetPaginator(100)
    assert record_all(p, {0: (100, 150, 100), 100: (50, 150, 0)}) == [0, 100]
    assert p.stopped is None


def test_the_expected_count_is_asked_for_at_once_and_outranks_a_smaller_total() -> None:
    p = OffsetPaginator(100, expected=250)
    assert p.take(8) == [0, 100, 200]  # the execution record says 250: no need to wait for the first page
    p.record(100, rows=100, total=100)
    p.record(0, rows=100, total=100)
    p.record(200, rows=50, total=100)
    assert p.done
    assert p.stopped is None
    assert p.total == 100  # the pages' own total, for the caller to compare


def test_an_expected_count_above_the_list_ends_at_the_first_short_page() -> None:
    p = OffsetPaginator(100, expected=1000)
    taken = p.take(3)
    assert taken == [0, 100, 200]
    p.record(100, rows=0, total=100)
    p.record(0, rows=100, total=100)
    p.record(200, rows=0, total=100)
    assert p.take(8) == []
    assert p.done
    assert p.stopped is None


@pytest.mark.parametrize("expected", [-1, 1.5, True, "10"])
def test_an_expected_count_that_is_not_a_count_is_refused(expected: object) -> None:
    with pytest.raises(PagingError, match="expected must be a non-negative integer"):
        OffsetPaginator(10, expected=expected)  # type: ignore[arg-type]


def test_full_pages_that_run_past_the_total_are_followed() -> None:
    # the total says 15, the list holds 42: the page at 10 runs past the total, so the next one is asked for
    listing = FakeListing(42)
    p = OffsetPaginator(10)
    pages = {o: (len(listing.rows[o : o + 10]), 15, len(listing.rows[o : o + 10])) for o in range(0, 100, 10)}
    assert record_all(p, pages) == [0, 10, 20, 30, 40]
    assert p.stopped is None


def test_a_page_that_ends_exactly_on_the_total_is_believed_without_another_request() -> None:
    p = OffsetPaginator(100)
    assert record_all(p, {0: (100, 100, 100)}) == [0]


@pytest.mark.parametrize(
    ("limit", "total", "expected", "ceiling"),
    [
        (10, 15, 0, 115),  # 10 pages past the total: the list never stops sending full pages
        (10, 15, 45, 145),  # the margin counts from the larger of the totals
        (100, 49_950, 0, 54_945),  # 10% of a large total is more than 10 pages
    ],
)
def test_full_pages_past_every_total_stop_at_the_margin(limit: int, total: int, expected: int, ceiling: int) -> None:
    p = OffsetPaginator(limit, expected=expected)
    asked = record_all(p, {o: (limit, total, limit) for o in range(0, 10**6, limit)})
    assert asked == list(range(0, ceiling, limit))
    largest = max(total, expected)
    assert p.stopped == (
        f"full pages kept coming past offset {ceiling}, beyond the largest total ({largest}) by "
        f"{ceiling - largest}: 10 pages or 10% of it, the larger"
    )


def test_full_pages_that_end_on_the_expected_count_are_believed() -> None:
    p = OffsetPaginator(10, expected=40)
    assert record_all(p, {o: (10, 15, 10) for o in range(0, 100, 10)}) == [0, 10, 20, 30]
    assert p.stopped is None


def test_a_total_that_keeps_growing_stops_at_the_page_cap() -> None:
    p = OffsetPaginator(100, max_pages=5)
    asked = record_all(p, {o: (100, o + 1000, 100) for o in range(0, 10**5, 100)})
    assert asked == [0, 100, 200, 300, 400]
    assert p.stopped == "stopped at offset 500: 5 pages is the most one listing is paged to"


def test_the_page_cap_is_ten_thousand_pages_of_a_hundred() -> None:
    assert MAX_PAGES == 10_000
    p = OffsetPaginator(100)
    p.take(1)
    p.record(0, rows=100, total=10**9, fresh=100)
    taken = p.take(10**6)
    assert len(taken) == MAX_PAGES - 1
    assert taken[-1] == 100 * (MAX_PAGES - 1)
    for offset in taken:
        p.record(offset, rows=100, total=10**9, fresh=100)
    assert p.done
    assert p.stopped == "stopped at offset 1000000: 10000 pages is the most one listing is paged to"


def test_iterate_pages_ends_a_listing_that_never_ends() -> None:
    def endless(offset: int, limit: int) -> tuple[list[int], int]:
        return list(range(offset, offset + limit)), 5

    pages = list(iterate_pages(endless, 10))
    assert [page.offset for page in pages] == list(range(0, 110, 10))


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 1500),
    reported=st.integers(0, 3000),
    expected=st.integers(0, 3000),
    limit=st.integers(1, MAX_LIMIT),
    width=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_whatever_the_totals_say_paging_ends_and_a_total_that_covers_the_list_gets_all_of_it(
    n: int, reported: int, expected: int, limit: int, width: int, seed: int
) -> None:
    listing = FakeListing(n)
    paginator = OffsetPaginator(limit, expected=expected)
    rng = random.Random(seed)
    got: dict[int, list[int]] = {}
    outstanding: list[int] = []
    while True:
        outstanding.extend(paginator.take(width - len(outstanding)))
        if not outstanding:
            break
        offset = outstanding.pop(rng.randrange(len(outstanding)))
        rows, _ = listing.fetch(offset, limit)
        got[offset] = rows
        paginator.record(offset, len(rows), reported, fresh=len(rows))
    assert paginator.done
    assert len(listing.asked) == len(set(listing.asked))
    largest = max(reported, expected)
    # never past the margin: the pages past the end that were asked for at once are all that is wasted
    assert max(listing.asked) < largest + max(10 * limit, largest // 10) + limit
    rows = [row for offset in sorted(got) for row in got[offset]]
    if largest >= n:
        assert rows == listing.rows
    else:
        assert rows == listing.rows[: len(rows)]  # a prefix: the list runs on past what any total says


def test_a_listing_that_repeats_its_first_page_under_a_huge_total_ends_at_the_first_repeat() -> None:
    asked: list[int] = []

    def liar(offset: int, limit: int) -> tuple[list[dict[str, int]], int]:
        asked.append(offset)
        return [{"id": k} for k in range(limit)], 10**7  # the same rows whatever the offset

    pages = list(iterate_pages(liar, 10, key=lambda row: row["id"]))
    assert asked == [0, 10] and len(pages) == 2

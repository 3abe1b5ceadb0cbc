"""syncd.paging: pages with read-ahead come in order, each once, errors where the loop had them."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.paging import ReadAhead, numbered_pages


class Server:
    """Pages of ``size`` numbers out of ``total``; counts requests in flight at once; a page in
    ``failing`` raises. Each request waits for ``release`` (or not at all, by default), so a test
    can hold requests open while it looks at what is in flight."""

    def __init__(self, total: int, size: int, failing: frozenset[int] = frozenset()) -> None:
        self.total, self.size, self.failing = total, size, failing
        self.in_flight = self.most_in_flight = 0
        self.asked: list[int] = []
        self.release: asyncio.Event | None = None
        self.started = asyncio.Event()

    @property
    def page_count(self) -> int:
        return -(-self.total // self.size)

    async def fetch(self, number: int) -> list[int]:
        self.asked.append(number)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.started.set()
        try:
            if self.release is not None:
                await self.release.wait()
            await asyncio.sleep(0)  # let others start: requests overlap when allowed to
            if number in self.failing:
                raise RuntimeError(f"page {number} failed")
            low = (number - 1) * self.size
            return list(range(low, min(low + self.size, self.total)))
        finally:
            self.in_flight -= 1

    def last_by_count(self, number: int, page: list[int]) -> int:
        return self.page_count  # the API says how many pages there are

    def last_by_short_page(self, number: int, page: list[int]) -> int | None:
        return number if len(page) < self.size else None  # it does not


async def read(server: Server, window: int, by_count: bool = True) -> list[list[int]]:
    last = server.last_by_count if by_count else server.last_by_short_page
    return [page async for _, page in numbered_pages(server.fetch, last, window=window)]


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(0, 60),
    size=st.integers(1, 9),
    window=st.integers(0, 6),
    by_count=st.booleans(),
)
def test_pages_come_in_order_each_once_within_the_window(
    total: int, size: int, window: int, by_count: bool
) -> None:
    server = Server(total, size)
    pages = asyncio.run(read(server, window, by_count))
    assert [n for page in pages for n in page] == list(range(total))
    # the read-ahead never fetches a page the sequential loop would not have: each page once,
    # and (by count) none past the last; by short pages, one empty page when the list fills
    # its last page, exactly as the sequential loop
    assert sorted(server.asked) == list(range(1, len(server.asked) + 1))
    if by_count:
        assert len(server.asked) == max(1, server.page_count)
    else:
        assert len(server.asked) == total // size + 1
    # the first page is asked for alone; after it, at most `window` while one is handed out
    assert server.most_in_flight <= max(1, window)


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(1, 60),
    size=st.integers(1, 9),
    window=st.integers(0, 6),
    data=st.data(),
)
def test_a_failing_page_raises_after_every_page_before_it_was_handed_out(
    total: int, size: int, window: int, data: st.DataObject
) -> None:
    page_count = -(-total // size)
    bad = data.draw(st.integers(1, page_count))
    server = Server(total, size, failing=frozenset({bad}))
    got: list[int] = []

    async def run() -> None:
        async for _, page in numbered_pages(server.fetch, server.last_by_count, window=window):
            got.extend(page)

    with pytest.raises(RuntimeError, match=f"page {bad} failed"):
        asyncio.run(run())
    assert got == list(range((bad - 1) * size))  # nothing lost before it, nothing doubled


async def test_the_window_bounds_the_requests_in_flight_while_a_page_is_mapped() -> None:
    server = Server(total=100, size=10)
    pages = numbered_pages(server.fetch, server.last_by_count, window=3)
    async with aclosing(pages):
        number, first = await anext(pages)
        assert (number, first) == (1, list(range(10)))
        # while the caller holds page 1, pages 2-4 are on their way, and no more
        await asyncio.sleep(0)
        assert server.asked == [1, 2, 3, 4]
        rest = [page async for _, page in pages]
    assert [n for page in [first, *rest] for n in page] == list(range(100))
    assert server.most_in_flight == 3


async def test_the_next_requests_are_under_way_before_the_caller_maps_a_page() -> None:
    """A caller computes on the page it was handed before it awaits again (mapping records):
    the requests prefetched for the next pages have started by then, rather than waiting for
    that computation to end (which would make fetching and mapping take turns)."""
    server = Server(total=100, size=10)
    server.release = asyncio.Event()  # no answer yet: what counts is that they were asked
    pages = numbered_pages(server.fetch, server.last_by_count, window=3)
    async with aclosing(pages):
        server.release.set()
        number, _ = await anext(pages)
        assert number == 1
        server.release.clear()
        # no await since page 1 was handed out: as the connector's mapping would see it
        assert server.asked == [1, 2, 3, 4] and server.in_flight == 3
        server.release.set()
        numbers = [n async for n, _ in pages]
    assert numbers == list(range(2, 11))


async def test_read_ahead_started_lets_new_requests_begin() -> None:
    begun: list[int] = []

    async def fetch(key: int) -> int:
        begun.append(key)
        await asyncio.sleep(0)
        return key

    async with ReadAhead(fetch, window=2) as ahead:
        ahead.prefetch(1)
        ahead.prefetch(2)
        assert begun == []  # scheduled only
        await ahead.started()
        assert begun == [1, 2]
        assert [await ahead.get(1), await ahead.get(2)] == [1, 2]


async def test_breaking_out_cancels_the_requests_still_outstanding() -> None:
    server = Server(total=100, size=10)
    server.release = asyncio.Event()
    pages = numbered_pages(server.fetch, server.last_by_count, window=4)
    async with aclosing(pages):
        server.release.set()
        await anext(pages)
        # pages 2-5 started before page 1 was handed out, and have not answered yet
        assert server.in_flight == 4
    assert server.in_flight == 0  # cancelled when the iterator closed


async def test_read_ahead_hands_out_a_guess_or_fetches_what_was_not_guessed() -> None:
    fetched: list[str] = []

    async def fetch(key: str) -> str:
        fetched.append(key)
        await asyncio.sleep(0)
        return key.upper()

    async with ReadAhead(fetch, window=2) as ahead:
        assert ahead.prefetch("a") and ahead.prefetch("b")
        assert not ahead.prefetch("c")  # the window is full
        assert "a" in ahead and "c" not in ahead
        assert await ahead.get("a") == "A"
        ahead.discard()  # "b" was a wrong guess
        assert ahead.outstanding == 0
        assert await ahead.get("c") == "C"  # not prefetched: fetched now
    assert fetched[0] == "a" and fetched[-1] == "c"


async def test_an_unclaimed_failed_request_leaves_no_unretrieved_exception(
    recwarn: pytest.WarningsRecorder,
) -> None:
    async def fetch(key: int) -> int:
        raise ValueError(key)

    ahead: ReadAhead[int, int] = ReadAhead(fetch, window=2)
    ahead.prefetch(1)
    ahead.prefetch(2)
    await asyncio.sleep(0)
    with pytest.raises(ValueError):
        await ahead.get(1)
    await ahead.aclose()
    assert ahead.outstanding == 0


def test_a_negative_window_is_refused() -> None:
    async def fetch(key: int) -> int:
        return key

    with pytest.raises(ValueError, match="negative"):
        ReadAhead(fetch, window=-1)

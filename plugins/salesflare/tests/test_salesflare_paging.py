"""The offset pager on its own, against a list that changes between requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from syncd_salesflare.paging import ListKeptMoving, stable_pages


class MovingList:
    """A server-side list sorted by id; ``between`` runs after each answered request."""

    def __init__(self, ids: list[int], cap: int | None = None) -> None:
        self.ids = sorted(ids)
        self.cap = cap
        self.requests: list[tuple[int, int]] = []
        self.between: Callable[[MovingList], None] = lambda _: None

    async def fetch(self, offset: int, limit: int) -> list[dict[str, Any]]:
        self.requests.append((offset, limit))
        if self.cap:
            limit = min(limit, self.cap)
        page = [{"id": i} for i in self.ids[offset : offset + limit]]
        self.between(self)
        return page


async def read(source: MovingList, limit: int) -> list[int]:
    out: list[int] = []
    async for page in stable_pages(source.fetch, limit):
        out.extend(item["id"] for item in page)
    return out


async def test_unchanged_list_costs_one_overlapping_request_per_page():
    source = MovingList(list(range(1, 26)))
    assert await read(source, 10) == list(range(1, 26))
    assert source.requests == [(0, 10), (9, 10), (18, 10)]


async def test_deleting_everything_already_read_is_recovered():
    source = MovingList(list(range(1, 41)))

    def delete_read(lst: MovingList) -> None:
        if len(lst.requests) == 2:
            lst.ids = [i for i in lst.ids if i > 19]  # all of the first two pages vanish

    source.between = delete_read
    listed = await read(source, 10)
    assert len(listed) == len(set(listed))
    assert set(range(20, 41)) <= set(listed)


async def test_inserts_before_the_position_are_not_repeated():
    source = MovingList(list(range(100, 130)))

    def insert_front(lst: MovingList) -> None:
        if len(lst.requests) == 1:
            lst.ids = sorted([*lst.ids, 1, 2, 3])

    source.between = insert_front
    listed = await read(source, 10)
    assert len(listed) == len(set(listed)) and set(range(100, 130)) <= set(listed)


async def test_a_list_that_never_settles_gives_up_with_retry_later():
    source = MovingList(list(range(1, 1000)))
    counter = iter(range(10**6))

    def churn(lst: MovingList) -> None:
        step = next(counter)
        lst.ids = [i + 10_000 * step for i in range(1, 1000)]  # every id replaced every time

    source.between = churn
    with pytest.raises(ListKeptMoving):
        await read(source, 10)


async def test_a_page_size_below_two_is_refused():
    with pytest.raises(ValueError):
        await read(MovingList([1]), 1)


async def test_silent_cap_of_one_page_list_is_not_mistaken():
    source = MovingList([1, 2, 3], cap=3)
    assert await read(source, 10) == [1, 2, 3]
    assert len(source.requests) == 2

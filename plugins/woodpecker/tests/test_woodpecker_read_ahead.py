"""Listing with read-ahead: the next page is fetched while one is mapped, yet never two requests
at once (Woodpecker processes one at a time), and the prospects are the sequential listing's."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from aiohttp import web
from syncd_woodpecker.sandbox import QUEUE_KEY, fault

from syncd.connector import RemoteRecord, RetryLater
from syncd.sandbox import CALLS_KEY

LIST = "GET /rest/v1/prospects"
WAIT = 60.0  # a bound on waiting for a state the listing must reach (never slept through)


def listing_calls(sandbox: Any) -> int:
    return int(sandbox.server.app[CALLS_KEY][LIST])


async def test_woodpecker_fetches_the_next_page_while_the_caller_holds_one(
    start_sandbox: Any, connect: Any
) -> None:
    # strict: a request that finds another in flight is refused, so any overlap would show
    sandbox = await start_sandbox(seed=5, count=45, concurrency="strict")
    connector = await connect(sandbox, per_page=10)
    pages = connector.list_records(None)
    async with aclosing(pages):
        first = await anext(pages)
        # the caller has not asked for more, and page 2 is already on its way
        async with asyncio.timeout(WAIT):
            while listing_calls(sandbox) < 2:  # noqa: ASYNC110 (polls the emulator's counters)
                await asyncio.sleep(0.005)
        rest = [page async for page in pages]
    records = [r for page in [first, *rest] for r in page]
    assert [int(r.id) for r in records] == sorted(sandbox.store.prospects)
    assert [len(page) for page in [first, *rest]] == [10, 10, 10, 10, 5]
    assert listing_calls(sandbox) == 5  # nothing fetched twice, no page past the end
    assert sandbox.store.refused_concurrent == 0
    assert sandbox.server.app[QUEUE_KEY].queued == 0  # never a second request in flight


async def test_woodpecker_read_ahead_spares_the_call_after_a_full_last_page(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=5, count=30, concurrency="strict")
    connector = await connect(sandbox, per_page=10)
    records = [r async for page in connector.list_records(None) for r in page]
    assert len(records) == 30
    assert listing_calls(sandbox) == 3  # X-Total-Count said page 3 was the last


async def test_woodpecker_a_page_failing_mid_listing_fails_it_after_the_pages_before(
    start_sandbox: Any, connect: Any
) -> None:
    @web.middleware
    async def page_3_fails(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith("/prospects") and request.query.get("page") == "3":
            return fault(request, 500)
        response: web.StreamResponse = await handler(request)
        return response

    sandbox = await start_sandbox(seed=5, count=45, middlewares=[page_3_fails])
    connector = await connect(sandbox, per_page=10)
    got: list[RemoteRecord] = []
    with pytest.raises(RetryLater):
        async with aclosing(connector.list_records(None)) as pages:
            async for page in pages:
                got.extend(page)
    assert [int(r.id) for r in got] == sorted(sandbox.store.prospects)[:20]

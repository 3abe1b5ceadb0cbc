"""Listing with read-ahead: after a full page, the request for the next overlapping offset is
already on its way while the caller maps this one; the contacts are the sequential listing's."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from aiohttp import web
from syncd_salesflare.paging import stable_pages

from syncd.connector import RemoteRecord, RetryLater

WAIT = 60.0  # a bound on waiting for a state the listing must reach (never slept through)


def contact_gets(sandbox: Any) -> list[dict[str, str]]:
    return [dict(q) for m, p, q, _ in sandbox.requests if m == "GET" and p == "/contacts"]


async def test_the_next_page_is_asked_for_while_the_caller_holds_one(
    start_sandbox: Any, make_connector: Any
) -> None:
    sandbox = await start_sandbox(seed=3, count=95)
    connector = await make_connector(sandbox, page_size=10, concurrency=2)
    pages = connector.list_records(None)
    async with aclosing(pages):
        first = await anext(pages)
        async with asyncio.timeout(WAIT):
            while len(contact_gets(sandbox)) < 2:  # noqa: ASYNC110 (polls the emulator's counters)
                await asyncio.sleep(0.005)
        rest = [page async for page in pages]
    records = [r for page in [first, *rest] for r in page]
    assert [int(r.id) for r in records] == sorted(sandbox.state.contacts)
    offsets = [int(q["offset"]) for q in contact_gets(sandbox)]
    # the sequential listing's offsets (pages overlap by one), each asked for once
    assert offsets == list(range(0, 95, 9))
    assert sandbox.state.most_in_flight <= 2  # within the concurrency setting


async def test_a_wrong_guess_is_dropped_when_the_list_moves(
    start_sandbox: Any, make_connector: Any
) -> None:
    sandbox = await start_sandbox(seed=3, count=60)
    connector = await make_connector(sandbox, page_size=10, concurrency=2)
    state = sandbox.state
    ids = sorted(state.contacts)
    deleted: list[int] = []

    def after_page(current: Any) -> None:
        # after the first page, three contacts already read vanish: every later offset shifts
        if not deleted:
            for contact_id in ids[2:5]:
                current.contacts.pop(contact_id)
                deleted.append(contact_id)

    state.after_page = after_page
    records = [r async for page in connector.list_records(None) for r in page]
    listed = [int(r.id) for r in records]
    assert len(listed) == len(set(listed))
    assert set(listed) >= set(ids) - set(deleted)  # nothing live is skipped
    assert listed == sorted(listed)


async def test_a_page_failing_mid_listing_fails_it_after_the_pages_before(
    start_sandbox: Any, make_connector: Any
) -> None:
    @web.middleware
    async def third_page_fails(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/contacts" and request.query.get("offset") == "18":
            return web.json_response(
                {"statusCode": 503, "error": "Service Unavailable", "message": "down"},
                status=503,
            )
        response: web.StreamResponse = await handler(request)
        return response

    sandbox = await start_sandbox(seed=3, count=60, middlewares=[third_page_fails])
    connector = await make_connector(sandbox, page_size=10, retry_attempts=2)
    got: list[RemoteRecord] = []
    with pytest.raises(RetryLater):
        async with aclosing(connector.list_records(None)) as pages:
            async for page in pages:
                got.extend(page)
    assert [int(r.id) for r in got] == sorted(sandbox.state.contacts)[:19]


async def test_stable_pages_with_read_ahead_yields_what_the_sequential_one_does() -> None:
    items = [{"id": n} for n in range(47)]
    asked: dict[int, list[int]] = {0: [], 1: [], 3: []}

    def fetcher(window: int) -> Any:
        async def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            asked[window].append(offset)
            await asyncio.sleep(0)
            return items[offset : offset + limit]

        return fetch

    results = {}
    for window in asked:
        results[window] = [p async for p in stable_pages(fetcher(window), 10, window)]
    assert results[1] == results[3] == results[0]
    assert asked[1] == asked[0]  # one ahead: exactly the sequential requests
    assert set(asked[3]) >= set(asked[0])
    assert len(asked[3]) <= len(asked[0]) + 2  # at most window - 1 guesses past the end

"""Listing with read-ahead: the next pages are fetched while one is mapped, within Xero's 5
concurrent calls, and the records are those of the sequential listing, in order."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from aiohttp import web
from syncd_xero.sandbox_errors import fault

from syncd.connector import RemoteRecord, RetryLater

#: a generous bound on waiting for a state the listing must reach (never slept through)
WAIT = 60.0


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 (polls the emulator's counters)
            await asyncio.sleep(0.005)


def page_of(request: web.Request) -> int | None:
    if request.path.endswith("/Contacts") and request.method == "GET":
        return int(request.query.get("page", "1"))
    return None


async def test_pages_after_the_first_are_fetched_five_at_a_time_and_no_more(xero: Any) -> None:
    gate = asyncio.Event()

    @web.middleware
    async def hold_later_pages(request: web.Request, handler: Any) -> web.StreamResponse:
        if (page_of(request) or 1) > 1:
            await gate.wait()
        response: web.StreamResponse = await handler(request)
        return response

    env = await xero(seed=4, count=200, middlewares=[hold_later_pages])
    connector = await env.authorized(page_size=10)
    listing = asyncio.ensure_future(_collect(connector.list_records(None)))
    # page 1 told there are 20 pages: pages 2-6 are asked for at once, before any answers
    await until(lambda: env.accounting.in_flight == 5)
    assert not listing.done()
    gate.set()
    pages = await listing
    assert env.accounting.most_in_flight == 5  # never a sixth: Xero allows 5 concurrent calls
    records = [r for page in pages for r in page]
    assert [r.id for r in records] == sorted(c["ContactID"] for c in await env.contacts())
    assert [len(page) for page in pages] == [10] * 20
    assert (await env.calls())["GET /api.xro/2.0/Contacts"] == 20  # no page asked twice


async def test_read_ahead_keeps_to_the_concurrency_and_rate_limits_xero_enforces(
    xero: Any,
) -> None:
    env = await xero(seed=4, count=300, rate_limits=True, minute_limit=1000, concurrent_limit=5)
    await env.switches(latency_ms=20)
    connector = await env.authorized(page_size=10, minute_limit=1000)
    pages = await _collect(connector.list_records(None))
    assert sum(len(page) for page in pages) == 300
    assert env.accounting.most_in_flight <= 5
    assert (await env.state())["rate_limited"] == {}  # not one 429 for too many at once


async def test_a_page_failing_mid_listing_fails_the_listing_after_the_pages_before_it(
    xero: Any,
) -> None:
    @web.middleware
    async def page_4_fails(request: web.Request, handler: Any) -> web.StreamResponse:
        if page_of(request) == 4:
            return fault(request, 503)
        response: web.StreamResponse = await handler(request)
        return response

    env = await xero(seed=4, count=100, middlewares=[page_4_fails])
    connector = await env.authorized(page_size=10)
    got: list[RemoteRecord] = []
    with pytest.raises(RetryLater, match="503"):
        async with aclosing(connector.list_records(None)) as pages:
            async for page in pages:
                got.extend(page)
    every = sorted(c["ContactID"] for c in await env.contacts())
    assert [r.id for r in got] == every[:30]  # pages 1-3, in order, none twice


async def test_an_incremental_listing_reads_ahead_with_the_same_cursor(xero: Any) -> None:
    seen: list[str | None] = []

    @web.middleware
    async def note_cursor(request: web.Request, handler: Any) -> web.StreamResponse:
        if page_of(request) is not None:
            seen.append(request.headers.get("If-Modified-Since"))
        response: web.StreamResponse = await handler(request)
        return response

    env = await xero(seed=4, count=60, middlewares=[note_cursor])
    connector = await env.authorized(page_size=5)
    everything = [r for page in await _collect(connector.list_records(None)) for r in page]
    oldest = min(r.updated_at for r in everything if r.updated_at)
    cursor = connector.make_cursor(oldest)
    seen.clear()
    changed = [r for page in await _collect(connector.list_records(cursor)) for r in page]
    assert {r.id for r in changed} <= {r.id for r in everything}
    assert [r.id for r in changed] == sorted(r.id for r in changed)
    assert seen and set(seen) == {cursor}


async def _collect(pages: Any) -> list[list[RemoteRecord]]:
    async with aclosing(pages):
        return [page async for page in pages]


async def test_the_emulator_counts_requests_that_arrive_together(xero: Any) -> None:
    """Its handlers answer without awaiting, so requests are served one after the other; those
    sent together are still in flight together (waiting for their answer), and counted so: the
    figure bench/listing.py prints to show that the read-ahead overlaps."""
    env = await xero(seed=4, count=20)
    connector = await env.authorized(page_size=10)
    for _ in range(2):  # the second time, on the two connections the first one opened
        await asyncio.gather(
            *(connector._call("GET", "/Contacts", params={"page": "1"}) for _ in range(2))
        )
    assert env.accounting.most_in_flight == 2
    assert env.accounting.in_flight == 0

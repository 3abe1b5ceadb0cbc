"""Offset paging that neither skips nor repeats records while the list changes underneath.

``GET /contacts`` pages with ``limit``/``offset`` and answers a bare array: no total, no cursor
(vendors.md §2.3, trap 2). Reading page after page at growing offsets goes wrong when the list
moves between two requests:

* records removed (deleted) before the current offset shift the rest *left*: the first records
  of the next page slid into the part already read and would be **skipped**;
* records added before the current offset shift the rest *right*: the next page starts with
  records already read, which would be **repeated**.

The connector asks for a stable order (ascending id, so new contacts land at the end) and this
pager keeps every page overlapping the previous one by one record. Repeats are dropped by id. If
the overlapping record is not one already read, the list moved left under us: the pager steps
back a page and re-reads until it finds a record it has seen, and only then carries on. In an
id-ordered list a record already read at the start of a page proves that nothing unread lies
before it. The check works for any stable order, which keeps the connector correct should the
server ignore ``order_by``.

The listing ends on a short page, as Salesflare's docs imply. Because no maximum ``limit`` is
documented, a *first* page shorter than asked for is ambiguous (a small list, or a silent cap on
the page size): one more request settles it, and a cap found that way becomes the page size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from syncd.connector import RetryLater
from syncd.paging import ReadAhead

Item = dict[str, Any]
FetchPage = Callable[[int, int], Awaitable[list[Item]]]


class ListKeptMoving(RetryLater):
    """The list changed faster than it could be read consistently; try again later."""


async def stable_pages(fetch: FetchPage, limit: int, window: int = 0) -> AsyncIterator[list[Item]]:
    """Yield pages of items (dicts with an ``id``) that were not yielded before.

    ``fetch(offset, limit)`` performs one request and returns its items. ``limit`` must be at
    least 2, since every page but the first overlaps the previous one by a record.

    ``window``: after a full page, the requests for up to that many following pages start
    before the caller is done with this one (:class:`syncd.paging.ReadAhead`), at the offsets
    they will have if the list holds still and the pages stay full. A guess that turns out wrong
    (the list moved, a short page) is cancelled and the right page fetched, so the pages and
    their order are those of the sequential listing; only the requests start earlier. Each
    speculative request can be one the sequential listing would not have sent: at the end of the
    list, at most ``window - 1`` of them.
    """
    if limit < 2:
        raise ValueError("the page size must be at least 2")
    ahead: ReadAhead[tuple[int, int], list[Item]] = ReadAhead(lambda key: fetch(*key), window)
    async with ahead:
        async for page in _stable_pages(ahead, limit):
            yield page


async def _stable_pages(
    ahead: ReadAhead[tuple[int, int], list[Item]], limit: int
) -> AsyncIterator[list[Item]]:
    seen: set[Any] = set()
    position = 0  # list positions already read, as the list looked at the last request
    full_page_seen = False
    first_page_size: int | None = None  # set while settling an ambiguous short first page
    forward = 0  # pages that moved the listing on
    step_backs = 0
    while True:
        start = position - 1 if position > 0 else 0
        if (start, limit) not in ahead:
            ahead.discard()  # guessed wrong: the list moved, or the page size changed
        page = await ahead.get((start, limit))
        if start > 0 and (not page or page[0].get("id") not in seen):
            # The record before our position is not the one we read there: the list moved
            # left. Re-read the page before this one, overlapping it by one record.
            step_backs += 1
            if step_backs > 10 + forward // 2:
                raise ListKeptMoving("the Salesflare contact list kept changing while read")
            position = max(0, start - limit + 2)
            continue
        forward += 1
        if len(page) >= limit:
            # full: the next pages, if nothing moves, start where this one ends (less one)
            before = ahead.outstanding
            for k in range(1, ahead.window + 1):
                ahead.prefetch((start + k * (limit - 1), limit))
            if ahead.outstanding > before:
                await ahead.started()  # on their way before the caller maps this page

        fresh = []
        for item in page:
            key = item.get("id")
            if key is None or key in seen:
                continue
            seen.add(key)
            fresh.append(item)
        if fresh:
            yield fresh
        position = start + len(page)

        if len(page) >= limit:
            full_page_seen = True
            continue
        if first_page_size is not None:
            # The page after a short first page: as long as the first one means the server
            # caps pages at that size; shorter means the list really was that short.
            if len(page) >= first_page_size and len(page) > 1:
                limit = first_page_size
                full_page_seen = True
                first_page_size = None
                continue
            return
        if not full_page_seen and start == 0 and page:
            first_page_size = len(page)
            continue
        return

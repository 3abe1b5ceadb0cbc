"""Pages with read-ahead: fetch the next pages while the current one is mapped.

A connector that lists page after page spends, on each page, the time of the request (the app's
and the network's) and then the time of turning the page into records (decoding, mapping). Done
one after the other, the two add up; this module overlaps them: while the engine takes page *n*,
the requests for the pages after it are already on their way.

Two helpers, for connectors in this repository and for third-party ones (and
:func:`json_body`, a faster JSON decoding of a page):

* :func:`numbered_pages` for APIs paged by number (``page=1, 2, …``) that say, on a page, how many
  pages there are (Xero's ``pagination.pageCount``, a total-count header) or at least whether
  this page was the last (a short page). It keeps up to ``window`` requests outstanding and hands
  the pages out in order.
* :class:`ReadAhead`, the building block under it, for paging schemes whose next request depends on
  the page before (offsets that overlap by a record, cursors): start a request for the key you
  expect next with :meth:`~ReadAhead.prefetch`, take it with :meth:`~ReadAhead.get`; a guess that
  turned out wrong is dropped with :meth:`~ReadAhead.discard`.

What stays as it was without read-ahead:

* **Order and content**: pages are handed out in the order asked for, each exactly once.
* **Errors**: a request that fails raises its exception when its page's turn comes, after every
  page before it was handed out (so nothing is lost or doubled; the failure is reported where the
  sequential loop would have reported it). Requests still outstanding are cancelled.
* **Rate budgets**: read-ahead only *starts* requests early; each still goes through the
  connector's own :class:`~syncd.http.RateBudget` (its rate and its concurrency cap), so a
  vendor's limits hold whatever the window. Choose ``window`` within the vendor's concurrency
  limit (Xero allows 5 calls at once per organisation; Woodpecker processes one at a time, so a
  window of 1 there means "the next page is fetched while this one is mapped", never two
  requests at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Iterable
from contextlib import suppress
from typing import Any, Generic, TypeVar

import orjson

K = TypeVar("K", bound=Hashable)
P = TypeVar("P")

__all__ = ["ReadAhead", "json_body", "numbered_pages"]


def json_body(body: bytes) -> Any:
    """A page's JSON body, decoded with orjson; ``None`` for an empty body.

    Decoding is a listing's largest cost on the client after the mapping (a page of 1,000 Xero
    contacts is ~1.5 MB of JSON); orjson takes about a third of the standard library's time.
    Invalid JSON raises :class:`ValueError`, as :func:`json.loads` does.
    """
    return orjson.loads(body) if body else None


class ReadAhead(Generic[K, P]):
    """Requests started ahead of need, keyed by what they fetch (a page number, an offset).

    ``fetch(key)`` performs one request. At most ``window`` prefetched requests are outstanding
    (in flight, or answered and not yet taken) at any time; :meth:`prefetch` beyond that is a
    no-op. Use it as an ``async with`` block (or call :meth:`aclose`) so that requests nobody
    takes are cancelled.
    """

    def __init__(self, fetch: Callable[[K], Awaitable[P]], window: int) -> None:
        if window < 0:
            raise ValueError("the read-ahead window cannot be negative")
        self._fetch = fetch
        self.window = window
        self._tasks: dict[K, asyncio.Task[P]] = {}

    async def _run(self, key: K) -> P:
        return await self._fetch(key)

    async def started(self) -> None:
        """Let the requests just prefetched go out before the caller computes.

        :meth:`prefetch` only schedules a request; it is sent when the event loop next runs
        its task. A caller that maps a page right after prefetching (no ``await`` in between)
        would hold the loop for that time and the request would leave only afterwards: fetched
        after the mapping, not during it. One pass of the loop lets each new task run up to its
        first real wait, which for a request on a pooled connection is the answer (its rate
        budget and connection pool answer at once when they have room)."""
        await asyncio.sleep(0)

    def __contains__(self, key: object) -> bool:
        return key in self._tasks

    @property
    def outstanding(self) -> int:
        return len(self._tasks)

    def prefetch(self, key: K) -> bool:
        """Start fetching ``key`` now unless it is under way or the window is full."""
        if key in self._tasks:
            return True
        if len(self._tasks) >= self.window:
            return False
        self._tasks[key] = asyncio.ensure_future(self._run(key))
        return True

    async def get(self, key: K) -> P:
        """The page for ``key``: the prefetched answer (or its error), else fetched now."""
        task = self._tasks.get(key)
        if task is None:
            return await self._fetch(key)
        try:
            # shield: a consumer cancelled while waiting leaves the task to aclose()
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._tasks.pop(key, None)

    def discard(self, keep: Iterable[K] = ()) -> None:
        """Cancel every outstanding request except those for ``keep`` (a wrong guess)."""
        kept = set(keep)
        for key in [k for k in self._tasks if k not in kept]:
            _cancel(self._tasks.pop(key))

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            _cancel(task)
        for task in tasks:
            with suppress(BaseException):
                await task

    async def __aenter__(self) -> ReadAhead[K, P]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _cancel(task: asyncio.Task[object]) -> None:
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warning
    else:
        task.cancel()
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()


class _Missing:
    pass


MISSING = _Missing()


async def numbered_pages(
    fetch: Callable[[int], Awaitable[P]],
    last: Callable[[int, P], int | None],
    *,
    first: int = 1,
    window: int = 1,
    fetched: P | _Missing = MISSING,
) -> AsyncGenerator[tuple[int, P]]:
    """``(number, page)`` for pages ``first``, ``first + 1``, … in order, fetched ahead.

    ``last(n, page)`` says, once page ``n`` arrived, the number of the last page as far as page
    ``n`` tells: an ``int`` (``n`` or less: page ``n`` was the last, so nothing more is asked for)
    or ``None`` when the page does not say (then only page ``n + 1`` is fetched ahead, exactly
    the request the sequential loop would make next). While the caller handles page ``n``, up to
    ``window`` of the pages after it are being fetched (``window=0``: none, the sequential loop).

    Page ``first`` is always fetched, unless the caller did already and passes it as ``fetched``
    (a first request that finds out how to page, say). An exception from ``fetch`` or ``last``
    propagates when its page's turn comes. Breaking out of the loop early cancels the requests
    still outstanding (wrap the iterator in :func:`contextlib.aclosing` to do that at once).
    """
    pages: ReadAhead[int, P] = ReadAhead(fetch, window)
    async with pages:
        number = first
        while True:
            if number == first and not isinstance(fetched, _Missing):
                page = fetched
            else:
                page = await pages.get(number)
            known = last(number, page)
            if known is not None and known <= number:
                yield number, page
                return
            # the page did not say there are more: only the next one, as the loop would ask
            upto = number + 1 if known is None else min(known, number + window)
            before = pages.outstanding
            for later in range(number + 1, upto + 1):
                pages.prefetch(later)
            if pages.outstanding > before:
                await pages.started()
            yield number, page
            number += 1

"""HTTP helpers shared by connectors: one session per account, timeouts, retries, rate budgets.

* :class:`RateBudget` is a rate (aiolimiter's leaky bucket) plus a concurrency cap. Budgets are
  shared per account through :func:`shared_budget`, so two syncs using the same Xero tenant draw
  from one budget (rule 10). Time spent waiting is counted for ``/metrics``.
* :class:`HttpClient` owns one ``aiohttp.ClientSession`` with explicit timeouts (a bare
  ``ClientTimeout()`` disables them all), retries transient failures with tenacity, honours
  ``Retry-After``, and turns what is left into the typed failures of :mod:`syncd.failures`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from syncd.failures import NeedsReauth, RateBudgetExhausted, RetryLater

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class RateBudget:
    """At most ``calls`` per ``period`` seconds and ``concurrency`` requests in flight."""

    def __init__(self, calls: float, period: float = 60.0, concurrency: int = 5) -> None:
        self.calls = calls
        self.period = period
        self.concurrency = concurrency
        self._limiter = AsyncLimiter(calls, period)
        self._slots = asyncio.Semaphore(concurrency)
        self.waited_seconds = 0.0
        self.blocked_until = 0.0
        #: shared with other processes (a PostgreSQL store: :mod:`syncd.store.budget`); then
        #: the calls, the concurrency and the pauses are counted there instead of here
        self.gate: Any = None

    async def __aenter__(self) -> RateBudget:
        started = time.monotonic()
        await self._slots.acquire()
        try:
            pause = self.blocked_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            if self.gate is not None:
                _TICKET.set(await self.gate.enter())
            else:
                await self._limiter.acquire()
        except BaseException:
            self._slots.release()
            raise
        self.waited_seconds += time.monotonic() - started
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            ticket = _TICKET.get()
            if self.gate is not None and ticket is not None:
                _TICKET.set(None)
                await self.gate.leave(ticket)
        finally:
            self._slots.release()

    def pause_for(self, seconds: float) -> None:
        """Hold every caller of this budget back (the app said ``Retry-After``)."""
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)
        if self.gate is not None:
            self.gate.pause(seconds)


#: the shared budget's ticket of the call the current task is making
_TICKET: contextvars.ContextVar[str | None] = contextvars.ContextVar("budget_ticket", default=None)


# Budgets hold asyncio primitives, which belong to one event loop: keep one registry per loop.
_BUDGETS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RateBudget]] = (
    weakref.WeakKeyDictionary()
)


def shared_budget(key: str, factory: Callable[[], RateBudget], backend: Any = None) -> RateBudget:
    """The process-wide budget for ``key`` (for example ``"xero:<tenant id>"``).

    Call it from a coroutine (``Connector.open``): budgets belong to the running loop. With a
    ``backend`` (``context.budgets``, set on a PostgreSQL store) the budget is shared with every
    other daemon on the store too (:mod:`syncd.store.budget`).
    """
    budgets = _BUDGETS.setdefault(asyncio.get_running_loop(), {})
    budget = budgets.get(key)
    if budget is None:
        budget = budgets[key] = factory()
        if backend is not None:
            budget.gate = backend.gate(key, budget.calls, budget.period, budget.concurrency)
    return budget


def all_budgets() -> dict[str, RateBudget]:
    """The budgets of the running loop, by key (for metrics)."""
    return dict(_BUDGETS.get(asyncio.get_running_loop(), {}))


@dataclass
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str = ""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class TransientHttpError(Exception):
    """A failure worth retrying: a retryable status, a timeout or a dropped connection."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryPolicy:
    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    #: a ``Retry-After`` longer than this is not waited for inside a run: it becomes RetryLater.
    longest_inline_wait: float = 120.0


@dataclass
class HttpClient:
    """One session for one connector account.

    ``auth`` returns headers to add to each request (called per attempt, so a refreshed token is
    picked up). ``transient`` marks further responses as worth retrying. ``classify`` may turn a
    response into an exception (a connector's own error shapes); by default 401/403 become
    :class:`NeedsReauth` and other 4xx are returned to the caller to interpret.
    """

    base_url: str
    budget: RateBudget | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: Callable[[], Awaitable[Mapping[str, str]]] | None = None
    classify: Callable[[HttpResponse], Exception | None] | None = None
    on_response: Callable[[HttpResponse], None] | None = None
    #: marks vendor-specific responses worth retrying like a 429/5xx (a 400 that means
    #: "too many requests"); ``Retry-After`` is honoured for them too
    transient: Callable[[HttpResponse], bool] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: no ``sock_read``: ``total`` bounds a stalled read as well, and a read timeout is a
    #: timer cancelled and scheduled again for every chunk of every answer
    timeout: aiohttp.ClientTimeout = field(
        default_factory=lambda: aiohttp.ClientTimeout(total=60, connect=10)
    )
    calls: int = 0
    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=dict(self.headers))
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request with retries; returns the final response (any non-retryable status).

        Raises :class:`~syncd.failures.RetryLater` when retries run out or the app asks for a
        longer pause than a run should wait, and whatever ``classify`` returns.
        """
        url = path if path.startswith(("http://", "https://")) else self.base_url.rstrip("/") + path
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}

        def wait_for(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, TransientHttpError) and exc.retry_after is not None:
                return exc.retry_after
            return wait_exponential_jitter(
                multiplier=self.retry.initial_wait, max=self.retry.max_wait
            )(state)

        try:
            # the first attempt outside tenacity: its loop costs as much CPU as aiohttp's own
            # exchange (it inspects every callback on every attempt), and most requests need
            # one attempt; a failed first attempt enters the loop as its attempt 1, so the
            # waits and the number of attempts are tenacity's as before
            failed: list[TransientHttpError] = []
            try:
                response = await self._send_once(method, url, params, data, headers)
            except TransientHttpError as exc:
                failed.append(exc)
            if failed:
                retrying = AsyncRetrying(
                    retry=retry_if_exception_type(TransientHttpError),
                    stop=stop_after_attempt(self.retry.attempts),
                    wait=wait_for,
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        if failed:
                            raise failed.pop()
                        response = await self._send_once(method, url, params, data, headers)
        except TransientHttpError as exc:
            raise RetryLater(f"{method} {path}: {exc}", delay=exc.retry_after) from None
        if self.classify is not None:
            problem = self.classify(response)
            if problem is not None:
                raise problem
        if response.status in (401, 403):
            raise NeedsReauth(
                f"{method} {path}: the app refused the credentials (HTTP {response.status})"
            )
        return response

    async def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None,
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> HttpResponse:
        all_headers = dict(headers or {})
        if self.auth is not None:
            all_headers.update(await self.auth())
        try:
            if self.budget is not None:
                async with self.budget:
                    response = await self._exchange(method, url, params, data, all_headers)
            else:
                response = await self._exchange(method, url, params, data, all_headers)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise TransientHttpError(type(exc).__name__) from None
        if self.on_response is not None:
            self.on_response(response)
        if response.status in RETRYABLE_STATUSES or (
            self.transient is not None and self.transient(response)
        ):
            if self.classify is not None:
                problem = self.classify(response)
                if isinstance(problem, RateBudgetExhausted):
                    raise problem
            delay = parse_retry_after(response.headers.get("Retry-After"))
            if delay is not None and self.budget is not None:
                self.budget.pause_for(delay)
            if delay is not None and delay > self.retry.longest_inline_wait:
                raise RateBudgetExhausted(f"the app asked to wait {delay:.0f}s", delay=delay)
            raise TransientHttpError(f"HTTP {response.status}", retry_after=delay)
        return response

    async def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> HttpResponse:
        self.calls += 1
        async with self.session.request(
            method, url, params=params, data=data, headers=headers
        ) as resp:
            body = await resp.read()
            return HttpResponse(resp.status, dict(resp.headers), body, str(resp.url))

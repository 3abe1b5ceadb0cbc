"""The rate budget of one Xero organisation, shared by every sync that uses it.

Xero's limits per organisation (vendors.md §1.7, primary): 5 concurrent calls, 60 calls a minute,
5,000 a day (1,000 on the Starter tier: the ``day_limit`` setting). The minute rate and the
concurrency are :class:`syncd.http.RateBudget`'s; this subclass adds the daily count and reads the
``X-DayLimit-Remaining`` / ``X-MinLimit-Remaining`` headers Xero sends with every answer.

A daily limit is never waited out inside a run: Xero's ``Retry-After`` for it can be hours
(vendors.md §1.10 trap 1), so the budget raises :class:`RateBudgetExhausted` with the delay and the
engine checkpoints the run.
"""

from __future__ import annotations

import time
from collections import deque

from syncd.connector import HttpResponse, RateBudget, RateBudgetExhausted
from syncd.http import parse_retry_after

DAY = 24 * 3600.0
#: when Xero reports the daily budget spent but says nothing about when it resets
UNKNOWN_DAY_RESET = 3600.0


def _int_header(response: HttpResponse, name: str) -> int | None:
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            try:
                return int(value)
            except ValueError:
                return None
    return None


def header(response: HttpResponse, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value
    return None


class XeroBudget(RateBudget):
    """Minute rate + concurrency (the base class) + the daily limit of one organisation."""

    def __init__(
        self,
        day_limit: int = 5000,
        per_minute: int = 60,
        concurrency: int = 5,
        period: float = 60.0,
    ) -> None:
        super().__init__(per_minute, period, concurrency)
        self.day_limit = day_limit
        #: start times of our calls in the last 24 hours (a rolling window: Xero's is fixed and
        #: resets at a time we do not know, so rolling is the safe side)
        self._day_calls: deque[float] = deque()
        self.day_remaining: int | None = None
        self.minute_remaining: int | None = None
        self.app_minute_remaining: int | None = None
        self.day_blocked_until = 0.0

    def take_day_call(self) -> None:
        """Count one call against the day, or raise when the day's budget is spent."""
        now = time.monotonic()
        if self.day_blocked_until > now:
            raise RateBudgetExhausted(
                "Xero's daily call limit for this organisation is spent",
                delay=self.day_blocked_until - now,
            )
        while self._day_calls and self._day_calls[0] <= now - DAY:
            self._day_calls.popleft()
        if len(self._day_calls) >= self.day_limit:
            raise RateBudgetExhausted(
                f"{self.day_limit} Xero calls made for this organisation in the last 24 hours "
                "(the day_limit setting)",
                delay=self._day_calls[0] + DAY - now,
            )
        self._day_calls.append(now)

    def observe(self, response: HttpResponse) -> None:
        """Read Xero's rate headers from an answer (``on_response``)."""
        day = _int_header(response, "X-DayLimit-Remaining")
        if day is not None:
            self.day_remaining = day
        minute = _int_header(response, "X-MinLimit-Remaining")
        if minute is not None:
            self.minute_remaining = minute
        app = _int_header(response, "X-AppMinLimit-Remaining")
        if app is not None:
            self.app_minute_remaining = app

    def day_exhausted(self, response: HttpResponse) -> RateBudgetExhausted | None:
        """A 429 that names the daily limit becomes a checkpoint, not hours of retrying."""
        if response.status != 429:
            return None
        problem = (header(response, "X-Rate-Limit-Problem") or "").strip().lower()
        if problem not in ("day", "daily"):
            return None
        delay = parse_retry_after(header(response, "Retry-After")) or UNKNOWN_DAY_RESET
        self.day_blocked_until = max(self.day_blocked_until, time.monotonic() + delay)
        return RateBudgetExhausted(
            "Xero's daily call limit for this organisation is spent; the run resumes after "
            f"{delay:.0f}s",
            delay=delay,
        )

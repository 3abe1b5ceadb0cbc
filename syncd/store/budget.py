"""Rate budgets shared by every daemon on one PostgreSQL store (issue 17).

Xero allows an organisation 60 calls a minute and 5 at once, whoever makes them. Two daemons
running syncs of one organisation each kept their own budget, so together they could make twice
that. Chosen: **a budget row per vendor account in the store** (``rate_budget``, keyed like the
process-wide budget, ``xero:<tenant id>``), not pinning every sync of an account to one daemon:
pinning would need claims per account on top of the claims per sync, would put all of a big
client's syncs on one machine, and would still leave the limit to a per-process limiter.

The row holds the calls of the current window and a pause an app asked for (``Retry-After``).
Taking a call is one short transaction (``SELECT … FOR UPDATE`` on the row, so takers of one
account queue on it; another account's takers do not wait):

* a call is refused while ``concurrency`` calls are in flight, or while ``calls`` calls started
  less than ``period`` before now, or while the app's pause lasts; the taker waits exactly as
  long as needed (the oldest call leaving the window) and tries again;
* a granted call is an *open* entry; when its answer has come back it is closed and stays in
  the window until ``period`` after the answer (by the database's clock). The app sees each
  request somewhere between our grant and our answer, so any ``period`` of the app's clock holds
  at most ``calls`` of them, however its fixed windows are aligned: Xero's start with an
  organisation's first call (a fixed-window counter of our own, not aligned with those, could
  let twice the limit into one of them);
* an entry left open by a process that died expires after ``FLIGHT_TTL`` (longer than any
  request may take), so a dead daemon never holds the account's calls for long.

The daily limit stays per process (``day_limit``), and Xero's own daily 429 still turns into a
checkpoint; the daily count is not shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any

from syncd.failures import RetryLater
from syncd.logs import get_logger
from syncd.redact import redact
from syncd.store.engines import StoreSettings, connect_kwargs

log = get_logger("syncd.store")

#: an entry left open this long belongs to a process that died (requests time out after 60 s)
FLIGHT_TTL = 90.0
#: how often a taker looks again while every concurrent slot is in use (grows to the maximum)
POLL_FIRST, POLL_MAX = 0.02, 0.25
#: added to the window: the clocks of the database and the app are not the same clock
SLACK = 0.01


class SharedBudgets:
    """Hands out one :class:`BudgetGate` per account (``context.budgets`` of a connector)."""

    def __init__(self, settings: StoreSettings, holder: str) -> None:
        self.settings = settings
        self.holder = holder
        self._gates: list[tuple[asyncio.AbstractEventLoop, BudgetGate]] = []

    def __repr__(self) -> str:
        return f"SharedBudgets(holder={self.holder!r})"

    def gate(self, key: str, calls: float, period: float, concurrency: int) -> BudgetGate:
        gate = BudgetGate(self.settings, self.holder, key, calls, period, concurrency)
        self._gates.append((asyncio.get_running_loop(), gate))
        return gate

    async def close(self) -> None:
        """Close the connections of the gates made on the running loop."""
        loop = asyncio.get_running_loop()
        for owner, gate in list(self._gates):
            if owner is loop:
                with contextlib.suppress(Exception):
                    await gate.close()
        self._gates = [(owner, gate) for owner, gate in self._gates if owner is not loop]


class BudgetGate:
    """One account's budget row, taken from one event loop (one connection, one at a time)."""

    def __init__(
        self,
        settings: StoreSettings,
        holder: str,
        key: str,
        calls: float,
        period: float,
        concurrency: int,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.key = key
        self.calls = max(1, int(calls))
        self.period = period
        self.concurrency = max(1, concurrency)
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._created = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: calls granted by the store, and tries refused (for tests and metrics)
        self.granted = 0
        self.refused = 0

    async def enter(self) -> str:
        """Wait until the account may make one more call; the ticket to :meth:`leave` with."""
        ticket = f"{self.holder}/{secrets.token_hex(6)}"
        poll = POLL_FIRST
        while True:
            wait, slots_full = await self._transact(self._take, ticket)
            if wait <= 0:
                self.granted += 1
                return ticket
            self.refused += 1
            if slots_full:
                await asyncio.sleep(poll)
                poll = min(POLL_MAX, poll * 2)
            else:
                await asyncio.sleep(wait)

    async def leave(self, ticket: str) -> None:
        """The answer came back: the call stays in the window until ``period`` from now."""
        with contextlib.suppress(RetryLater):
            await self._transact(self._close, ticket)

    def pause(self, seconds: float) -> None:
        """The app said ``Retry-After``: every daemon holds back (in the background)."""
        task = asyncio.ensure_future(self._pause(seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(RetryLater):
            await self._transact(self._paused, seconds)

    # --- on the row, in a transaction ---------------------------------------------------------

    def _take(self, row: dict[str, Any], now: float, ticket: str) -> tuple[float, bool]:
        entries = row["entries"]
        if row["paused_until"] > now:
            return row["paused_until"] - now, False
        if sum(1 for e in entries if e["open"]) >= self.concurrency:
            return POLL_FIRST, True
        if len(entries) >= self.calls:
            return max(0.001, min(e["until"] for e in entries) - now), False
        entries.append({"t": ticket, "open": True, "until": now + FLIGHT_TTL})
        return 0.0, False

    def _close(self, row: dict[str, Any], now: float, ticket: str) -> tuple[float, bool]:
        for entry in row["entries"]:
            if entry["t"] == ticket:
                entry["open"] = False
                entry["until"] = now + self.period * (1 + SLACK)
        return 0.0, False

    def _paused(self, row: dict[str, Any], now: float, seconds: float) -> tuple[float, bool]:
        row["paused_until"] = max(row["paused_until"], now + seconds)
        return 0.0, False

    async def _transact(self, step: Any, argument: Any) -> tuple[float, bool]:
        async with self._lock:
            try:
                return await self._transact_once(step, argument)
            except RetryLater:
                raise
            except Exception as exc:
                await self._drop()
                log.warning(
                    "the shared rate budget is unreachable",
                    account=self.key,
                    error=redact(f"{type(exc).__name__}: {exc}"),
                )
                raise RetryLater(
                    f"the rate budget of {self.key} in the store could not be read "
                    f"({type(exc).__name__})",
                    delay=5.0,
                ) from None

    async def _transact_once(self, step: Any, argument: Any) -> tuple[float, bool]:
        conn = await self._connection()
        async with conn.transaction():
            if not self._created:
                await conn.execute(
                    "INSERT INTO rate_budget (account, calls, paused_until)"
                    " VALUES (%s, '', 0) ON CONFLICT (account) DO NOTHING",
                    (self.key,),
                )
            cursor = await conn.execute(
                "SELECT calls, paused_until, extract(epoch FROM clock_timestamp())"
                " FROM rate_budget WHERE account = %s FOR UPDATE",
                (self.key,),
            )
            found = await cursor.fetchone()
            assert found is not None
            now = float(found[2])
            entries = [e for e in _entries(found[0]) if e["until"] > now]
            row = {"entries": entries, "paused_until": float(found[1] or 0.0)}
            result = step(row, now, argument)
            await conn.execute(
                "UPDATE rate_budget SET calls = %s, paused_until = %s WHERE account = %s",
                (json.dumps(row["entries"], separators=(",", ":")), row["paused_until"], self.key),
            )
        self._created = True
        return result

    async def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                **connect_kwargs(self.settings.url or "", self.settings.password),
                prepare_threshold=None,
                connect_timeout=max(1, int(self.settings.lease_timeout / 3)),
                autocommit=True,
            )
            # a budget row need not survive a crash of the server (its calls are a minute's):
            # no waiting for the WAL's flush at every commit
            await self._conn.execute("SET synchronous_commit = off")
        return self._conn

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def _entries(raw: Any) -> list[dict[str, Any]]:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

"""``testcsv``: the CSV connector with switches, for the daemon's tests and benchmark.

Not registered by default: a daemon loads it with
``SYNCD_PLUGIN_MODULES=syncd.testing.testcsv``. The data lives in CSV files, so it survives a
daemon restart (the in-memory connector's does not), and the settings make a run slow, or make it
stop the way a real app would make it stop:

* ``hold`` and ``hold_after``: after ``hold_after`` write batches, each further batch waits until
  the file ``hold`` exists, and shows that it waits by creating ``<hold>.held``. A test waits for
  ``<hold>.held`` to know a run is in the middle of its writes (and stays there: no clock
  decides whether the run is still going when the test acts), then creates ``hold`` to let it go;
* ``delay``: seconds to wait before each write batch (a slow app);
* ``rate``: write batches per second, through a shared :class:`~syncd.http.RateBudget` (so the
  time spent waiting on it shows in ``/metrics``);
* ``fail``: ``needs_auth`` (credentials refused), ``retry_later`` (the app is down; retry in
  ``retry_after`` seconds) or ``leak`` (an error whose text carries the ``token`` secret, as a
  careless app or library might produce — the redaction must catch it);
* ``token``: a pretend credential (a secret setting: redacted everywhere).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from syncd.connector import (
    ConnectorError,
    NeedsReauth,
    RecordWrite,
    RemoteRecord,
    RetryLater,
    Setting,
    WriteResult,
)
from syncd.connectors.csv import CsvConnector
from syncd.hookspecs import hookimpl
from syncd.http import RateBudget, shared_budget

FAILURES = ("none", "needs_auth", "retry_later", "leak")
#: how often a held write looks for its release file (seconds)
HOLD_POLL = 0.02


class SwitchableCsvConnector(CsvConnector):
    name = "testcsv"
    title = "CSV file with test switches"
    settings = (  # type: ignore[assignment]  # CsvConnector declares a 3-tuple
        *CsvConnector.settings,
        Setting("hold", "a file each write batch after hold_after waits for", default=""),
        Setting("hold_after", "write batches to let through before holding", type=int, default=0),
        Setting("delay", "seconds to wait before each write batch", type=float, default=0.0),
        Setting("rate", "write batches per second (0: no limit)", type=float, default=0.0),
        Setting("fail", "how every run fails", default="none", choices=FAILURES),
        Setting("retry_after", "the delay of fail = retry_later", type=float, default=120.0),
        Setting("token", "a pretend credential", secret=True),
    )

    async def open(self) -> None:
        await super().open()
        fail = self.config.get("fail") or "none"
        if fail == "needs_auth":
            raise NeedsReauth("the app refused the credentials", fix="syncd auth SYNC SIDE")
        if fail == "retry_later":
            raise RetryLater("the app is down", delay=float(self.config["retry_after"]))

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        if self.config.get("fail") == "leak":
            raise ConnectorError(f"the app refused token {self.config.get('token')}")
        async for page in super().list_records(cursor):
            yield page

    #: write batches this connector (one run) has started
    batches = 0

    async def _pause(self) -> None:
        self.batches += 1
        hold = str(self.config.get("hold") or "")
        held = hold and self.batches > int(self.config.get("hold_after") or 0)
        if held and not await asyncio.to_thread(os.path.exists, hold):
            await asyncio.to_thread(_touch, f"{hold}.held")
            # another process (the test) creates the file: there is no event to wait on
            while not await asyncio.to_thread(os.path.exists, hold):  # noqa: ASYNC110
                await asyncio.sleep(HOLD_POLL)
        delay = float(self.config.get("delay") or 0.0)
        if delay:
            await asyncio.sleep(delay)
        rate = float(self.config.get("rate") or 0.0)
        if rate:
            # one budget per file, shared by every sync writing it, as per app account
            budget = shared_budget(f"testcsv:{self.path}", lambda: RateBudget(rate, 1.0, 1))
            async with budget:
                pass

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        await self._pause()
        return await super().create(writes)

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        await self._pause()
        return await super().update(writes)


def _touch(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


@hookimpl
def register_connectors(register: Any) -> None:
    register(SwitchableCsvConnector)

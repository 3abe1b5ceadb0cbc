"""``kill -9`` of ``syncd sync`` while it writes to Woodpecker, then a rerun: no duplicate on
either side, no lost update, and a third run with nothing left to write (design rule 4).

The kill is placed by the emulator rather than by a clock: a test-only middleware counts the
API requests of the run and, at the chosen one, either holds it before Woodpecker applies it
(the batch is lost with the process), applies it and holds the answer (Woodpecker has the
prospects, syncd never learns their ids), or lets the answer go and has the process killed
while it digests it. Wherever the kill lands, the rerun must end in the same state.

The run's API requests, with 10 per batch: 1 = the listing; 2 = the updates of the 10 contacts
both sides hold; 3-7 = the creates of the 50 contacts only the CSV holds (the 20 prospects only
Woodpecker holds are written to the CSV between 2 and 3).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from syncd_woodpecker.sandbox import DEFAULT_API_KEY

from syncd.sandbox import Handler

CSV_ONLY = 50
SHARED = 10
WOODPECKER_ONLY = 20
TOTAL = CSV_ONLY + SHARED + WOODPECKER_ONLY


class KillPoint:
    """Signals the test at the ``number``-th API request; see the module docstring."""

    def __init__(self, number: int, mode: str) -> None:
        self.number = number
        self.mode = mode  # lost | applied | answered
        self.seen = 0
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/rest/"):
            return await handler(request)
        self.seen += 1
        if self.seen != self.number:
            return await handler(request)
        if self.mode == "lost":
            self.reached.set()
            await self.release.wait()
            return web.json_response({"error": "the client went away"}, status=503)
        response = await handler(request)
        self.reached.set()
        if self.mode == "applied":
            await self.release.wait()
        return response


def contact(prefix: str, n: int) -> dict[str, str]:
    return {"email": f"{prefix}{n:02d}@example.com", "first_name": f"{prefix.upper()}{n:02d}"}


@pytest.mark.parametrize(
    ("number", "mode", "landed"),
    [
        (1, "lost", 0),  # during the first listing
        (2, "lost", 0),  # the update batch never reaches Woodpecker
        (4, "lost", 10),  # the second create batch never reaches Woodpecker
        (4, "applied", 20),  # the second create batch lands; its answer never comes back
        (4, "answered", 20),  # killed while committing the second create batch
        (7, "applied", 50),  # the last create batch lands; its answer never comes back
    ],
)
async def test_woodpecker_kill_during_creates_then_rerun_gives_no_duplicate(
    start_sandbox: Any, syncd: Any, csv_file: Any, number: int, mode: str, landed: int
) -> None:
    kill = KillPoint(number, mode)
    sandbox = await start_sandbox(middlewares=[kill.middleware])
    store = sandbox.store
    for n in range(WOODPECKER_ONLY):
        store.add(**contact("w", n), title=f"Title w{n:02d}")
    for n in range(CSV_ONLY, CSV_ONLY + SHARED):
        store.add(**contact("c", n), title=f"Title c{n:02d}")
    crm = csv_file("crm.csv")
    crm.write(
        "email,first_name,company",
        *(f"c{n:02d}@example.com,C{n:02d},Company {n:02d}" for n in range(CSV_ONLY + SHARED)),
    )
    syncd.write_sync(
        "crm",
        f"""
        direction = "two-way"
        winner = "a"

        [a]
        connector = "csv"
        path = "{crm.path}"
        batch_size = 10

        [b]
        connector = "woodpecker"
        api_key = "{DEFAULT_API_KEY}"
        base_url = "{sandbox.base_url}"
        batch_size = 10
        """,
    )

    process = await syncd.start("sync", "crm", "--json")
    waiting = asyncio.ensure_future(kill.reached.wait())
    exited = asyncio.ensure_future(process.wait())
    await asyncio.wait({waiting, exited}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    assert kill.reached.is_set(), "the run never reached the kill point"
    process.kill()  # SIGKILL: no cleanup of any kind
    await process.wait()
    await process.communicate()
    waiting.cancel()
    kill.release.set()  # Woodpecker finishes (or drops) what it was holding
    await asyncio.sleep(0)
    from_csv_before_rerun = len(store.prospects) - WOODPECKER_ONLY - SHARED
    assert from_csv_before_rerun == landed  # the kill landed where this case says

    rerun = await syncd.sync("crm")

    # only what Woodpecker did not get yet is created: nothing is sent as a create twice
    assert rerun.counts["created_b"] == CSV_ONLY - from_csv_before_rerun
    assert rerun.counts["failed"] == 0
    prospects = {p.email: p for p in store.ordered()}
    assert len(prospects) == TOTAL == len(store.prospects)
    rows = crm.by_email()  # fails on a duplicate row
    assert sorted(rows) == sorted(prospects)
    for n in range(CSV_ONLY + SHARED):
        email = f"c{n:02d}@example.com"
        assert prospects[email].fields["company"] == f"Company {n:02d}"
        assert prospects[email].fields["first_name"] == f"C{n:02d}"
    for n in range(CSV_ONLY, CSV_ONLY + SHARED):
        assert rows[f"c{n:02d}@example.com"]["title"] == f"Title c{n:02d}"  # no lost update
    for n in range(WOODPECKER_ONLY):
        row = rows[f"w{n:02d}@example.com"]
        assert (row["first_name"], row["title"]) == (f"W{n:02d}", f"Title w{n:02d}")
    assert all(store.add_requests)

    before = crm.path.read_bytes()
    posts = store.add_requests.copy()
    third = await syncd.sync("crm")
    assert sum(v for k, v in third.counts.items() if k.startswith(("created", "updated"))) == 0
    assert store.add_requests == posts
    assert crm.path.read_bytes() == before

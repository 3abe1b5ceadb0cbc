"""Rate budgets shared across daemons (issue 17): two daemons running syncs of one Xero
organisation stay together within its limits (the minute limit and the 5 concurrent calls),
counted in a budget row of the PostgreSQL store. The Xero emulator enforces the limits in
fixed windows that start with the organisation's first call (shrunk to a few seconds here,
as the connector's ``minute_window`` is), and answers 429 past them."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from pg_support import new_database
from pg_xero import XeroCluster, XeroSandbox

from syncd.store import Store, StoreSettings
from syncd.store.budget import BudgetGate
from syncd.testing.daemon import wait_until

LIMIT, WINDOW, CONCURRENT = 6, 2.0, 5
KEY = Fernet.generate_key().decode()


class Recorder:
    """Holds the organisation's calls back until released (both daemons started), then notes
    when each one reached the emulator, and the most in flight at once."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.released = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    @web.middleware
    async def gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api.xro/"):
            return await handler(request)
        self.loop = asyncio.get_running_loop()
        await self.released.wait()
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    def release(self, sandbox: XeroSandbox) -> None:
        sandbox.thread.loop.call_soon_threadsafe(self.released.set)

    def most_in_any_window(self, length: float) -> int:
        times = sorted(self.arrivals)
        return max(
            (bisect.bisect_left(times, t + length) - i for i, t in enumerate(times)), default=0
        )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sandbox(recorder: Recorder) -> Iterator[XeroSandbox]:
    box = XeroSandbox(
        middlewares=[recorder.gate],
        seed=5,
        count=30,
        rate_limits=True,
        minute_limit=LIMIT,
        minute_window=WINDOW,
        concurrent_limit=CONCURRENT,
    )
    yield box
    box.close()


def _custom(sandbox: XeroSandbox) -> str:
    """A Xero Custom Connection (no tokens kept) with the emulator's shrunk minute."""
    return sandbox.toml(
        grant="client_credentials",
        client_id="sandbox-custom-client",
        client_secret="sandbox-custom-secret",
        tenant="",
        page_size=5,
        minute_limit=LIMIT,
        minute_window=WINDOW,
    )


def test_two_daemons_on_one_organisation_stay_within_its_limits_together(
    tmp_path: Path, sandbox: XeroSandbox, recorder: Recorder
) -> None:
    cluster = XeroCluster(tmp_path, new_database(), KEY, lease=10.0)
    try:
        # each daemon runs two syncs of the same organisation (the syncs of one account can
        # sit on any daemon: each one's budget is the store's row for the organisation)
        halves = {"one": ["s1", "s2"], "two": ["s3", "s4"]}
        for half, names in halves.items():
            for name in names:
                cluster.add_sync(name, _custom(sandbox))
            own = tmp_path / f"syncs-{half}"
            (own / "syncs").mkdir(parents=True)
            for name in names:
                (cluster.config / "syncs" / f"{name}.toml").rename(own / "syncs" / f"{name}.toml")
        daemons = {half: cluster.start(tmp_path / f"syncs-{half}") for half in halves}

        def running(half: str) -> bool:
            syncs = daemons[half].get("/api/v1/status")["syncs"]
            return any(s["state"] == "running" for s in syncs if s["name"] in halves[half])

        # Xero holds every call back until both daemons are running syncs: then they call the
        # organisation at the same time
        wait_until(lambda: all(running(h) for h in halves) or None, 120, "runs on both daemons")
        recorder.release(sandbox)

        def finished(half: str, name: str) -> dict[str, Any] | None:
            runs = daemons[half].get(f"/api/v1/syncs/{name}/runs")["runs"]
            done = [r for r in runs if r["outcome"] != "running"]
            return done[0] if done else None

        results = {
            name: wait_until(lambda h=half, n=name: finished(h, n), 240, f"{name}'s run")
            for half, names in halves.items()
            for name in names
        }
        outcomes = {n: (r["outcome"], r.get("message")) for n, r in results.items()}
        assert all(r["outcome"] == "success" for r in results.values()), outcomes
        state = sandbox.state()
        assert state["rate_limited"] == {}, state["rate_limited"]  # no 429, of any kind
        assert len(recorder.arrivals) >= 4 * 6  # 30 contacts, 5 a page, for each of 4 syncs
        assert recorder.most_in_any_window(WINDOW) <= LIMIT
        assert recorder.most_in_flight <= CONCURRENT
        for daemon in daemons.values():
            assert daemon.stop() == 0
        cluster.daemons.clear()
    finally:
        cluster.close()


# --- the gate on its own ----------------------------------------------------------------------


async def test_gates_of_two_processes_share_the_window_and_the_concurrency(
    tmp_path: Path,
) -> None:
    """Two stores (two processes, as the database sees them) take calls of one account: never
    more than ``concurrency`` open at once between them, and ``calls`` a ``period`` in all."""
    url = new_database()
    stores = [Store(tmp_path / f"p{i}", StoreSettings(url=url)) for i in range(2)]
    for store in stores:
        store.open()
    gates: list[BudgetGate] = []
    for store in stores:
        assert store.budgets is not None
        gates.append(store.budgets.gate("xero:org", 4, 0.5, 2))
    open_now = most_open = 0
    hold = asyncio.Event()

    async def call(gate: BudgetGate) -> None:
        nonlocal open_now, most_open
        ticket = await gate.enter()
        open_now += 1
        most_open = max(most_open, open_now)
        await hold.wait()  # the request, answered when the test says
        open_now -= 1
        await gate.leave(ticket)

    async def until(condition: Any) -> None:
        for _ in range(3000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the condition did not come true")

    try:
        started = await _db_now(stores[0])
        calls = [asyncio.create_task(call(gates[i % 2])) for i in range(16)]
        await until(lambda: open_now == 2)
        # the others keep asking and are refused while two calls are open
        refused = sum(g.refused for g in gates)
        await until(lambda: sum(g.refused for g in gates) >= refused + 6)
        assert open_now == 2 and sum(g.granted for g in gates) == 2
        hold.set()
        await asyncio.gather(*calls)
        elapsed = await _db_now(stores[0]) - started
        assert most_open == 2
        assert sum(g.granted for g in gates) == 16 and min(g.granted for g in gates) >= 1
        # 16 calls, 4 a half second: the last four waited for three windows at least
        assert elapsed >= 1.5, elapsed
    finally:
        for gate in gates:
            await gate.close()
        for store in stores:
            store.close()


async def _db_now(store: Store) -> float:
    def now() -> float:
        row = store.db.execute_sql("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        return float(row[0])

    return await store.run(now)

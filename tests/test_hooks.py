"""The daemon's webhook machinery in-process, on in-memory apps: a connector with webhooks on side
a, served over real HTTP by the hooks application, with the real scheduler and store.

A gate in side b's listing holds a run at a chosen point (no sleeps): an edit made in a after
that run listed a, and announced by a webhook, must wait for the run and then arrive through a
targeted run of its own; waiting ids are persisted and picked up by the next daemon.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import itertools
import json
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from support import write_sync

from syncd.config import SyncConfig, load_sync
from syncd.connector import RemoteRecord, Setting, WebhookChange, WebhookReply
from syncd.daemon.hooks import PENDING_KEY, Hooks, make_hooks_app
from syncd.daemon.metrics import Metrics
from syncd.daemon.scheduler import SyncScheduler
from syncd.engine.executor import RunOptions, run_sync
from syncd.hookspecs import hookimpl
from syncd.plugins import load_plugins
from syncd.sandbox import SandboxServer
from syncd.store import Store
from syncd.testing import memory

SECRET = "hook-secret-123"
#: side b's listing waits here while ``HOLD`` is set (and says it got there)
HOLD: dict[str, asyncio.Event] = {}


class HookMemory(memory.MemoryConnector):
    """The memory app, with change notices: ``{"changed": [ids]}`` signed in ``X-Sig``."""

    name = "memory-hooks"
    settings = (*memory.MemoryConnector.settings, Setting("secret", "signs", secret=True))

    def __init__(self, settings: dict[str, Any], context: Any) -> None:
        super().__init__(settings, context)
        self.capabilities = dataclasses.replace(self.capabilities, webhooks=True, read_by_ids=True)

    def webhook_account(self) -> str | None:
        return str(self.config["account"])

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("X-Sig", "").encode(), expected.encode()):
            return WebhookReply(status=401)
        return WebhookReply(changes=[WebhookChange(i) for i in json.loads(body)["changed"]])

    async def read_records(self, ids: Sequence[str]) -> AsyncIterator[list[RemoteRecord]]:
        yield [self._remote(i, self.app.records[i]) for i in ids if i in self.app.records]


class HeldMemory(memory.MemoryConnector):
    name = "memory-held"

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        if "release" in HOLD:
            HOLD["entered"].set()
            await HOLD["release"].wait()
        async for page in super().list_records(cursor):
            yield page


@hookimpl
def register_connectors(register: Any) -> None:
    register(HookMemory)
    register(HeldMemory)


def sync_config(tmp_path: Path) -> SyncConfig:
    plugins = load_plugins(extra=[memory, sys.modules[__name__]])
    path = write_sync(
        tmp_path / "config",
        "hooked",
        'interval = "1h"\n[a]\nconnector = "memory-hooks"\naccount = "ha"\n'
        f'secret = "{SECRET}"\n[b]\nconnector = "memory-held"\naccount = "hb"\n',
    )
    return load_sync(path, plugins)


async def post(url: str, ids: list[str], good: bool = True) -> tuple[int, bytes]:
    body = json.dumps({"changed": ids}).encode()
    key = SECRET if good else "nope"
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"X-Sig": signature}) as response,
    ):
        return response.status, await response.read()


async def wait_for(probe: Any, what: str, seconds: float = 30.0) -> Any:
    """Poll ``probe`` on the loop (the daemon's tasks run meanwhile) until it holds."""
    give_up = asyncio.get_running_loop().time() + seconds
    for _ in itertools.count():
        value = probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > give_up:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Daemonish:
    """A store, a scheduler and the hooks on it, as the daemon wires them."""

    def __init__(self, state: Path, sync: SyncConfig) -> None:
        self.store = Store(state)
        self.sync = sync

    async def __aenter__(self) -> Daemonish:
        await self.store.aopen()
        self.scheduler = SyncScheduler(self.store, Metrics())
        self.hooks = Hooks(self.store, self.scheduler, debounce=0.05)
        self.server = SandboxServer(make_hooks_app(self.hooks))
        await self.server.start()
        await self.scheduler.start({self.sync.name: self.sync})
        await self.hooks.start({self.sync.name: self.sync})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hooks.close()
        await self.scheduler.drain(5.0)
        await self.server.stop()
        await self.store.aclose()

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/memory-hooks/ha"


async def test_an_event_during_a_run_waits_for_it_then_runs_just_that_record(
    tmp_path: Path,
) -> None:
    sync = sync_config(tmp_path)
    a, b = memory.app("ha"), memory.app("hb")
    first = a.add({"email": "ann@example.com", "first_name": "Ann"})
    store = Store(tmp_path / "state")
    await store.aopen()
    assert (await run_sync(sync, store, RunOptions())).outcome == "success"
    await store.aclose()

    async with Daemonish(tmp_path / "state", sync) as daemon:
        assert await post(daemon.url, [first], good=False) == (401, b"")
        HOLD.update(release=asyncio.Event(), entered=asyncio.Event())
        handle = await daemon.scheduler.trigger(sync.name, full=True)
        await asyncio.wait_for(HOLD["entered"].wait(), 30)  # the run listed a already
        added = a.add({"email": "bea@example.com", "first_name": "Bea"})
        assert await post(daemon.url, [added]) == (200, b"")
        assert daemon.hooks.status(sync.name)["events_waiting"] == 1
        HOLD["release"].set()
        assert handle.task is not None
        await handle.task
        # the held run did not see Bea; the webhook's run, after it, does
        await wait_for(lambda: "bea@example.com" in json.dumps(b.live()), "Bea on side b")
        await wait_for(lambda: daemon.scheduler.slots[sync.name].current is None, "idle")
        runs = await daemon.store.run(daemon.store.list_runs, sync.name, 10)
        assert [r.trigger for r in runs][:2] == ["webhook", "api"]
        assert runs[0].started_at >= runs[1].finished_at
        assert runs[0].counts["read_a"] == 1 and runs[0].counts["created_b"] == 1
        assert daemon.hooks.status(sync.name)["events_waiting"] == 0
    HOLD.clear()


async def test_waiting_events_are_persisted_and_run_by_the_next_daemon(tmp_path: Path) -> None:
    sync = sync_config(tmp_path)
    a, b = memory.app("ha"), memory.app("hb")
    a.add({"email": "ann@example.com", "first_name": "Ann"})
    store = Store(tmp_path / "state")
    await store.aopen()
    assert (await run_sync(sync, store, RunOptions())).outcome == "success"
    await store.aclose()

    async with Daemonish(tmp_path / "state", sync) as daemon:
        daemon.hooks.debounce = 3600.0  # it stops before running them
        added = a.add({"email": "cat@example.com", "first_name": "Cat"})
        assert await post(daemon.url, [added]) == (200, b"")
        # the answer waits for the queue to be saved only up to PERSIST_WAIT (2 s), which a
        # loaded machine's store may take: the saved queue is waited for, not assumed (the
        # save has no event of its own to wait on)
        async with asyncio.timeout(120):
            while not (saved := await daemon.store.run(daemon.store.get_value, PENDING_KEY)):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert json.loads(saved) == {sync.name: {"a": [added]}}
    assert "cat@example.com" not in json.dumps(b.live())

    async with Daemonish(tmp_path / "state", sync) as daemon:
        await wait_for(lambda: "cat@example.com" in json.dumps(b.live()), "Cat on side b")
        await wait_for(lambda: daemon.scheduler.slots[sync.name].current is None, "idle")
        await wait_for(
            lambda: not daemon.hooks.status(sync.name)["events_waiting"], "the queue settled"
        )
        runs = await daemon.store.run(daemon.store.list_runs, sync.name, 10)
        assert runs[0].trigger == "webhook"

"""The daemon keeps OAuth grants of idle and paused syncs alive (Xero: 60 idle days)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support import write_sync

from syncd import hookimpl
from syncd.config import load_sync
from syncd.daemon.metrics import Metrics
from syncd.daemon.scheduler import KEEP_ALIVE_JOB, SyncScheduler
from syncd.plugins import load_plugins
from syncd.store import Store
from syncd.testing import memory
from syncd.testing.memory import MemoryConnector

KEPT: list[tuple[str, str]] = []


class OAuthApp(MemoryConnector):
    name = "memory-oauth"
    needs_authorization = True

    async def keep_alive(self) -> str:
        KEPT.append((self.context.sync, self.context.side))
        return "refreshed"


class BrokenOAuthApp(OAuthApp):
    name = "memory-oauth-broken"

    async def keep_alive(self) -> str:
        raise RuntimeError("the identity server is down")


@pytest.fixture
async def scheduler(store: Store) -> AsyncIterator[SyncScheduler]:
    sched = SyncScheduler(store, Metrics())
    yield sched
    await sched.drain(5.0, 1.0)


async def test_every_authorised_side_is_kept_alive_paused_or_not(
    tmp_path: Path, store: Store, scheduler: SyncScheduler
) -> None:
    @hookimpl
    def register_connectors(register: Any) -> None:
        register(OAuthApp)
        register(BrokenOAuthApp)

    plugins = load_plugins(extra=[memory, SimpleNamespace(register_connectors=register_connectors)])
    syncs = {}
    for name, a, b in (
        ("oauth-both", "memory-oauth", "memory-oauth"),
        ("oauth-a", "memory-oauth", "memory"),
        ("plain", "memory", "memory"),
        ("broken", "memory-oauth-broken", "memory"),
    ):
        path = write_sync(
            tmp_path / "config",
            name,
            f'interval = "1d"\n[a]\nconnector = "{a}"\naccount = "{name}-a"\n'
            f'[b]\nconnector = "{b}"\naccount = "{name}-b"\n',
        )
        syncs[name] = load_sync(path, plugins)
    KEPT.clear()
    await scheduler.start(syncs)
    await scheduler.pause("oauth-a")
    assert scheduler._scheduler.get_job(KEEP_ALIVE_JOB) is not None
    asked = await scheduler.keep_credentials_alive()
    assert asked == 4  # a failure of one does not stop the others
    assert sorted(KEPT) == [("oauth-a", "a"), ("oauth-both", "a"), ("oauth-both", "b")]

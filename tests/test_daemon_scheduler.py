"""The scheduler in-process: job settings, when a sync first runs, one run per sync, different
syncs side by side, retry-after, reload, and stopping runs at the shutdown deadline."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from syncd.config import SyncConfig, load_sync
from syncd.connector import RecordWrite, RetryLater, WriteResult
from syncd.daemon.metrics import Metrics
from syncd.daemon.scheduler import (
    PAUSED_KEY,
    START_STAGGER,
    AlreadyRunning,
    SyncScheduler,
    utcnow,
)
from syncd.hookspecs import hookimpl
from syncd.plugins import Plugins, load_plugins
from syncd.store import Store
from syncd.store.lock import SyncLock
from syncd.store.models import Run
from syncd.testing import memory


class Gate:
    """Holds every write of the ``gated`` connector until opened."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.waiting: set[str] = set()


GATE: dict[str, Gate] = {}


class GatedConnector(memory.MemoryConnector):
    name = "gated"

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        gate = GATE["gate"]
        gate.waiting.add(self.context.sync)
        await gate.open.wait()
        return await super().create(writes)


class DownConnector(memory.MemoryConnector):
    name = "down"

    async def open(self) -> None:
        raise RetryLater("the app is down", delay=900)


@hookimpl
def register_connectors(register: Any) -> None:
    register(GatedConnector)
    register(DownConnector)


@pytest.fixture
def plugins() -> Plugins:
    return load_plugins(extra=[memory, SimpleNamespace(register_connectors=register_connectors)])


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    GATE["gate"] = Gate()
    yield GATE["gate"]
    GATE["gate"].open.set()


@pytest.fixture
async def scheduler(store: Store) -> AsyncIterator[SyncScheduler]:
    sched = SyncScheduler(store, Metrics())
    yield sched
    await sched.drain(5.0, 1.0)


def sync(
    tmp_path: Path, plugins: Plugins, name: str, target: str = "gated", extra: str = ""
) -> SyncConfig:
    app = memory.app(f"{name}-a")
    for i in range(3):
        app.add({"email": f"{name}{i}@example.com", "first_name": f"N{i}"})
    path = tmp_path / "config" / "syncs" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = "1h"
            {extra}
            [a]
            connector = "memory"
            account = "{name}-a"
            [b]
            connector = "{target}"
            account = "{name}-b"
            """
        )
    )
    return load_sync(path, plugins)


def record_success(store: Store, name: str, finished: datetime) -> None:
    run_id = store.start_run(name, "daemon", False)
    store.finish_run(run_id, "success", {}, None)
    naive = finished.astimezone(UTC).replace(tzinfo=None)
    Run.update(started_at=naive - timedelta(seconds=5), finished_at=naive).where(
        Run.id == run_id
    ).execute()


def only_triggered_runs(store: Store, *names: str) -> None:
    """Store ``names`` as paused, as a pause through the API would: the scheduler then starts no
    run of theirs on its own (a never-run sync's first run is due within seconds of the start,
    and could land in the middle of the test), while a trigger still runs them."""
    store.set_value(PAUSED_KEY, json.dumps(sorted(names)))


async def wait_for(condition: Any) -> None:
    """Poll a condition the code under test offers no event for (generously: a loaded machine
    is slow, and only a condition that never comes should fail the test)."""
    async with asyncio.timeout(120):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_each_sync_is_a_job_with_jitter_coalesce_one_instance_and_a_misfire_grace(
    tmp_path: Path, plugins: Plugins, scheduler: SyncScheduler
) -> None:
    await scheduler.start({"one": sync(tmp_path, plugins, "one")})
    job = scheduler._scheduler.get_job("one")
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == 7200
    assert job.trigger.interval == timedelta(hours=1)
    assert job.trigger.jitter == 30


async def test_a_sync_that_never_completed_a_run_runs_soon_after_start(
    tmp_path: Path, plugins: Plugins, scheduler: SyncScheduler
) -> None:
    await scheduler.start({"one": sync(tmp_path, plugins, "one")})
    next_run = scheduler.next_run("one")
    assert next_run is not None
    assert next_run <= utcnow() + timedelta(seconds=START_STAGGER)


async def test_a_sync_whose_last_success_is_older_than_its_interval_runs_soon(
    tmp_path: Path, plugins: Plugins, store: Store, scheduler: SyncScheduler
) -> None:
    record_success(store, "one", utcnow() - timedelta(hours=3))
    record_success(store, "two", utcnow() - timedelta(minutes=10))
    await scheduler.start(
        {"one": sync(tmp_path, plugins, "one"), "two": sync(tmp_path, plugins, "two")}
    )
    soon = utcnow() + timedelta(seconds=START_STAGGER)
    next_one, next_two = scheduler.next_run("one"), scheduler.next_run("two")
    assert next_one is not None and next_one <= soon
    # the other waits for its interval from its last success: about 50 minutes
    assert next_two is not None
    assert timedelta(minutes=49) < next_two - utcnow() <= timedelta(minutes=51)


async def test_different_syncs_run_at_once_and_the_same_sync_never_twice(
    tmp_path: Path, plugins: Plugins, store: Store, scheduler: SyncScheduler, gate: Gate
) -> None:
    configs = {n: sync(tmp_path, plugins, n) for n in ("one", "two")}
    only_triggered_runs(store, "one", "two")
    await scheduler.start(configs)
    scheduler._scheduler.pause()  # only what the test starts runs
    first = await scheduler.trigger("one")
    await scheduler.trigger("two")
    await wait_for(lambda: gate.waiting == {"one", "two"})  # both inside a write, together
    assert scheduler.states() == {"one": "running", "two": "running"}
    with pytest.raises(AlreadyRunning):
        await scheduler.trigger("one")
    # the scheduled job finds it running and does not start another run
    await scheduler._scheduled("one")
    assert scheduler.slots["one"].current is first
    gate.open.set()
    await wait_for(lambda: scheduler.running_count() == 0)
    assert scheduler.slots["one"].last is not None
    assert scheduler.slots["one"].last.outcome == "success"
    assert len(memory.app("one-b").records) == 3


async def test_a_sync_held_by_another_process_is_already_running(
    tmp_path: Path, plugins: Plugins, store: Store, scheduler: SyncScheduler
) -> None:
    only_triggered_runs(store, "one")
    await scheduler.start({"one": sync(tmp_path, plugins, "one", target="memory")})
    scheduler._scheduler.pause()
    with SyncLock(store.state_dir, "one"):  # what a manual `syncd sync one` holds
        with pytest.raises(AlreadyRunning, match="another process"):
            await scheduler.trigger("one")
        await scheduler._scheduled("one")
    slot = scheduler.slots["one"]
    assert slot.busy_elsewhere is not None
    assert slot.last is None  # nothing ran, nothing was recorded
    assert await store.run(store.list_runs, "one") == []


async def test_retry_later_moves_the_next_run(
    tmp_path: Path, plugins: Plugins, store: Store, scheduler: SyncScheduler
) -> None:
    # a recent success: the scheduler's own next run is an hour away, only the trigger runs
    record_success(store, "one", utcnow())
    await scheduler.start({"one": sync(tmp_path, plugins, "one", target="down")})
    handle = await scheduler.trigger("one")
    assert handle.task is not None
    await handle.task
    slot = scheduler.slots["one"]
    assert slot.last is not None and slot.last.outcome == "retry_later"
    assert slot.state == "failing"
    next_run = scheduler.next_run("one")
    assert next_run is not None
    assert timedelta(minutes=14) < next_run - utcnow() <= timedelta(minutes=15)


async def test_reload_adds_removes_and_changes_syncs(
    tmp_path: Path, plugins: Plugins, scheduler: SyncScheduler
) -> None:
    one, two = sync(tmp_path, plugins, "one"), sync(tmp_path, plugins, "two")
    await scheduler.start({"one": one, "two": two})
    changed_one = sync(tmp_path, plugins, "one", extra='winner = "b"')
    disabled_two = sync(tmp_path, plugins, "two", extra="enabled = false")
    three = sync(tmp_path, plugins, "three")
    changes = await scheduler.apply({"one": changed_one, "three": three})
    assert changes == {"added": ["three"], "removed": ["two"], "changed": ["one"]}
    assert scheduler.slots["one"].config.winner == "b"
    assert scheduler._scheduler.get_job("two") is None
    assert scheduler.next_run("three") is not None
    changes = await scheduler.apply({"one": changed_one, "two": disabled_two, "three": three})
    assert changes["added"] == ["two"]
    assert scheduler.states()["two"] == "paused"
    assert scheduler.next_run("two") is None


async def test_drain_lets_runs_checkpoint_and_cancels_at_the_deadline(
    tmp_path: Path, plugins: Plugins, store: Store, scheduler: SyncScheduler, gate: Gate
) -> None:
    only_triggered_runs(store, "one")
    await scheduler.start({"one": sync(tmp_path, plugins, "one")})
    scheduler._scheduler.pause()
    handle = await scheduler.trigger("one")
    await wait_for(lambda: gate.waiting == {"one"})
    # the write never returns: the run is cancelled at the deadline (and given all the time it
    # needs to unwind: drain returns as soon as it has)...
    cancelled = await scheduler.drain(0.2, 120.0)
    assert cancelled == 1
    assert handle.task is not None and handle.task.done()
    # ...and its history says so (not "success")
    runs = await store.run(store.list_runs, "one")
    assert [r.outcome for r in runs] == ["interrupted"]
    assert "shutdown deadline" in (runs[0].message or "")

"""When each sync runs: one APScheduler job per sync, and at most one run per sync at a time.

Each sync is an APScheduler 3.11 job on an :class:`AsyncIOScheduler`, on an
:class:`IntervalTrigger` with jitter, ``coalesce=True`` (runs missed while the machine slept are
made up once, not once each), ``max_instances=1`` and an explicit ``misfire_grace_time`` (the
default of one second would silently skip a run that was a little late).

A run is an asyncio task of its own, tracked on the sync's :class:`SyncSlot`. The scheduled job
awaits that task (so ``max_instances`` means what it says) through :func:`asyncio.shield`:
APScheduler cancels the jobs it is running when it shuts down, while a run must be stopped
through its ``stop`` event so that it checkpoints. A manual trigger starts a run the same way
without the scheduler; either finds the slot busy and does not start a second one. Against
another process (a manual ``syncd sync``), the engine's lock raises
:class:`~syncd.store.lock.SyncBusy`, which counts as "already running".

Balanced claiming (several daemons on one PostgreSQL store, and ``[daemon]
max_concurrent_runs``): a scheduled run that comes due while this daemon already runs its cap
of runs is *held back* (queued here, oldest first) and started as soon as one of this daemon's
runs ends, unless another daemon ran it meanwhile; every daemon schedules every sync, so a peer
with room takes it on its own schedule. On a shared store a due sync is also left, for a short
grace (:func:`balance_grace`), to a live peer that holds fewer syncs than this daemon runs
and is not at its own cap (peers are known from their presence rows, see
:mod:`syncd.store.claims`); when no peer has taken it by then, this daemon runs it anyway, so
no sync waits on a peer that is gone. Which daemon may *run* a sync is still decided by the
claim alone (exactly one runner, fenced commits): balancing only decides who tries first.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import SyncConfig
from syncd.daemon.events import EventHub
from syncd.daemon.memory import trim
from syncd.daemon.metrics import Metrics
from syncd.engine.executor import RunOptions, RunResult, SyncRun, make_connector
from syncd.logs import get_logger
from syncd.redact import redact
from syncd.store import ClaimInfo, RunRow, Store
from syncd.store.lock import SyncBusy
from syncd.timefmt import rfc3339

log = get_logger("syncd.daemon")

#: outcomes of a run that got through the whole sync (a refused record does not count against it)
COMPLETED = ("success", "partial")
#: outcomes that make a sync show as failing until a run completes again
FAILING = ("failed", "config_error", "retry_later")
#: the store key of the syncs paused through the API (a pause survives a restart)
PAUSED_KEY = "daemon.paused"
#: a due sync starts within this many seconds of start-up (spread so they do not all start at once)
START_STAGGER = 5.0
#: how long a trigger waits for the engine to record the run and hand back its id
TRIGGER_WAIT = 30.0
#: how often OAuth grants of idle syncs are refreshed (Xero's expire after 60 unused days)
KEEP_ALIVE_EVERY = 86400.0
KEEP_ALIVE_JOB = "syncd:keep-alive"  # a colon: no sync can have this name
#: on a shared (PostgreSQL) store: how often the claims of every daemon are read for status
CLAIMS_JOB = "syncd:claims"
CLAIMS_EVERY = 5.0
#: on a shared store, a sync whose last run (by any daemon) started less than this share of
#: its interval ago is not run again by another daemon's schedule
SHARED_DUE = 0.8
#: a scheduled run held back by the cap, or left to a lighter peer, is "deferred" for at least
#: this long before it is looked at again (a floor for the retry of a deferred sync)
DEFER_FLOOR = 0.1


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """The store keeps naive UTC datetimes."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def jitter_for(interval: float) -> float:
    """A tenth of the interval, at most 30 s: enough to keep syncs sharing an account apart."""
    return min(interval / 10, 30.0)


def balance_grace(interval: float, lease_timeout: float) -> float:
    """How long a due sync is left to a less-loaded live peer before this daemon runs it anyway:
    long enough for the peer's own schedule of it to come round (the start-up stagger plus the
    interval's jitter), never longer than ``lease_timeout`` (the bound failover has too)."""
    return min(START_STAGGER + jitter_for(interval), lease_timeout)


def misfire_grace_for(interval: float) -> int:
    """A run late by less than this still runs (once, coalesced). Generous: a run that comes late
    after a suspend is better than waiting a whole interval more."""
    return int(max(3600.0, 2 * interval))


class UnknownSync(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no sync named {name!r}")
        self.name = name


class AlreadyRunning(Exception):
    def __init__(self, name: str, run_id: int | None = None, elsewhere: str = "") -> None:
        where = f" in another process ({elsewhere})" if elsewhere else ""
        run = f" (run {run_id})" if run_id is not None else ""
        super().__init__(f"sync {name!r} is already running{where}{run}")
        self.name = name
        self.run_id = run_id


class ShuttingDown(Exception):
    def __init__(self) -> None:
        super().__init__("the daemon is shutting down")


@dataclass
class LastRun:
    id: int | None
    outcome: str
    trigger: str
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None

    @classmethod
    def from_row(cls, row: RunRow) -> LastRun:
        # "running" in the database without a run here: a process that died, or a manual
        # `syncd sync` going on now; either way not ours
        return cls(
            row.id,
            row.outcome,
            row.trigger,
            aware(row.started_at),
            aware(row.finished_at),
            dict(row.counts),
            row.message,
        )

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(eq=False)
class RunHandle:
    """A run in progress."""

    sync: str
    trigger: str
    stop: asyncio.Event
    started_at: datetime
    engine: SyncRun | None = None
    task: asyncio.Task[None] | None = None
    done: int = 0
    total: int = 0
    busy_elsewhere: str | None = None
    #: a webhook-driven run: the record ids it reads, per side (:mod:`syncd.daemon.hooks`)
    targets: dict[str, frozenset[str]] | None = None
    #: set once the engine has recorded the run (or the run ended without one)
    recorded: asyncio.Event = field(default_factory=asyncio.Event)
    #: the engine's run id and listed count, kept when the engine is let go (:meth:`release`)
    final_run_id: int | None = None
    final_listed: int = 0

    @property
    def run_id(self) -> int | None:
        return self.engine.run_id if self.engine is not None else self.final_run_id

    @property
    def listed(self) -> int:
        return self.engine.listed if self.engine is not None else self.final_listed

    def release(self) -> None:
        """Let the engine go once the run is over.

        The engine holds this handle (its options' progress callbacks are the handle's), so the
        two form a cycle, which reference counting never frees: the run's connectors and what
        they loaded (a CSV connector's rows, a vendor's listing caches) would stay in an idle
        daemon until the collector's next full pass, which may be long in coming."""
        if self.engine is not None:
            self.final_run_id, self.final_listed = self.engine.run_id, self.engine.listed
            self.engine = None

    def on_start(self, run_id: int) -> None:
        self.recorded.set()

    def on_progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


@dataclass(eq=False)
class SyncSlot:
    config: SyncConfig
    paused: bool = False
    last: LastRun | None = None
    last_success_at: datetime | None = None
    current: RunHandle | None = None
    #: a scheduled run found the sync held by another process (a manual `syncd sync`)
    busy_elsewhere: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def state(self) -> str:
        if self.current is not None:
            return "running"
        if self.paused or not self.config.enabled:
            return "paused"
        if self.last is not None and self.last.outcome == "needs_auth":
            return "needs_auth"
        if self.last is not None and self.last.outcome in FAILING:
            return "failing"
        return "idle"


#: how long after a run the collector gets back what the run left alive
THAW_DELAY = 0.5


def thaw_after_run() -> None:
    """Hand the objects a run left alive back to the cyclic collector.

    At the end of the last run in progress the engine moves what the run made and still holds
    to the permanent generation (:func:`syncd.engine.executor.cyclic_gc_paused`) instead of
    letting the collector walk it all at once on the event loop. Once the run is gone, reference
    counting has freed nearly all of it; what survives (a cycle here and there) goes back to
    the oldest generation, so that it can still be collected."""
    if gc.isenabled() and gc.get_freeze_count():
        gc.unfreeze()


class SyncScheduler:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        on_change: Callable[[], None] = lambda: None,
        events: EventHub | None = None,
        max_runs: int = 0,
    ) -> None:
        self.store = store
        #: ``[daemon] max_concurrent_runs``: scheduled runs past this many at once wait (0: no cap)
        self.max_runs = max(0, max_runs)
        #: scheduled runs held back (the cap, or left to a lighter peer): since when (monotonic)
        self._deferred: dict[str, float] = {}
        self._filling = False
        self._fill_task: asyncio.Future[None] | None = None
        self.metrics = metrics
        self.on_change = on_change
        #: what GET /api/v1/events streams: runs, progress, state changes, errors
        self.events = events if events is not None else EventHub()
        self._published_states: dict[str, str] = {}
        self._published_progress: dict[str, tuple[int, int, int]] = {}
        self.slots: dict[str, SyncSlot] = {}
        #: runs of syncs removed from the config, still finishing their current batch
        self._orphans: set[RunHandle] = set()
        self._stopping = False
        #: on a shared store: which process holds which sync now (every daemon's)
        self.claims: dict[str, ClaimInfo] = {}
        #: told of every run's start and end (``run_started``/``run_finished``): the webhooks
        self.listeners: list[Any] = []
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )

    # --- set-up -----------------------------------------------------------------------------

    async def start(self, syncs: Mapping[str, SyncConfig]) -> None:
        paused = await self._load_paused()
        self._scheduler.start()
        for sync in syncs.values():
            await self._add(sync, paused=sync.name in paused)
        self._scheduler.add_job(
            self.keep_credentials_alive,
            trigger=IntervalTrigger(seconds=KEEP_ALIVE_EVERY, jitter=600, timezone=UTC),
            id=KEEP_ALIVE_JOB,
            name="keep credentials alive",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
            replace_existing=True,
        )
        if self.store.shared:
            await self._announce()
            await self.refresh_claims()
            self._scheduler.add_job(
                self.refresh_claims,
                trigger=IntervalTrigger(
                    seconds=min(CLAIMS_EVERY, self.store.settings.lease_timeout / 3),
                    timezone=UTC,
                ),
                id=CLAIMS_JOB,
                name="read the claims of every daemon",
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )

    async def _announce(self) -> None:
        """Make this daemon known to its peers (a presence row, kept by the claims heartbeat)."""
        claims = self.store.claims
        if claims is None:
            return
        try:
            await self.store.run(claims.announce, self.store.db, self.max_runs)
        except Exception as exc:  # the peers just do not leave syncs to this daemon
            log.warning(
                "announcing this daemon to its peers failed",
                error=redact(f"{type(exc).__name__}: {exc}"),
            )

    async def refresh_claims(self) -> None:
        """Read which process runs which sync (any daemon on the shared store)."""
        try:
            self.claims = await self.store.run(self.store.live_claims)
            orphans = await self.store.run(self.store.orphaned_syncs)
        except Exception as exc:
            log.warning("reading the claims failed", error=redact(f"{type(exc).__name__}: {exc}"))
            return
        self.metrics.set_claims(self.claims)
        for name in orphans:
            slot = self.slots.get(name)
            if slot is not None and slot.current is None:
                # its daemon died mid-run and its lease ran out: take it over soon (spread, so
                # that the survivors do not all try at once)
                log.info("taking over a sync whose daemon stopped answering", sync=name)
                self._retry_at(slot, random.uniform(0.0, 0.5), floor=0.0)

    async def keep_credentials_alive(self) -> int:
        """Let every connector that needs authorisation refresh what would expire while its sync
        is idle or paused (rule 11: credentials must not die quietly). Returns how many were
        asked. A failure is logged and shows on the sync's next run."""
        asked = 0
        for slot in list(self.slots.values()):
            needing = [
                side
                for side in ("a", "b")
                if slot.config.side(side).connector_class.needs_authorization
            ]
            if not needing:
                continue
            if not self.store.shared:
                asked += await self._keep_alive(slot, needing)
                continue
            # several daemons: only the one holding the sync's claim refreshes its grant (a
            # rotating refresh token must never be used twice); a sync running elsewhere is
            # refreshed by its run
            try:
                held = await self.store.claim(slot.name)
            except SyncBusy:
                continue
            try:
                asked += await self._keep_alive(slot, needing)
            finally:
                await self.store.unclaim(held)
        return asked

    async def _keep_alive(self, slot: SyncSlot, sides: list[str]) -> int:
        asked = 0
        for side in sides:
            connector = make_connector(slot.config, side, self.store)
            asked += 1
            try:
                await connector.open()
                summary = await connector.keep_alive()
                if summary:
                    log.info("credentials kept alive", sync=slot.name, side=side, detail=summary)
            except Exception as exc:
                log.warning(
                    "keeping credentials alive failed",
                    sync=slot.name,
                    side=side,
                    error=redact(f"{type(exc).__name__}: {exc}"),
                )
            finally:
                with contextlib.suppress(Exception):
                    await connector.close()
        return asked

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._stopping

    async def _load_paused(self) -> set[str]:
        raw = await self.store.run(self.store.get_value, PAUSED_KEY)
        try:
            names = json.loads(raw) if raw else []
        except ValueError:
            names = []
        return {str(n) for n in names} if isinstance(names, list) else set()

    async def _save_paused(self) -> None:
        names = sorted(name for name, slot in self.slots.items() if slot.paused)
        await self.store.run(self.store.set_value, PAUSED_KEY, json.dumps(names))

    async def _add(self, sync: SyncConfig, paused: bool = False) -> SyncSlot:
        slot = SyncSlot(sync, paused=paused)
        last = await self.store.run(self.store.last_run, sync.name)
        success = await self.store.run(self.store.last_run, sync.name, list(COMPLETED))
        slot.last = LastRun.from_row(last) if last is not None else None
        if success is not None:
            slot.last_success_at = aware(success.finished_at or success.started_at)
            if slot.last_success_at is not None:
                self.metrics.set_last_success(sync.name, slot.last_success_at.timestamp())
        self.slots[sync.name] = slot
        first = self._first_run(slot)
        self._scheduler.add_job(
            self._scheduled,
            trigger=self._trigger(slot, first),
            args=[sync.name],
            id=sync.name,
            name=f"sync {sync.name}",
            next_run_time=None if self._holds(slot) else first,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=misfire_grace_for(sync.interval),
            replace_existing=True,
        )
        return slot

    def _holds(self, slot: SyncSlot) -> bool:
        """A paused or disabled sync's job stays, without a next run time (APScheduler's pause)."""
        return slot.paused or not slot.config.enabled

    def _first_run(self, slot: SyncSlot) -> datetime:
        """Soon when the last completed run is older than the interval; otherwise when due."""
        now = utcnow()
        soon = now + timedelta(seconds=random.uniform(0, min(START_STAGGER, slot.config.interval)))
        if slot.last_success_at is None:
            return soon
        due = slot.last_success_at + timedelta(seconds=slot.config.interval)
        return max(due, soon)

    def _trigger(self, slot: SyncSlot, first: datetime) -> IntervalTrigger:
        """Every interval from ``first`` (the later runs keep that rhythm), plus jitter."""
        interval = slot.config.interval
        return IntervalTrigger(
            seconds=interval,
            start_date=first,
            jitter=jitter_for(interval),
            timezone=UTC,
        )

    # --- reload -----------------------------------------------------------------------------

    async def apply(self, syncs: Mapping[str, SyncConfig]) -> dict[str, list[str]]:
        """Make the scheduled syncs match a newly loaded config."""
        added = sorted(set(syncs) - set(self.slots))
        removed = sorted(set(self.slots) - set(syncs))
        changed = sorted(
            n for n in set(syncs) & set(self.slots) if syncs[n] != self.slots[n].config
        )
        for name in removed:
            self._deferred.pop(name, None)
            slot = self.slots.pop(name)
            self._scheduler.remove_job(name)
            self.metrics.forget(name)
            if slot.current is not None:
                # it checkpoints after its current batch; shutdown still waits for it
                slot.current.stop.set()
                self._orphans.add(slot.current)
        for name in added:
            await self._add(syncs[name])
        for name in changed:
            slot = self.slots[name]
            old = slot.config
            slot.config = syncs[name]
            first = self._first_run(slot)
            if old.interval != slot.config.interval:
                self._scheduler.modify_job(
                    name, misfire_grace_time=misfire_grace_for(slot.config.interval)
                )
                self._scheduler.reschedule_job(name, trigger=self._trigger(slot, first))
            if self._holds(slot):
                self._scheduler.pause_job(name)
            elif old.interval != slot.config.interval or not old.enabled:
                self._scheduler.modify_job(name, next_run_time=first)
            # a run going on keeps the config it started with; the next one uses the new
        self._changed()
        return {"added": added, "removed": removed, "changed": changed}

    # --- events -----------------------------------------------------------------------------

    def _changed(self) -> None:
        """A sync's state may have changed: tell sd_notify, and publish what did change."""
        self.on_change()
        states = self.states()
        for name, state in states.items():
            previous = self._published_states.get(name)
            if previous != state:
                slot = self.slots[name]
                message = slot.last.message if slot.last is not None else None
                self.events.publish(
                    "sync.state",
                    {
                        "sync": name,
                        "state": state,
                        "previous": previous,
                        "paused": slot.paused,
                        "message": message if state in ("failing", "needs_auth") else None,
                    },
                )
        self._published_states = states

    def progress_of(self, handle: RunHandle) -> dict[str, Any]:
        return {
            "sync": handle.sync,
            "run_id": handle.run_id,
            "listed": handle.listed,
            "planned": handle.total,
            "written": handle.done,
            "total": handle.total,
        }

    def publish_progress(self, final: bool = False) -> int:
        """Publish the progress of every run that moved since the last call; how many did."""
        moved = 0
        for handle in self.active():
            data = self.progress_of(handle)
            key = (data["listed"], data["planned"], data["written"])
            if self._published_progress.get(handle.sync) != key:
                self._published_progress[handle.sync] = key
                self.events.publish("run.progress", data)
                moved += 1
        return moved

    async def publish_progress_forever(self, every: float = 0.5) -> None:
        """The daemon's progress ticker: at most one progress event per run every ``every``
        seconds, however often the engine reports (a 100,000-contact run reports per batch)."""
        while True:
            await asyncio.sleep(every)
            self.publish_progress()

    def _run_started(self, handle: RunHandle, run_id: int) -> None:
        handle.on_start(run_id)
        self.events.publish(
            "run.started",
            {
                "sync": handle.sync,
                "run_id": run_id,
                "trigger": handle.trigger,
                "started_at": rfc3339(handle.started_at),
            },
        )

    def _run_finished(self, handle: RunHandle, last: LastRun) -> None:
        progress = self.progress_of(handle)
        progress["run_id"] = last.id
        self._published_progress.pop(handle.sync, None)
        self.events.publish("run.progress", progress)
        self.events.publish(
            "run.finished",
            {
                "sync": handle.sync,
                "run_id": last.id,
                "outcome": last.outcome,
                "trigger": last.trigger,
                "counts": dict(last.counts),
                "message": last.message,
                "started_at": rfc3339(last.started_at),
                "finished_at": rfc3339(last.finished_at),
                "duration_seconds": None if last.duration is None else round(last.duration, 3),
            },
        )
        if last.outcome in (*FAILING, "needs_auth"):
            self.events.publish(
                "error", {"sync": handle.sync, "outcome": last.outcome, "message": last.message}
            )

    # --- runs -------------------------------------------------------------------------------

    def slot(self, name: str) -> SyncSlot:
        try:
            return self.slots[name]
        except KeyError:
            raise UnknownSync(name) from None

    def next_run(self, name: str) -> datetime | None:
        job = self._scheduler.get_job(name)
        return aware(job.next_run_time) if job is not None else None

    def running_count(self) -> int:
        return sum(1 for s in self.slots.values() if s.current is not None) + len(self._orphans)

    def states(self) -> dict[str, str]:
        return {name: slot.state for name, slot in self.slots.items()}

    async def _scheduled(self, name: str) -> None:
        slot = self.slots.get(name)
        if slot is None or self._stopping:
            return
        if slot.current is not None and slot.current.targets is not None:
            # a webhook-driven run reads a few records: the interval's run comes right after
            with contextlib.suppress(Exception):
                await asyncio.shield(slot.current.task or asyncio.sleep(0))
            if self._stopping or self.slots.get(name) is not slot:
                return
        if slot.current is not None:
            log.info("run skipped: the sync is already running", sync=name)
            return
        handle = await self._start_due(slot)
        if handle is None:
            return
        assert handle.task is not None
        try:
            await asyncio.shield(handle.task)
        except asyncio.CancelledError:
            if not handle.task.cancelled():
                raise  # this job itself is cancelled
            # the run was cancelled by a shutdown past its deadline, and said so itself: not
            # an error of the job for APScheduler to log with a traceback

    # --- balanced claiming ------------------------------------------------------------------

    def _at_cap(self) -> bool:
        return bool(self.max_runs) and self.running_count() >= self.max_runs

    def deferred(self) -> list[str]:
        """The scheduled runs held back now, oldest first."""
        return sorted(self._deferred, key=self._deferred.__getitem__)

    async def _start_due(self, slot: SyncSlot) -> RunHandle | None:
        """Start a scheduled run of a due sync here, or hold it back (the cap, or a lighter
        peer), or skip it (another daemon ran it, or runs it now). The run, if started."""
        if self.store.shared and await self._ran_elsewhere(slot):
            self._deferred.pop(slot.name, None)
            return None
        if self._at_cap():
            self._defer(slot, "this daemon runs max_concurrent_runs already")
            return None
        claims = self.store.claims
        if claims is not None:
            try:
                peers = await self.store.run(claims.peers, self.store.db)
                holder = await self.store.run(claims.holder_of, self.store.db, slot.name)
            except Exception as exc:  # the claim decides anyway
                log.warning("reading the peers failed", error=type(exc).__name__)
                peers, holder = {}, None
            if holder is not None and holder != claims.holder:
                # running on another daemon now: as when the claim says busy (a dead holder's
                # lease runs out within lease_timeout, then this daemon tries again)
                self._deferred.pop(slot.name, None)
                slot.busy_elsewhere = holder
                lease = self.store.settings.lease_timeout
                self._retry_at(slot, random.uniform(lease / 4, lease / 3), floor=DEFER_FLOOR)
                log.debug("run skipped: another daemon runs the sync", sync=slot.name)
                return None
            mine = self.running_count()
            lighter = [
                p for h, p in peers.items() if h != claims.holder and not p.full and p.load < mine
            ]
            since = self._deferred.get(slot.name)
            grace = balance_grace(slot.config.interval, self.store.settings.lease_timeout)
            left = grace - (time.monotonic() - since) if since is not None else grace
            if lighter and left > 0:
                self._defer(slot, "left to a less-loaded daemon", lighter[0].holder)
                # looked at again within the grace too: a peer that is gone (its presence
                # expired) or that took the sync meanwhile is noticed before the grace ends
                self._retry_at(slot, min(left, grace / 3), floor=DEFER_FLOOR)
                return None
        # no await from here to the launch: the cap is checked against what runs now
        if slot.current is not None or self._stopping or self.slots.get(slot.name) is not slot:
            return None
        if self._at_cap():
            self._defer(slot, "this daemon runs max_concurrent_runs already")
            return None
        self._deferred.pop(slot.name, None)
        return self._launch(slot, "daemon")

    def _defer(self, slot: SyncSlot, why: str, peer: str | None = None) -> None:
        if slot.name not in self._deferred:
            self._deferred[slot.name] = time.monotonic()
            log.info("run held back", sync=slot.name, reason=why, peer=peer)

    def _fill(self) -> None:
        """A run ended: start the oldest held-back runs while this daemon has room."""
        if not self.max_runs or self._filling or self._stopping or not self._deferred:
            return  # without a cap, only syncs left to a peer wait: their own retries come
        self._filling = True
        self._fill_task = asyncio.ensure_future(self._fill_now())
        self._fill_task.add_done_callback(lambda _: setattr(self, "_filling", False))

    async def _fill_now(self) -> None:
        tried: set[str] = set()
        while not self._stopping and not self._at_cap():
            waiting = [n for n in self.deferred() if n not in tried]
            if not waiting:
                return
            name = waiting[0]
            tried.add(name)
            slot = self.slots.get(name)
            if slot is None or self._holds(slot) or slot.current is not None:
                self._deferred.pop(name, None)
                continue
            try:
                handle = await self._start_due(slot)
            except Exception:
                log.exception("starting a held-back run failed", sync=name)
                continue
            if handle is not None:
                # the scheduled job of the sync is not the one awaiting this run: its next
                # run time stays on the interval's rhythm
                log.debug("held-back run started", sync=name)

    async def _ran_elsewhere(self, slot: SyncSlot) -> bool:
        """Several daemons schedule every sync; whichever comes first runs it, and the others
        skip it until it is due again (its last run, by anyone, is recent)."""
        last = await self.store.run(self.store.last_run, slot.name)
        if last is None:
            return False
        started = aware(last.started_at)
        if started is None:
            return False
        # a run still "running" may be a dead daemon's: the claim decides, not the history
        if last.outcome != "running" and utcnow() - started < timedelta(
            seconds=slot.config.interval * SHARED_DUE
        ):
            slot.last = LastRun.from_row(last)
            log.debug("run skipped: another daemon ran the sync recently", sync=slot.name)
            return True
        return False

    async def trigger(self, name: str, full: bool = False, force: bool = False) -> RunHandle:
        """Start a run now. Raises :class:`UnknownSync`, :class:`AlreadyRunning`."""
        slot = self.slot(name)
        if slot.current is not None:
            raise AlreadyRunning(name, slot.current.run_id)
        handle = self._launch(slot, "api", full=full, force=force)
        assert handle.task is not None
        # the engine takes the lock, then records the run: its id is what the caller gets
        waiters: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(asyncio.shield(handle.task)),
            asyncio.ensure_future(handle.recorded.wait()),
        }
        await asyncio.wait(waiters, timeout=TRIGGER_WAIT, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()  # the run's own task reports its failure
        if handle.busy_elsewhere is not None:
            raise AlreadyRunning(name, elsewhere=handle.busy_elsewhere)
        return handle

    def start_targeted(self, name: str, targets: dict[str, frozenset[str]]) -> RunHandle:
        """Start a webhook-driven run of just these record ids (:mod:`syncd.engine.targeted`).
        Raises :class:`UnknownSync`, :class:`AlreadyRunning`, :class:`ShuttingDown`."""
        slot = self.slot(name)
        if slot.current is not None:
            raise AlreadyRunning(name, slot.current.run_id)
        return self._launch(slot, "webhook", targets=targets)

    def _launch(
        self,
        slot: SyncSlot,
        trigger: str,
        full: bool = False,
        force: bool = False,
        targets: dict[str, frozenset[str]] | None = None,
    ) -> RunHandle:
        if self._stopping:
            raise ShuttingDown()
        handle = RunHandle(slot.name, trigger, asyncio.Event(), utcnow(), targets=targets)
        options = RunOptions(
            trigger=trigger,
            stop=handle.stop,
            full=full,
            force=force,
            progress=handle.on_progress,
            on_start=lambda run_id: self._run_started(handle, run_id),
            targets=targets,
        )
        handle.engine = SyncRun(slot.config, self.store, options)
        slot.current = handle
        handle.task = asyncio.create_task(self._execute(slot, handle), name=f"run {slot.name}")
        for listener in self.listeners:
            listener.run_started(slot, handle)
        log.info("run started", sync=slot.name, trigger=trigger)
        self._changed()
        return handle

    async def _execute(self, slot: SyncSlot, handle: RunHandle) -> None:
        assert handle.engine is not None
        result: RunResult | None = None
        try:
            result = await handle.engine.execute()
        except SyncBusy as exc:
            handle.busy_elsewhere = slot.busy_elsewhere = exc.holder or "unknown"
            log.info(
                "run skipped: the sync is running in another process",
                sync=slot.name,
                holder=exc.holder,
            )
            if self.store.shared and handle.trigger == "daemon":
                # try again soon: if its holder died, its lease runs out within lease_timeout
                lease = self.store.settings.lease_timeout
                self._retry_at(slot, random.uniform(lease / 4, lease / 3), floor=0.1)
        except asyncio.CancelledError:
            # cancelled at the shutdown deadline, mid-batch: what was committed stays committed
            # (pending creates are reconciled on the next run); history must not say "success"
            await self._mark_cancelled(handle)
            raise
        except Exception as exc:  # a store error: the engine lets those through (rule 6)
            log.exception("run crashed", sync=slot.name)
            message = redact(f"{type(exc).__name__}: {exc}")
            result = RunResult(
                slot.name, handle.run_id, "failed", dict(handle.engine.counts), message
            )
        finally:
            if slot.current is handle:
                slot.current = None
            self._orphans.discard(handle)
            if result is None:
                self._changed()
        if result is not None:
            # recorded first, so that the state published says how the run ended
            self._record(slot, handle, result)
            if slot.last is not None:
                self._run_finished(handle, slot.last)
            self._changed()
        for listener in self.listeners:
            try:
                listener.run_finished(slot, handle, result)
            except Exception:
                log.exception("a run listener failed", sync=slot.name)
        handle.release()
        # a held-back run may start now
        self._fill()
        # the run's objects are gone by then (the task's frame held them)
        asyncio.get_running_loop().call_later(THAW_DELAY, self._after_run)

    def _after_run(self) -> None:
        """Once a run is gone: its survivors back to the collector, and when no other run is
        going, the freed heap back to the system (in a worker thread: it walks the heap)."""
        thaw_after_run()
        if not self.running_count():
            asyncio.get_running_loop().run_in_executor(None, trim)

    async def _mark_cancelled(self, handle: RunHandle) -> None:
        if handle.run_id is None or handle.engine is None:
            return
        try:
            await self.store.run(
                self.store.finish_run,
                handle.run_id,
                "interrupted",
                dict(handle.engine.counts),
                "stopped at the shutdown deadline in the middle of a batch",
            )
        except Exception:
            log.exception("could not record the interrupted run", sync=handle.sync)

    def _record(self, slot: SyncSlot, handle: RunHandle, result: RunResult) -> None:
        finished = utcnow()
        before = slot.state
        slot.busy_elsewhere = None
        slot.last = LastRun(
            result.run_id,
            result.outcome,
            handle.trigger,
            handle.started_at,
            finished,
            dict(result.counts),
            result.message,
        )
        self.metrics.record_run(slot.name, result.outcome, result.counts, result.duration)
        if result.outcome in COMPLETED:
            slot.last_success_at = finished
            self.metrics.set_last_success(slot.name, finished.timestamp())
        if result.outcome == "needs_auth" and before != "needs_auth":
            # rule 11: visible, and not retried in a loop: it runs again at its interval only
            log.warning(
                "sync needs authorisation; the daemon keeps its schedule and picks the new "
                "credentials up on its own",
                sync=slot.name,
                message=result.message,
            )
        if result.outcome in ("deferred", "retry_later") and result.retry_after:
            self._retry_at(slot, result.retry_after)

    def _retry_at(self, slot: SyncSlot, delay: float, floor: float = 1.0) -> None:
        if self._holds(slot) or self._stopping or slot.name not in self.slots:
            return
        at = utcnow() + timedelta(seconds=max(floor, delay))
        self._scheduler.modify_job(slot.name, next_run_time=at)
        log.info("next run moved", sync=slot.name, at=at.isoformat(), retry_after=delay)

    # --- pause and resume -------------------------------------------------------------------

    async def pause(self, name: str) -> SyncSlot:
        slot = self.slot(name)
        slot.paused = True
        self._scheduler.pause_job(name)
        await self._save_paused()
        self._changed()
        return slot

    async def resume(self, name: str) -> SyncSlot:
        slot = self.slot(name)
        slot.paused = False
        if slot.config.enabled:
            # a sync that became due while paused runs soon, as at start-up
            self._scheduler.modify_job(name, next_run_time=self._first_run(slot))
        await self._save_paused()
        self._changed()
        return slot

    # --- shutdown ---------------------------------------------------------------------------

    def active(self) -> list[RunHandle]:
        handles = [s.current for s in self.slots.values() if s.current is not None]
        return handles + list(self._orphans)

    async def drain(
        self, deadline: float, grace: float = 2.0, hurry: asyncio.Event | None = None
    ) -> int:
        """Stop scheduling, ask every run to checkpoint, and wait up to ``deadline`` seconds (or
        until ``hurry`` is set); runs still going then are cancelled, with ``grace`` seconds to
        unwind. Returns how many runs had to be cancelled."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()
        handles = self.active()
        for handle in handles:
            handle.stop.set()
        tasks = [h.task for h in handles if h.task is not None]
        cancelled = 0
        if tasks:
            log.info("waiting for running syncs to checkpoint", runs=len(tasks), deadline=deadline)
            all_done = asyncio.ensure_future(asyncio.wait(tasks))
            waiters: set[asyncio.Future[Any]] = {all_done}
            if hurry is not None:
                waiters.add(asyncio.ensure_future(hurry.wait()))
            await asyncio.wait(
                waiters, timeout=max(0.0, deadline), return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()  # the waiters only: the runs are cancelled below, if at all
            pending = [task for task in tasks if not task.done()]
            cancelled = len(pending)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("runs cancelled at the shutdown deadline", runs=len(pending))
                await asyncio.wait(pending, timeout=grace)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        return cancelled


def describe_time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC, to the second (what the API and ``--json`` print)."""
    return rfc3339(value)


def last_run_json(last: LastRun | None) -> dict[str, Any] | None:
    if last is None:
        return None
    duration = last.duration
    return {
        "id": last.id,
        "outcome": last.outcome,
        "trigger": last.trigger,
        "started_at": describe_time(last.started_at),
        "finished_at": describe_time(last.finished_at),
        "duration_seconds": None if duration is None else round(duration, 3),
        "message": last.message,
    }

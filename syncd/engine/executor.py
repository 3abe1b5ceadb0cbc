"""Running one sync: list, plan, write, and commit every outcome as it happens.

The order of a run, and why:

1. Take the sync's lock (one run per sync across processes, rule 8).
2. Reconcile creates a crashed run left pending: look the email up on the target and link what is
   found, so that nothing is created twice (rule 4).
3. List both sides (incrementally from the cursors where possible, in full periodically) and
   fingerprint each record; an unchanged record is never normalised.
4. Plan, on a worker thread (pure, no I/O). Creates on a side that was listed incrementally are
   checked with a lookup by email first, and the plan made again with what it found (rule 1).
5. Stop if a guard trips (rule 7), unless forced. A dry run stops here.
6. Write, batch by batch: each create's pending entry is committed before the request goes out,
   and each batch's outcomes (links, bases, per-record failures) are committed as soon as it
   returns (rules 4 and 6). Existing links first; then the new records, planned and written a
   slice at a time (``NEW_RECORDS_SLICE``) and let go once committed, so that a first merge
   never holds 100,000 plans at once.
7. Advance the cursors only past what was committed, less an overlap (rule 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from syncd.config import SyncConfig
from syncd.connector import (
    Connector,
    ConnectorConfigError,
    ConnectorContext,
    ConnectorError,
    NeedsReauth,
    RateBudgetExhausted,
    RecordWrite,
    RemoteRecord,
    RetryLater,
    WriteResult,
)
from syncd.engine import journal as history
from syncd.engine import merges, review, targeted
from syncd.engine.fields import SideFields, build_pairs, hashes, to_raw, value_hash
from syncd.engine.model import (
    SIDES,
    Journal,
    PairPlan,
    Plan,
    PlanInput,
    SideInput,
    Write,
    other,
)
from syncd.engine.planner import count_actions, plan
from syncd.logs import get_logger
from syncd.redact import redact
from syncd.store import (
    IssueRow,
    JournalResult,
    JournalRow,
    LinkIndex,
    LinkRow,
    PendingRow,
    Store,
    encode_base,
)

log = get_logger("syncd.engine")

#: how far a cursor is moved back from the committed high-water mark (clock skew between
#: the app's servers and its timestamps); the hash rule makes the overlap harmless
CURSOR_OVERLAP = timedelta(minutes=2)
LINK_COMMIT_CHUNK = 2000
#: new records planned and written at a time: a first merge holds only this many plans
NEW_RECORDS_SLICE = 5000

Progress = Callable[[int, int], None]

#: the test hook of the crash tests: ``N`` (or ``WHERE:N``) kills the process with SIGKILL at
#: its Nth crash point (of that kind: ``journaled``, before a batch is sent; ``sent``, after it
#: returned and before its outcome is committed; ``committed``), so a kill lands exactly there
CRASH_ENV = "SYNCD_TEST_CRASH_AT"
CRASH_POINTS = ("journaled", "sent", "committed")
#: called at every crash point with its kind; tests set it to stop a run dead in-process
crash_hook: Callable[[str], None] | None = None


class CrashCounter:
    """Counts crash points and acts at the Nth (of one kind, or of any)."""

    def __init__(self, at: int, where: str | None, act: Callable[[], None]) -> None:
        self.at, self.where, self.act = at, where, act
        self.seen = 0

    def __call__(self, where: str) -> None:
        if self.where is not None and where != self.where:
            return
        self.seen += 1
        if self.seen == self.at:
            self.act()

    @classmethod
    def from_env(cls, value: str) -> CrashCounter | None:
        """``N`` or ``WHERE:N``; anything else is ignored (a test hook never stops syncd)."""
        where, _, count = value.strip().rpartition(":")
        if not count.isascii() or not count.isdigit() or where not in ("", *CRASH_POINTS):
            return None
        return cls(int(count), where or None, _kill_self)


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if os.environ.get(CRASH_ENV):
    crash_hook = CrashCounter.from_env(os.environ[CRASH_ENV])


def _crash_point(where: str) -> None:
    if crash_hook is not None:
        crash_hook(where)


_gc_holds = 0


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration of a run.

    A run makes millions of small acyclic objects (records, views, hashes); every full
    collection would walk all of them again, which made a 100,000-contact run several times
    slower than ten 10,000-contact runs. Reference counting still frees them; the collector is
    restored (and run once) when the last concurrent run ends.
    """
    global _gc_holds
    if _gc_holds == 0 and not gc.isenabled():
        yield  # someone else turned it off: leave it alone
        return
    _gc_holds += 1
    gc.disable()
    try:
        yield
    finally:
        _gc_holds -= 1
        if _gc_holds == 0:
            # enabled as is, the collector's first pass would walk every object the run made
            # that is still alive (all are "young"): about a second on the event loop after a
            # 100,000-contact run. They go to the permanent generation instead (reference
            # counting still frees them); the daemon hands the survivors back to the
            # collector once the run is gone (syncd.daemon.scheduler.thaw_after_run)
            gc.freeze()
            gc.enable()


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere, e.g. musl): it returns the heap pages freed
    memory left behind to the system, which glibc otherwise keeps."""
    try:
        import ctypes

        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_memory() -> None:
    """Give back to the system what a run freed (a first merge frees hundreds of MB: without
    this a daemon keeps it, and the next run's listing comes on top of it)."""
    if _MALLOC_TRIM is not None and _gc_holds == 0:
        _MALLOC_TRIM(0)


class RunStopped(Exception):
    """The run stopped before it finished; ``outcome`` says why (for history and status)."""

    def __init__(self, outcome: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.retry_after = retry_after


@dataclass
class RunOptions:
    dry_run: bool = False
    full: bool = False
    force: bool = False
    trigger: str = "cli"
    progress: Progress | None = None
    #: set by the daemon on shutdown: stop after the current batch, with everything committed
    stop: asyncio.Event | None = None
    #: called with the run's id as soon as it is recorded (the API answers a trigger with it)
    on_start: Callable[[int], None] | None = None
    #: a targeted run (webhooks): only these record ids changed, per side. They are read by id
    #: (``Connector.read_records``), with their linked records on the other side; nothing is
    #: listed in full and no cursor moves (see :mod:`syncd.engine.targeted`)
    targets: dict[str, frozenset[str]] | None = None


@dataclass
class RunResult:
    sync: str
    run_id: int | None
    outcome: str
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None
    # asyncio computes the repr of a finished main task's result: keep it small
    plan: Plan | None = field(default=None, repr=False)
    duration: float = 0.0
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("success", "dry_run")


def make_connector(sync: SyncConfig, side: str, store: Store, dry_run: bool = False) -> Connector:
    config = sync.side(side)
    context = ConnectorContext(
        sync=sync.name,
        side=side,
        state_dir=store.state_dir,
        phone_region=sync.phone_region,
        dry_run=dry_run,
        config_dir=sync.path.parent.parent,
        tokens=store.tokens,
        budgets=store.budgets,
    )
    return config.connector_class(config.settings, context)


class SyncRun:
    """One execution of a sync."""

    def __init__(self, sync: SyncConfig, store: Store, options: RunOptions | None = None) -> None:
        self.sync = sync
        self.store = store
        self.options = options or RunOptions()
        self.pairs = build_pairs(sync)
        self.fields = {
            side: SideFields.build(
                side, self.pairs, sync.side(side).connector_class, sync.phone_region
            )
            for side in SIDES
        }
        self.connectors: dict[str, Connector] = {}
        #: view key → the app's field name, per side
        self.app_names = {
            side: {key: name for key, name, _ in self.fields[side].fields} for side in SIDES
        }
        self.counts: dict[str, int] = {
            key: 0
            for key in (
                "read_a",
                "read_b",
                "unchanged",
                "linked",
                "created_a",
                "created_b",
                "updated_a",
                "updated_b",
                "archived_a",
                "archived_b",
                "conflicts",
                "failed",
                "excluded",
                "ambiguous",
                "held",
            )
        }
        self.run_id: int | None = None
        self.failed_ids: dict[str, set[str]] = {"a": set(), "b": set()}
        self.kept_emails: dict[str, set[str]] = {"a": set(), "b": set()}
        self.log = log.bind(sync=sync.name)
        self.index = LinkIndex()
        self.done = 0
        self.total = 0
        #: records listed so far on both sides (the console's progress shows it while listing)
        self.listed = 0
        #: records with journal entries not yet settled (side, record id): a commit of their
        #: outcome removes them
        self.journaled: set[tuple[str, str]] = set()
        #: those of them that had entries when the run began (a crashed run's) ...
        self.journaled_before: set[tuple[str, str]] = set()
        #: ... and the row ids of the entries this run wrote for each record (SQLite keeps
        #: them): a record with only these is settled by id, not looked up by record
        self.own_entries: dict[tuple[str, str], list[int]] = {}
        #: records a create of this run linked (the new record, and its source), by side
        self.linked_by_create: dict[str, set[str]] = {"a": set(), "b": set()}
        #: listed records the app merged into another (``RemoteRecord.merged_into``), per side
        self.merged: dict[str, list[RemoteRecord]] = {"a": [], "b": []}
        #: the plan's input while writing (what the journal reads the values before from)
        self.inp: PlanInput | None = None
        self.pair_keys = frozenset(p.key for p in self.pairs)
        store.set_history(sync.name, sync.history_days)

    # --- entry point ------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        started = time.monotonic()
        held = await self.store.claim(self.sync.name)  # raises SyncBusy
        try:
            with cyclic_gc_paused():
                try:
                    result = await self._locked()
                finally:
                    # let the run's listings go while the collector is still paused: once it
                    # runs again it would first walk every object made since it stopped
                    self.inp = None
        finally:
            await self.store.unclaim(held)
        await asyncio.to_thread(release_memory)  # off the loop: it walks the heap
        result.duration = time.monotonic() - started
        return result

    async def _locked(self) -> RunResult:
        dry = self.options.dry_run
        if not dry:
            self.run_id = await self.store.run(
                self.store.start_run, self.sync.name, self.options.trigger, False
            )
            if self.options.on_start is not None:
                self.options.on_start(self.run_id)
        tokens = structlog.contextvars.bind_contextvars(sync=self.sync.name, run=self.run_id)
        outcome, message, result_plan, retry_after = "success", None, None, None
        try:
            result_plan = await self._run()
            if dry:
                outcome = "dry_run"
            elif self.counts["failed"]:
                outcome = "partial"
                failed = self.counts["failed"]
                message = f"{failed} record{'' if failed == 1 else 's'} failed; see 'syncd errors'"
        except RunStopped as stop:
            outcome, message, retry_after = stop.outcome, str(stop), stop.retry_after
        except asyncio.CancelledError:
            # cancelled (a shutdown past its deadline): what was committed stays committed
            outcome, message = "interrupted", "cancelled; committed work is kept"
            raise
        except Exception as exc:
            outcome = "failed"
            message = redact(f"{type(exc).__name__}: {exc}")
            self.log.exception("run failed")
        except BaseException:
            # stopped dead (KeyboardInterrupt, SystemExit, a test's crash): not a success
            outcome, message = "interrupted", "stopped dead; committed work is kept"
            raise
        finally:
            await self._close_connectors()
            if self.run_id is not None:
                await self.store.run(
                    self.store.finish_run, self.run_id, outcome, dict(self.counts), message
                )
            log_method = self.log.info if outcome in ("success", "dry_run") else self.log.warning
            log_method("run finished", outcome=outcome, message=message, **self.counts)
            structlog.contextvars.reset_contextvars(**tokens)
        return RunResult(
            self.sync.name,
            self.run_id,
            outcome,
            dict(self.counts),
            message,
            result_plan,
            retry_after=retry_after,
        )

    async def _close_connectors(self) -> None:
        for connector in self.connectors.values():
            try:
                await connector.close()
            except Exception as exc:  # closing must not hide the run's own outcome
                self.log.warning("connector close failed", error=str(exc))

    # --- the run ----------------------------------------------------------------------------

    async def _run(self) -> Plan:
        sync = self.sync
        for side in SIDES:
            connector = make_connector(sync, side, self.store, self.options.dry_run)
            self.connectors[side] = connector
            await self._guarded(connector.open())
        state = await self.store.run(self.store.get_state, sync.name)
        first_run = state.initialized_at is None
        targets = self.options.targets
        if targets is not None and first_run:
            targets = self.options.targets = None  # the first run lists everything
        complete = {side: self._list_in_full(side, state, first_run) for side in SIDES}
        if targets is not None:
            complete = {side: False for side in SIDES}

        journal_rows = await self.store.run(self.store.load_journal, sync.name)
        if not self.options.dry_run:
            await self._reconcile_pending(complete, journal_rows)
        journal = Journal.build(journal_rows)
        self.journaled = {
            (row.side, row.record_id) for row in journal_rows if row.record_id is not None
        }
        self.journaled_before = set(self.journaled)
        self.index = await self.store.run(self.store.load_link_index, sync.name)
        backed_off = await self.store.run(self.store.backed_off, sync.name)
        cursors = {"a": state.cursor_a, "b": state.cursor_b}
        sides = {}
        reads = (
            await targeted.reads(self, targets, complete, cursors, state)
            if targets is not None
            else {}
        )
        for side in SIDES:
            if side in reads:
                cursor, ids = reads[side]
                sides[side] = await self._list_side(side, cursor, False, ids)
            else:
                sides[side] = await self._list_side(
                    side, None if complete[side] else cursors[side], complete[side]
                )
            sides[side].backed_off = {rid for s, rid in backed_off if s == side}
        if self.merged["a"] or self.merged["b"]:
            await merges.repoint(self, sides)
        self.counts["read_a"] = sides["a"].count()
        self.counts["read_b"] = sides["b"].count()
        self.counts["unchanged"] = len(sides["a"].unchanged) + len(sides["b"].unchanged)
        links = await self._links_to_plan(sides)
        held = await review.open_entries(self.store, sync.name)
        links = await review.links_of_held(self.store, sync.name, links, held)
        inp = PlanInput(
            pairs=self.pairs,
            a=sides["a"],
            b=sides["b"],
            links=links,
            all_links=len(links) == self.index.total,
            linked_count=self.index.linked,
            linked_on=self.index.linked_on,
            direction=sync.direction,
            winner=sync.winner,
            initial=sync.initial if first_run else None,
            deletions=sync.deletions,
            deletion_tag=sync.deletion_tag,
            match_phone=sync.match == "email+phone",
            rules_a_to_b=sync.rules_a_to_b,
            rules_b_to_a=sync.rules_b_to_a,
            journal=journal,
            on_mass_deletion=sync.on_mass_deletion,
        )
        self.inp = inp
        gone = self._journal_gone(inp)
        the_plan = await self._plan(inp)
        if self.options.dry_run or not all(i.complete or not i.readable for i in (inp.a, inp.b)):
            # a dry run shows the whole plan; creates on a side listed incrementally are looked
            # up there first, which needs every create planned
            await asyncio.to_thread(the_plan.match_all)
            if await self._look_up_before_creating(the_plan, inp):
                the_plan = await self._plan(inp)
                await asyncio.to_thread(the_plan.match_all)
        self._count_plan(the_plan)
        if the_plan.guard and not self.options.force:
            raise RunStopped("failed", the_plan.guard)
        self.counts["held"] = len(the_plan.held)
        if self.options.dry_run:
            return the_plan
        if held or the_plan.held:
            await review.keep_queue(self.store, sync.name, inp, the_plan, held, self.run_id)

        if the_plan.issues or the_plan.filtered:
            await self.store.run(
                self.store.commit_outcomes,
                sync.name,
                issues=the_plan.issues,
                run_id=self.run_id,
                decisions=the_plan.filtered,
            )
        for info in (inp.a, inp.b):
            info.forget_views()  # the plan holds what it writes; a first merge needs the room
        await self._apply(the_plan)
        await self._apply_new_records(the_plan, inp)
        await self._prune_pending()
        if gone:
            await self.store.run(self.store.remove_journal, sync.name, gone)
        if complete["a"] and complete["b"]:
            # a listing in full tells every excluded and ambiguous record: older reports of
            # records this run did not report again are settled
            await self.store.run(
                self.store.drop_stale_issues, sync.name, ("excluded", "ambiguous"), self.run_id
            )
            await self.store.run(self.store.drop_stale_decisions, sync.name, self.run_id)
        if targets is None:
            await self._advance_cursors(inp, complete, first_run)
        # the daemon runs every sync: each run forgets its history past history_days
        await self.store.run(self.store.prune_journal, sync.name, sync.history_days)
        return the_plan

    async def _apply_new_records(self, the_plan: Plan, inp: PlanInput) -> None:
        """Plan and write the new records a slice at a time, each let go once committed."""
        queue, the_plan.new_records = the_plan.new_records, None
        while queue is not None and queue.remaining:
            self._check_stop()
            before = queue.remaining
            part = await asyncio.to_thread(queue.next_slice, NEW_RECORDS_SLICE)
            self._count_plan(part, consumed=before - queue.remaining)
            if part.issues or part.filtered:
                await self.store.run(
                    self.store.commit_outcomes,
                    self.sync.name,
                    issues=part.issues,
                    run_id=self.run_id,
                    decisions=part.filtered,
                )
            await self._apply(part)
            for side, rid in part.covered:
                info = inp.side(side)
                info.release(rid, held=rid in self.failed_ids[side] or rid in info.backed_off)

    async def _links_to_plan(self, sides: dict[str, SideInput]) -> list[LinkRow]:
        """The links the planner must see: those of records listed as changed, and those of
        records a full listing no longer shows. An unchanged pair needs no decision."""
        wanted: dict[str, set[str]] = {}
        for side in SIDES:
            info = sides[side]
            ids = set(info.records)
            if info.complete and info.readable:
                fps = self.index.fps[side]
                ids.update(rid for rid in fps if rid not in info.unchanged)
            wanted[side] = ids
        if len(wanted["a"]) + len(wanted["b"]) >= self.index.total // 2:
            # most links are wanted anyway: one pass over the table is faster
            return await self.store.run(self.store.load_links, self.sync.name)
        return await self.store.run(
            self.store.load_links_of, self.sync.name, wanted["a"], wanted["b"]
        )

    async def _plan(self, inp: PlanInput) -> Plan:
        the_plan = await asyncio.to_thread(plan, inp)
        if the_plan.needs_all_links:
            inp.links = await self.store.run(self.store.load_links, self.sync.name)
            inp.all_links = True
            the_plan = await asyncio.to_thread(plan, inp)
        return the_plan

    def _list_in_full(self, side: str, state: Any, first_run: bool) -> bool:
        connector = self.connectors[side]
        if not connector.capabilities.read:
            return False
        if self.options.full or first_run or not connector.capabilities.incremental:
            return True
        cursor = state.cursor_a if side == "a" else state.cursor_b
        last_full = state.last_full_a if side == "a" else state.last_full_b
        if cursor is None or last_full is None:
            return True
        age = datetime.now(UTC).replace(tzinfo=None) - last_full
        return bool(age.total_seconds() >= self.sync.full_every)

    async def _guarded(self, awaitable: Any) -> Any:
        """Await a connector call, turning run-stopping failures into :class:`RunStopped`."""
        try:
            return await awaitable
        except NeedsReauth as exc:
            fix = f" (fix: {exc.fix})" if exc.fix else ""
            raise RunStopped("needs_auth", redact(f"{exc}{fix}")) from None
        except RateBudgetExhausted as exc:
            raise RunStopped("deferred", redact(str(exc)), exc.delay) from None
        except RetryLater as exc:
            raise RunStopped("retry_later", redact(str(exc)), exc.delay) from None
        except ConnectorConfigError as exc:
            key = f" ({exc.key})" if exc.key else ""
            raise RunStopped("config_error", redact(f"{exc}{key}")) from None

    async def _list_side(
        self,
        side: str,
        cursor: str | None,
        complete: bool,
        ids: Sequence[str] | None = None,
    ) -> SideInput:
        """List one side (``ids``: read just those records, for a targeted run)."""
        connector = self.connectors[side]
        caps = connector.capabilities
        fields = self.fields[side]
        info = SideInput(
            name=side,
            fields=fields,
            records={},
            complete=complete,
            readable=caps.read,
            writable=caps.write,
            can_archive=caps.archive is not None,
        )
        if not caps.read:
            return info
        fps = self.index.fps[side]
        unreadable: list[IssueRow] = []
        fingerprint = fields.record_fingerprint

        async def consume() -> None:
            if ids is not None and not ids:
                return
            pages = (
                connector.read_records(ids) if ids is not None else connector.list_records(cursor)
            )
            async for page in pages:
                if any(record.merged_into for record in page):
                    # re-pointed (or taken as archived) once both sides are listed
                    self.merged[side] += [r for r in page if r.merged_into and r.error is None]
                    page = [r for r in page if not r.merged_into or r.error is not None]
                self.listed += len(page)
                broken = [record for record in page if record.error is not None]
                for record in broken:
                    info.unreadable.add(record.id)
                    unreadable.append(
                        IssueRow(side, record.id, "failed", redact(f"unreadable: {record.error}"))
                    )
                info.take_page(
                    [r for r in page if r.error is None] if broken else page, fingerprint, fps
                )
                await asyncio.sleep(0)  # let the loop breathe between pages

        await self._guarded(consume())
        if unreadable and not self.options.dry_run:
            self.counts["failed"] += len(unreadable)
            await self.store.run(
                self.store.commit_outcomes, self.sync.name, issues=unreadable, run_id=self.run_id
            )
        return info

    async def _reconcile_pending(
        self, complete: dict[str, bool], journal_rows: Sequence[JournalRow]
    ) -> None:
        """Creates a killed run may have sent: link what the target already has (rule 4)."""
        pending = await self.store.run(self.store.list_pending, self.sync.name)
        if not pending:
            return
        planned = {row.key: row.bases() for row in journal_rows if row.kind == "create"}
        for side in SIDES:
            rows = [p for p in pending if p.side == side and p.email]
            connector = self.connectors[side]
            if not rows or not connector.capabilities.lookup_by_email:
                if rows and connector.capabilities.read:
                    complete[side] = True  # a full listing matches them by email instead
                continue
            found = await self._guarded(connector.lookup_by_email([p.email or "" for p in rows]))
            by_email: dict[str, list[RemoteRecord]] = {}
            for record in found:
                email = record.data.get(self._email_field(side))
                if isinstance(email, str):
                    by_email.setdefault(email.strip().lower(), []).append(record)
            links = await self.store.run(self.store.load_links, self.sync.name)
            linked = {link.record_id(side) for link in links}
            by_source = {link.record_id(other(side)): link for link in links}
            new_links: list[LinkRow] = []
            done: list[str] = []
            for row in rows:
                matches = [
                    r for r in by_email.get((row.email or "").lower(), []) if r.id not in linked
                ]
                if len(matches) != 1:
                    continue
                link = by_source.get(row.source_id) or LinkRow(None, None, None)
                setattr(link, f"{other(side)}_id", row.source_id)
                setattr(link, f"{side}_id", matches[0].id)
                link.state = "linked"
                # what the target holds is what was sent: the base of both sides, so that an
                # edit made since on either side is a change, not a conflict with our own copy
                bases = planned.get(row.key)
                if bases is not None:
                    # the journal tells what was sent and what it came from: the bases the run
                    # would have committed, so that a field edited since (on either side) is
                    # an edit
                    link.set_base(side, bases[0])
                    link.set_base(other(side), bases[1])
                else:
                    sent = hashes(self.fields[side].view(matches[0].data))
                    pair_keys = {p.key for p in self.pairs}
                    link.set_base(side, sent)
                    link.set_base(other(side), {k: v for k, v in sent.items() if k in pair_keys})
                link.fp_a = link.fp_b = None
                new_links.append(link)
                done.append(row.key)
            if new_links:
                self.log.info("reconciled pending creates", side=side, count=len(new_links))
                await self.store.run(
                    self.store.commit_outcomes,
                    self.sync.name,
                    links=new_links,
                    pending_done=done,
                    run_id=self.run_id,
                )

    def _email_field(self, side: str) -> str:
        for key, name, _ in self.fields[side].fields:
            if key == "email":
                return name
        return "email"

    async def _look_up_before_creating(self, the_plan: Plan, inp: PlanInput) -> bool:
        """Creates planned on a side that was listed incrementally: ask the app whether the
        email exists after all; found records join the listing. True when the plan must be made
        again."""
        again = False
        for side in SIDES:
            info = inp.side(side)
            if info.complete or not info.readable:
                continue
            emails = sorted({w.email for _, w in the_plan.writes(side, create=True) if w.email})
            if not emails:
                continue
            connector = self.connectors[side]
            if not connector.capabilities.lookup_by_email:
                # no lookup: only a full listing can tell what exists
                full = await self._list_side(side, None, True)
                full.backed_off = info.backed_off
                setattr(inp, side, full)
                inp.links = await self.store.run(self.store.load_links, self.sync.name)
                inp.all_links = True
                again = True
                continue
            found: list[RemoteRecord] = []
            for start in range(0, len(emails), 100):
                found.extend(
                    await self._guarded(connector.lookup_by_email(emails[start : start + 100]))
                )
            fps = self.index.fps[side]
            for record in found:
                if info.listed(record.id) or record.error is not None:
                    continue
                info.take(record, self.fields[side].record_fingerprint(record), fps.get(record.id))
                again = True
        return again

    def _count_plan(self, the_plan: Plan, consumed: int = 0) -> None:
        """Add a plan (or a slice of new records, ``consumed`` of them) to the run's counts.

        A new record not planned yet counts as one write in the progress total (a create, or
        one of the two updates of a match); its slice puts the real number in its place."""
        summary = the_plan.summary()
        for key in ("linked", "conflicts", "excluded", "ambiguous"):
            self.counts[key] += summary[key]
        queued = the_plan.new_records.remaining if the_plan.new_records is not None else 0
        self.total += count_actions(the_plan.pairs) + queued - consumed

    # --- writing ----------------------------------------------------------------------------

    async def _apply(self, the_plan: Plan) -> None:
        pending_ops: dict[int, int] = {}
        failed: set[int] = set()
        quiet = [p for p in the_plan.pairs if not p.has_remote_work]
        for start in range(0, len(quiet), LINK_COMMIT_CHUNK):
            chunk = quiet[start : start + LINK_COMMIT_CHUNK]
            await self._commit_pairs(chunk, failed, the_plan.resolved if start == 0 else ())
        if not quiet and the_plan.resolved:
            await self._commit_pairs([], failed, the_plan.resolved)
        for pair in the_plan.pairs:
            pending_ops[id(pair)] = len(pair.writes) + len(pair.archive)
        for side in SIDES:
            await self._updates(the_plan, side, pending_ops, failed)
        # a crashed run's creates, sent again, first on both sides: what the app answers for
        # them (the records made then) must be known before any record is created as new
        existing = {
            (p.side, p.source_id): p.key
            for p in await self.store.run(self.store.list_pending, self.sync.name)
        }
        for side in SIDES:
            await self._creates(the_plan, side, pending_ops, failed, existing, resends=True)
        for side in SIDES:
            await self._creates(the_plan, side, pending_ops, failed, existing, resends=False)
        for side in SIDES:
            await self._archives(the_plan, side, pending_ops, failed)

    async def _prune_pending(self) -> None:
        """Forget pending creates whose outcome is known now: the source record is linked to a
        record on the target (found by matching, or created). A pending entry left behind would
        keep forcing full listings of a side without email lookup."""
        pending = await self.store.run(self.store.list_pending, self.sync.name)
        if not pending:
            return
        links = await self.store.run(self.store.load_links, self.sync.name)
        linked = {
            (side, link.record_id(side))
            for link in links
            if link.a_id is not None and link.b_id is not None
            for side in SIDES
        }
        done = [p.key for p in pending if (other(p.side), p.source_id) in linked]
        if done:
            await self.store.run(self.store.remove_pending, done, self.sync.name)

    def _journal_gone(self, inp: PlanInput) -> list[tuple[str, str]]:
        """Journaled records a full listing no longer shows (deleted since): their entries
        can go (asked before the run lets written records go)."""
        gone = []
        for side, rid in self.journaled:
            info = inp.side(side)
            listed = info.listed(rid) or rid in info.unreadable
            if info.complete and info.readable and not listed:
                gone.append((side, rid))
        return gone

    def _journal_row(
        self, pair: PairPlan, write: Write, kind: str, sent: RecordWrite
    ) -> JournalRow:
        """What is about to be sent to ``write.side``, as the journal keeps it: built from the
        planned bases' JSON text as it is (nothing decoded, for 100,000 creates)."""
        target, source = write.side, other(write.side)
        target_base = pair.base.get(target)
        if target_base is None:
            target_base = encode_base(hashes(write.values))
        link = pair.link
        if link.base_a_json is None or link.base_b_json is None:
            theirs = pair.writes.get(source)
            other_way = _keys_json(tuple(theirs.values) if theirs is not None else ())
        else:
            other_way = "null"
        before = _ENCODE(write.before) if write.before else "{}"
        packed = (
            f'{{"t":{target_base},"s":{pair.base.get(source) or "{}"},'
            f'"b":{before},"w":{_keys_json(tuple(write.values))},"o":{other_way}}}'
        )
        row = JournalRow(
            target,
            kind,
            write.record_id,
            write.source_id or link.record_id(source),
            sent.key,
            sent.data,
            packed,
            self.run_id,
            write.email,
        )
        if self.store.keeps_history(self.sync.name):
            reason, special = history.write_reasons(self.inp, pair, write, self.pair_keys)
            names = self.app_names[target]
            was = history.before_values(self.inp, target, write.record_id, sent.data)
            row.reason = reason
            row.detail = history.detail(names, write.values, was, special)
        return row

    def _archive_row(self, pair: PairPlan, side: str, rid: str) -> JournalRow:
        """The journal entry of an archive the deletion policy sends to ``side``."""
        deleted = other(side)
        row = JournalRow(
            side,
            "archive",
            rid,
            pair.link.record_id(deleted),
            f"{self.run_id}:{side}:{rid}:archive",
            {},
            run_id=self.run_id,
        )
        if self.store.keeps_history(self.sync.name):
            row.reason = history.DELETION.format(policy=self.sync.deletions, deleted=deleted)
            if self.inp is not None:
                record = self.inp.side(side).get(rid)
                if record is not None:
                    email = self.fields[side].value(record.raw, "email")
                    row.email = email if isinstance(email, str) else None
                    # what the record held: an undo can make it again from this
                    row.detail = history.detail(
                        self.app_names[side], self.app_names[side], dict(record.raw), {}
                    )
        return row

    def _own_entries(self, side: str, ids: Sequence[str], rows: Sequence[JournalRow]) -> None:
        """Remember the row ids of the entries just journaled for these records of ``side``."""
        own = self.own_entries
        for rid, row in zip(ids, rows, strict=True):
            if row.id is None:
                return  # the store gives no ids (PostgreSQL, or no history): by record
            own.setdefault((side, rid), []).append(row.id)

    def _check_stop(self) -> None:
        if self.options.stop is not None and self.options.stop.is_set():
            raise RunStopped("interrupted", "stopped by shutdown; committed work is kept")

    def _progress(self, count: int) -> None:
        self.done += count
        if self.options.progress is not None:
            self.options.progress(self.done, self.total)

    def _to_app(self, side: str, values: dict[str, Any]) -> dict[str, Any]:
        names = self.app_names[side]
        # most values are text, sent as they are (only tags are made a tuple)
        return {
            names[key]: value if type(value) is str else to_raw(value)
            for key, value in values.items()
            if key in names
        }

    async def _send(
        self, call: Any, batch: Sequence[Any], side: str, keys: Sequence[str]
    ) -> list[WriteResult]:
        """Send one batch; a failure that is not run-stopping fails each record of the batch."""
        try:
            results: list[WriteResult] = await self._guarded(call(batch))
        except RunStopped:
            raise
        except (ConnectorError, NotImplementedError, ValueError, TypeError) as exc:
            reason = redact(f"{type(exc).__name__}: {exc}")
            self.log.warning("batch failed", side=side, size=len(batch), error=reason)
            return [WriteResult(key, error=reason) for key in keys]
        by_key = {result.key: result for result in results}
        return [
            by_key.get(key) or WriteResult(key, error="the connector gave no result")
            for key in keys
        ]

    async def _updates(
        self, the_plan: Plan, side: str, pending_ops: dict[int, int], failed: set[int]
    ) -> None:
        items = the_plan.writes(side, create=False)
        if not items:
            return
        connector = self.connectors[side]
        size = max(1, connector.capabilities.update_batch_size)
        for start in range(0, len(items), size):
            self._check_stop()
            chunk = items[start : start + size]
            writes = [
                RecordWrite(
                    key=f"{self.run_id}:{side}:{w.record_id}",
                    data=self._to_app(side, w.values),
                    id=w.record_id,
                )
                for pair, w in chunk
            ]
            # rule 4: what is sent is journaled before it goes out
            journal = [
                self._journal_row(pair, w, "update", rw)
                for (pair, w), rw in zip(chunk, writes, strict=True)
            ]
            await self.store.run(self.store.add_journal, self.sync.name, journal, self.run_id)
            self.journaled.update((side, w.record_id or "") for _, w in chunk)
            self._own_entries(side, [w.record_id or "" for _, w in chunk], journal)
            _crash_point("journaled")
            results = await self._send(connector.update, writes, side, [w.key for w in writes])
            _crash_point("sent")
            issues = []
            answers = []
            for (pair, write), result, rw in zip(chunk, results, writes, strict=True):
                pending_ops[id(pair)] -= 1
                if result.ok:
                    self.counts[f"updated_{side}"] += 1
                    if result.version is not None:
                        pair.fp[side] = self.fields[side].version_fingerprint(result.version)
                    if result.stored:
                        self._take_stored(pair, side, result)
                        answers.append(JournalResult(rw.key, stored=result.stored))
                else:
                    answers.append(JournalResult(rw.key, "failed"))
                    failed.add(id(pair))
                    if write.old_email_hash and "email" in write.values:
                        # the record keeps its old email: no create may take it now
                        self.kept_emails[side].add(write.old_email_hash)
                    issues.append(self._failure(pair, side, write.record_id or "", write, result))
            # a pair with another write still to come is committed after that one
            await self._commit_pairs(
                [p for p, _ in chunk if pending_ops[id(p)] == 0],
                failed,
                (),
                issues,
                journal_results=answers,
            )
            _crash_point("committed")
            self._progress(len(chunk))

    async def _creates(
        self,
        the_plan: Plan,
        side: str,
        pending_ops: dict[int, int],
        failed: set[int],
        existing: dict[tuple[str, str], str],
        resends: bool,
    ) -> None:
        """The plan's creates on ``side``: only those a crashed run sent already (``resends``:
        their keys are in ``existing``, the pending creates as the slice began), or only the
        others."""
        items = the_plan.writes(side, create=True)
        items = [(p, w) for p, w in items if ((side, w.source_id or "") in existing) == resends]
        if not items:
            return
        connector = self.connectors[side]
        size = max(1, connector.capabilities.create_batch_size)
        source_side = other(side)
        linked_source = self.linked_by_create[source_side]
        taken = [(p, w) for p, w in items if w.source_id in linked_source]
        if taken:
            # a create of this run on the other side came back with this very record (an app
            # that keeps a create's idempotency key answered a crashed run's create with the
            # record it had made, whose email was changed since): it is linked already
            items = [(p, w) for p, w in items if w.source_id not in linked_source]
            for pair, _ in taken:
                pending_ops[id(pair)] -= 1
        kept = self.kept_emails[side]
        if kept:
            held = [(p, w) for p, w in items if w.email and value_hash(w.email) in kept]
            items = [(p, w) for p, w in items if not (w.email and value_hash(w.email) in kept)]
            issues = []
            for _pair, write in held:
                source = other(side)
                # deferred, not refused: reported, listed again, tried on the next run
                self.failed_ids[source].add(write.source_id or "")
                self.counts["excluded"] += 1
                issues.append(
                    IssueRow(
                        source,
                        write.source_id or "",
                        "excluded",
                        f"not created on side {side} yet: a record there still has "
                        f"{write.email} (its email change was refused); tried again next run",
                        write.email,
                    )
                )
            if issues:
                await self.store.run(
                    self.store.commit_outcomes, self.sync.name, issues=issues, run_id=self.run_id
                )
        for start in range(0, len(items), size):
            self._check_stop()
            chunk = items[start : start + size]
            # off the event loop: mapping and journalling a batch of 1,000 takes tens of ms,
            # which every API request would wait for
            pending, writes, journal = await asyncio.to_thread(
                self._prepare_creates, side, chunk, existing
            )
            await self.store.run(
                self.store.add_pending, self.sync.name, pending, self.run_id, journal
            )
            _crash_point("journaled")
            results = await self._send(connector.create, writes, side, [w.key for w in writes])
            _crash_point("sent")
            issues = []
            done_keys = []
            created = []
            answers = []
            # a new create's key is its own (random): its entry is settled by its row id; a
            # resent one shares its key with the crashed run's entry, settled with it by key
            entry_ids = [None if resends else entry.id for entry in journal]
            for row, (pair, write), result, entry_id in zip(
                pending, chunk, results, entry_ids, strict=True
            ):
                pending_ops[id(pair)] -= 1
                if result.ok and result.id and self._linked_elsewhere(side, result.id):
                    result = WriteResult(
                        result.key,
                        error=f"the app answered with record {result.id}, which is linked to "
                        "another record already; not linked twice",
                    )
                if result.ok and result.id:
                    self.linked_by_create[side].add(result.id)
                    self.linked_by_create[source_side].add(write.source_id or "")
                    created.append(pair)
                    setattr(pair.link, f"{side}_id", result.id)
                    self.counts[f"created_{side}"] += 1
                    if result.version is not None:
                        pair.fp[side] = self.fields[side].version_fingerprint(result.version)
                    if result.stored:
                        self._take_stored(pair, side, result)
                    done_keys.append(row.key)
                    answers.append(
                        JournalResult(
                            row.key, "confirmed", result.id, result.stored or None, entry_id
                        )
                    )
                else:
                    answers.append(JournalResult(row.key, "refused", journal_id=entry_id))
                    failed.add(id(pair))
                    source = other(side)
                    issues.append(self._failure(pair, source, write.source_id or "", write, result))
                    done_keys.append(row.key)
            await self._commit_pairs(
                created,
                failed,
                (),
                issues,
                pending_done=done_keys,
                partial={id(p) for p in created if pending_ops[id(p)] > 0},
                journal_results=answers,
            )
            _crash_point("committed")
            self._progress(len(chunk))

    def _prepare_creates(
        self, side: str, chunk: list[tuple[PairPlan, Write]], existing: dict[tuple[str, str], str]
    ) -> tuple[list[PendingRow], list[RecordWrite], list[JournalRow]]:
        """A batch of creates: their pending rows, what is sent, and their journal rows."""
        pending = [
            PendingRow(
                side,
                write.source_id or "",
                existing.get((side, write.source_id or "")) or os.urandom(16).hex(),
                write.email,
            )
            for _, write in chunk
        ]
        writes = [
            RecordWrite(key=row.key, data=self._to_app(side, w.values))
            for row, (_, w) in zip(pending, chunk, strict=True)
        ]
        # rule 4: the intent, and what is sent, are durable before the request goes out
        journal = [
            self._journal_row(pair, w, "create", rw)
            for rw, (pair, w) in zip(writes, chunk, strict=True)
        ]
        return pending, writes, journal

    def _linked_elsewhere(self, side: str, record_id: str) -> bool:
        """Whether ``record_id`` on ``side`` is linked already (a create cannot have made it)."""
        return record_id in self.linked_by_create[side] or record_id in self.index.fps[side]

    async def _archives(
        self, the_plan: Plan, side: str, pending_ops: dict[int, int], failed: set[int]
    ) -> None:
        pairs = the_plan.archives(side)
        if not pairs:
            return
        connector = self.connectors[side]
        size = max(1, connector.capabilities.update_batch_size)
        for start in range(0, len(pairs), size):
            self._check_stop()
            chunk = pairs[start : start + size]
            ids = [pair.link.record_id(side) or "" for pair in chunk]
            journal = [
                self._archive_row(pair, side, rid) for pair, rid in zip(chunk, ids, strict=True)
            ]
            await self.store.run(self.store.add_journal, self.sync.name, journal, self.run_id)
            self.journaled.update((side, rid) for rid in ids)
            self._own_entries(side, ids, journal)
            _crash_point("journaled")
            results = await self._send(connector.archive, ids, side, ids)
            _crash_point("sent")
            issues = []
            answers = []
            for pair, result, row in zip(chunk, results, journal, strict=True):
                pending_ops[id(pair)] -= 1
                if result.ok:
                    self.counts[f"archived_{side}"] += 1
                else:
                    answers.append(JournalResult(row.key or "", "failed"))
                    failed.add(id(pair))
                    self.counts["failed"] += 1
                    self.failed_ids[side].add(result.key)
                    issues.append(
                        IssueRow(
                            side, result.key, "failed", redact(f"archive refused: {result.error}")
                        )
                    )
            await self._commit_pairs(chunk, failed, (), issues, journal_results=answers)
            _crash_point("committed")
            self._progress(len(chunk))

    def _take_stored(self, pair: PairPlan, side: str, result: WriteResult) -> None:
        """The app stored something other than what was sent (a value it derived, kept or
        reformatted): that is the base of this side, so that the next run does not send the
        app's own value back as an edit (rule 2). Its fingerprint is unknown now."""
        pair.base[side] = self.fields[side].base_with_stored(
            pair.base.get(side), result.stored or {}
        )
        if result.version is None:
            pair.fp[side] = None

    def _failure(
        self, pair: PairPlan, side: str, record_id: str, write: Write, result: WriteResult
    ) -> IssueRow:
        self.counts["failed"] += 1
        # the cursors must not move past the records involved, so they are listed again
        for s in SIDES:
            rid = pair.link.record_id(s)
            if rid:
                self.failed_ids[s].add(rid)
        if write.source_id:
            self.failed_ids[other(write.side)].add(write.source_id)
        target = write.side
        what = "update" if write.record_id else "create"
        reason = redact(f"{self.sync.side(target).connector} refused the {what}: {result.error}")
        self.log.warning("record refused", side=side, record=record_id, reason=reason)
        return IssueRow(side, record_id, "failed", reason, write.email)

    async def _commit_pairs(
        self,
        pairs: Sequence[PairPlan],
        failed: set[int],
        resolved: Sequence[tuple[str, str]],
        issues: Sequence[IssueRow] = (),
        pending_done: Sequence[str] = (),
        partial: set[int] | None = None,
        journal_results: Sequence[JournalResult] = (),
    ) -> None:
        """Commit the links of ``pairs``: final bases where everything succeeded; otherwise only
        the ids (a create that went through is never forgotten) with the old bases, so that the
        next run sees the difference again and retries."""
        partial = partial or set()
        rows: list[LinkRow] = []
        drops: list[int] = []
        clean: list[tuple[str, str]] = list(resolved)
        settled: list[tuple[str, str]] = []
        settled_ids: list[int] = []
        journaled, before, own = self.journaled, self.journaled_before, self.own_entries
        for pair in pairs:
            link = pair.link
            if journaled and id(pair) not in failed and id(pair) not in partial:
                # the outcome of what was sent to these records is committed now
                for side in SIDES:
                    rid = link.record_id(side)
                    if rid is not None and (side, rid) in journaled:
                        ids = own.pop((side, rid), None)
                        if ids is not None and (side, rid) not in before:
                            settled_ids.extend(ids)  # no other entry of the record is open
                        else:
                            settled.append((side, rid))
                        journaled.discard((side, rid))
            if pair.drop:
                if link.id is not None:
                    drops.append(link.id)
                continue
            if id(pair) in failed or id(pair) in partial:
                # keep the ids of what exists on both sides, with the old bases
                if link.a_id is not None and link.b_id is not None:
                    rows.append(link)
                continue
            link.state = pair.state
            for side in SIDES:
                if side in pair.base:
                    link.set_base_json(side, pair.base[side])
            link.fp_a = pair.fp.get("a", link.fp_a)
            link.fp_b = pair.fp.get("b", link.fp_b)
            rows.append(link)
            for side in SIDES:
                rid = link.record_id(side)
                if rid and (pair.writes or pair.archive):
                    clean.append((side, rid))
        await self.store.run(
            self.store.commit_outcomes,
            self.sync.name,
            links=rows,
            issues=issues,
            resolved=clean,
            pending_done=pending_done,
            run_id=self.run_id,
            drop_links=drops,
            journal_done=settled,
            journal_results=journal_results,
            journal_done_ids=settled_ids,
        )

    # --- cursors ----------------------------------------------------------------------------

    async def _advance_cursors(
        self, inp: PlanInput, complete: dict[str, bool], first_run: bool
    ) -> None:
        values: dict[str, Any] = {}
        now = datetime.now(UTC).replace(tzinfo=None)
        for side in SIDES:
            info = inp.side(side)
            connector = self.connectors[side]
            if not info.readable:
                continue
            if complete[side]:
                values[f"last_full_{side}"] = now
            if not connector.capabilities.incremental:
                continue
            own = connector.listing_cursor()
            if own is not None:
                # the app's own cursor (a sync-token): kept where it was while a record
                # listed in this run failed or is backed off, so that it is listed again
                held = self.failed_ids[side] | info.backed_off
                if not any(info.listed(rid) or rid in info.released_held for rid in held):
                    values[f"cursor_{side}"] = own
                continue
            high = info.latest_update()
            if high is None:
                continue
            # records that failed now, or were skipped while backed off, must be listed again
            held = self.failed_ids[side] | info.backed_off
            blocked = [s for s in map(info.update_time, held) if s is not None]
            if blocked:
                high = min(high, min(blocked))
            values[f"cursor_{side}"] = connector.make_cursor(high - CURSOR_OVERLAP)
        if first_run:
            values["initialized_at"] = now
        if values:
            await self.store.run(self.store.update_state, self.sync.name, **values)


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


@functools.lru_cache(maxsize=256)
def _keys_json(keys: tuple[str, ...]) -> str:
    """A list of field keys as JSON (most writes of a run share a handful of key sets)."""
    return _ENCODE(list(keys))


async def run_sync(sync: SyncConfig, store: Store, options: RunOptions | None = None) -> RunResult:
    return await SyncRun(sync, store, options).execute()

"""Edge cases of the engine found in review: cursors, backoff, held-back emails, restored
records, crash reconciliation. Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import memory_sync

from syncd.config import SyncConfig
from syncd.engine.executor import RunOptions, RunResult, run_sync
from syncd.plugins import Plugins
from syncd.store import PendingRow, Store
from syncd.testing import memory
from syncd.testing.memory import app


async def run(sync: SyncConfig, store: Store, **options: Any) -> RunResult:
    return await run_sync(sync, store, RunOptions(**options))


def advance_clock(ticks: int = 500) -> None:
    """Move the apps' shared clock well past the cursor overlap (120 ticks)."""
    clock = memory.MemoryApp()
    for _ in range(ticks):
        clock.tick()


def expire_backoff(store: Store) -> None:
    store.db.execute_sql("UPDATE record_issue SET next_attempt_at = '2000-01-01 00:00:00'")


async def test_backed_off_record_is_retried_after_backoff_on_incremental_runs(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """Rule 5/6: a record skipped because it is backed off must not be passed by the cursor."""
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "one@x.com"})
    sync = memory_sync(
        tmp_path, plugins, a_settings="incremental = true", b_settings="incremental = true"
    )
    assert (await run(sync, store)).outcome == "success"  # first run: full
    advance_clock()
    b.refuse_marker = "bad"
    a.add({"email": "bad@x.com"})
    second = await run(sync, store)  # incremental: the create is refused
    assert second.counts["failed"] == 1
    advance_clock()
    a.add({"email": "other@x.com"})  # ordinary activity later on
    third = await run(sync, store)  # bad@ is backed off: listed, skipped
    assert third.outcome == "success"
    # the backoff expires and the app would now accept the record
    b.refuse_marker = None
    expire_backoff(store)
    advance_clock()
    fourth = await run(sync, store)
    emails = {r["email"] for r in b.live().values()}
    assert "bad@x.com" in emails, (fourth.counts, emails)


async def test_blocked_email_change_is_applied_once_the_clash_is_gone(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """Rule 3 (no lost update): an email change held back by a clash must go through once the
    clash is gone, and must not silently disappear from `syncd errors`."""
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "old@x.com", "first_name": "Pat"})
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    idb = next(iter(b.records))
    # Pat's email changes on a, while someone else on b happens to hold the new address
    a.edit(ida, email="new@x.com")
    other = b.add({"email": "new@x.com", "first_name": "Someone"})
    blocked = await run(sync, store, full=True)
    assert b.records[idb].data["email"] == "old@x.com"
    assert blocked.counts["excluded"] >= 1
    # the clash is resolved on b
    b.delete(other)
    await run(sync, store, full=True)
    issues = await store.run(store.list_issues, "mem")
    pair_emails = (a.records[ida].data["email"], b.records[idb].data["email"])
    # either the change went through, or the divergence is still reported
    assert pair_emails == ("new@x.com", "new@x.com") or issues, (pair_emails, issues)


async def test_unarchived_record_syncs_again(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """Rule 7 / table row 'gone_a': a record archived on one side and later restored (un-archived)
    is silently dropped from the sync: its edits never travel, and edits of its partner are
    reported as 'linked to another record'."""
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "p@x.com", "city": "Leeds"})
    sync = memory_sync(tmp_path, plugins)  # deletions = "ignore"
    await run(sync, store)
    idb = next(iter(b.records))
    # archived on a by mistake ...
    a.records[ida].archived = True
    a.records[ida].updated = a.tick()
    await run(sync, store)
    # ... restored, then edited on both sides (different fields)
    a.records[ida].archived = False
    a.edit(ida, city="York")
    b.edit(idb, title="CTO")
    result = await run(sync, store)
    issues = await store.run(store.list_issues, "mem")
    assert b.records[idb].data.get("city") == "York", (result.counts, issues)
    assert a.records[ida].data.get("title") == "CTO", (result.counts, issues)


async def test_create_held_back_by_failed_email_update_is_not_skipped(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """Rule 5: a create held back because an email update failed ('kept_emails') records no
    outcome, yet the cursor moves past its source record: the record is never created (until the
    next daily full listing), and nothing says so."""
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "old@x.com", "first_name": "Pat"})
    sync = memory_sync(
        tmp_path, plugins, a_settings="incremental = true", b_settings="incremental = true"
    )
    await run(sync, store)
    idb = next(iter(b.records))
    advance_clock()
    # Pat moves to a new address; a colleague takes over the old one (added first)
    a.add({"email": "old@x.com", "first_name": "Sam"})
    advance_clock()
    a.edit(ida, email="new@x.com")
    b.refuse_marker = "new"  # b refuses Pat's update this time
    second = await run(sync, store)
    assert second.counts["failed"] == 1
    issues = await store.run(store.list_issues, "mem")
    # the app is fixed and the backoff expires
    b.refuse_marker = None
    expire_backoff(store)
    await run(sync, store)
    assert b.records[idb].data["email"] == "new@x.com"
    names = {r["email"]: r.get("first_name") for r in b.live().values()}
    assert names.get("old@x.com") == "Sam", (names, issues)


async def test_edit_after_crashed_create_survives_reconciliation(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """Rule 4 (kill -9 loses no update): a create reconciled after a crash is linked without a base,
    so the next merge treats the copy syncd itself wrote as an edit on the target; with
    winner = "b" the source's edit made after the crash is overwritten by the stale copy."""
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "first@x.com"})
    sync = memory_sync(tmp_path, plugins, extra='winner = "b"')
    await run(sync, store)  # an ordinary first run
    ida = a.add({"email": "p@x.com", "city": "Leeds"})
    # a run died right after it created a's record on b, before the link was committed
    idb = b.add({"email": "p@x.com", "city": "Leeds"})
    store.add_pending("mem", [PendingRow("b", ida, "key-1", "p@x.com")], None)
    # the user edits the record on a before the next run; nobody touches b's copy
    a.edit(ida, city="York")
    result = await run(sync, store)
    assert result.outcome == "success"
    assert len(b.records) == 2
    assert (a.records[ida].data["city"], b.records[idb].data["city"]) == ("York", "York")


async def test_a_deletion_that_cannot_travel_is_not_revived(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """a-to-b: a record deleted on a while edited on b cannot be re-created on a (nothing is
    written to a); the link becomes a tombstone instead of being planned again every run."""
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "p@x.com", "city": "Leeds"})
    a.add({"email": "stays@x.com"})
    sync = memory_sync(tmp_path, plugins, extra='direction = "a-to-b"')
    await run(sync, store)
    idb = next(rid for rid, r in b.records.items() if r.data["email"] == "p@x.com")
    a.delete(ida)
    b.edit(idb, city="York")
    await run(sync, store, full=True)
    states = {k.b_id: k.state for k in store.load_links("mem")}
    assert states[idb] == "gone_a"
    assert len(a.records) == 1


async def test_pending_creates_are_forgotten_once_linked(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """A pending entry whose source got linked by matching is removed at the end of the run."""
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "p@x.com"})
    b.add({"email": "p@x.com"})
    store.add_pending("mem", [PendingRow("b", ida, "key-9", "nobody@x.com")], None)
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    assert store.list_pending("mem") == []


async def test_revived_record_keeps_its_edits_against_a_re_created_partner(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """Found by the state machine: a record deleted on a and typed in again with the same email,
    while its partner on b had a field cleared. Edit-beats-delete revives b's record, which
    then matches a's new record by email; b's clear is an edit since its base and must win,
    where a first merge would let the new record's value fill the empty field."""
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "p@x.com", "first_name": "Pat", "city": "Leeds"})
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    idb = next(iter(b.records))
    a.delete(ida)
    new_a = a.add({"email": "p@x.com", "first_name": "Pat", "city": "York"})
    b.edit(idb, first_name=None)
    result = await run(sync, store, full=True)
    assert (result.outcome, result.counts["excluded"]) == ("success", 0)
    assert "first_name" not in {k for k, v in a.records[new_a].data.items() if v}
    assert "first_name" not in {k for k, v in b.records[idb].data.items() if v}
    # the field b did not touch is filled in from the new record as in any first merge
    assert b.records[idb].data["city"] == "York"
    links = [k for k in store.load_links("mem") if k.state == "linked"]
    assert [(k.a_id, k.b_id) for k in links] == [(new_a, idb)]

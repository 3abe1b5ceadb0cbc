"""Undo of a run, from the change journal (issue 15): in process, over the in-memory apps,
with the status database a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_support import by_email, crash_at, journal_rows, sync_once
from support import memory_sync

from syncd.config import SyncConfig
from syncd.engine.executor import RunOptions, run_sync
from syncd.engine.undo import UndoError, UndoResult, undo_run
from syncd.plugins import Plugins
from syncd.store import Store
from syncd.store.history import change_json, query_changes
from syncd.testing.memory import app


async def undo(sync: SyncConfig, state: Path, run_id: int, **options: object) -> UndoResult:
    store = Store(state)
    await store.aopen()
    try:
        return await undo_run(sync, store, run_id, **options)  # type: ignore[arg-type]
    finally:
        await store.aclose()


def phone(i: int, series: int) -> str:
    return f"+44 20 7946 {series}{i:03d}"


async def test_undo_restores_what_the_wrong_winner_overwrote_and_reports_hand_edits(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for i in range(50):
        a.add({"email": f"p{i}@x.com", "first_name": f"P{i}", "phone": phone(i, 1)})
        b.add({"email": f"p{i}@x.com", "first_name": f"P{i}", "phone": phone(i, 2)})
    original = {e: r["phone"] for e, (_, r) in by_email("mem-b").items()}
    sync = memory_sync(tmp_path, plugins, extra='winner = "a"')
    state = tmp_path / "state"
    wrong = await sync_once(sync, state)  # the wrong winner: a's phones overwrite b's
    assert wrong.counts["updated_b"] == 50
    edited = {f"p{i}@x.com": f"+44 161 496 0{i:03d}" for i in (3, 17, 41)}
    for email, value in edited.items():
        b.edit(by_email("mem-b")[email][0], phone=value)

    result = await undo(sync, state, wrong.run_id or 0)
    assert result.outcome == "success", result.message
    assert result.counts["restored_fields"] == 47
    skipped = {i.email: i for i in result.items if i.action == "skip"}
    assert set(skipped) == set(edited)
    assert all("changed since" in i.reason for i in skipped.values())
    # each restored field says why the run wrote it, as its journal entry does
    restored = [i for i in result.items if i.action == "restore"]
    assert {i.reason for i in restored} == {"conflict won by side a (winner = a)"}, restored[0]
    for email, (_, record) in by_email("mem-b").items():
        assert record["phone"] == edited.get(email, original[email])
    assert journal_rows(state) == []

    calls = b.write_calls
    second = await undo(sync, state, wrong.run_id or 0)
    assert second.counts["restored_fields"] == 0
    assert b.write_calls == calls  # a second undo writes nothing
    assert {i.reason for i in second.items} == {
        "already as it was before",
        *(i.reason for i in second.items if "changed since" in i.reason),
    }
    # the next sync sends the hand edits on (edits), but not the restored values
    after = await sync_once(sync, state)
    assert (after.counts["updated_a"], after.counts["updated_b"]) == (3, 0)
    quiet = await sync_once(sync, state)
    assert quiet.counts["updated_a"] == quiet.counts["updated_b"] == 0

    store = Store(state)
    await store.aopen()
    try:
        changes, total = await store.run(query_changes, store, sync.name, record="p5@x.com")
    finally:
        await store.aclose()
    history = [
        (c.run_id, f["field"], f["before"], f["sent"])
        for c in changes
        for f in change_json(c)["fields"]
    ]
    # the value before as the app listed it; what was sent as syncd sends it (E.164)
    assert history == [
        (wrong.run_id, "phone", phone(5, 2), phone(5, 1).replace(" ", "")),
        (result.run_id, "phone", phone(5, 1).replace(" ", ""), phone(5, 2)),
    ]
    assert total == 2
    assert [change_json(c)["outcome"] for c in changes] == ["confirmed", "confirmed"]


async def test_undo_of_a_first_merge_and_undo_of_that_undo(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "both@x.com", "first_name": "Both", "city": "Leeds"})
    b.add({"email": "both@x.com", "first_name": "Both", "title": "CEO"})
    a.add({"email": "only-a@x.com", "first_name": "OnlyA"})
    b.add({"email": "only-b@x.com", "first_name": "OnlyB"})
    sync = memory_sync(tmp_path, plugins)
    state = tmp_path / "state"
    before_a, before_b = dict(by_email("mem-a")), dict(by_email("mem-b"))
    merge = await sync_once(sync, state)
    assert merge.counts["created_a"] == merge.counts["created_b"] == 1
    assert by_email("mem-a")["both@x.com"][1].get("title") == "CEO"

    undone = await undo(sync, state, merge.run_id or 0)
    assert undone.outcome == "success", undone.message
    assert undone.counts["archived_a"] == undone.counts["archived_b"] == 1
    assert sorted(by_email("mem-a")) == sorted(before_a)
    assert sorted(by_email("mem-b")) == sorted(before_b)
    assert by_email("mem-a")["both@x.com"][1].get("title") is None
    assert by_email("mem-b")["both@x.com"][1].get("city") is None

    redone = await undo(sync, state, undone.run_id or 0)
    assert redone.outcome == "success", redone.message
    assert redone.counts["created_a"] == redone.counts["created_b"] == 1
    for account in ("mem-a", "mem-b"):
        people = by_email(account)
        assert sorted(people) == ["both@x.com", "only-a@x.com", "only-b@x.com"]
        assert people["both@x.com"][1]["title"] == "CEO"
        assert people["both@x.com"][1]["city"] == "Leeds"
    # everything is linked again: the next sync writes nothing and makes no duplicate
    quiet = await sync_once(sync, state)
    assert sum(quiet.counts[k] for k in ("created_a", "created_b", "updated_a", "updated_b")) == 0
    assert len(by_email("mem-a")) == len(by_email("mem-b")) == 3


async def test_a_crash_during_an_undo_then_undo_again_restores_nothing_twice(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for i in range(6):
        a.add({"email": f"p{i}@x.com", "phone": phone(i, 1)})
        b.add({"email": f"p{i}@x.com", "phone": phone(i, 2)})
    sync = memory_sync(tmp_path, plugins, a_settings="batch_size = 1", b_settings="batch_size = 1")
    state = tmp_path / "state"
    wrong = await sync_once(sync, state)
    with crash_at("sent", 3):  # three restores sent, two committed
        await undo(sync, state, wrong.run_id or 0)
    assert len(journal_rows(state)) == 1
    calls = b.write_calls
    again = await undo(sync, state, wrong.run_id or 0)
    assert again.counts["restored_fields"] == 3  # the other three were restored already
    assert b.write_calls == calls + 3
    assert all(r["phone"] == phone(int(e[1]), 2) for e, (_, r) in by_email("mem-b").items())
    assert len(by_email("mem-b")) == 6
    assert journal_rows(state) == []
    quiet = await sync_once(sync, state)
    assert quiet.counts["updated_a"] == quiet.counts["updated_b"] == 0


async def test_a_dry_run_shows_what_would_be_restored_and_writes_nothing(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "p@x.com", "phone": phone(1, 1)})
    b.add({"email": "p@x.com", "phone": phone(1, 2)})
    sync = memory_sync(tmp_path, plugins)
    state = tmp_path / "state"
    wrong = await sync_once(sync, state)
    calls = b.write_calls
    shown = await undo(sync, state, wrong.run_id or 0, dry_run=True)
    assert shown.outcome == "dry_run" and shown.run_id is None
    assert [(i.action, i.field, i.now, i.restored) for i in shown.items] == [
        ("restore", "phone", phone(1, 1).replace(" ", ""), phone(1, 2))
    ]
    assert b.write_calls == calls


async def test_undo_of_a_run_that_does_not_exist_or_wrote_nothing_is_refused(
    tmp_path: Path, plugins: Plugins
) -> None:
    app("mem-a").add({"email": "p@x.com"})
    sync = memory_sync(tmp_path, plugins)
    state = tmp_path / "state"
    run = await sync_once(sync, state)
    with pytest.raises(UndoError, match="no run 99"):
        await undo(sync, state, 99)
    with pytest.raises(UndoError, match=r"no journaled write for nobody@x\.com"):
        await undo(sync, state, run.run_id or 0, record="nobody@x.com")


async def test_undoing_many_creates_stops_at_the_mass_deletion_guard(
    tmp_path: Path, plugins: Plugins
) -> None:
    for i in range(30):
        app("mem-a").add({"email": f"p{i}@x.com"})
    sync = memory_sync(tmp_path, plugins)
    state = tmp_path / "state"
    merge = await sync_once(sync, state)
    stopped = await undo(sync, state, merge.run_id or 0)
    assert stopped.outcome == "failed" and "use --force" in (stopped.message or "")
    assert len(by_email("mem-b")) == 30
    forced = await undo(sync, state, merge.run_id or 0, force=True)
    assert forced.counts["archived_b"] == 30
    assert by_email("mem-b") == {}


async def test_undo_of_a_deletion_policy_archive_makes_the_survivor_again(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for person in ({"email": "old@x.com", "first_name": "Olga"}, {"email": "keep@x.com"}):
        a.add(dict(person))
        b.add(dict(person))
    sync = memory_sync(tmp_path, plugins, extra='deletions = "archive"')
    state = tmp_path / "state"
    await sync_once(sync, state)
    a.delete(by_email("mem-a")["old@x.com"][0])
    store = Store(state)
    await store.aopen()
    try:
        archived = await run_sync(sync, store, RunOptions(full=True))
    finally:
        await store.aclose()
    assert archived.counts["archived_b"] == 1 and "old@x.com" not in by_email("mem-b")
    undone = await undo(sync, state, archived.run_id or 0)
    assert undone.counts["created_b"] == 1
    assert by_email("mem-b")["old@x.com"][1]["first_name"] == "Olga"
    # the person stays deleted on a: the next runs neither archive b's copy again nor revive a's
    for _ in range(2):
        store = Store(state)
        await store.aopen()
        try:
            quiet = await run_sync(sync, store, RunOptions(full=True))
        finally:
            await store.aclose()
        assert quiet.counts["archived_b"] == quiet.counts["created_a"] == 0
    assert "old@x.com" in by_email("mem-b") and "old@x.com" not in by_email("mem-a")

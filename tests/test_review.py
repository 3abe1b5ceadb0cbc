"""The review queue for deletions (issue 15): ``deletions = "review"`` and
``on_mass_deletion = "review"``, in process over the in-memory apps (a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import memory_sync

from syncd.config import SyncConfig
from syncd.engine.executor import RunOptions, RunResult, run_sync
from syncd.engine.review_actions import ReviewError, ReviewResult, decide_held
from syncd.plugins import Plugins
from syncd.store import Store
from syncd.store.history import Held, list_held
from syncd.testing.memory import app


async def sync_once(sync: SyncConfig, state: Path, full: bool = True) -> RunResult:
    store = Store(state)
    await store.aopen()
    try:
        result = await run_sync(sync, store, RunOptions(full=full))
    finally:
        await store.aclose()
    assert result.outcome == "success", result.message
    return result


async def held(sync: SyncConfig, state: Path, *states: str) -> list[Held]:
    store = Store(state)
    await store.aopen()
    try:
        return await store.run(list_held, store, sync.name, states or ("held",))
    finally:
        await store.aclose()


async def decide(sync: SyncConfig, state: Path, **options: object) -> ReviewResult:
    store = Store(state)
    await store.aopen()
    try:
        return await decide_held(sync, store, **options)  # type: ignore[arg-type]
    finally:
        await store.aclose()


async def links(state: Path) -> dict[str | None, str]:
    store = Store(state)
    await store.aopen()
    try:
        return {link.b_id: link.state for link in await store.run(store.load_links, "mem")}
    finally:
        await store.aclose()


def by_email(account: str) -> dict[str, str]:
    return {str(r["email"]): rid for rid, r in app(account).live().items()}


async def two_people(tmp_path: Path, plugins: Plugins, extra: str = "") -> tuple[SyncConfig, Path]:
    for email in ("ann@x.com", "bob@x.com"):
        app("mem-a").add({"email": email, "first_name": email[:3]})
    sync = memory_sync(tmp_path, plugins, extra=f'deletions = "review"\n{extra}')
    state = tmp_path / "state"
    await sync_once(sync, state)
    assert len(by_email("mem-b")) == 2
    return sync, state


async def test_a_deletion_is_held_and_approving_it_archives_the_survivor(
    tmp_path: Path, plugins: Plugins
) -> None:
    sync, state = await two_people(tmp_path, plugins)
    app("mem-a").delete(by_email("mem-a")["ann@x.com"])
    ann_b = by_email("mem-b")["ann@x.com"]
    run = await sync_once(sync, state)
    assert run.counts["held"] == 1 and run.counts["archived_b"] == 0
    assert "ann@x.com" in by_email("mem-b")  # the survivor is untouched
    [entry] = await held(sync, state)
    assert (entry.email, entry.deleted_side, entry.survivor_id, entry.action) == (
        "ann@x.com",
        "a",
        ann_b,
        "archive",
    )
    again = await sync_once(sync, state)  # held again: still one entry, nothing written
    assert again.counts["archived_b"] == 0 and len(await held(sync, state)) == 1

    result = await decide(sync, state, approve=[entry.id])
    assert [a["email"] for a in result.approved] == ["ann@x.com"]
    assert "ann@x.com" not in by_email("mem-b")
    assert app("mem-b").records[ann_b].archived
    assert (await links(state))[ann_b] == "archived"
    assert await held(sync, state) == []
    assert [e.state for e in await held(sync, state, "approved")] == ["approved"]
    quiet = await sync_once(sync, state)
    assert quiet.counts["created_a"] == quiet.counts["archived_b"] == quiet.counts["held"] == 0


async def test_rejecting_a_held_deletion_forgets_the_link_as_ignore_would(
    tmp_path: Path, plugins: Plugins
) -> None:
    sync, state = await two_people(tmp_path, plugins)
    app("mem-a").delete(by_email("mem-a")["ann@x.com"])
    ann_b = by_email("mem-b")["ann@x.com"]
    await sync_once(sync, state)
    calls = app("mem-b").write_calls
    result = await decide(sync, state, reject=[])  # --reject --all
    assert [r["email"] for r in result.rejected] == ["ann@x.com"]
    assert app("mem-b").write_calls == calls  # nothing happens on b
    assert (await links(state))[ann_b] == "gone_a"
    quiet = await sync_once(sync, state)
    assert quiet.counts["held"] == 0 and quiet.counts["created_a"] == 0
    assert "ann@x.com" in by_email("mem-b") and "ann@x.com" not in by_email("mem-a")


async def test_a_held_deletion_whose_record_comes_back_is_dropped(
    tmp_path: Path, plugins: Plugins
) -> None:
    sync, state = await two_people(tmp_path, plugins)
    ann_a = by_email("mem-a")["ann@x.com"]
    a = app("mem-a")
    a.records[ann_a].archived = True
    a.edit(ann_a)
    await sync_once(sync, state)
    assert len(await held(sync, state)) == 1
    a.records[ann_a].archived = False  # restored from the app's archive
    a.edit(ann_a)
    await sync_once(sync, state)
    assert await held(sync, state) == []
    [dropped] = await held(sync, state, "dropped")
    assert dropped.email == "ann@x.com"
    assert by_email("mem-b")["ann@x.com"]


async def test_a_held_deletion_whose_survivor_is_edited_is_dropped(
    tmp_path: Path, plugins: Plugins
) -> None:
    sync, state = await two_people(tmp_path, plugins)
    app("mem-a").delete(by_email("mem-a")["ann@x.com"])
    await sync_once(sync, state)
    app("mem-b").edit(by_email("mem-b")["ann@x.com"], city="York")
    run = await sync_once(sync, state)
    assert await held(sync, state) == []
    assert run.counts["created_a"] == 1  # edit beats delete
    assert "ann@x.com" in by_email("mem-a")


async def test_a_mass_deletion_goes_to_review_with_on_mass_deletion_review(
    tmp_path: Path, plugins: Plugins
) -> None:
    for i in range(30):
        app("mem-a").add({"email": f"p{i}@x.com"})
    sync = memory_sync(
        tmp_path, plugins, extra='deletions = "archive"\non_mass_deletion = "review"'
    )
    state = tmp_path / "state"
    await sync_once(sync, state)
    for i in range(20):
        app("mem-a").delete(by_email("mem-a")[f"p{i}@x.com"])
    run = await sync_once(sync, state)  # not stopped: the batch waits for a person
    assert run.counts["held"] == 20 and run.counts["archived_b"] == 0
    assert len(by_email("mem-b")) == 30
    entries = await held(sync, state)
    assert len(entries) == 20 and {e.action for e in entries} == {"archive"}
    await decide(sync, state, approve=[])
    assert len(by_email("mem-b")) == 10


async def test_with_on_mass_deletion_stop_a_mass_deletion_still_stops(
    tmp_path: Path, plugins: Plugins
) -> None:
    for i in range(30):
        app("mem-a").add({"email": f"p{i}@x.com"})
    sync = memory_sync(tmp_path, plugins, extra='deletions = "archive"')
    state = tmp_path / "state"
    await sync_once(sync, state)
    for i in range(20):
        app("mem-a").delete(by_email("mem-a")[f"p{i}@x.com"])
    store = Store(state)
    await store.aopen()
    try:
        result = await run_sync(sync, store, RunOptions(full=True))
    finally:
        await store.aclose()
    assert result.outcome == "failed" and "use --force" in (result.message or "")


async def test_an_unknown_review_id_is_refused(tmp_path: Path, plugins: Plugins) -> None:
    sync, state = await two_people(tmp_path, plugins)
    with pytest.raises(ReviewError, match="no held deletion with id 42"):
        await decide(sync, state, approve=[42])

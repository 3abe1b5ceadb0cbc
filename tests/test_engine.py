"""The engine's promises (design.md §4) against two in-memory apps."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import memory_sync

from syncd.config import SyncConfig
from syncd.engine.executor import RunOptions, RunResult, run_sync
from syncd.plugins import Plugins
from syncd.store import Store
from syncd.store.lock import SyncBusy, SyncLock
from syncd.testing.memory import app


async def run(sync: SyncConfig, store: Store, **options: object) -> RunResult:
    return await run_sync(sync, store, RunOptions(**options))  # type: ignore[arg-type]


def writes() -> int:
    return app("mem-a").write_calls + app("mem-b").write_calls


def by_email(account: str) -> dict[str, dict[str, object]]:
    return {
        str(r["email"]).strip().lower(): r for r in app(account).live().values() if r.get("email")
    }


async def test_first_merge_links_creates_and_fills(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "jane@x.com", "first_name": "Jane", "phone": None, "title": "CEO"})
    a.add({"email": "only-a@x.com", "first_name": "Ann"})
    b.add({"email": "JANE@x.com ", "first_name": "Jane", "phone": "+44 20 7946 0958"})
    b.add({"email": "only-b@x.com", "first_name": "Bob"})
    sync = memory_sync(tmp_path, plugins)
    result = await run(sync, store)
    assert result.outcome == "success", result.message
    assert result.counts["linked"] == 1
    assert result.counts["created_a"] == 1 and result.counts["created_b"] == 1
    assert (
        set(by_email("mem-a"))
        == set(by_email("mem-b"))
        == {
            "jane@x.com",
            "only-a@x.com",
            "only-b@x.com",
        }
    )
    # an empty value never blanks a filled one: each side filled the other's gaps
    assert by_email("mem-a")["jane@x.com"]["phone"] == "+442079460958"
    assert by_email("mem-b")["jane@x.com"]["title"] == "CEO"
    before = writes()
    second = await run(sync, store)
    assert second.outcome == "success"
    assert writes() == before, "a second run with no edits must not write"


async def test_edits_to_different_fields_both_survive(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "j@x.com", "first_name": "Jane", "city": "Leeds", "title": "CEO"})
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    idb = next(iter(b.records))
    a.edit(ida, city="York")
    b.edit(idb, title="CTO")
    result = await run(sync, store)
    assert result.counts["conflicts"] == 0
    assert a.records[ida].data["title"] == "CTO"
    assert b.records[idb].data["city"] == "York"


@pytest.mark.parametrize("winner", ["a", "b", "newest"])
async def test_same_field_on_both_sides_goes_to_the_winner(
    tmp_path: Path, plugins: Plugins, store: Store, winner: str
) -> None:
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "j@x.com", "city": "Leeds"})
    sync = memory_sync(tmp_path, plugins, extra=f'winner = "{winner}"')
    await run(sync, store)
    idb = next(iter(b.records))
    a.edit(ida, city="York")
    b.edit(idb, city="Hull")  # b's edit is the later one
    result = await run(sync, store)
    assert result.counts["conflicts"] == 1
    expected = {"a": "York", "b": "Hull", "newest": "Hull"}[winner]
    assert a.records[ida].data["city"] == b.records[idb].data["city"] == expected


async def test_newest_is_the_record_edited_last_by_the_apps_timestamps(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """``newest`` compares each app's record timestamp (design.md rule 3): the apps do not
    date single fields, so a later edit of another field makes the whole record the newer."""
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "j@x.com", "city": "Leeds"})
    sync = memory_sync(tmp_path, plugins, extra='winner = "newest"')
    await run(sync, store)
    idb = next(iter(b.records))
    b.edit(idb, city="Hull")
    a.edit(ida, city="York")  # a's city is the later edit...
    b.edit(idb, title="CTO")  # ...but b's record is the one changed last
    result = await run(sync, store)
    assert result.counts["conflicts"] == 1
    assert a.records[ida].data["city"] == b.records[idb].data["city"] == "Hull"
    assert a.records[ida].data["title"] == "CTO"


async def test_a_deliberate_clear_propagates(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "j@x.com", "title": "CEO"})
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    idb = next(iter(b.records))
    a.edit(ida, title=None)
    await run(sync, store)
    assert b.records[idb].data.get("title") is None


async def test_idempotent_against_an_app_that_rewrites_what_it_stores(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    b.rewrites = True  # title-cases names, spaces out phone numbers
    for i in range(20):
        a.add(
            {
                "email": f"p{i}@x.com",
                "first_name": f"mary-jo {i}",
                "last_name": "o'NEIL",
                "phone": f"+4420794600{i:02d}",
            }
        )
    sync = memory_sync(tmp_path, plugins)
    first = await run(sync, store)
    assert first.counts["created_b"] == 20
    assert any("Mary-Jo" in str(r["first_name"]) for r in b.live().values())
    before = writes()
    second = await run(sync, store)
    assert writes() == before, second.counts
    third = await run(sync, store)
    assert writes() == before, third.counts


async def test_one_way_sync_never_writes_back(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "a@x.com", "city": "Leeds"})
    idb = b.add({"email": "b@x.com"})
    sync = memory_sync(tmp_path, plugins, extra='direction = "a-to-b"')
    await run(sync, store)
    assert set(by_email("mem-a")) == {"a@x.com"}
    assert set(by_email("mem-b")) == {"a@x.com", "b@x.com"}
    b.edit(idb, city="Hull")
    before = a.write_calls
    await run(sync, store)
    assert a.write_calls == before


async def test_custom_mapping_with_its_own_direction(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "a@x.com", "custom.account": "ACC-1"})
    extra = """
    [[fields]]
    a = "custom.account"
    b = "custom.xero_account"
    direction = "a-to-b"
    """
    sync = memory_sync(tmp_path, plugins, extra=extra)
    await run(sync, store)
    idb = next(iter(b.records))
    assert b.records[idb].data["custom.xero_account"] == "ACC-1"
    b.edit(idb, **{"custom.xero_account": "CHANGED"})
    await run(sync, store)
    assert a.records[ida].data["custom.account"] == "ACC-1"


async def test_rules_filter_and_tag(tmp_path: Path, plugins: Plugins, store: Store) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "cust@x.com", "tags": ("customer",)})
    a.add({"email": "lead@x.com", "tags": ("lead",)})
    b.add({"email": "new@x.com", "first_name": "N"})
    extra = """
    [[rules.a-to-b]]
    if = [ { field = "tags", op = "contains", value = "customer" } ]
    then = [ { add_tag = "from-a" } ]

    [[rules.b-to-a]]
    if = [ { field = "email", op = "matches", value = "@x\\\\.com$" } ]
    then = [ { add_tag = "New" }, { set = "title", value = "Prospect" } ]
    """
    sync = memory_sync(tmp_path, plugins, extra=extra)
    result = await run(sync, store)
    assert result.outcome == "success"
    on_b = by_email("mem-b")
    assert set(on_b) == {"cust@x.com", "new@x.com"}
    assert set(on_b["cust@x.com"]["tags"]) == {"customer", "from-a"}  # type: ignore[arg-type]
    on_a = by_email("mem-a")
    assert set(on_a["new@x.com"]["tags"]) == {"New"}  # type: ignore[arg-type]
    assert on_a["new@x.com"]["title"] == "Prospect"
    before = writes()
    await run(sync, store)
    assert writes() == before


async def test_no_duplicates_ambiguous_and_excluded(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "twice@x.com", "first_name": "One"})
    a.add({"email": "twice@x.com", "first_name": "Two"})
    a.add({"first_name": "No email"})
    b.add({"email": "twice@x.com", "first_name": "B"})
    sync = memory_sync(tmp_path, plugins)
    result = await run(sync, store)
    # the b record cannot be matched either: all three are reported
    assert result.counts["ambiguous"] == 3 and result.counts["excluded"] == 1
    assert len(b.records) == 1 and len(a.records) == 3
    issues = await store.run(store.list_issues, "mem")
    assert {i["kind"] for i in issues} == {"ambiguous", "excluded"}


async def test_a_refused_record_does_not_block_the_rest(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    b.refuse_marker = "bad"
    for i in range(5):
        a.add({"email": f"ok{i}@x.com"})
    a.add({"email": "bad@x.com"})
    sync = memory_sync(tmp_path, plugins)
    result = await run(sync, store)
    assert result.outcome == "partial"
    assert result.counts["created_b"] == 5 and result.counts["failed"] == 1
    issues = await store.run(store.list_issues, "mem")
    assert [i["email"] for i in issues] == ["bad@x.com"]
    assert "refused by the app" in issues[0]["reason"]
    assert issues[0]["next_attempt_at"] is not None
    # backed off: not tried again on the next run
    again = await run(sync, store)
    assert again.counts["failed"] == 0 and again.outcome == "success"
    assert len(b.records) == 5


@pytest.mark.parametrize("policy", ["ignore", "tag", "archive"])
async def test_deletion_policies(
    tmp_path: Path, plugins: Plugins, store: Store, policy: str
) -> None:
    a = app("mem-a")
    ids = [a.add({"email": f"p{i}@x.com"}) for i in range(12)]
    sync = memory_sync(tmp_path, plugins, extra=f'deletions = "{policy}"')
    await run(sync, store)
    a.delete(ids[0])
    result = await run(sync, store, full=True)
    survivor = by_email("mem-b").get("p0@x.com")
    if policy == "archive":
        assert survivor is None and result.counts["archived_b"] == 1
    elif policy == "tag":
        assert survivor is not None and "syncd-deleted" in survivor["tags"]  # type: ignore[operator]
    else:
        assert survivor is not None and not survivor.get("tags")
    assert len(a.records) == 11  # never re-created on a
    before = writes()
    await run(sync, store, full=True)
    assert writes() == before


async def test_edit_beats_delete(tmp_path: Path, plugins: Plugins, store: Store) -> None:
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "p@x.com", "city": "Leeds"})
    a.add({"email": "stays@x.com"})
    sync = memory_sync(tmp_path, plugins, extra='deletions = "archive"')
    await run(sync, store)
    idb = next(rid for rid, r in b.records.items() if r.data["email"] == "p@x.com")
    a.delete(ida)
    b.edit(idb, city="York")
    await run(sync, store, full=True)
    assert by_email("mem-a")["p@x.com"]["city"] == "York"
    assert not b.records[idb].archived


async def test_mass_deletion_and_empty_side_guards(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    ids = [a.add({"email": f"p{i}@x.com"}) for i in range(40)]
    sync = memory_sync(tmp_path, plugins, extra='deletions = "archive"')
    await run(sync, store)
    for rid in ids[:15]:
        a.delete(rid)
    stopped = await run(sync, store, full=True)
    assert stopped.outcome == "failed" and "more than the limit of 10" in (stopped.message or "")
    assert not any(r.archived for r in b.records.values())
    for rid in ids[15:]:
        a.delete(rid)
    empty = await run(sync, store, full=True)
    assert "listed no records at all" in (empty.message or "")
    forced = await run(sync, store, full=True, force=True)
    assert forced.outcome == "success" and forced.counts["archived_b"] == 40


@pytest.mark.parametrize("initial", ["new-only", "a-into-b", "b-into-a"])
async def test_initial_modes(tmp_path: Path, plugins: Plugins, store: Store, initial: str) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "both@x.com", "city": "Leeds"})
    ida = a.add({"email": "only-a@x.com"})
    b.add({"email": "both@x.com", "city": "Hull"})
    b.add({"email": "only-b@x.com"})
    sync = memory_sync(tmp_path, plugins, extra=f'initial = "{initial}"')
    await run(sync, store)
    on_a, on_b = by_email("mem-a"), by_email("mem-b")
    if initial == "new-only":
        assert set(on_a) == {"both@x.com", "only-a@x.com"}
        assert set(on_b) == {"both@x.com", "only-b@x.com"}
        assert on_a["both@x.com"]["city"] == "Leeds" and on_b["both@x.com"]["city"] == "Hull"
        # a record edited after the first run travels from then on
        a.edit(ida, city="York")
        await run(sync, store)
        assert by_email("mem-b")["only-a@x.com"]["city"] == "York"
    elif initial == "a-into-b":
        assert set(on_a) == {"both@x.com", "only-a@x.com"}
        assert set(on_b) == {"both@x.com", "only-a@x.com", "only-b@x.com"}
        assert on_b["both@x.com"]["city"] == "Leeds"
    else:
        assert set(on_a) == {"both@x.com", "only-a@x.com", "only-b@x.com"}
        assert set(on_b) == {"both@x.com", "only-b@x.com"}
        assert on_a["both@x.com"]["city"] == "Hull"
    before = writes()
    await run(sync, store)
    assert writes() == before


async def test_write_only_side_pushes_only_what_changed(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    from support import write_sync

    from syncd.config import load_sync

    a = app("src")
    ids = [a.add({"email": f"p{i}@x.com", "first_name": f"P{i}"}) for i in range(5)]
    path = write_sync(
        tmp_path / "config",
        "push",
        'direction = "a-to-b"\n[a]\nconnector = "memory"\naccount = "src"\n'
        '[b]\nconnector = "memory-push"\naccount = "dst"\n',
    )
    sync = load_sync(path, plugins)
    await run(sync, store)
    dst = app("dst")
    assert dst.written_records == 5
    await run(sync, store)
    assert dst.written_records == 5
    a.edit(ids[0], first_name="Changed")
    await run(sync, store)
    assert dst.written_records == 6
    assert dst.list_calls == 0, "a write-only side is never read"


async def test_incremental_listing_looks_up_before_creating(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "one@x.com"})
    sync = memory_sync(
        tmp_path, plugins, a_settings="incremental = true", b_settings="incremental = true"
    )
    await run(sync, store)
    # the same person appears on both sides between runs
    a.add({"email": "two@x.com", "city": "Leeds"})
    b.add({"email": "two@x.com", "city": "Leeds"})
    result = await run(sync, store)
    assert result.counts["created_a"] + result.counts["created_b"] == 0
    assert len(by_email("mem-a")) == len(a.records) == 2
    assert len(b.records) == 2


async def test_one_run_per_sync(tmp_path: Path, plugins: Plugins, store: Store) -> None:
    sync = memory_sync(tmp_path, plugins)
    if not store.shared:
        with SyncLock(store.state_dir, sync.name), pytest.raises(SyncBusy):
            await run(sync, store)
        return
    # PostgreSQL: another process's store holds the sync's claim
    other = Store(store.state_dir, store.settings)
    await other.aopen()
    try:
        held = await other.claim(sync.name)
        with pytest.raises(SyncBusy):
            await run(sync, store)
        await other.unclaim(held)
        assert (await run(sync, store)).outcome == "success"
    finally:
        await other.aclose()


async def test_pending_create_is_reconciled_not_duplicated(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    from syncd.store import PendingRow

    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "p@x.com", "city": "Leeds"})
    sync = memory_sync(tmp_path, plugins)
    # as if a run died right after b created the record, before the link was committed
    b.add({"email": "p@x.com", "city": "Leeds"})
    store.add_pending("mem", [PendingRow("b", ida, "key-1", "p@x.com")], None)
    result = await run(sync, store)
    assert result.outcome == "success"
    assert len(b.records) == 1
    assert store.list_pending("mem") == []
    assert [(k.a_id, k.state) for k in store.load_links("mem")] == [(ida, "linked")]


async def test_rules_see_custom_fields_that_are_not_mapped(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a = app("mem-a")
    a.add({"email": "nodeal@x.com"})
    a.add({"email": "deal@x.com", "custom.deals": "2"})
    extra = """
    direction = "a-to-b"
    [[rules.a-to-b]]
    if = [ { field = "custom.deals", op = "is_empty" } ]
    """
    sync = memory_sync(tmp_path, plugins, extra=extra)
    await run(sync, store)
    assert set(by_email("mem-b")) == {"nodeal@x.com"}


async def test_add_tag_towards_a_side_whose_source_keeps_no_tags_adds(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    from support import write_sync

    from syncd.config import load_sync

    src, crm = app("notags"), app("crm")
    ida = src.add({"email": "p@x.com", "first_name": "Pat"})
    crm.add({"email": "p@x.com", "first_name": "Pat", "tags": ("customer",)})
    crm.add({"email": "q@x.com", "first_name": "Quinn"})
    path = write_sync(
        tmp_path / "config",
        "tagging",
        'direction = "two-way"\n'
        '[a]\nconnector = "memory-notags"\naccount = "notags"\n'
        '[b]\nconnector = "memory"\naccount = "crm"\n'
        '[[rules.a-to-b]]\nthen = [ { add_tag = "from-a" } ]\n',
    )
    sync = load_sync(path, plugins)
    await run(sync, store)
    tags = {str(r["email"]): set(r.get("tags") or ()) for r in crm.live().values()}
    assert tags["p@x.com"] == {"customer", "from-a"}  # added on the first merge, kept
    src.edit(ida, first_name="Patricia")
    await run(sync, store)
    tags = {str(r["email"]): set(r.get("tags") or ()) for r in crm.live().values()}
    assert tags["p@x.com"] == {"customer", "from-a"}
    before = src.write_calls + crm.write_calls
    await run(sync, store)
    assert src.write_calls + crm.write_calls == before


async def test_each_update_in_a_batch_gets_its_own_outcome(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for name in ("ok1", "bad", "ok2"):
        a.add({"email": f"{name}@x.com", "city": "Leeds"})
        b.add({"email": f"{name}@x.com"})
    b.refuse_marker = "bad"
    sync = memory_sync(tmp_path, plugins)
    result = await run(sync, store)
    assert result.counts["updated_b"] == 2 and result.counts["failed"] == 1
    issues = await store.run(store.list_issues, "mem")
    assert [(i["side"], i["email"]) for i in issues] == [("b", "bad@x.com")]
    cities = {str(r["email"]): r.get("city") for r in b.live().values()}
    assert cities == {"ok1@x.com": "Leeds", "bad@x.com": None, "ok2@x.com": "Leeds"}


async def test_a_deletion_tag_toward_an_app_without_tags_counts_no_update(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    """``syncd check`` refuses ``deletions = "tag"`` toward an app without tags; the engine,
    given such a sync anyway, plans no write for it, so no count claims an update."""
    import dataclasses

    a, b = app("tagdel-a"), app("tagdel-b")
    ids = [a.add({"email": f"p{i}@x.com"}) for i in range(12)]
    from support import write_sync

    from syncd.config import load_sync

    path = write_sync(
        tmp_path / "config",
        "tagdel",
        '[a]\nconnector = "memory"\naccount = "tagdel-a"\n'
        '[b]\nconnector = "memory-notags"\naccount = "tagdel-b"\n',
    )
    sync = load_sync(path, plugins)
    sync = dataclasses.replace(sync, deletions="tag")
    await run(sync, store)
    a.delete(ids[0])
    before = b.write_calls
    result = await run(sync, store, full=True)
    assert result.counts["updated_b"] == 0, result.counts
    assert b.write_calls == before

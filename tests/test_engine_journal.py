"""Rule 4 across a crash: the journal of what syncd sent, per field (issue 21).

Each test stops a run dead at a chosen crash point (``syncd.engine.executor.crash_hook``:
after a journal commit, after a send, after an outcome commit; counted, never timed), opens the
store again from disk, lets a person edit, and runs again.
"""

from __future__ import annotations

from pathlib import Path

from pg_support import store_for
from run_support import by_email, crashed, journal_rows
from run_support import sync_once as clean
from support import memory_sync

from syncd.config import SyncConfig
from syncd.plugins import Plugins
from syncd.testing.memory import app


def small_batches(tmp_path: Path, plugins: Plugins, extra: str = "") -> SyncConfig:
    return memory_sync(
        tmp_path,
        plugins,
        extra=f'winner = "a"\n{extra}',
        a_settings="batch_size = 1",
        b_settings="batch_size = 1",
    )


async def test_an_edit_after_a_crash_in_the_first_merge_wins_as_an_edit(
    tmp_path: Path, plugins: Plugins
) -> None:
    """a (the winner) had no titles; the first merge wrote b's titles into a and died before
    committing. The person then edits those titles in b: the edits are edits, not conflicts
    that a's copies (syncd's own half-finished writes) win."""
    a, b = app("mem-a"), app("mem-b")
    for i in range(4):
        a.add({"email": f"p{i}@x.com", "first_name": f"A{i}", "city": "Leeds"})
        b.add({"email": f"p{i}@x.com", "first_name": f"B{i}", "title": f"Title {i}"})
    sync = small_batches(tmp_path, plugins)
    state = tmp_path / "state"
    await crashed(sync, state, "sent", 2)  # two of a's updates sent, nothing committed
    written = [e for e, (_, r) in by_email("mem-a").items() if r.get("title")]
    assert len(written) == 2
    for email in written:
        b.edit(by_email("mem-b")[email][0], title=f"Edited {email}")
    await clean(sync, state)
    for email in written:
        assert by_email("mem-a")[email][1]["title"] == f"Edited {email}"
        assert by_email("mem-b")[email][1]["title"] == f"Edited {email}"
    # the winner still wins what was a conflict from the start
    assert all(r["first_name"] == f"A{e[1]}" for e, (_, r) in by_email("mem-b").items())
    assert journal_rows(state) == []


async def test_a_field_the_first_merge_found_agreed_and_edited_after_a_crash_is_an_edit(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "p@x.com", "first_name": "Ann", "city": "Leeds"})
    b.add({"email": "p@x.com", "first_name": "Ann", "city": "York"})
    sync = small_batches(tmp_path, plugins)
    state = tmp_path / "state"
    await crashed(sync, state, "journaled", 1)  # the city for b journaled, not sent
    b.edit(by_email("mem-b")["p@x.com"][0], first_name="Anna")
    await clean(sync, state)
    assert by_email("mem-a")["p@x.com"][1]["first_name"] == "Anna"
    assert by_email("mem-b")["p@x.com"][1]["city"] == "Leeds"  # the winner's, as planned


async def test_a_created_record_edited_after_a_crash_keeps_the_edit(
    tmp_path: Path, plugins: Plugins
) -> None:
    """The create went out, the process died before linking it; the person then fills a field
    on the created record. Found again by email, the record takes what was sent as its base:
    the new title travels, and nothing blanks it."""
    a = app("mem-a")
    a.add({"email": "new@x.com", "first_name": "Nia"})
    sync = small_batches(tmp_path, plugins)
    state = tmp_path / "state"
    await crashed(sync, state, "sent", 1)
    rid, record = by_email("mem-b")["new@x.com"]
    assert record["first_name"] == "Nia"
    app("mem-b").edit(rid, title="Chief", first_name="Nina")
    await clean(sync, state)
    for account in ("mem-a", "mem-b"):
        assert len(app(account).live()) == 1
        _, record = by_email(account)["new@x.com"]
        assert (record["title"], record["first_name"]) == ("Chief", "Nina")


async def test_syncd_s_own_deletion_tag_is_not_an_edit_that_revives_the_record(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for person in ({"email": "gone@x.com", "first_name": "Gus"}, {"email": "keep@x.com"}):
        a.add(dict(person))
        b.add(dict(person))
    sync = small_batches(tmp_path, plugins, 'deletions = "tag"')
    state = tmp_path / "state"
    await clean(sync, state)
    a.delete(by_email("mem-a")["gone@x.com"][0])
    await crashed(sync, state, "sent", 1)  # the tag reached b; its outcome was not committed
    assert "syncd-deleted" in (by_email("mem-b")["gone@x.com"][1]["tags"] or ())
    result = await clean(sync, state)
    assert result.counts["created_a"] == 0, "syncd's own tag was taken for an edit"
    assert set(by_email("mem-a")) == {"keep@x.com"}


async def test_an_archive_sent_before_a_crash_ends_archived(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for person in ({"email": "old@x.com", "first_name": "Olga"}, {"email": "keep@x.com"}):
        a.add(dict(person))
        b.add(dict(person))
    sync = small_batches(tmp_path, plugins, 'deletions = "archive"')
    state = tmp_path / "state"
    await clean(sync, state)
    a.delete(by_email("mem-a")["old@x.com"][0])
    await crashed(sync, state, "sent", 1)
    await clean(sync, state)
    store = store_for(state)
    store.open()
    try:
        states = sorted(link.state for link in store.load_links("mem"))
        assert states == ["archived", "linked"]
    finally:
        store.close()


async def test_the_journal_holds_what_is_sent_before_it_is_sent_and_nothing_after(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "p@x.com", "first_name": "Ann"})
    b.add({"email": "p@x.com", "first_name": "Ann", "title": "CEO"})
    sync = small_batches(tmp_path, plugins)
    state = tmp_path / "state"
    await crashed(sync, state, "journaled", 1)
    assert "title" not in app("mem-a").live()[by_email("mem-a")["p@x.com"][0]]
    assert journal_rows(state) == [("a", "update", '{"title":"CEO"}')]
    await clean(sync, state)
    assert journal_rows(state) == []


async def test_a_create_replayed_by_its_key_after_the_email_changed_is_linked_once(
    tmp_path: Path, plugins: Plugins
) -> None:
    """The create reached a and the process died; then someone changed the email of the new
    record in a, so the next run cannot find it by email. The create is sent again with its key,
    and the app answers with that same record (as apps with idempotency keys do) while the
    record is also new to the plan: it is linked once, and never copied back as a new person."""
    app("mem-b").add({"email": "p@x.com", "first_name": "Pat"})
    sync = small_batches(tmp_path, plugins)
    state = tmp_path / "state"
    await crashed(sync, state, "sent", 1)
    ((rid, _),) = by_email("mem-a").values()
    app("mem-a").edit(rid, email="pat@new.example")
    await clean(sync, state)
    await clean(sync, state)
    for account in ("mem-a", "mem-b"):
        assert list(by_email(account)) == ["pat@new.example"], app(account).live()
    assert (await clean(sync, state)).counts["updated_b"] == 0

"""The change journal kept as history (issue 15): what each write records, its reasons and
outcomes, retention (``history_days``, pruned by every run), and the journal off with 0 while
crash safety still works. In process over the in-memory apps; the database a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import memory_sync

from syncd.config import SyncConfig
from syncd.connector import WriteResult
from syncd.engine import executor
from syncd.engine.executor import CrashCounter, RunOptions, RunResult, run_sync
from syncd.plugins import Plugins
from syncd.store import Store
from syncd.store.history import change_json, query_changes
from syncd.testing.memory import MemoryConnector, app


async def sync_once(sync: SyncConfig, state: Path, full: bool = False) -> RunResult:
    store = Store(state)
    await store.aopen()
    try:
        result = await run_sync(sync, store, RunOptions(full=full))
    finally:
        await store.aclose()
    assert result.outcome == "success", result.message
    return result


async def changes(sync: SyncConfig, state: Path, **filters: object) -> list[dict[str, object]]:
    store = Store(state)
    await store.aopen()
    try:
        found, _ = await store.run(query_changes, store, sync.name, **filters)  # type: ignore[arg-type]
    finally:
        await store.aclose()
    return [change_json(c) for c in found]


def rows(state: Path, query: str = "SELECT count(*) FROM journal") -> list[tuple[object, ...]]:
    db = sqlite3.connect(state / "syncd.db")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def by_email(account: str) -> dict[str, str]:
    return {str(r["email"]): rid for rid, r in app(account).live().items()}


async def test_each_write_records_why_and_what_it_replaced(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "both@x.com", "title": "CEO", "city": "Leeds"})
    b.add({"email": "both@x.com", "title": "Boss", "phone": "+44 20 7946 0001"})
    a.add({"email": "new@x.com", "first_name": "Nia", "tags": "vip"})
    sync = memory_sync(
        tmp_path,
        plugins,
        extra="""
        winner = "a"
        [[rules.a-to-b]]
        if = [ { field = "email", op = "is_set" } ]
        then = [ { add_tag = "from-a" } ]
        """,
    )
    state = tmp_path / "state"
    await sync_once(sync, state)
    found = {(c["side"], c["kind"], c["email"]): c for c in await changes(sync, state)}
    update_b = found[("b", "update", "both@x.com")]
    why = {f["field"]: (f["before"], f["sent"], f["reason"]) for f in update_b["fields"]}
    assert why["title"] == ("Boss", "CEO", "conflict won by side a (winner = a)")
    assert why["city"] == (None, "Leeds", "merged from side a")
    update_a = found[("a", "update", "both@x.com")]
    assert [(f["field"], f["reason"]) for f in update_a["fields"]] == [
        ("phone", "merged from side b")
    ]
    create = found[("b", "create", "new@x.com")]
    assert create["reason"] == "created from side a" and create["outcome"] == "confirmed"
    reasons = {f["field"]: f["reason"] for f in create["fields"]}
    assert reasons["tags"] == "rule action (a-to-b)"  # vip, and the rule's from-a
    assert reasons["first_name"] == "created from side a"
    assert create["record_id"] == by_email("mem-b")["new@x.com"]
    assert {c["outcome"] for c in found.values()} == {"confirmed"}
    # what a crash would need is gone once settled: the history is the values
    assert rows(state, "SELECT count(*) FROM journal_hashes") == [(0,)]

    # a deletion the policy sends on is journaled with the policy as its reason
    sync = memory_sync(tmp_path, plugins, extra='winner = "a"\ndeletions = "archive"')
    a.delete(by_email("mem-a")["new@x.com"])
    run = await sync_once(sync, state, full=True)
    [archive] = await changes(sync, state, run_id=run.run_id)
    assert (archive["kind"], archive["side"], archive["email"]) == ("archive", "b", "new@x.com")
    assert archive["reason"] == "deletion policy archive (deleted on side a)"


async def test_what_the_app_stored_is_recorded(tmp_path: Path, plugins: Plugins) -> None:
    app("mem-a").add({"email": "p@x.com", "first_name": "ann"})
    sync = memory_sync(tmp_path, plugins)
    state = tmp_path / "state"
    original = MemoryConnector.create

    async def create(self: MemoryConnector, writes: list[object]) -> list[WriteResult]:
        results = await original(self, writes)  # type: ignore[arg-type]
        return [WriteResult(r.key, r.id, stored={"first_name": "Ann"}) for r in results]

    MemoryConnector.create = create  # type: ignore[method-assign]
    try:
        await sync_once(sync, state)
    finally:
        MemoryConnector.create = original  # type: ignore[method-assign]
    [create_row] = await changes(sync, state)
    [first] = [f for f in create_row["fields"] if f["field"] == "first_name"]
    assert (first["sent"], first["stored"]) == ("ann", "Ann")


async def test_the_journal_is_pruned_after_history_days(tmp_path: Path, plugins: Plugins) -> None:
    a = app("mem-a")
    for i in range(3):
        a.add({"email": f"p{i}@x.com"})
    sync = memory_sync(tmp_path, plugins, extra="history_days = 2")
    state = tmp_path / "state"
    await sync_once(sync, state)
    assert rows(state) == [(3,)]
    db = sqlite3.connect(state / "syncd.db")
    with db:
        db.execute("UPDATE journal SET created_at = datetime('now', '-3 days')")
        # an entry a crash left behind is never pruned: the next run needs it
        db.execute(
            "INSERT INTO journal (sync, side, kind, record_id, sent, hashes, created_at, outcome)"
            " VALUES ('mem', 'b', 'update', ?, '{}', '{}', datetime('now', '-9 days'),"
            " 'pending')",
            (by_email("mem-b")["p0@x.com"],),
        )
    db.close()
    a.add({"email": "late@x.com"})
    await sync_once(sync, state)
    kept = rows(state, "SELECT email, outcome FROM journal ORDER BY id")
    assert kept == [(None, "pending"), ("late@x.com", "confirmed")]


async def test_with_history_days_0_nothing_is_kept_and_a_crash_is_still_recognised(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for i in range(4):
        a.add({"email": f"p{i}@x.com", "first_name": f"A{i}", "city": "Leeds"})
        b.add({"email": f"p{i}@x.com", "first_name": f"B{i}", "title": f"Title {i}"})
    sync = memory_sync(
        tmp_path,
        plugins,
        extra='winner = "a"\nhistory_days = 0',
        a_settings="batch_size = 1",
        b_settings="batch_size = 1",
    )
    state = tmp_path / "state"

    class Crash(BaseException):
        pass

    def die() -> None:
        raise Crash()

    executor.crash_hook = CrashCounter(2, "sent", die)
    store = Store(state)
    await store.aopen()
    try:
        with pytest.raises(Crash):
            await run_sync(sync, store, RunOptions())
    finally:
        executor.crash_hook = None
        await store.aclose()
    # what a crash needs, and no value: the hashes of what was sent
    left = rows(state, "SELECT sent, detail, email, reason FROM journal")
    assert left and all(row == ("{}", None, None, None) for row in left)
    written = [
        e for e, rid in by_email("mem-a").items() if app("mem-a").records[rid].data.get("title")
    ]
    assert len(written) == 2
    for email in written:
        b.edit(by_email("mem-b")[email], title=f"Edited {email}")
    await sync_once(sync, state)
    for email in written:  # the edits made after the crash are edits (issue 21), with 0 too
        assert app("mem-a").records[by_email("mem-a")[email]].data["title"] == f"Edited {email}"
    assert rows(state) == [(0,)]
    app("mem-a").add({"email": "more@x.com"})
    await sync_once(sync, state)
    assert rows(state) == [(0,)]  # nothing written with 0


async def test_no_secret_gets_into_the_journal(tmp_path: Path, plugins: Plugins) -> None:
    from test_secrets import secrets_registered_here

    secret = "journal-secret-7c1d2e9f"
    with secrets_registered_here():
        app("mem-a").add({"email": "p@x.com", "notes": f"api key {secret} here"})
        app("mem-b").add({"email": "p@x.com", "notes": f"old {secret}"})
        sync = memory_sync(
            tmp_path, plugins, extra='winner = "a"', a_settings=f'token = "{secret}"'
        )
        state = tmp_path / "state"
        await sync_once(sync, state)
        assert rows(state) == [(1,)]
        raw = b"".join(p.read_bytes() for p in state.glob("syncd.db*"))
        assert secret.encode() not in raw
        [update] = await changes(sync, state)
        [notes] = update["fields"]
        assert notes["sent"] == "api key *** here" and notes["before"] == "old ***"


def test_history_days_and_on_mass_deletion_in_the_config(tmp_path: Path, plugins: Plugins) -> None:
    from support import write_sync

    from syncd.config import ConfigError, load_config

    (tmp_path / "syncd.toml").write_text("[defaults]\nhistory_days = 7\n")
    body = '[a]\nconnector = "memory"\naccount = "x"\n[b]\nconnector = "memory"\naccount = "y"\n'
    write_sync(tmp_path, "inherits", body)
    write_sync(tmp_path, "own", 'history_days = 0\ndeletions = "review"\n' + body)
    config = load_config(tmp_path, plugins)
    assert config.sync("inherits").history_days == 7
    assert config.sync("own").history_days == 0 and config.sync("own").deletions == "review"
    assert config.sync("own").on_mass_deletion == "stop"
    for line, message in (
        ("history_days = -1", "history_days: must be from 0 (off) to 3650, got -1"),
        ('history_days = "90"', "history_days: expected a whole number of days, got a string"),
        ('on_mass_deletion = "archive"', "on_mass_deletion: must be one of stop, review"),
    ):
        write_sync(tmp_path, "own", f"{line}\n{body}")
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path, plugins)
        assert message in str(caught.value), str(caught.value)

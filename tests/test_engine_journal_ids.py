"""The journal's entries settled by their row ids (issue 19, the engine's first merge).

On SQLite each journal row inserted knows its id. The answer to a new create, and the commit of a
record whose only open entries are the run's own, settle those entries by id instead of finding
them again by key or by record. What is settled, and how, must not change: a crashed run's entry
of the same record is still found by record (and superseded), an entry settled already is left
alone, and a settled entry's hashes are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from support import memory_sync

from syncd.engine.executor import RunOptions, run_sync
from syncd.plugins import Plugins
from syncd.store import JournalRow, Store
from syncd.testing.memory import app

#: a statement that settles journal entries found by key or by record (as the trace callback
#: gives it: with its values)
SETTLE_BY_KEY_OR_RECORD = re.compile(
    r"^\s*(?:UPDATE journal SET|DELETE FROM journal_hashes)\b.*\b(?:key|record_id) = (?:\?|')",
    re.IGNORECASE | re.DOTALL,
)


def sqlite_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "state")
    store.open()
    return store


async def test_a_first_merge_settles_its_entries_by_row_id(
    tmp_path: Path, plugins: Plugins
) -> None:
    a, b = app("mem-a"), app("mem-b")
    for i in range(5):
        a.add({"email": f"a{i}@x.com", "city": "Leeds"})
        b.add({"email": f"b{i}@x.com", "city": "York"})
        a.add({"email": f"both{i}@x.com", "title": "CEO"})
        b.add({"email": f"both{i}@x.com", "city": "Hull"})
    store = sqlite_store(tmp_path)
    try:
        statements: list[str] = []
        await store.run(lambda: store.db.connection().set_trace_callback(statements.append))
        result = await run_sync(memory_sync(tmp_path, plugins), store, RunOptions())
        await store.run(lambda: store.db.connection().set_trace_callback(None))
        assert result.outcome == "success", result.message
        assert result.counts["created_a"] == result.counts["created_b"] == 5
        assert result.counts["updated_a"] == result.counts["updated_b"] == 5
        # every write kept as history, settled, its crash hashes gone
        assert store.rows("SELECT outcome, count(*) FROM journal GROUP BY outcome") == [
            ("confirmed", 20)
        ]
        assert store.rows("SELECT count(*) FROM journal_hashes") == [(0,)]
        assert store.rows("SELECT count(*) FROM journal WHERE settled_at IS NULL") == [(0,)]
        # ... and none of them looked up again by key or by record to settle it
        by_lookup = [s for s in statements if SETTLE_BY_KEY_OR_RECORD.search(s)]
        assert by_lookup == []
        settled_by_id = [s for s in statements if re.search(r"WHERE (?:journal_)?id = \d", s)]
        assert settled_by_id
    finally:
        store.close()


def entry(side: str, rid: str, key: str, run_id: int) -> JournalRow:
    return JournalRow(side, "update", rid, "src", key, {"City": "Leeds"}, '{"t":{}}', run_id)


def test_settling_by_id_gives_the_outcomes_settling_by_record_gives(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path)
    try:
        mine = [entry("a", "r1", "k1", 7), entry("a", "r2", "k2", 7)]
        other_run = [entry("a", "r3", "k3", 6)]
        store.add_journal("s", other_run, 6)
        store.add_journal("s", mine, 7)
        assert all(row.id is not None for row in [*mine, *other_run])
        # k2's write failed (an answer), then the record was written again and committed
        store.db.execute_sql("UPDATE journal SET outcome = 'failed' WHERE key = 'k2'")
        ids = [row.id for row in [*mine, *other_run] if row.id is not None]
        store.commit_outcomes("s", run_id=7, journal_done_ids=ids)
        outcomes = dict(store.rows("SELECT key, outcome FROM journal"))
        # this run's pending entry is confirmed; a failed one, or another run's, superseded
        assert outcomes == {"k1": "confirmed", "k2": "superseded", "k3": "superseded"}
        assert store.rows("SELECT count(*) FROM journal_hashes") == [(0,)]
        stamps = store.rows("SELECT key, settled_at FROM journal ORDER BY key")
        assert all(stamp is not None for _, stamp in stamps)
        # settled already: left alone (its outcome and time stay)
        store.commit_outcomes("s", run_id=8, journal_done_ids=ids)
        assert dict(store.rows("SELECT key, outcome FROM journal")) == outcomes
        assert store.rows("SELECT key, settled_at FROM journal ORDER BY key") == stamps
    finally:
        store.close()


async def test_a_record_with_a_crashed_runs_entry_is_settled_by_record(
    tmp_path: Path, plugins: Plugins
) -> None:
    """An entry a crashed run left open for a record is not one of this run's ids: the record
    is settled by record, which supersedes it (the run's own entry is confirmed)."""
    a, b = app("mem-a"), app("mem-b")
    a_id = a.add({"email": "both@x.com", "city": "Leeds"})
    b.add({"email": "both@x.com", "city": "Leeds"})
    store = sqlite_store(tmp_path)
    try:
        sync = memory_sync(tmp_path, plugins)
        first = await run_sync(sync, store, RunOptions())
        assert first.outcome == "success", first.message
        (b_id,) = [rid for (rid,) in store.rows("SELECT b_id FROM link")]
        # a crashed run's update of b's record, never answered nor committed
        store.add_journal(
            sync.name,
            [JournalRow("b", "update", b_id, None, "crashed:b", {"city": "Hull"}, "{}", None)],
            None,
        )
        a.edit(a_id, city="York")
        result = await run_sync(sync, store, RunOptions())
        assert result.outcome == "success", result.message
        assert result.counts["updated_b"] == 1
        outcomes = store.rows(
            "SELECT key, outcome FROM journal WHERE record_id = ? AND kind = 'update' ORDER BY id",
            (b_id,),
        )
        assert outcomes[0] == ("crashed:b", "superseded")
        assert outcomes[-1][1] == "confirmed"
        assert store.rows(
            "SELECT count(*) FROM journal WHERE outcome IN ('pending', 'failed')"
        ) == [(0,)]
        assert store.rows("SELECT count(*) FROM journal_hashes") == [(0,)]
    finally:
        store.close()

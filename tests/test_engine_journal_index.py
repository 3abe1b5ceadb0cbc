"""What the change journal costs (issue 15): its lookup indexes hold only unsettled entries.

A journal entry is looked up by its key or its record only while it is unsettled (to settle it
once the app answered, or after a crash). Kept as history, settled entries must not stay in
those indexes: at 100,000 contacts a side each first merge would put 200,000 random keys in
them (migration ``0006_journal_open``). On both stores; on SQLite every statement a run sends
that finds journal entries by key or record is checked to use those indexes.
"""

from __future__ import annotations

import re
from pathlib import Path

from support import memory_sync

from syncd.engine.executor import RunOptions, run_sync
from syncd.plugins import Plugins
from syncd.store import JournalRow, Store
from syncd.testing.memory import app

#: a statement that finds journal entries by key or by record
BY_KEY_OR_RECORD = re.compile(
    r"\b(?:UPDATE journal SET|FROM journal WHERE)\b[^()]*\b(?:key|record_id) = ", re.IGNORECASE
)


def lookup_indexes(store: Store) -> dict[str, str]:
    """Each index of ``journal`` on key or record id, with its WHERE clause ("" if none)."""
    if store.shared:
        rows = store.db.execute_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'journal'"
        ).fetchall()
        found = {}
        for name, definition in rows:
            columns = definition.split(" USING ", 1)[1].split(")", 1)[0]
            if "key" in columns or "record_id" in columns:
                where = definition.split(" WHERE ", 1)
                found[name] = where[1] if len(where) > 1 else ""
        return found
    found = {}
    for _, name, _, _, _ in store.db.execute_sql("PRAGMA index_list(journal)").fetchall():
        columns = {row[2] for row in store.db.execute_sql(f"PRAGMA index_info({name})")}
        if columns & {"key", "record_id"}:
            sql = store.db.execute_sql(
                "SELECT sql FROM sqlite_master WHERE name = ?", (name,)
            ).fetchone()[0]
            where = (sql or "").split(" WHERE ", 1)
            found[name] = where[1] if len(where) > 1 else ""
    return found


async def test_the_journal_finds_writes_by_key_or_record_among_unsettled_ones_only(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    both_a = a.add({"email": "crashed@x.com", "city": "Ely"})
    b.add({"email": "crashed@x.com", "city": "Ely"})
    for i in range(6):
        a.add({"email": f"a{i}@x.com", "city": "Leeds"})
        b.add({"email": f"b{i}@x.com", "city": "York"})
        a.add({"email": f"both{i}@x.com", "title": "CEO"})
        b.add({"email": f"both{i}@x.com", "city": "Hull"})
    sync = memory_sync(tmp_path, plugins)
    statements: list[str] = []
    if not store.shared:
        # on the store's thread: its connection is its own
        await store.run(lambda: store.db.connection().set_trace_callback(statements.append))
    result = await run_sync(sync, store, RunOptions())
    assert result.outcome == "success", result.message
    assert result.counts["created_a"] == result.counts["created_b"] == 6
    assert result.counts["updated_a"] == result.counts["updated_b"] == 6
    # a crashed run's update of a linked record, never committed: the next run that writes the
    # record settles it by record (the run's own entries it settles by id, on SQLite)
    ((b_id,),) = store.rows("SELECT b_id FROM link WHERE a_id = ?", (both_a,))
    await store.run(
        store.add_journal,
        sync.name,
        [JournalRow("b", "update", b_id, both_a, "crashed:b", {"city": "Hull"}, "{}", None)],
        None,
    )
    a.edit(both_a, city="York")
    again = await run_sync(sync, store, RunOptions())
    assert again.outcome == "success", again.message
    assert again.counts["updated_b"] == 1

    # every write is kept as history, settled
    outcomes = store.rows("SELECT outcome, count(*) FROM journal GROUP BY outcome ORDER BY 1")
    assert outcomes == [("confirmed", 25), ("superseded", 1)]
    indexes = lookup_indexes(store)
    assert indexes, "the journal has no index by key or record"
    for name, where in indexes.items():
        assert re.search(r"outcome\b.*'pending'.*'failed'", where), (name, where)
    if store.shared:
        return
    await store.run(lambda: store.db.connection().set_trace_callback(None))
    lookups = [s for s in statements if BY_KEY_OR_RECORD.search(s)]
    kinds = {" ".join(s.split()[:3]) for s in lookups}
    # settling the record with a crashed run's entry, and its hashes
    assert {"UPDATE journal SET", "DELETE FROM journal_hashes"} <= kinds, kinds
    for sql in lookups:
        plan = " ".join(str(row[-1]) for row in store.db.execute_sql(f"EXPLAIN QUERY PLAN {sql}"))
        used = re.findall(r"(?:SEARCH|SCAN) journal USING (?:COVERING )?INDEX (\w+)", plan)
        assert used and set(used) <= set(indexes), (sql, plan)
        assert not re.search(r"SCAN journal\b(?! USING)", plan), (sql, plan)


def test_the_lookup_indexes_leave_out_settled_entries(tmp_path: Path) -> None:
    """Settled entries are not in the lookup indexes: they hold what is in flight or what a
    crash left (SQLite's own count of each index's entries, by ANALYZE)."""
    store = Store(tmp_path / "state")
    store.open()
    try:
        db = store.db
        db.cursor().executemany(
            "INSERT INTO journal (sync, side, kind, record_id, key, sent, hashes, created_at,"
            " outcome) VALUES ('s', 'a', 'update', ?, ?, '{}', '', '2026-12-01 00:00:00', ?)",
            [(f"r{i}", f"k{i}", "pending" if i % 10 == 0 else "confirmed") for i in range(50)],
        )
        db.execute_sql("ANALYZE")
        indexes = lookup_indexes(store)
        stats = dict(
            db.execute_sql("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'journal'").fetchall()
        )
    finally:
        store.close()
    assert indexes
    for name in indexes:
        assert int(stats[name].split()[0]) == 5, (name, stats[name])

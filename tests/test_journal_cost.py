"""What the change journal costs (issue 15): pruning it must not scan the whole journal."""

from __future__ import annotations

from pathlib import Path

from syncd.store import Store


def test_pruning_the_journal_uses_an_index_on_sync_and_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    store.open()
    try:
        plan = store.db.execute_sql(
            "EXPLAIN QUERY PLAN DELETE FROM journal WHERE sync = ? AND created_at < ?"
            " AND outcome NOT IN ('pending', 'failed')",
            ("s", "2026-01-01 00:00:00"),
        ).fetchall()
    finally:
        store.close()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "journal_sync_time" in detail and "(sync=? AND created_at<?)" in detail, detail

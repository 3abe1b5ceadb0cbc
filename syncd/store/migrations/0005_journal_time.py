"""An index for pruning the journal (issue 15's cost).

``Store.prune_journal`` deletes a sync's settled entries older than its ``history_days``
(``WHERE sync = ? AND created_at < ?``), on the first run of each process and hourly after.
Without an index on ``(sync, created_at)`` that was a scan of the whole journal, the longer the
history the slower. Plain SQL: the same index works on PostgreSQL.
"""

from typing import Any


def up(migrator: Any, db: Any) -> None:
    db.execute_sql("CREATE INDEX IF NOT EXISTS journal_sync_time ON journal (sync, created_at)")


def down(migrator: Any, db: Any) -> None:
    db.execute_sql("DROP INDEX IF EXISTS journal_sync_time")

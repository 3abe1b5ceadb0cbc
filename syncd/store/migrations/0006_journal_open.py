"""The journal's lookup indexes hold only the unsettled entries (issue 15's cost).

A write is found by its key (``journal_key``) or by its record (``journal_sync_side_record_id``)
only while it is unsettled: to settle it once the app answered, or, after a crash, to tell what
was sent. Kept as history, every settled entry stayed in both indexes too: at 100,000 contacts
a side a first merge put 200,000 random keys and record ids in them, each insert on a page of
its own well beyond SQLite's page cache (and written again to the WAL at each commit), which
made the first merge twice as slow with the journal on as off.

Both become partial indexes on the unsettled entries (``WHERE outcome IN ('pending',
'failed')``): they hold what a run has in flight and what a crash left behind, however long
the history. ``journal_unsettled`` (sync) is dropped: ``journal_open_record`` starts with the
sync and serves the same query. Every query that looks an entry up by key or record names the
same condition, so that both SQLite and PostgreSQL use these indexes.
"""

from typing import Any

OPEN = "outcome IN ('pending', 'failed')"


def up(migrator: Any, db: Any) -> None:
    for name in ("journal_key", "journal_sync_side_record_id", "journal_unsettled"):
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    db.execute_sql(f"CREATE INDEX journal_open_key ON journal (key) WHERE {OPEN}")
    db.execute_sql(
        f"CREATE INDEX journal_open_record ON journal (sync, side, record_id) WHERE {OPEN}"
    )


def down(migrator: Any, db: Any) -> None:
    for name in ("journal_open_key", "journal_open_record"):
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    db.execute_sql('CREATE INDEX "journal_key" ON "journal" ("key")')
    db.execute_sql(
        'CREATE INDEX "journal_sync_side_record_id" ON "journal" ("sync", "side", "record_id")'
    )
    db.execute_sql(f"CREATE INDEX journal_unsettled ON journal (sync) WHERE {OPEN}")

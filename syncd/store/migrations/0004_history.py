"""The journal kept as history (issue 15), and the review queue for deletions.

The journal of ``0002_journal`` held only writes whose outcome was not committed yet. It now
keeps every write for the sync's ``history_days``: per row, the record's email, why the write
was made, the values the target held before (as listed when planned) and what the app stored
where it said so, and the write's outcome (``pending`` until the app answers and the outcome
is committed; ``confirmed``; ``failed``, an update or archive the app refused or that never
answered; ``refused``, a create the app refused; ``superseded``, settled by a later run).
Only ``pending`` and ``failed`` rows are what a crash leaves behind (read by the next run).

``review`` holds the deletions that ``deletions = "review"`` (or ``on_mass_deletion =
"review"``) keeps back until a person approves or rejects them.

Plain types only: the same schema works on PostgreSQL.
"""

from typing import Any

from peewee import SQL, CharField, DateTimeField, IntegerField, Model, TextField


def up(migrator: Any, db: Any) -> None:
    # the entries a crash left before this migration are unsettled: outcome "pending"
    migrator.migrate(
        migrator.add_column("journal", "email", CharField(null=True)),
        migrator.add_column("journal", "reason", TextField(null=True)),
        migrator.add_column("journal", "detail", TextField(null=True)),
        migrator.add_column("journal", "stored", TextField(null=True)),
        migrator.add_column(
            "journal",
            "outcome",
            CharField(default="pending", constraints=[SQL("DEFAULT 'pending'")]),
        ),
        migrator.add_column("journal", "settled_at", DateTimeField(null=True)),
    )
    # only the unsettled entries (a crash's), which every run reads: a partial index stays
    # small however long the history, and settling an entry takes it out
    db.execute_sql(
        "CREATE INDEX journal_unsettled ON journal (sync) WHERE outcome IN ('pending', 'failed')"
    )
    # an undo and `syncd changes --run` read one run's entries
    db.execute_sql("CREATE INDEX journal_sync_run ON journal (sync, run_id)")
    # the hashes of an unsettled entry (what a crash needs), deleted when it is settled: the
    # history keeps only the values (an entry from before this migration keeps its own)
    db.execute_sql(
        "CREATE TABLE journal_hashes"
        " (journal_id INTEGER NOT NULL PRIMARY KEY, hashes TEXT NOT NULL)"
    )

    class Review(Model):
        sync = CharField()
        link_id = IntegerField()
        deleted_side = CharField()
        deleted_id = CharField(null=True)
        survivor_side = CharField()
        survivor_id = CharField(null=True)
        email = CharField(null=True)
        action = CharField()
        why = TextField()
        state = CharField(default="held")
        run_id = IntegerField(null=True)
        detected_at = DateTimeField()
        decided_at = DateTimeField(null=True)
        note = TextField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "review"
            indexes = ((("sync", "state"), False), (("sync", "link_id"), False))

    db.create_tables([Review])


def down(migrator: Any, db: Any) -> None:
    db.execute_sql("DROP TABLE IF EXISTS review")
    db.execute_sql("DROP TABLE IF EXISTS journal_hashes")
    for index in ("journal_unsettled", "journal_sync_run"):
        db.execute_sql(f"DROP INDEX IF EXISTS {index}")
    migrator.migrate(
        *(
            migrator.drop_column("journal", column)
            for column in ("email", "reason", "detail", "stored", "outcome", "settled_at")
        )
    )

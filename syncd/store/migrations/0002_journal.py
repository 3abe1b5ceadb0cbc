"""The journal: what syncd sent, per field, committed before the request goes out.

One row per outgoing write (an update, a create or an archive). A row whose outcome was never
committed (the process died in between) tells the next run which values on the target are
syncd's own, so that a person's later edit on the other side is an edit, not a conflict with
syncd's half-finished write (rule 4). Rows are deleted once the outcome is committed.

Models are frozen copies, independent of syncd.store.models, as peewee's migration runner asks.
Plain types only (text, integers, a time stamp): the same schema works on PostgreSQL.
"""

from typing import Any

from peewee import CharField, DateTimeField, IntegerField, Model, TextField


def up(migrator: Any, db: Any) -> None:
    class Journal(Model):
        sync = CharField()
        run_id = IntegerField(null=True)
        side = CharField()
        kind = CharField()
        record_id = CharField(null=True)
        source_id = CharField(null=True)
        key = CharField(null=True)
        sent = TextField()
        hashes = TextField()
        created_at = DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "journal"
            indexes = (
                (("sync", "side", "record_id"), False),
                (("key",), False),
            )

    db.create_tables([Journal])


def down(migrator: Any, db: Any) -> None:
    db.execute_sql("DROP TABLE IF EXISTS journal")

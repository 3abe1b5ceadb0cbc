"""What "why did this contact not sync?" needs besides the record issues.

* ``link.linked_run``: the run that made the link (``syncd explain`` says "linked since run N");
  ``NULL`` for links made before this migration.
* ``record_decision``: the last decision about a record that is neither synced nor an issue:
  ``filtered`` (no rule of its direction matched, so it did not travel), with the reason in
  words. One row per record, replaced by the next decision and deleted once the record syncs.

Models are frozen copies, independent of syncd.store.models, as peewee's migration runner asks.
"""

from typing import Any

from peewee import CharField, DateTimeField, IntegerField, Model, TextField
from playhouse.migrate import migrate


def up(migrator: Any, db: Any) -> None:
    class RecordDecision(Model):
        sync = CharField()
        side = CharField()
        record_id = CharField()
        kind = CharField()
        email = CharField(null=True)
        reason = TextField()
        run_id = IntegerField(null=True)
        decided_at = DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "record_decision"
            indexes = ((("sync", "side", "record_id"), True),)

    db.create_tables([RecordDecision])
    migrate(migrator.add_column("link", "linked_run", IntegerField(null=True)))


def down(migrator: Any, db: Any) -> None:
    db.execute_sql("DROP TABLE IF EXISTS record_decision")
    migrate(migrator.drop_column("link", "linked_run"))

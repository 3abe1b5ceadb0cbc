"""The first schema: sync state, links with their bases, runs, record issues, pending writes.

Models are frozen copies, independent of syncd.store.models, as peewee's migration runner asks.
"""

from typing import Any

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    IntegerField,
    Model,
    TextField,
)


def up(migrator: Any, db: Any) -> None:
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class SyncState(Base):
        sync = CharField(primary_key=True)
        initialized_at = DateTimeField(null=True)
        cursor_a = TextField(null=True)
        cursor_b = TextField(null=True)
        last_full_a = DateTimeField(null=True)
        last_full_b = DateTimeField(null=True)
        signature = TextField(null=True)

    class Link(Base):
        sync = CharField()
        a_id = CharField(null=True)
        b_id = CharField(null=True)
        state = CharField(default="linked")
        base_a = TextField(null=True)
        base_b = TextField(null=True)
        fp_a = CharField(null=True)
        fp_b = CharField(null=True)
        updated_at = DateTimeField()

        class Meta:
            indexes = (
                (("sync", "a_id"), True),
                (("sync", "b_id"), True),
            )

    class Run(Base):
        sync = CharField(index=True)
        started_at = DateTimeField()
        finished_at = DateTimeField(null=True)
        outcome = CharField(default="running")
        dry_run = BooleanField(default=False)
        trigger = CharField(default="cli")
        pid = IntegerField(null=True)
        counts = TextField(default="{}")
        message = TextField(null=True)

    class RecordIssue(Base):
        sync = CharField()
        side = CharField()
        record_id = CharField()
        kind = CharField()
        email = CharField(null=True)
        reason = TextField()
        first_seen = DateTimeField()
        last_seen = DateTimeField()
        attempts = IntegerField(default=1)
        next_attempt_at = DateTimeField(null=True)
        run_id = IntegerField(null=True)

        class Meta:
            indexes = ((("sync", "side", "record_id"), True),)

    class PendingWrite(Base):
        sync = CharField()
        side = CharField()
        source_id = CharField()
        key = CharField(unique=True)
        email = CharField(null=True)
        created_at = DateTimeField()
        run_id = IntegerField(null=True)

        class Meta:
            indexes = ((("sync", "side", "source_id"), True),)

    class KeyValue(Base):
        key = CharField(primary_key=True)
        value = TextField()
        updated_at = DateTimeField()

    db.create_tables([SyncState, Link, Run, RecordIssue, PendingWrite, KeyValue])

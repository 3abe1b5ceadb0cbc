"""Claims: which process runs a sync when several daemons share one store (PostgreSQL).

One row per sync: its holder (empty when free), a fencing token that goes up with every claim,
when it was claimed and when its lease expires (see :mod:`syncd.store.claims`). On SQLite the
table exists too (the same schema on both engines) but runs are kept apart by ``flock``.

Models are frozen copies, independent of syncd.store.models, as peewee's migration runner asks.
"""

from typing import Any

from peewee import BigIntegerField, CharField, DateTimeField, Model


def up(migrator: Any, db: Any) -> None:
    class SyncClaim(Model):
        sync = CharField(primary_key=True)
        holder = CharField(default="")
        token = BigIntegerField(default=0)
        claimed_at = DateTimeField(null=True)
        expires_at = DateTimeField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "sync_claim"

    db.create_tables([SyncClaim])


def down(migrator: Any, db: Any) -> None:
    db.execute_sql("DROP TABLE IF EXISTS sync_claim")

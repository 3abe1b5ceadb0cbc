"""OAuth tokens and shared rate budgets in the store (issue 17: several daemons, one store).

* ``oauth_token``: one row per token set (``name``: ``xero-<sync>-<side>``, as the token file of
  a SQLite installation is named), its ``data`` a Fernet token (the JSON of the token set,
  encrypted with ``[store] token_key``), a ``version`` that goes up with every write, and who
  wrote it last. Used on PostgreSQL only; on SQLite the tokens stay files in the state directory
  (the table exists there too: the same schema on both engines).
* ``rate_budget``: one row per vendor account (``xero:<tenant id>``): the start times of the
  calls in the current window, open (in flight) or answered (with when they leave it), and a
  pause an app asked for, shared by every daemon (see :mod:`syncd.store.budget`).

Models are frozen copies, independent of syncd.store.models, as peewee's migration runner asks.
"""

from typing import Any

from peewee import BigIntegerField, CharField, DateTimeField, FloatField, Model, TextField


def up(migrator: Any, db: Any) -> None:
    class OauthToken(Model):
        name = CharField(primary_key=True)
        sync = CharField()
        side = CharField()
        data = TextField()
        version = BigIntegerField(default=1)
        updated_at = DateTimeField(null=True)
        updated_by = CharField(default="")

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "oauth_token"

    class RateBudget(Model):
        account = CharField(primary_key=True)
        calls = TextField(default="")
        paused_until = FloatField(default=0.0)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "rate_budget"

    db.create_tables([OauthToken, RateBudget])


def down(migrator: Any, db: Any) -> None:
    db.execute_sql("DROP TABLE IF EXISTS rate_budget")
    db.execute_sql("DROP TABLE IF EXISTS oauth_token")

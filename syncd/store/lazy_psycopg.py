"""peewee without psycopg until a PostgreSQL store is opened.

peewee imports psycopg when it is imported itself, and psycopg's binary package maps its own
libpq and OpenSSL: about 10 MB of a daemon's resident memory and a good part of its start-up, for
a driver an SQLite store never uses. Importing this module imports peewee with psycopg hidden
(``sys.modules["psycopg"] = None`` makes ``import psycopg`` fail, as peewee expects when it is
not installed), and :func:`psycopg_for_peewee` gives peewee the driver once a PostgreSQL store
needs it: the same module globals and class attributes peewee sets when it finds psycopg at
import. (``playhouse.postgres_ext``, imported by ``playhouse.migrations``, is left without its
hstore support, which syncd does not use.)

It is imported by :mod:`syncd.store` before anything imports peewee. Whoever imported psycopg
before (a test, a plugin) gets the ordinary peewee.
"""

from __future__ import annotations

import sys
from types import ModuleType

if "peewee" not in sys.modules and "psycopg" not in sys.modules:
    sys.modules["psycopg"] = None  # type: ignore[assignment]
    try:
        import peewee  # noqa: F401  (imported here, without psycopg)
        import playhouse.migrations  # noqa: F401  (its postgres_ext imports psycopg too)
    finally:
        if sys.modules.get("psycopg", "") is None:
            del sys.modules["psycopg"]


def psycopg_for_peewee() -> ModuleType:
    """psycopg, imported now if it is not, and handed to peewee if peewee went without it."""
    import peewee
    import psycopg
    from psycopg.pq import TransactionStatus
    from psycopg.types.json import Json, Jsonb

    if getattr(peewee, "psycopg", None) is None:
        peewee.psycopg = psycopg  # type: ignore[attr-defined]
        peewee.TransactionStatus = TransactionStatus  # type: ignore[attr-defined]
        peewee.Json_pg3 = Json  # type: ignore[attr-defined]
        peewee.Jsonb_pg3 = Jsonb  # type: ignore[attr-defined]
        adapter = peewee.Psycopg3Adapter
        adapter.txn_idle = TransactionStatus.IDLE
        adapter.txn_inerror = TransactionStatus.INERROR
        adapter.txn_unknown = TransactionStatus.UNKNOWN
    return psycopg

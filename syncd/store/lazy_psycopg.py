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

import importlib.util
import sys
from types import ModuleType

#: what ``[store] url = "postgresql://..."`` needs and syncd does not install by default
POSTGRESQL_EXTRA = ("psycopg", "cryptography")


class MissingExtra(RuntimeError):
    """An optional dependency is not installed: the message names the extra that brings it."""


def postgresql_missing() -> str | None:
    """The one-line reason a PostgreSQL store cannot be used here, or None when it can: its
    driver and Fernet come with ``syncd[postgresql]`` (not imported here, only looked for)."""
    missing = [name for name in POSTGRESQL_EXTRA if _absent(name)]
    if not missing:
        return None
    return (
        f"a PostgreSQL store needs {' and '.join(missing)}, which this installation lacks:"
        " install syncd's postgresql extra (pip install 'syncd[postgresql]'; the container"
        " image: docker build --build-arg EXTRAS=postgresql)"
    )


def require_postgresql() -> None:
    """Raises :class:`MissingExtra` (one line, naming the extra) without the PostgreSQL extra."""
    reason = postgresql_missing()
    if reason is not None:
        raise MissingExtra(reason)


def _absent(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


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
    require_postgresql()
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

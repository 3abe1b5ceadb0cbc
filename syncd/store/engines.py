"""Opening the status database on either engine: SQLite (the default) or PostgreSQL.

``[store] url`` in ``syncd.toml`` chooses PostgreSQL (``postgresql://user@host:5432/syncd``);
without it the store is ``<state_dir>/syncd.db`` exactly as before. The password comes from
``[store] password`` (a secret reference), or libpq's own ``PG*`` environment variables and
``~/.pgpass``; it never appears in the URL the store prints.

The store's queries are written once with ``?`` placeholders. On PostgreSQL every cursor
(psycopg 3) rewrites them to ``%s`` (:class:`QmarkCursor`), so peewee's own queries and the
store's hand-written ones run unchanged on both engines.

Fencing (see :mod:`syncd.store.claims`): :class:`FencedPostgresqlDatabase` checks, inside every
transaction that writes on behalf of a claimed sync and just before its ``COMMIT``, that the
claim is still this process's (same holder, same fencing token, lease not expired by the
database's clock) and extends the lease, with the claim row locked until the commit so that
no successor can take the claim in between. A statement outside a transaction (peewee's
autocommit) is put in one for that check.
"""

from __future__ import annotations

import contextvars
import functools
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from peewee import Database, PostgresqlDatabase, SqliteDatabase

from syncd.store.lazy_psycopg import psycopg_for_peewee

DEFAULT_LEASE = 30.0
#: on PostgreSQL, the store's threads, each with its own connection: one daemon's syncs commit
#: side by side (one connection would queue every sync's commits, each a round trip and a WAL
#: flush, behind each other: 30 small syncs waited on it, not on their apps)
PG_STORE_THREADS = 4
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


class ClaimLost(Exception):
    """This process no longer holds the sync's claim: another daemon may have taken it over,
    so nothing more may be committed for it. (A :class:`~syncd.store.StoreError` in effect.)"""

    def __init__(self, sync: str) -> None:
        self.sync = sync
        super().__init__(
            f"sync {sync!r}: this process lost its claim on the sync (lease expired or taken "
            "over by another daemon); nothing more is committed"
        )


@dataclass(frozen=True)
class Fence:
    sync: str
    holder: str
    token: int


#: the sync whose claim the code running now writes under (set by the run that holds it)
FENCE: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("syncd_fence", default=None)


@dataclass(frozen=True)
class StoreSettings:
    """``[store]`` of ``syncd.toml``."""

    url: str | None = None
    password: str | None = None
    lease_timeout: float = DEFAULT_LEASE
    daemon_id: str | None = None
    #: PostgreSQL: how many connections (and store threads) one process uses
    connections: int = PG_STORE_THREADS
    #: the Fernet key(s) OAuth tokens are encrypted with in a PostgreSQL store (syncd.store.tokens)
    token_key: str | None = None

    def __repr__(self) -> str:
        # the password and the key stay out of every repr
        return (
            f"StoreSettings(url={safe_url(self.url) if self.url else None!r}, "
            f"lease_timeout={self.lease_timeout}, daemon_id={self.daemon_id!r})"
        )

    @property
    def postgres(self) -> bool:
        return is_postgres_url(self.url)

    def holder(self) -> str:
        """This process's name in claims: the configured daemon id (or the host name), the pid
        and a random suffix (a restarted process with a recycled pid is someone else)."""
        base = self.daemon_id or socket.gethostname()
        return f"{base}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0] in ("postgresql", "postgres")


def safe_url(url: str) -> str:
    """The URL without any password (what logs and errors may show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = parts.username or ""
    netloc = f"{user}@{host}" if user else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def connect_kwargs(url: str, password: str | None) -> dict[str, Any]:
    """psycopg's keywords for a URL (libpq parses it, and fills in PG* variables / .pgpass)."""
    kwargs: dict[str, Any] = {"conninfo": url}
    if password:
        kwargs["password"] = password
    return kwargs


@functools.lru_cache(maxsize=512)
def qmark_to_format(query: str) -> str:
    if "?" not in query:
        return query
    return query.replace("%", "%%").replace("?", "%s")


def _qmark_cursor_class() -> type:
    import psycopg

    class QmarkCursor(psycopg.Cursor):
        """Accepts the store's ``?`` placeholders (peewee's own queries use ``%s``)."""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            if isinstance(query, str):
                query = qmark_to_format(query)
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            if isinstance(query, str):
                query = qmark_to_format(query)
            return super().executemany(query, params_seq, **kwargs)

    return QmarkCursor


class FencedPostgresqlDatabase(PostgresqlDatabase):
    """PostgreSQL through psycopg 3, with ``?`` placeholders and the claim check at commit."""

    def __init__(self, url: str, password: str | None = None, lease_timeout: float = 30.0):
        self.url = url
        self.lease_timeout = lease_timeout
        psycopg_for_peewee()  # before peewee picks its driver
        # the name is peewee's; the connection is made from the URL (see _connect)
        super().__init__("syncd", prefer_psycopg3=True, autoconnect=True)
        self._url_kwargs = connect_kwargs(url, password)
        #: every thread's connection (peewee keeps one per thread), closed together
        self._connections: list[Any] = []
        self._connections_lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(**self._url_kwargs, autocommit=True)
        conn.cursor_factory = _qmark_cursor_class()
        # no server-side prepared statements: a plan cached while a table was empty (a first
        # merge starts with none) would scan it whole once it holds 100,000 links
        conn.prepare_threshold = None
        # a frozen or partitioned process must not hold a claim row locked forever
        idle = max(1, int(self.lease_timeout * 1000))
        conn.execute(f"SET idle_in_transaction_session_timeout = {idle}")
        conn.execute("SET TIME ZONE 'UTC'")
        with self._connections_lock:
            self._connections = [c for c in self._connections if not c.closed]
            self._connections.append(conn)
        return conn

    def close_all(self) -> None:
        """Close this thread's connection and every other thread's (the store is closing)."""
        if not self.is_closed():
            self.close()
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            if not conn.closed:
                conn.close()

    def commit(self) -> None:
        fence = FENCE.get()
        if fence is not None:
            self._check_fence(fence)
        super().commit()

    def _check_fence(self, fence: Fence) -> None:
        # checks the claim and, while it holds, extends the lease (a busy run keeps its claim
        # even when its heartbeat thread is slow); the row stays locked until the commit
        row = self.cursor().execute(
            "UPDATE sync_claim SET expires_at = clock_timestamp() + make_interval(secs => %s)"
            " WHERE sync = %s AND holder = %s AND token = %s AND expires_at > clock_timestamp()"
            " RETURNING 1",
            (self.lease_timeout * 2 / 3, fence.sync, fence.holder, fence.token),
        )
        if row.fetchone() is None:
            raise ClaimLost(fence.sync)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if FENCE.get() is not None and not self.in_transaction() and _WRITE.match(sql):
            with self.atomic():
                return super().execute_sql(sql, params)
        return super().execute_sql(sql, params)


def make_database(state_path: str, settings: StoreSettings) -> Database:
    if settings.postgres:
        assert settings.url is not None
        return FencedPostgresqlDatabase(settings.url, settings.password, settings.lease_timeout)
    return SqliteDatabase(
        state_path,
        pragmas={
            "journal_mode": "wal",
            "synchronous": 2,  # FULL
            "foreign_keys": 1,
            "busy_timeout": 15000,
        },
        check_same_thread=False,
    )

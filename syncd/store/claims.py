"""Which process runs a sync, when several daemons share one PostgreSQL store.

Chosen mechanism: a **lease row with a fencing token** (table ``sync_claim``), not advisory
locks. A session advisory lock lives as long as its connection: a process frozen by SIGSTOP, or
behind a network partition, keeps its TCP connection and so its lock until TCP keep-alive gives
up (minutes to hours), and an advisory lock carries no token that a commit could be checked
against. A lease row expires by the *database's* clock (no clock skew between machines), can
be taken over by anyone once expired, and carries a token that goes up with every claim.

* Claim: ``SELECT … FOR UPDATE SKIP LOCKED`` on the sync's row; free (no holder, or lease
  expired) → holder := us, token := token + 1, expires_at := now + lease_timeout. A row locked
  by its holder's commit in progress, or a live lease, is "busy" (:class:`SyncBusy`).
* Heartbeat: one thread per process, on its own connection, renews every held lease every
  lease_timeout / 4 for 2/3 of lease_timeout — only while it has not expired (an expired
  lease is never revived). Daemons that found a sync busy try again every lease_timeout / 3,
  so a dead holder's syncs move within lease_timeout.
* Fencing: every commit made for a claimed sync checks, in the same transaction, that the row
  still names us with our token and an unexpired lease (extending it), and keeps it locked
  until the commit (:class:`syncd.store.engines.FencedPostgresqlDatabase`). A process that wakes up
  after its lease expired commits nothing more: its commits raise :class:`ClaimLost`.
* Release: holder cleared at the end of a run; a killed process's lease simply expires, so a
  sync moves to another daemon within ``lease_timeout`` (plus that daemon's next attempt).

* Presence (balanced claiming): a daemon also keeps a row of its own, ``sync`` =
  ``daemon:<holder>`` (a colon: no sync has such a name), renewed by the same heartbeat, whose
  ``token`` is its ``[daemon] max_concurrent_runs`` (0: no cap). :meth:`Claims.peers` reads
  every live daemon with how many syncs it holds now, so that a daemon can leave a due sync
  to a less-loaded live peer (:mod:`syncd.daemon.scheduler`). A daemon stopped cleanly
  deletes its row; a killed one's expires with its leases.

Connections have ``idle_in_transaction_session_timeout`` = lease_timeout, so even a process
frozen in the middle of a transaction cannot hold a claim row locked for longer than that.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.logs import get_logger
from syncd.store.engines import ClaimLost, Fence, StoreSettings, connect_kwargs
from syncd.store.lock import SyncBusy

log = get_logger("syncd.store")


#: the ``sync`` of a daemon's presence row: a colon, which no sync's name has
PRESENCE = "daemon:"


@dataclass(frozen=True)
class Peer:
    """A live daemon on the shared store: how many syncs it holds now, and its cap."""

    holder: str
    load: int
    cap: int

    @property
    def full(self) -> bool:
        return bool(self.cap) and self.load >= self.cap


@dataclass(frozen=True)
class ClaimInfo:
    sync: str
    holder: str
    since: datetime | None
    token: int


class Claims:
    """The claims one process holds, and the heartbeat that keeps them alive."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.holder = settings.holder()
        self.lease = settings.lease_timeout
        #: a lease runs for two thirds of lease_timeout, renewed every quarter of it; others
        #: try again every third: a dead holder's sync moves within lease_timeout
        self.term = settings.lease_timeout * 2 / 3
        self.held: dict[str, int] = {}
        self.lost: set[str] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        #: a daemon's presence row is kept (see :meth:`announce`); its cap of runs
        self._present = False
        self._cap = 0

    # --- on the store's thread, with its connection -------------------------------------------

    def acquire(self, db: Any, sync: str) -> Fence:
        with db.atomic():
            db.execute_sql(
                "INSERT INTO sync_claim (sync, holder, token) VALUES (?, '', 0)"
                " ON CONFLICT (sync) DO NOTHING",
                (sync,),
            )
            row = db.execute_sql(
                "SELECT holder, token, expires_at > clock_timestamp() FROM sync_claim"
                " WHERE sync = ? FOR UPDATE SKIP LOCKED",
                (sync,),
            ).fetchone()
            if row is None:
                raise SyncBusy(sync, self._holder_of(db, sync))
            holder, token, live = row
            if holder and live:
                raise SyncBusy(sync, holder)
            token = int(token) + 1
            db.execute_sql(
                "UPDATE sync_claim SET holder = ?, token = ?, claimed_at = clock_timestamp(),"
                " expires_at = clock_timestamp() + make_interval(secs => ?) WHERE sync = ?",
                (self.holder, token, self.term, sync),
            )
        with self._mutex:
            self.held[sync] = token
            self.lost.discard(sync)
        self._start_heartbeat()
        return Fence(sync, self.holder, token)

    def _holder_of(self, db: Any, sync: str) -> str:
        # the row is locked by its holder's commit: say who, without waiting for the lock
        row = db.execute_sql("SELECT holder FROM sync_claim WHERE sync = ?", (sync,)).fetchone()
        return str(row[0]) if row and row[0] else "another daemon"

    def release(self, db: Any, fence: Fence) -> None:
        with self._mutex:
            if self.held.get(fence.sync) == fence.token:
                del self.held[fence.sync]
            self.lost.discard(fence.sync)
        with contextlib.suppress(Exception):
            db.execute_sql(
                "UPDATE sync_claim SET holder = '', expires_at = NULL"
                " WHERE sync = ? AND holder = ? AND token = ?",
                (fence.sync, fence.holder, fence.token),
            )

    def is_lost(self, sync: str) -> bool:
        with self._mutex:
            return sync in self.lost

    @staticmethod
    def live(db: Any) -> dict[str, ClaimInfo]:
        """Every sync some process holds now (any daemon, any machine)."""
        rows = db.execute_sql(
            "SELECT sync, holder, claimed_at, token FROM sync_claim"
            " WHERE holder <> '' AND expires_at > clock_timestamp()"
            " AND sync NOT LIKE ?",
            (PRESENCE + "%",),
        ).fetchall()
        return {r[0]: ClaimInfo(r[0], r[1], r[2], int(r[3])) for r in rows}

    # --- presence: which daemons are alive, and how loaded --------------------------------------

    def announce(self, db: Any, cap: int = 0) -> None:
        """Make this process known as a live daemon (renewed by the heartbeat from now on), with
        its cap of concurrent runs (0: none)."""
        self._write_presence(db.execute_sql, "?", cap)
        # the rows of daemons killed long ago (a stopped one deletes its own)
        db.execute_sql(
            "DELETE FROM sync_claim WHERE sync LIKE ?"
            " AND expires_at < clock_timestamp() - make_interval(hours => 1)",
            (PRESENCE + "%",),
        )
        with self._mutex:
            self._present, self._cap = True, cap
        self._start_heartbeat()

    def _write_presence(self, execute: Any, mark: str, cap: int) -> None:
        execute(
            "INSERT INTO sync_claim (sync, holder, token, claimed_at, expires_at)"
            f" VALUES ({mark}, {mark}, {mark}, clock_timestamp(),"
            f" clock_timestamp() + make_interval(secs => {mark}))"
            " ON CONFLICT (sync) DO UPDATE SET holder = EXCLUDED.holder,"
            " token = EXCLUDED.token, expires_at = EXCLUDED.expires_at",
            (PRESENCE + self.holder, self.holder, cap, self.term),
        )

    @staticmethod
    def holder_of(db: Any, sync: str) -> str | None:
        """Who holds ``sync`` now (a live lease), if anyone."""
        row = db.execute_sql(
            "SELECT holder FROM sync_claim WHERE sync = ? AND holder <> ''"
            " AND expires_at > clock_timestamp()",
            (sync,),
        ).fetchone()
        return str(row[0]) if row else None

    def peers(self, db: Any) -> dict[str, Peer]:
        """Every live daemon (this one included): how many syncs it holds now, and its cap."""
        rows = db.execute_sql(
            "SELECT p.holder, p.token, (SELECT count(*) FROM sync_claim c"
            " WHERE c.holder = p.holder AND c.sync NOT LIKE ?"
            " AND c.expires_at > clock_timestamp())"
            " FROM sync_claim p WHERE p.sync LIKE ? AND p.expires_at > clock_timestamp()",
            (PRESENCE + "%", PRESENCE + "%"),
        ).fetchall()
        return {str(r[0]): Peer(str(r[0]), int(r[2]), int(r[1])) for r in rows}

    # --- the heartbeat ------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        with self._mutex:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._beat, name="syncd-claims", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        interval = max(0.05, self.lease / 4)
        while not self._stop.wait(interval):
            with self._mutex:
                held = dict(self.held)
                present, cap = self._present, self._cap
            if not held and not present:
                continue
            try:
                if present:
                    self._connection()
                    self._write_presence(self._conn.execute, "%s", cap)
                renewed = self._renew(held) if held else {}
            except Exception as exc:  # the database is unreachable: the leases run out
                log.warning("claim heartbeat failed", error=type(exc).__name__)
                self._drop_connection()
                continue
            with self._mutex:
                for sync, token in held.items():
                    if renewed.get(sync) != token and self.held.get(sync) == token:
                        self.lost.add(sync)
                        log.warning("claim lost", sync=sync)

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                **connect_kwargs(self.settings.url or "", self.settings.password),
                autocommit=True,
                connect_timeout=max(1, int(self.lease / 3)),
            )
        return self._conn

    def _renew(self, held: dict[str, int]) -> dict[str, int]:
        self._connection()
        rows = self._conn.execute(
            "UPDATE sync_claim SET expires_at = clock_timestamp() + make_interval(secs => %s)"
            " WHERE holder = %s AND sync = ANY(%s) AND expires_at > clock_timestamp()"
            " RETURNING sync, token",
            (self.term, self.holder, list(held)),
        ).fetchall()
        return {str(sync): int(token) for sync, token in rows}

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._present:
            # stopped cleanly: the peers stop leaving syncs to this daemon at once
            with contextlib.suppress(Exception):
                self._connection().execute(
                    "DELETE FROM sync_claim WHERE sync = %s", (PRESENCE + self.holder,)
                )
        self._drop_connection()


__all__ = ["PRESENCE", "ClaimInfo", "ClaimLost", "Claims", "Peer"]

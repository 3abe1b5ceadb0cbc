"""The status database: SQLite (or PostgreSQL) through peewee, on one dedicated thread.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed outcome survives power loss),
foreign keys on and a busy timeout, and the schema is kept by peewee's migration runner. Every
call goes through :meth:`Store.run`, which executes it on the store's single worker thread, so
the event loop is never blocked by the database and there is exactly one writer per process.

With ``[store] url = "postgresql://…"`` the same models, migrations and queries run on
PostgreSQL (psycopg 3), shared by several daemons: see :mod:`syncd.store.engines` (opening,
placeholders, fencing) and :mod:`syncd.store.claims` (which process runs which sync).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

# peewee without psycopg (libpq, OpenSSL) until a PostgreSQL store is opened
import syncd.store.lazy_psycopg  # noqa: F401  # isort: skip
from playhouse.migrations import Runner

from syncd.redact import redact
from syncd.store import pgbulk
from syncd.store.budget import SharedBudgets
from syncd.store.claims import ClaimInfo, Claims
from syncd.store.engines import (
    FENCE,
    ClaimLost,
    Fence,
    FencedPostgresqlDatabase,
    StoreSettings,
    make_database,
    safe_url,
)
from syncd.store.lock import SyncLock
from syncd.store.migrate_lock import migration_lock
from syncd.store.models import (
    ALL_MODELS,
    Journal,
    KeyValue,
    Link,
    PendingWrite,
    RecordDecision,
    RecordIssue,
    Review,
    Run,
    SyncState,
    database,
)
from syncd.store.tokens import TokenVault, check_stored_tokens

P = ParamSpec("P")
T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
#: the advisory lock daemons starting together on one PostgreSQL take while migrating
MIGRATION_LOCK = 0x73796E6364  # "syncd"
DB_NAME = "syncd.db"


class StoreError(Exception):
    """The database cannot be used (locked, corrupt, disk full). Aborts the run (rule 6)."""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# one encoder: json.dumps with non-default options builds a new one on every call
_BASE_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode_base(base: dict[str, str] | None) -> str | None:
    """A base (field key → value hash) as stored: JSON text, a third of the dictionary's
    weight, which matters while a first merge plans 100,000 pairs.

    Written here as ``_BASE_ENCODER`` would (the same text), twice as fast: each key's JSON
    is made once, and a hash needs only the C string escape."""
    if base is None:
        return None
    parts = []
    for key, value in base.items():
        if type(value) is not str or type(key) is not str:
            return _BASE_ENCODER.encode(base)
        parts.append(_key_json(key) + _escape(value))
    return "{" + ",".join(parts) + "}"


_escape = json.encoder.encode_basestring_ascii  # what the encoder itself uses


@functools.lru_cache(maxsize=1024)
def _key_json(key: str) -> str:
    return _escape(key) + ":"


@dataclass(slots=True)
class LinkRow:
    """A link as the engine sees it; bases stay JSON text until a record actually changed."""

    id: int | None
    a_id: str | None
    b_id: str | None
    state: str = "linked"
    base_a_json: str | None = None
    base_b_json: str | None = None
    fp_a: str | None = None
    fp_b: str | None = None

    def base(self, side: str) -> dict[str, str] | None:
        raw = self.base_a_json if side == "a" else self.base_b_json
        if raw is None:
            return None
        value: dict[str, str] = json.loads(raw)
        return value

    def base_json(self, side: str) -> str | None:
        return self.base_a_json if side == "a" else self.base_b_json

    def has_base(self, side: str) -> bool:
        """``base(side) is not None``, without decoding it (planning asks it of every pair)."""
        raw = self.base_a_json if side == "a" else self.base_b_json
        return raw is not None and raw.strip() != "null"

    def set_base(self, side: str, base: dict[str, str] | None) -> None:
        self.set_base_json(side, encode_base(base))

    def set_base_json(self, side: str, raw: str | None) -> None:
        if side == "a":
            self.base_a_json = raw
        else:
            self.base_b_json = raw

    def record_id(self, side: str) -> str | None:
        return self.a_id if side == "a" else self.b_id

    def fp(self, side: str) -> str | None:
        return self.fp_a if side == "a" else self.fp_b


@dataclass
class LinkIndex:
    """Every link's record ids and fingerprints, by side (``None``: never taken as unchanged)."""

    fps: dict[str, dict[str, str | None]] = field(default_factory=lambda: {"a": {}, "b": {}})
    total: int = 0
    #: links in state ``linked``, and how many of those have a record on each side
    linked: int = 0
    linked_on: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})


_STATES: dict[str, str] = {}


class LinkIndexCache:
    """A sync's :class:`LinkIndex`, kept up to date link by link."""

    def __init__(self, rows: Iterable[tuple[Any, ...]], version: int) -> None:
        self.version = version
        self.index = LinkIndex()
        self.rows: dict[int, tuple[str | None, str | None, str, str | None, str | None]] = {}
        for link_id, a_id, b_id, state, fp_a, fp_b in rows:
            self._add(link_id, (a_id, b_id, state, fp_a, fp_b))

    def put(self, link: LinkRow) -> None:
        if link.id is None:
            return
        self.drop(link.id)
        self._add(link.id, (link.a_id, link.b_id, link.state, link.fp_a, link.fp_b))

    def drop(self, link_id: int) -> None:
        old = self.rows.pop(link_id, None)
        if old is None:
            return
        a_id, b_id, state, _, _ = old
        index = self.index
        index.total -= 1
        for side, rid in (("a", a_id), ("b", b_id)):
            if rid is not None:
                index.fps[side].pop(rid, None)
                if state == "linked":
                    index.linked_on[side] -= 1
        if state == "linked":
            index.linked -= 1

    def _add(
        self, link_id: int, row: tuple[str | None, str | None, str, str | None, str | None]
    ) -> None:
        a_id, b_id, state, fp_a, fp_b = row
        # one string per state, not one per link read from the database
        state = _STATES.setdefault(state, state)
        self.rows[link_id] = (a_id, b_id, state, fp_a, fp_b)
        index = self.index
        index.total += 1
        # a tombstone's deleted side never counts as unchanged: its record coming back
        # (restored from an archive) is for the planner to decide
        if a_id is not None:
            index.fps["a"][a_id] = fp_a if state != "gone_a" else None
        if b_id is not None:
            index.fps["b"][b_id] = fp_b if state != "gone_b" else None
        if state == "linked":
            index.linked += 1
            for side, rid in (("a", a_id), ("b", b_id)):
                if rid is not None:
                    index.linked_on[side] += 1


@dataclass(slots=True)
class IssueRow:
    side: str
    record_id: str
    kind: str
    reason: str
    email: str | None = None


@dataclass(slots=True)
class PendingRow:
    side: str
    source_id: str
    key: str
    email: str | None


@dataclass(slots=True)
class JournalRow:
    """One outgoing write as the journal keeps it (see :class:`syncd.store.models.Journal`).

    ``sent`` is what went to the app (its field names → values). ``packed`` is the JSON text
    of the hashes, made without decoding anything (a first merge journals 100,000 writes):
    ``t``/``s`` the target's and the source's bases as planned once written, ``b`` the target's
    hashes before, ``w`` the fields written, ``o`` the fields written the other way in a pair
    without a base yet (``null`` for a pair that has one)."""

    side: str
    kind: str
    record_id: str | None
    source_id: str | None
    key: str | None
    sent: dict[str, Any]
    packed: str = "{}"
    run_id: int | None = None
    #: kept as history (issue 15): the record's email, why it was written, and ``detail``: the
    #: JSON text of, per app field, its view key (``k``), the value before (``b``) and a reason
    #: of its own where it differs from the row's (``r``)
    email: str | None = None
    reason: str | None = None
    detail: str | None = None
    #: its row's id once inserted (SQLite, history kept): the answer settles it by id
    id: int | None = None

    def bases(self) -> tuple[dict[str, str], dict[str, str]]:
        """The target's and the source's bases as the run planned them once written."""
        data = json.loads(self.packed)
        return data.get("t") or {}, data.get("s") or {}

    def hashes(self) -> dict[str, tuple[str | None, str | None, str | None]]:
        """Per field: (hash of the value sent, hash of the source's value it came from, hash of
        the target's value before; ``None``: empty). In a pair without a base yet, the fields
        both sides already agreed on (written neither way) are there too, as agreed."""
        data = json.loads(self.packed)
        target = data.get("t") or {}
        source = data.get("s") or {}
        before = data.get("b") or {}
        found = {k: (target.get(k), source.get(k), before.get(k)) for k in data.get("w") or ()}
        other_way = data.get("o")
        if other_way is not None:
            skip = set(other_way)
            for k, h in target.items():
                if k not in found and k not in skip and source.get(k) == h:
                    found[k] = (h, h, h)
        return found


@dataclass(slots=True)
class JournalResult:
    """What the app answered to one journaled write (by its key): the outcome (``None``: left
    as it is, settled with its record), the id a create made, what the app stored."""

    key: str
    outcome: str | None = None
    record_id: str | None = None
    stored: dict[str, Any] | None = None
    #: the entry's row id where the journal row that was inserted gave it (``JournalRow.id``):
    #: found by its primary key rather than by its key in the index of unsettled entries
    journal_id: int | None = None


#: journal outcomes a crash leaves behind: what the next run reads (rule 4)
UNSETTLED = ("pending", "failed")
#: the condition of the journal's partial indexes (migration 0006): a query that finds an entry
#: by key or record names it as it is, so that the index is used (on SQLite and PostgreSQL)
OPEN = "outcome IN ('pending', 'failed')"


@dataclass
class RunRow:
    id: int
    sync: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    dry_run: bool
    trigger: str
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None


def backoff(attempts: int) -> timedelta:
    """How long a refused record waits before it is tried again: 5 min doubling to a day."""
    return timedelta(seconds=min(86400, 300 * 2 ** max(0, attempts - 1)))


class Store:
    """The status database of one state directory."""

    def __init__(self, state_dir: Path, settings: StoreSettings | None = None) -> None:
        self.state_dir = state_dir
        self.path = state_dir / DB_NAME
        self.settings = settings or StoreSettings()
        #: True on PostgreSQL: the store is shared by several processes, kept apart by claims
        self.shared = self.settings.postgres
        # SQLite: one thread (one writer at a time anyway); PostgreSQL: several, each with
        # its own connection, so that one daemon's syncs do not queue behind each other
        threads = self.settings.connections if self.shared else 1
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="syncd-store")
        self.db = make_database(str(self.path), self.settings)
        self.claims = Claims(self.settings) if self.shared else None
        #: on PostgreSQL: OAuth tokens in the store, encrypted (connectors' ``context.tokens``)
        self.tokens = TokenVault(self.settings, self.claims.holder) if self.claims else None
        #: on PostgreSQL: rate budgets shared with the other daemons (``context.budgets``)
        self.budgets = SharedBudgets(self.settings, self.claims.holder) if self.claims else None
        #: opening checks that [store] token_key decrypts the stored tokens (not for store copy)
        self.verify_tokens = True
        self._link_indexes: dict[str, LinkIndexCache] = {}
        #: on PostgreSQL, bumped by every claim this store takes (see :meth:`_data_version`)
        self._claim_epoch = 0
        self._epoch_lock = threading.Lock()
        #: the (side, record id) of every ``record_decision`` row, per sync, with the data
        #: version they were read at: a commit that syncs 100,000 records deletes only the
        #: decisions that exist (most syncs have no rules, so none ever)
        self._decision_keys: dict[str, tuple[int, set[tuple[str, str]]]] = {}
        #: days each sync keeps its journal (``history_days``); 0 keeps only what a crash needs
        self._history: dict[str, int] = {}
        #: when each sync's journal was last pruned by this process
        self._pruned: dict[str, datetime] = {}

    @property
    def where(self) -> str:
        """The database as a person reads it (no password)."""
        if self.shared and self.settings.url:
            return safe_url(self.settings.url)
        return str(self.path)

    def set_history(self, sync: str, days: int) -> None:
        self._history[sync] = days

    def keeps_history(self, sync: str) -> bool:
        return self._history.get(sync, 90) > 0

    # --- plumbing ---------------------------------------------------------------------------

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the store's thread."""
        loop = asyncio.get_running_loop()
        # the caller's context (the claim its run writes under) goes along to the store's thread
        context = contextvars.copy_context()

        def call() -> T:
            return self._call(fn, *args, **kwargs)

        return await loop.run_in_executor(self._executor, context.run, call)

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.shared and not self.db.is_closed() and not self.db.is_connection_usable():
            # the connection broke (server restarted, network): the next query reconnects
            with contextlib.suppress(Exception):
                self.db.close()
        return fn(*args, **kwargs)

    def open(self) -> list[str]:
        """Create the state directory (0700) and the database, and apply pending migrations
        (returned: the names this process applied)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # a directory we do not own (a mounted volume) keeps its mode
        with contextlib.suppress(PermissionError):
            os.chmod(self.state_dir, 0o700)
        database.initialize(self.db)
        with self._migration_lock():
            self.db.connect(reuse_if_open=True)
            runner = Runner(self.db, directory=str(MIGRATIONS))
            if not self.shared:
                applied: list[str] = runner.up()
                return applied
            # several daemons may start at once: one migrates, the others wait for it
            self.db.execute_sql("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK,))
            try:
                applied = runner.up()
            finally:
                self.db.execute_sql("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK,))
            if self.verify_tokens:
                check_stored_tokens(self.db, self.settings)
            return applied

    def pending_migrations(self) -> list[str]:
        """Migrations not applied yet (without applying any)."""
        if not self.shared:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        database.initialize(self.db)
        with self._migration_lock():
            self.db.connect(reuse_if_open=True)
            runner = Runner(self.db, directory=str(MIGRATIONS))
            return [m.name for m in runner.status() if not m.applied]

    def _migration_lock(self) -> contextlib.AbstractContextManager[None]:
        """On SQLite, processes on one state directory migrate one at a time: a new database
        is made WAL on connect, then migrated (see :mod:`syncd.store.migrate_lock`)."""
        return contextlib.nullcontext() if self.shared else migration_lock(self.path)

    async def aopen(self) -> None:
        await self.run(self.open)

    def close(self) -> None:
        if self.claims is not None:
            self.claims.close()
        if isinstance(self.db, FencedPostgresqlDatabase):
            self.db.close_all()
        elif not self.db.is_closed():
            self.db.close()

    async def aclose(self) -> None:
        if self.budgets is not None:
            await self.budgets.close()
        await self.run(self.close)
        self._executor.shutdown(wait=True)

    def integrity(self) -> str:
        if self.shared:
            return "ok"  # PostgreSQL checks its pages itself (data checksums, WAL)
        row = self.db.execute_sql("PRAGMA integrity_check").fetchone()
        return str(row[0])

    # --- one run per sync at a time (flock on SQLite, a claim on PostgreSQL) ------------------

    async def claim(self, sync: str) -> SyncLock | Fence:
        """Take the sync for a run; raises :class:`SyncBusy` when another process has it.
        On PostgreSQL every later commit of the calling task is fenced by the claim."""
        if self.claims is None:
            lock = SyncLock(self.state_dir, sync)
            lock.acquire()
            return lock
        fence = await self.run(self._claim, sync)
        FENCE.set(fence)
        return fence

    def _claim(self, sync: str) -> Fence:
        assert self.claims is not None
        fence = self.claims.acquire(self.db, sync)
        with self._epoch_lock:
            self._claim_epoch += 1
        return fence

    async def unclaim(self, held: SyncLock | Fence) -> None:
        if isinstance(held, SyncLock):
            held.release()
            return
        FENCE.set(None)
        assert self.claims is not None
        await self.run(self.claims.release, self.db, held)

    def orphaned_syncs(self) -> list[str]:
        """Syncs with a run still "running" that no live claim covers: their process died."""
        if self.claims is None:
            return []
        rows = self.db.execute_sql(
            "SELECT DISTINCT r.sync FROM run r WHERE r.outcome = 'running' AND NOT EXISTS"
            " (SELECT 1 FROM sync_claim c WHERE c.sync = r.sync AND c.holder <> ''"
            " AND c.expires_at > clock_timestamp())"
        ).fetchall()
        return sorted(str(r[0]) for r in rows)

    def live_claims(self) -> dict[str, ClaimInfo]:
        """Which process runs which sync now (PostgreSQL; empty on SQLite)."""
        if self.claims is None:
            return {}
        return self.claims.live(self.db)

    def ping(self) -> bool:
        self.db.execute_sql("SELECT 1").fetchone()
        return True

    # --- sync state -------------------------------------------------------------------------

    def get_state(self, sync: str) -> SyncState:
        state, _ = SyncState.get_or_create(sync=sync)
        return state

    def update_state(self, sync: str, **values: Any) -> None:
        self.get_state(sync)
        SyncState.update(**values).where(SyncState.sync == sync).execute()

    def reset_sync(self, sync: str) -> None:
        """Forget everything about a sync (its file was removed and re-added under a new pair)."""
        self._link_indexes.pop(sync, None)
        self._decision_keys.pop(sync, None)
        with self.db.atomic():
            for model in (Link, RecordIssue, RecordDecision, PendingWrite, Journal, Review):
                model.delete().where(model.sync == sync).execute()
            self.db.execute_sql(
                "DELETE FROM journal_hashes WHERE journal_id NOT IN (SELECT id FROM journal)"
            )
            SyncState.delete().where(SyncState.sync == sync).execute()

    def forget_sync(self, sync: str) -> None:
        """Forget a deleted sync altogether: what :meth:`reset_sync` forgets, and its runs."""
        self.reset_sync(sync)
        with self.db.atomic():
            Run.delete().where(Run.sync == sync).execute()

    # --- links ------------------------------------------------------------------------------

    def load_links(self, sync: str) -> list[LinkRow]:
        cursor = self.db.execute_sql(
            "SELECT id, a_id, b_id, state, base_a, base_b, fp_a, fp_b FROM link WHERE sync = ?",
            (sync,),
        )
        return [LinkRow(*row) for row in cursor.fetchall()]

    def load_link_index(self, sync: str) -> LinkIndex:
        """What a listing is compared against: each side's record ids with their fingerprints,
        without the bases (most records are unchanged, and their links are never loaded).

        Kept in memory between runs of a long-lived process and brought up to date by every
        commit of this store; rebuilt when another process wrote to the database since.
        """
        version = self._data_version()
        cache = self._link_indexes.get(sync)
        if cache is None or cache.version != version:
            # the old index goes first, and the rows are read as the cursor gives them: at
            # 150,000 links, the old index, a fetched list and the new one at once were the
            # peak of the run after a first merge
            self._link_indexes.pop(sync, None)
            del cache
            rows = self.db.execute_sql(
                "SELECT id, a_id, b_id, state, fp_a, fp_b FROM link WHERE sync = ?", (sync,)
            )
            cache = self._link_indexes[sync] = LinkIndexCache(rows, version)
        return cache.index

    def _data_version(self) -> int:
        if self.shared:
            # nobody else writes a sync's links while we hold its claim; a new claim (ours
            # or, before it, someone else's run) may follow anyone's writes: rebuild then
            return self._claim_epoch
        # changes whenever another connection commits (our own commits update the caches)
        return int(self.db.execute_sql("PRAGMA data_version").fetchone()[0])

    def load_links_of(self, sync: str, a_ids: Iterable[str], b_ids: Iterable[str]) -> list[LinkRow]:
        """The links of the given records (each link once)."""
        found: dict[int, LinkRow] = {}
        for column, ids in (("a_id", list(a_ids)), ("b_id", list(b_ids))):
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                cursor = self.db.execute_sql(
                    "SELECT id, a_id, b_id, state, base_a, base_b, fp_a, fp_b FROM link"
                    f" WHERE sync = ? AND {column} IN ({marks})",  # only placeholders
                    (sync, *chunk),
                )
                for row in cursor.fetchall():
                    found.setdefault(row[0], LinkRow(*row))
        return list(found.values())

    def count_links(self, sync: str) -> int:
        return int(Link.select().where(Link.sync == sync, Link.state == "linked").count())

    def save_links(self, sync: str, rows: Iterable[LinkRow], drop: Iterable[int] = ()) -> None:
        """Insert new links (setting their ids) and update existing ones, in one transaction."""
        stamp = now()
        with self.db.atomic():
            dropped = list(drop)
            for start in range(0, len(dropped), 500):
                chunk = dropped[start : start + 500]
                Link.delete().where(Link.id.in_(chunk)).execute()
            saved = list(rows)
            self._save_links(sync, saved, stamp)
        self._cached(sync, saved, dropped)

    def _cached(self, sync: str, saved: Sequence[LinkRow], dropped: Sequence[int]) -> None:
        """Bring the link index of ``sync`` up to date with a commit that went through."""
        cache = self._link_indexes.get(sync)
        if cache is None:
            return
        for link_id in dropped:
            cache.drop(link_id)
        for row in saved:
            cache.put(row)

    def _save_links(
        self, sync: str, rows: Iterable[LinkRow], stamp: datetime, run_id: int | None = None
    ) -> None:
        updates = []
        # a first merge inserts 150,000 links: one cursor, the time stamp formatted once
        # (as sqlite3's datetime adapter would), no query builder
        when = _sql_time(stamp)
        if self.shared:
            self._save_links_pg(sync, rows, when)
            return
        cursor = self.db.cursor()
        for row in rows:
            values = (
                row.a_id,
                row.b_id,
                row.state,
                row.base_a_json,
                row.base_b_json,
                row.fp_a,
                row.fp_b,
                when,
            )
            if row.id is None:
                cursor.execute(
                    "INSERT INTO link (a_id, b_id, state, base_a, base_b, fp_a, fp_b, updated_at,"
                    " sync, linked_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, sync, run_id),
                )
                row.id = cursor.lastrowid
            else:
                updates.append((*values, row.id))
        if updates:
            cursor.executemany(
                "UPDATE link SET a_id = ?, b_id = ?, state = ?, base_a = ?, base_b = ?, fp_a = ?,"
                " fp_b = ?, updated_at = ? WHERE id = ?",
                updates,
            )

    def _save_links_pg(self, sync: str, rows: Iterable[LinkRow], when: str) -> None:
        """PostgreSQL has no ``lastrowid``: the new links' ids come from the sequence in one
        query, then inserts and updates go as two pipelined batches."""
        saved = list(rows)
        new = [row for row in saved if row.id is None]
        updates = [
            (r.a_id, r.b_id, r.state, r.base_a_json, r.base_b_json, r.fp_a, r.fp_b, when, r.id)
            for r in saved
            if r.id is not None
        ]
        cursor = self.db.cursor()
        if new:
            ids = cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('link', 'id')) FROM generate_series(1, %s)",
                (len(new),),
            ).fetchall()
            for row, (link_id,) in zip(new, ids, strict=True):
                row.id = int(link_id)
            # one statement over arrays, not one per link (a first merge inserts 150,000)
            cursor.execute(
                "INSERT INTO link (id, a_id, b_id, state, base_a, base_b, fp_a, fp_b,"
                " updated_at, sync) SELECT u.*, %s::timestamp, %s FROM unnest(%b::bigint[],"
                " %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
                " %b::text[]) AS u",
                (
                    when,
                    sync,
                    [r.id for r in new],
                    [r.a_id for r in new],
                    [r.b_id for r in new],
                    [r.state for r in new],
                    [r.base_a_json for r in new],
                    [r.base_b_json for r in new],
                    [r.fp_a for r in new],
                    [r.fp_b for r in new],
                ),
            )
        if updates:
            # one by one, in order: a link may take a record id another one of them gives up
            # (a unique index checked at each row of one statement would refuse that)
            cursor.executemany(
                "UPDATE link SET a_id = %s, b_id = %s, state = %s, base_a = %s, base_b = %s,"
                " fp_a = %s, fp_b = %s, updated_at = %s WHERE id = %s",
                updates,
            )

    def commit_outcomes(
        self,
        sync: str,
        links: Sequence[LinkRow] = (),
        issues: Sequence[IssueRow] = (),
        resolved: Sequence[tuple[str, str]] = (),
        pending_done: Sequence[str] = (),
        run_id: int | None = None,
        drop_links: Sequence[int] = (),
        journal_done: Sequence[tuple[str, str]] = (),
        journal: Sequence[JournalRow] = (),
        decisions: Sequence[IssueRow] = (),
        journal_results: Sequence[JournalResult] = (),
        journal_done_ids: Sequence[int] = (),
    ) -> None:
        """Record the outcome of one batch atomically: links, issues, finished pending writes,
        the journal entries of the records whose outcome this commits (``journal_done``: side,
        record id; ``journal_done_ids``: the entries themselves, where the caller knows they are
        all its records have open) and, last, the journal of the writes about to be sent next
        (``journal``), so that one commit serves both. ``decisions`` are records that did not
        travel and are no issue (``kind`` ``filtered``: no rule matched), for ``syncd
        explain``."""
        stamp = now()
        try:
            with self.db.atomic():
                # drops first: a surviving link may take over a dropped link's record id
                for link_id in drop_links:
                    Link.delete().where(Link.id == link_id).execute()
                self._save_links(sync, links, stamp, run_id)
                self._record_issues(sync, issues, stamp, run_id)
                if issues:
                    self._forget_decisions(sync, [(i.side, i.record_id) for i in issues])
                self._record_decisions(sync, decisions, stamp, run_id)
                self._resolve_issues(sync, resolved)
                self._journal_results(sync, journal_results, stamp)
                answered = {r.key for r in journal_results if r.outcome is not None}
                self._delete_pending(pending_done, sync, answered)
                self._delete_journal(sync, journal_done, run_id, stamp)
                self._settle_entries(sync, journal_done_ids, run_id, stamp)
                self._insert_journal(sync, journal, run_id, stamp)
        except BaseException:
            self._decision_keys.pop(sync, None)  # it was kept as if the commit went through
            raise
        self._cached(sync, links, drop_links)

    # --- record issues ----------------------------------------------------------------------

    def _record_issues(
        self, sync: str, issues: Sequence[IssueRow], stamp: datetime, run_id: int | None
    ) -> None:
        for issue in issues:
            existing = RecordIssue.get_or_none(
                (RecordIssue.sync == sync)
                & (RecordIssue.side == issue.side)
                & (RecordIssue.record_id == issue.record_id)
            )
            if existing is None:
                attempts = 1
                RecordIssue.create(
                    sync=sync,
                    side=issue.side,
                    record_id=issue.record_id,
                    kind=issue.kind,
                    email=issue.email,
                    reason=issue.reason,
                    first_seen=stamp,
                    last_seen=stamp,
                    attempts=attempts,
                    next_attempt_at=stamp + backoff(1) if issue.kind == "failed" else None,
                    run_id=run_id,
                )
                continue
            attempts = existing.attempts + 1 if issue.kind == "failed" else existing.attempts
            existing.kind = issue.kind
            existing.email = issue.email
            existing.reason = issue.reason
            existing.last_seen = stamp
            existing.attempts = attempts
            existing.next_attempt_at = stamp + backoff(attempts) if issue.kind == "failed" else None
            existing.run_id = run_id
            existing.save()

    def _resolve_issues(self, sync: str, resolved: Sequence[tuple[str, str]]) -> None:
        if not resolved:
            return
        self._forget_decisions(sync, resolved)
        # few records have issues; most runs resolve thousands of records that have none
        existing = set(
            self.db.execute_sql(
                "SELECT side, record_id FROM record_issue WHERE sync = ?", (sync,)
            ).fetchall()
        )
        gone = [(sync, side, rid) for side, rid in resolved if (side, rid) in existing]
        if gone:
            self.db.cursor().executemany(
                "DELETE FROM record_issue WHERE sync = ? AND side = ? AND record_id = ?", gone
            )

    def _record_decisions(
        self, sync: str, decisions: Sequence[IssueRow], stamp: datetime, run_id: int | None
    ) -> None:
        if not decisions:
            return
        when = _sql_time(stamp)
        # one statement for all: a filter may leave most of a first merge's records behind
        self.db.cursor().executemany(
            # an upsert on its one unique key: the same on SQLite and PostgreSQL
            "INSERT INTO record_decision (sync, side, record_id, kind, email, reason,"
            " run_id, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sync, side, record_id) DO UPDATE SET kind = excluded.kind,"
            " email = excluded.email, reason = excluded.reason, run_id = excluded.run_id,"
            " decided_at = excluded.decided_at",
            [
                (sync, d.side, d.record_id, d.kind, d.email, d.reason, run_id, when)
                for d in decisions
            ],
        )
        self._decided_keys(sync).update((d.side, d.record_id) for d in decisions)

    def _forget_decisions(self, sync: str, records: Sequence[tuple[str, str]]) -> None:
        """A record that synced (or became an issue) has no standing decision any more."""
        if not records:
            return
        keys = self._decided_keys(sync)
        if not keys:
            return
        gone = [(side, rid) for side, rid in records if (side, rid) in keys]
        if gone:
            self.db.cursor().executemany(
                "DELETE FROM record_decision WHERE sync = ? AND side = ? AND record_id = ?",
                [(sync, side, rid) for side, rid in gone],
            )
            keys.difference_update(gone)

    def _decided_keys(self, sync: str) -> set[tuple[str, str]]:
        """The records of ``sync`` with a decision (read again when another process wrote)."""
        version = self._data_version()
        cached = self._decision_keys.get(sync)
        if cached is None or cached[0] != version:
            rows = self.db.execute_sql(
                "SELECT side, record_id FROM record_decision WHERE sync = ?", (sync,)
            ).fetchall()
            cached = self._decision_keys[sync] = (version, {(str(a), str(b)) for a, b in rows})
        return cached[1]

    def drop_stale_decisions(self, sync: str, run_id: int | None) -> None:
        """Forget the decisions of unlinked records that run ``run_id`` (which listed both
        sides in full) did not make again: such a record is planned in every run, so it is
        gone, or was decided otherwise. A linked record's decision stands until it syncs."""
        if not self._decided_keys(sync):
            return
        self._decision_keys.pop(sync, None)  # read again when next needed
        self.db.execute_sql(
            "DELETE FROM record_decision WHERE sync = ? AND (run_id IS NULL OR run_id != ?)"
            " AND NOT EXISTS (SELECT 1 FROM link WHERE link.sync = record_decision.sync AND"
            " ((record_decision.side = 'a' AND link.a_id = record_decision.record_id) OR"
            " (record_decision.side = 'b' AND link.b_id = record_decision.record_id)))",
            (sync, run_id),
        )

    def list_decisions(self, sync: str, limit: int | None = None) -> list[dict[str, Any]]:
        query = (
            RecordDecision.select()
            .where(RecordDecision.sync == sync)
            .order_by(RecordDecision.side, RecordDecision.record_id)
        )
        if limit is not None:
            query = query.limit(limit)
        return [_decision_json(row) for row in query]

    def count_decisions(self, sync: str) -> dict[str, int]:
        cursor = self.db.execute_sql(
            "SELECT kind, COUNT(*) FROM record_decision WHERE sync = ? GROUP BY kind", (sync,)
        )
        return {str(kind): int(count) for kind, count in cursor.fetchall()}

    def drop_stale_issues(self, sync: str, kinds: Sequence[str], run_id: int | None) -> None:
        """Forget the issues of the given kinds that run ``run_id`` did not report again
        (they are recomputed from a full listing every run)."""
        RecordIssue.delete().where(
            (RecordIssue.sync == sync)
            & (RecordIssue.kind.in_(list(kinds)))
            & (RecordIssue.run_id.is_null() | (RecordIssue.run_id != run_id))
        ).execute()

    def list_issues(self, sync: str) -> list[dict[str, Any]]:
        query = (
            RecordIssue.select()
            .where(RecordIssue.sync == sync)
            .order_by(RecordIssue.kind, RecordIssue.side, RecordIssue.record_id)
        )
        return [
            {
                "side": row.side,
                "record_id": row.record_id,
                "kind": row.kind,
                "email": row.email,
                "reason": row.reason,
                "attempts": row.attempts,
                "first_seen": _iso(row.first_seen),
                "last_seen": _iso(row.last_seen),
                "next_attempt_at": _iso(row.next_attempt_at),
            }
            for row in query
        ]

    def reset_backoff(self, sync: str, records: Sequence[tuple[str, str]] | None = None) -> int:
        """ "Retry now": the failing records (all of the sync's when ``records`` is None) are
        no longer backed off, and a new refusal waits the first backoff step again. Returns
        how many records were reset."""
        with self.db.atomic():
            if records is None:
                cursor = self.db.execute_sql(
                    "UPDATE record_issue SET attempts = 0, next_attempt_at = NULL"
                    " WHERE sync = ? AND kind = 'failed'",
                    (sync,),
                )
                return int(cursor.rowcount)
            count = 0
            for side, record_id in records:
                cursor = self.db.execute_sql(
                    "UPDATE record_issue SET attempts = 0, next_attempt_at = NULL"
                    " WHERE sync = ? AND side = ? AND record_id = ? AND kind = 'failed'",
                    (sync, side, record_id),
                )
                count += int(cursor.rowcount)
            return count

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a read-only query (for :mod:`syncd.explain`, which looks records up
        by what it has: an email hash in a base, a record id on either side)."""
        return [tuple(row) for row in self.db.execute_sql(sql, tuple(params)).fetchall()]

    def backed_off(self, sync: str) -> set[tuple[str, str]]:
        """Records refused recently enough that they are not to be tried yet."""
        query = RecordIssue.select(RecordIssue.side, RecordIssue.record_id).where(
            (RecordIssue.sync == sync)
            & (RecordIssue.kind == "failed")
            & (RecordIssue.next_attempt_at > now())
        )
        return {(row.side, row.record_id) for row in query}

    def count_issues(self, sync: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in RecordIssue.select(RecordIssue.kind).where(RecordIssue.sync == sync):
            counts[row.kind] = counts.get(row.kind, 0) + 1
        return counts

    # --- pending writes ---------------------------------------------------------------------

    def add_pending(
        self,
        sync: str,
        rows: Sequence[PendingRow],
        run_id: int | None,
        journal: Sequence[JournalRow] = (),
    ) -> None:
        stamp = now()
        when = _sql_time(stamp)
        with self.db.atomic():
            cursor = self.db.cursor()
            if self.shared and rows:
                self._add_pending_pg(sync, rows, run_id, when)
                self._insert_journal(sync, journal, run_id, stamp)
                return
            # replaces an entry with the same key or the same record (both are unique), as
            # SQLite's INSERT OR REPLACE would, in SQL that PostgreSQL speaks too
            cursor.executemany(
                "DELETE FROM pending_write WHERE key = ? OR (sync = ? AND side = ?"
                " AND source_id = ?)",
                [(r.key, sync, r.side, r.source_id) for r in rows],
            )
            cursor.executemany(
                "INSERT INTO pending_write (sync, side, source_id, key, email,"
                " created_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(sync, r.side, r.source_id, r.key, r.email, when, run_id) for r in rows],
            )
            self._insert_journal(sync, journal, run_id, stamp)

    def _add_pending_pg(
        self, sync: str, rows: Sequence[PendingRow], run_id: int | None, when: str
    ) -> None:
        keys = [r.key for r in rows]
        sides = [r.side for r in rows]
        sources = [r.source_id for r in rows]
        cursor = self.db.cursor()
        cursor.execute(
            "DELETE FROM pending_write p USING unnest(%b::text[], %b::text[], %b::text[])"
            " AS u(key, side, source_id) WHERE p.key = u.key"
            " OR (p.sync = %s AND p.side = u.side AND p.source_id = u.source_id)",
            (keys, sides, sources, sync),
        )
        cursor.execute(
            "INSERT INTO pending_write (sync, side, source_id, key, email, created_at, run_id)"
            " SELECT %s, u.side, u.source_id, u.key, u.email, %s::timestamp, %s::integer"
            " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS u(side, source_id,"
            " key, email)",
            (sync, when, run_id, sides, sources, keys, [r.email for r in rows]),
        )

    def list_pending(self, sync: str) -> list[PendingRow]:
        query = PendingWrite.select().where(PendingWrite.sync == sync)
        return [PendingRow(p.side, p.source_id, p.key, p.email) for p in query]

    def remove_pending(self, keys: Sequence[str], sync: str | None = None) -> None:
        with self.db.atomic():
            self._delete_pending(keys, sync)

    def _delete_pending(
        self, keys: Sequence[str], sync: str | None = None, answered: set[str] | None = None
    ) -> None:
        if keys and self.shared:
            self._delete_pending_pg(keys, sync, answered)
        elif keys:
            cursor = self.db.cursor()
            cursor.executemany("DELETE FROM pending_write WHERE key = ?", [(key,) for key in keys])
            # a create's journal entry is settled with its pending entry (kept as history),
            # unless the app's answer settled it already
            if sync is not None and self.keeps_history(sync):
                when = _sql_time(now())
                open_keys = [key for key in keys if not answered or key not in answered]
                cursor.executemany(
                    "DELETE FROM journal_hashes WHERE journal_id IN (SELECT id FROM journal"
                    " WHERE key = ? AND outcome IN ('pending', 'failed'))",
                    [(key,) for key in open_keys],
                )
                cursor.executemany(
                    "UPDATE journal SET outcome = 'superseded', settled_at = ?"
                    " WHERE key = ? AND outcome IN ('pending', 'failed')",
                    [(when, key) for key in open_keys],
                )
            else:
                cursor.executemany(
                    "DELETE FROM journal WHERE key = ? AND outcome IN ('pending', 'failed')",
                    [(key,) for key in keys],
                )

    def _delete_pending_pg(
        self, keys: Sequence[str], sync: str | None, answered: set[str] | None
    ) -> None:
        open_keys = None
        if sync is not None and self.keeps_history(sync):
            open_keys = [key for key in keys if not answered or key not in answered]
        pgbulk.delete_pending(self.db.cursor(), keys, open_keys, _sql_time(now()))

    # --- the journal ------------------------------------------------------------------------

    def add_journal(self, sync: str, rows: Sequence[JournalRow], run_id: int | None) -> None:
        """Commit what is about to be sent (before the request goes out)."""
        with self.db.atomic():
            self._insert_journal(sync, rows, run_id, now())

    def _insert_journal(
        self, sync: str, rows: Sequence[JournalRow], run_id: int | None, stamp: datetime
    ) -> None:
        if not rows:
            return
        when = _sql_time(stamp)
        if self.shared:
            self._insert_journal_pg(sync, rows, run_id, when)
            return
        if not self.keeps_history(sync):
            # history off: only the hashes a crash needs, no value, deleted once settled
            self.db.cursor().executemany(
                "INSERT INTO journal (sync, run_id, side, kind, record_id, source_id, key, sent,"
                " hashes, created_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, 'pending')",
                [
                    (sync, run_id, r.side, r.kind, r.record_id, r.source_id, r.key, r.packed, when)
                    for r in rows
                ],
            )
            return
        encode = _SENT_ENCODER.encode
        cursor = self.db.cursor()
        # the hashes a crash needs go to journal_hashes, deleted once the entry is settled, so
        # that the history kept is only the values (and the space of the hashes is reused)
        insert = (
            "INSERT INTO journal (sync, run_id, side, kind, record_id, source_id, key, sent,"
            " hashes, created_at, email, reason, detail, outcome) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, 'pending')"
        )
        params = [
            (
                sync,
                run_id,
                r.side,
                r.kind,
                r.record_id,
                r.source_id,
                r.key,
                # contact values only; a connector's secret never gets in (rule 12)
                redact(encode(r.sent)),
                when,
                r.email,
                r.reason,
                None if r.detail is None else redact(r.detail),
            )
            for r in rows
        ]
        # SQLite has one writer (PostgreSQL goes through _insert_journal_pg): the new ids are
        # the last len(rows)
        cursor.executemany(insert, params)
        last = int(cursor.execute("SELECT max(id) FROM journal").fetchone()[0])
        first = last - len(rows) + 1
        for offset, row in enumerate(rows):
            row.id = first + offset
        cursor.executemany(
            "INSERT INTO journal_hashes (journal_id, hashes) VALUES (?, ?)",
            [(r.id, r.packed) for r in rows],
        )

    def _insert_journal_pg(
        self, sync: str, rows: Sequence[JournalRow], run_id: int | None, when: str
    ) -> None:
        cursor = self.db.cursor()
        if not self.keeps_history(sync):
            pgbulk.insert_journal_bare(cursor, sync, rows, run_id, when)
            return
        encode = _SENT_ENCODER.encode
        pgbulk.insert_journal(
            cursor,
            sync,
            rows,
            run_id,
            when,
            # contact values only; a connector's secret never gets in (rule 12)
            sent=lambda r: redact(encode(r.sent)),
            detail=lambda r: None if r.detail is None else redact(r.detail),
        )

    def _journal_results(
        self, sync: str, results: Sequence[JournalResult], stamp: datetime
    ) -> None:
        if not results:
            return
        if not self.keeps_history(sync):
            # a create's entry goes with its pending entry; nothing else is kept
            return
        cursor = self.db.cursor()
        when = _sql_time(stamp)
        if self.shared:
            stored = [
                None if r.stored is None else redact(_SENT_ENCODER.encode(r.stored))
                for r in results
            ]
            pgbulk.journal_results(
                cursor,
                [(r.key, r.outcome, r.record_id, s) for r, s in zip(results, stored, strict=True)],
                when,
            )
            return
        by_id = [r for r in results if r.journal_id is not None]
        if by_id:
            self._write_answers(cursor, by_id, when, by_id=True)
        by_key = [r for r in results if r.journal_id is None]
        if by_key:
            self._write_answers(cursor, by_key, when, by_id=False)

    @staticmethod
    def _write_answers(
        cursor: Any, results: Sequence[JournalResult], when: str, *, by_id: bool
    ) -> None:
        """Write answers into their journal entries (SQLite), each entry found by its row id
        (``by_id``: the answers that name it) or by its key. A key names one write (a run's id,
        or random) and its index holds the unsettled entries; an entry is unsettled until this
        very statement. A settled entry's hashes served only a crash: they are dropped, the
        history is the values (those of one settled already are gone, and deleting them again
        changes nothing)."""
        settled = [r for r in results if r.outcome in ("confirmed", "refused")]
        if by_id:
            cursor.executemany(
                "DELETE FROM journal_hashes WHERE journal_id = ?",
                [(r.journal_id,) for r in settled],
            )
        else:
            cursor.executemany(
                "DELETE FROM journal_hashes WHERE journal_id IN"
                f" (SELECT id FROM journal WHERE key = ? AND {OPEN})",
                [(r.key,) for r in settled],
            )
        entry = "id" if by_id else "key"
        cursor.executemany(
            "UPDATE journal SET outcome = COALESCE(?, outcome), record_id = COALESCE(?, record_id),"
            " stored = COALESCE(?, stored), settled_at = CASE WHEN ? IN ('confirmed', 'refused')"
            f" THEN ? ELSE settled_at END WHERE {entry} = ? AND {OPEN}",
            [
                (
                    r.outcome,
                    r.record_id,
                    None if r.stored is None else redact(_SENT_ENCODER.encode(r.stored)),
                    r.outcome,
                    when,
                    r.journal_id if by_id else r.key,
                )
                for r in results
            ],
        )

    def load_journal(self, sync: str) -> list[JournalRow]:
        """Every entry of ``sync`` whose outcome was never committed, newest first."""
        cursor = self.db.execute_sql(
            "SELECT j.side, j.kind, j.record_id, j.source_id, j.key, j.sent,"
            " CASE WHEN j.hashes = '' THEN COALESCE(h.hashes, '{}') ELSE j.hashes END, j.run_id"
            " FROM journal j LEFT JOIN journal_hashes h ON h.journal_id = j.id"
            " WHERE j.sync = ? AND j.outcome IN ('pending', 'failed') ORDER BY j.id DESC",
            (sync,),
        )
        rows = []
        for side, kind, record_id, source_id, key, sent, packed, run_id in cursor.fetchall():
            rows.append(
                JournalRow(side, kind, record_id, source_id, key, json.loads(sent), packed, run_id)
            )
        return rows

    def count_journal(self, sync: str) -> int:
        """Entries whose outcome was never committed (what a crash left behind)."""
        cursor = self.db.execute_sql(
            f"SELECT count(*) FROM journal WHERE sync = ? AND {OPEN}", (sync,)
        )
        return int(cursor.fetchone()[0])

    def remove_journal(self, sync: str, records: Sequence[tuple[str, str]]) -> None:
        with self.db.atomic():
            self._delete_journal(sync, records, None, now())

    def _delete_journal(
        self,
        sync: str,
        records: Sequence[tuple[str, str]],
        run_id: int | None = None,
        stamp: datetime | None = None,
    ) -> None:
        """Settle the entries of these records: their outcome is committed now. Kept as
        history (``confirmed`` where this run sent them, else ``superseded``) or deleted."""
        if not records:
            return
        if self.shared:
            keep = self.keeps_history(sync)
            when = _sql_time(stamp or now())
            pgbulk.settle_records(self.db.cursor(), sync, records, run_id, when, keep)
            return
        if not self.keeps_history(sync):
            self.db.cursor().executemany(
                f"DELETE FROM journal WHERE sync = ? AND side = ? AND record_id = ? AND {OPEN}",
                [(sync, side, rid) for side, rid in records],
            )
            return
        when = _sql_time(stamp or now())
        cursor = self.db.cursor()
        cursor.executemany(
            "DELETE FROM journal_hashes WHERE journal_id IN (SELECT id FROM journal"
            " WHERE sync = ? AND side = ? AND record_id = ? AND outcome IN ('pending', 'failed'))",
            [(sync, side, rid) for side, rid in records],
        )
        cursor.executemany(
            "UPDATE journal SET outcome = CASE WHEN outcome = 'pending'"
            " AND run_id IS NOT DISTINCT FROM ? THEN 'confirmed' ELSE 'superseded' END,"
            " settled_at = ?"
            " WHERE sync = ? AND side = ? AND record_id = ? AND outcome IN ('pending', 'failed')",
            [(run_id, when, sync, side, rid) for side, rid in records],
        )

    def _settle_entries(
        self, sync: str, ids: Sequence[int], run_id: int | None, stamp: datetime
    ) -> None:
        """``_delete_journal`` for entries named by their row ids (only SQLite gives them)."""
        if not ids:
            return
        cursor = self.db.cursor()
        mark = "%s" if self.shared else "?"
        if not self.keeps_history(sync):
            cursor.executemany(
                f"DELETE FROM journal WHERE id = {mark} AND {OPEN}", [(i,) for i in ids]
            )
            return
        # an entry's hashes go whenever it is settled: deleting those of one settled already
        # changes nothing
        cursor.executemany(
            f"DELETE FROM journal_hashes WHERE journal_id = {mark}", [(i,) for i in ids]
        )
        when = _sql_time(stamp)
        cursor.executemany(
            "UPDATE journal SET outcome = CASE WHEN outcome = 'pending'"
            f" AND run_id IS NOT DISTINCT FROM {mark} THEN 'confirmed' ELSE 'superseded' END,"
            f" settled_at = {mark} WHERE id = {mark} AND {OPEN}",
            [(run_id, when, i) for i in ids],
        )

    def prune_journal(self, sync: str, days: int, every: float = 3600.0) -> int:
        """Forget settled entries older than ``days`` (unsettled ones stay: a crash needs
        them); with ``days`` 0, every settled entry. Done at most once per ``every`` seconds
        per sync in a process (each run asks; most are a minute apart). Returns how many went."""
        stamp = now()
        last = self._pruned.get(sync)
        if last is not None and (stamp - last).total_seconds() < every:
            return 0
        self._pruned[sync] = stamp
        cutoff = _sql_time(stamp - timedelta(days=days))
        with self.db.atomic():
            cursor = self.db.execute_sql(
                "DELETE FROM journal WHERE sync = ? AND created_at < ?"
                " AND outcome NOT IN ('pending', 'failed')",
                (sync, cutoff),
            )
        return int(cursor.rowcount)

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, sync: str, trigger: str, dry_run: bool) -> int:
        with self.db.atomic():
            # A run still "running" here was cut short: its process held the sync's lock,
            # which we now hold, so it is gone.
            Run.update(outcome="interrupted", finished_at=now()).where(
                (Run.sync == sync) & (Run.outcome == "running")
            ).execute()
            run = Run.create(
                sync=sync, started_at=now(), trigger=trigger, dry_run=dry_run, pid=os.getpid()
            )
        return int(run.id)

    def finish_run(
        self, run_id: int, outcome: str, counts: dict[str, int], message: str | None
    ) -> None:
        Run.update(
            outcome=outcome,
            finished_at=now(),
            counts=json.dumps(counts, sort_keys=True),
            message=message,
        ).where(Run.id == run_id).execute()

    def list_runs(self, sync: str, limit: int = 20) -> list[RunRow]:
        query = Run.select().where(Run.sync == sync).order_by(Run.id.desc()).limit(limit)
        return [_run_row(run) for run in query]

    def last_run(self, sync: str, outcome: Sequence[str] | None = None) -> RunRow | None:
        query = Run.select().where(Run.sync == sync, Run.dry_run == False)  # noqa: E712
        if outcome:
            query = query.where(Run.outcome.in_(list(outcome)))
        run = query.order_by(Run.id.desc()).first()
        return _run_row(run) if run is not None else None

    # --- key/value (tokens, API token) ------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        row = KeyValue.get_or_none(KeyValue.key == key)
        return None if row is None else str(row.value)

    def set_value(self, key: str, value: str) -> None:
        KeyValue.insert(key=key, value=value, updated_at=now()).on_conflict(
            conflict_target=[KeyValue.key],
            update={KeyValue.value: value, KeyValue.updated_at: now()},
        ).execute()


def _sql_time(value: datetime) -> str:
    """A time stamp as peewee's DateTimeField stores it on SQLite (and reads it back)."""
    return value.isoformat(" ")


def _json_default(value: Any) -> Any:
    """Tags may be sent as sets; anything else JSON cannot take is kept as its text."""
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


_SENT_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=UTC).isoformat()


def _decision_json(row: RecordDecision) -> dict[str, Any]:
    return {
        "side": row.side,
        "record_id": row.record_id,
        "kind": row.kind,
        "email": row.email,
        "reason": row.reason,
        "run_id": row.run_id,
        "decided_at": _iso(row.decided_at),
    }


def _run_row(run: Run) -> RunRow:
    return RunRow(
        id=run.id,
        sync=run.sync,
        started_at=run.started_at,
        finished_at=run.finished_at,
        outcome=run.outcome,
        dry_run=bool(run.dry_run),
        trigger=run.trigger,
        counts=json.loads(run.counts or "{}"),
        message=run.message,
    )


__all__ = [
    "ALL_MODELS",
    "ClaimInfo",
    "ClaimLost",
    "IssueRow",
    "JournalResult",
    "JournalRow",
    "LinkIndex",
    "LinkRow",
    "PendingRow",
    "RunRow",
    "Store",
    "StoreError",
    "StoreSettings",
    "encode_base",
]

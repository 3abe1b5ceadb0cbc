"""OAuth tokens in a PostgreSQL store, encrypted at rest, refreshed by one process at a time.

On SQLite a connector keeps its token set in a file of the state directory (``oauth/``, mode
0600, ``flock`` around a refresh). Several daemons on several machines do not share a state
directory, so on PostgreSQL the token sets live in the store's ``oauth_token`` table instead, one
row per token set, its ``data`` the token set's JSON encrypted with Fernet (AES-128-CBC and
HMAC-SHA256, from ``cryptography``) under the key of ``[store] token_key`` (a secret reference;
several keys separated by spaces or commas: the first encrypts, any decrypts, for rotation).

A refresh (:meth:`TokenVault.refresh`) happens in one transaction on a connection of its own:

1. ``SELECT … FOR UPDATE`` on the token row: refreshes of one token set are serialised across
   every process, as the file lock did (a second one waits, then finds the fresh tokens);
2. the sync's claim: a process that holds it (a run, or the daemon's keep-alive, which claims
   the sync) checks that it still does *before* the refresh token is sent; a process that does
   not hold it (``syncd check``, the console) refreshes only while no other process holds the
   claim, and otherwise takes the stored tokens as they are (the claim holder refreshes them);
3. the token endpoint is called (the caller's coroutine);
4. the new token set is written back in the same transaction as the claim check of the
   fencing (the claim row updated under the same holder and token, as every fenced commit
   does), so a process that lost its claim meanwhile writes nothing.

A rotating refresh token is therefore sent once per rotation. The one window left is a process
that is killed or frozen between the token endpoint's answer and the commit: its transaction is
rolled back (the connection dies, or ``idle_in_transaction_session_timeout`` ends it) and the
next refresh sends the previous refresh token again, which Xero honours for its 30-minute grace
period (vendors.md §1.2).

Neither the key nor any token appears in a log line, an error or ``--json`` output: errors name
``[store] token_key`` and the row, never the value.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.failures import ConnectorConfigError
from syncd.store.engines import FENCE, ClaimLost, StoreSettings, connect_kwargs
from syncd.store.lazy_psycopg import postgresql_missing

#: how long a refresh transaction may sit idle (waiting for the token endpoint) before the
#: server ends it; at least the lease, so a slow endpoint does not lose a rotated token
MIN_IDLE = 10.0
KEY_HELP = (
    "make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'"
)


class TokenKeyError(ConnectorConfigError):
    """``[store] token_key`` is missing or does not decrypt the stored tokens."""


def parse_keys(value: str) -> Any:
    """The ``MultiFernet`` of a ``token_key`` value; raises ``ValueError`` saying what is wrong
    (never showing the value), or naming syncd's postgresql extra when cryptography is missing."""
    missing = postgresql_missing()
    if missing is not None:
        raise ValueError(missing)
    from cryptography.fernet import Fernet, MultiFernet

    keys = [k for k in re.split(r"[\s,]+", value.strip()) if k]
    if not keys:
        raise ValueError(f"it is empty; {KEY_HELP}")
    fernets = []
    for index, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            which = f"key {index} of {len(keys)}" if len(keys) > 1 else "it"
            raise ValueError(
                f"{which} is not a Fernet key (32 bytes, url-safe base64: 44 characters); "
                f"{KEY_HELP}"
            ) from None
    return MultiFernet(fernets)


@dataclass
class StoredTokens:
    """One token set as read from the store."""

    data: dict[str, Any] | None
    version: int
    #: another process holds the sync's claim (and so refreshes its tokens)
    held_by: str | None = None


class TokenVault:
    """The ``oauth_token`` table of a PostgreSQL store, for connectors (``context.tokens``)."""

    def __init__(self, settings: StoreSettings, holder: str) -> None:
        self.settings = settings
        self.holder = holder
        self._fernet: Any = None
        self._key_problem: str | None = None
        if not settings.token_key:
            self._key_problem = (
                "[store] token_key is not set: with a PostgreSQL store, OAuth tokens are kept in "
                "the store, encrypted with that key (a secret reference such as "
                '"${env:SYNCD_TOKEN_KEY}")'
            )
        else:
            try:
                self._fernet = parse_keys(settings.token_key)
            except ValueError as exc:
                self._key_problem = f"[store] token_key: {exc}"

    def __repr__(self) -> str:
        return f"TokenVault(holder={self.holder!r})"

    @property
    def where(self) -> str:
        return "the store (table oauth_token, encrypted with [store] token_key)"

    # --- encryption ---------------------------------------------------------------------------

    def _cipher(self) -> Any:
        if self._fernet is None:
            raise TokenKeyError(self._key_problem or "[store] token_key is not set")
        return self._fernet

    def encrypt(self, data: dict[str, Any]) -> str:
        payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return str(self._cipher().encrypt(payload).decode("ascii"))

    def decrypt(self, name: str, text: str) -> dict[str, Any]:
        from cryptography.fernet import InvalidToken

        try:
            raw = self._cipher().decrypt(text.encode("ascii"))
        except (InvalidToken, ValueError, UnicodeError):
            raise TokenKeyError(
                f"[store] token_key does not decrypt the stored OAuth tokens {name!r}: the key "
                "differs from the one they were saved with (set the same key on every daemon; "
                "during a rotation list the old key after the new one)"
            ) from None
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise TokenKeyError(f"the stored OAuth tokens {name!r} are not a token set")
        return value

    # --- connections --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        import psycopg

        self._cipher()  # a missing or bad key fails before anything is read
        idle = max(MIN_IDLE, self.settings.lease_timeout)
        conn = await psycopg.AsyncConnection.connect(
            **connect_kwargs(self.settings.url or "", self.settings.password),
            prepare_threshold=None,
        )
        try:
            await conn.execute(f"SET idle_in_transaction_session_timeout = {int(idle * 1000)}")
            await conn.commit()
            yield conn
        finally:
            await conn.close()

    # --- reading and writing ------------------------------------------------------------------

    async def load(self, name: str) -> dict[str, Any] | None:
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT data FROM oauth_token WHERE name = %s", (name,))
            row = await cursor.fetchone()
            await conn.rollback()
        return None if row is None else self.decrypt(name, row[0])

    async def save(self, name: str, sync: str, side: str, data: dict[str, Any]) -> None:
        """Write a token set (a new grant, the organisation resolved); fenced by the sync's
        claim when the caller holds it."""
        async with self._connection() as conn, conn.transaction():
            await self._write(conn, name, sync, side, data)

    async def refresh(
        self,
        name: str,
        sync: str,
        side: str,
        renew: Callable[[StoredTokens], Awaitable[dict[str, Any] | None]],
    ) -> StoredTokens:
        """Refresh one token set under its row lock (see the module's docstring). ``renew``
        gets what is stored and returns the new token set, or ``None`` to keep what is stored
        (it is not due, or another process holds the claim). Returns what is stored after."""
        async with self._connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "SELECT data, version FROM oauth_token WHERE name = %s FOR UPDATE", (name,)
            )
            row = await cursor.fetchone()
            stored = StoredTokens(
                None if row is None else self.decrypt(name, row[0]),
                0 if row is None else int(row[1]),
            )
            fence = FENCE.get()
            if fence is not None and fence.sync == sync:
                cursor = await conn.execute(
                    "SELECT 1 FROM sync_claim WHERE sync = %s AND holder = %s AND token = %s"
                    " AND expires_at > clock_timestamp()",
                    (fence.sync, fence.holder, fence.token),
                )
                if await cursor.fetchone() is None:
                    raise ClaimLost(sync)  # before the refresh token is sent anywhere
            else:
                cursor = await conn.execute(
                    "SELECT holder FROM sync_claim WHERE sync = %s AND holder <> ''"
                    " AND expires_at > clock_timestamp()",
                    (sync,),
                )
                other = await cursor.fetchone()
                if other is not None:
                    stored.held_by = str(other[0])
            fresh = await renew(stored)
            if fresh is None:
                return stored
            await self._write(conn, name, sync, side, fresh)
            return StoredTokens(fresh, stored.version + 1)

    async def _write(
        self, conn: Any, name: str, sync: str, side: str, data: dict[str, Any]
    ) -> None:
        fence = FENCE.get()
        if fence is not None and fence.sync == sync:
            # the fencing check of every commit made for a claimed sync (engines.py), in this
            # transaction: a process that lost its claim writes no token
            cursor = await conn.execute(
                "UPDATE sync_claim SET expires_at = clock_timestamp() + make_interval(secs => %s)"
                " WHERE sync = %s AND holder = %s AND token = %s"
                " AND expires_at > clock_timestamp() RETURNING 1",
                (self.settings.lease_timeout * 2 / 3, fence.sync, fence.holder, fence.token),
            )
            if await cursor.fetchone() is None:
                raise ClaimLost(sync)
        await conn.execute(
            "INSERT INTO oauth_token (name, sync, side, data, version, updated_at, updated_by)"
            " VALUES (%s, %s, %s, %s, 1, now() AT TIME ZONE 'UTC', %s)"
            " ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data, sync = EXCLUDED.sync,"
            " side = EXCLUDED.side, version = oauth_token.version + 1,"
            " updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
            (name, sync, side, self.encrypt(data), self.holder),
        )


def missing_key(config: Any) -> str | None:
    """Config check: a PostgreSQL store without ``[store] token_key`` while a sync's side keeps
    OAuth tokens. The problem's message, or ``None``."""
    settings = config.daemon.store
    if not settings.postgres or settings.token_key:
        return None
    needing = sorted(
        f"{sync.name} {side}"
        for sync in config.syncs.values()
        for side in ("a", "b")
        if sync.side(side).connector_class.keeps_tokens(sync.side(side).settings)
    )
    if not needing:
        return None
    shown = ", ".join(needing[:3]) + (f" and {len(needing) - 3} more" if len(needing) > 3 else "")
    return (
        "required with a PostgreSQL store when a sync keeps OAuth tokens "
        f"({shown}): they are kept in the store, encrypted with this key; set it to a secret "
        f'reference such as "${{env:SYNCD_TOKEN_KEY}}" ({KEY_HELP})'
    )


# --- on the store's own connection (opening, store copy) ------------------------------------


def check_stored_tokens(db: Any, settings: StoreSettings) -> int:
    """At opening: every stored token set decrypts with ``[store] token_key`` (a wrong key is
    said at start, naming the key, not at the first run). Returns how many there are."""
    rows = db.execute_sql("SELECT name, data FROM oauth_token ORDER BY name").fetchall()
    if not rows:
        return 0
    if not settings.token_key:
        raise TokenKeyError(
            f"[store] token_key is not set, and the store holds {len(rows)} OAuth token "
            "set(s) encrypted with it: set the key the other daemons use"
        )
    vault = TokenVault(settings, "")
    vault._cipher()
    for name, data in rows:
        vault.decrypt(str(name), str(data))
    return len(rows)


def token_files(state_dir: Path) -> list[Path]:
    """The token files of a SQLite installation (``oauth/<connector>-<sync>-<side>.json``)."""
    folder = state_dir / "oauth"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def name_parts(name: str) -> tuple[str, str]:
    """``xero-<sync>-<side>`` → (sync, side)."""
    head, _, side = name.rpartition("-")
    _, _, sync = head.partition("-")
    if side not in ("a", "b") or not sync:
        raise ValueError(f"{name!r} is not named <connector>-<sync>-<side>")
    return sync, side


def import_token_files(db: Any, state_dir: Path, key: str, holder: str) -> int:
    """Copy a SQLite installation's token files into the ``oauth_token`` table, encrypted
    (``syncd store copy`` to PostgreSQL). Returns how many."""
    vault = TokenVault(StoreSettings(token_key=key), holder)
    count = 0
    for path in token_files(state_dir):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a token file ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a token file")
        sync, side = name_parts(path.stem)
        db.execute_sql(
            "INSERT INTO oauth_token (name, sync, side, data, version, updated_at, updated_by)"
            " VALUES (?, ?, ?, ?, 1, now() AT TIME ZONE 'UTC', ?)",
            (path.stem, sync, side, vault.encrypt(data), holder),
        )
        count += 1
    return count


def export_token_files(db: Any, state_dir: Path, key: str) -> int:
    """Write a PostgreSQL store's token sets out as the token files of a SQLite installation
    (``syncd store copy`` back to SQLite). Returns how many."""
    import os
    import tempfile

    vault = TokenVault(StoreSettings(token_key=key), "")
    rows = db.execute_sql("SELECT name, data FROM oauth_token ORDER BY name").fetchall()
    folder = state_dir / "oauth"
    for name, text in rows:
        data = vault.decrypt(str(name), str(text))
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, folder / f"{name}.json")
    return len(rows)

"""What the connector last pushed for each customer, so that every push is a whole customer.

Salesfire cannot be read, and the engine hands an update only the fields that changed. Sending
just those would lose the customer's identity (an update that changes the name carries no email)
and would reset ``types``/``channels`` a sync rule had set to the settings' defaults; and how
Salesfire treats keys missing from an upsert is not documented (vendors.md §4). So the connector
keeps, per customer, the fields it last pushed successfully, merges an update onto them and sends
the complete customer.

One small SQLite file per sync side under the state directory. It is a cache: losing it only
means an update is built from the changed fields plus the identifier (and the default types and
channels where the update does not set them).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from syncd.connector import RawValue

Fields = dict[str, RawValue]


class PushedCustomers:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        # one worker thread at a time uses the connection
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS pushed (key TEXT PRIMARY KEY, fields TEXT NOT NULL)")
        self._db = db

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await asyncio.to_thread(db.close)

    async def load(self, keys: Iterable[str]) -> dict[str, Fields]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        async with self._lock:
            return await asyncio.to_thread(self._load, wanted)

    def _load(self, keys: Sequence[str]) -> dict[str, Fields]:
        marks = ",".join("?" * len(keys))
        rows = self._conn().execute(
            f"SELECT key, fields FROM pushed WHERE key IN ({marks})", tuple(keys)
        )
        return {key: _decode(text) for key, text in rows}

    async def save(self, pushed: Sequence[tuple[str, Fields]]) -> None:
        """Record ``(record id, fields)`` for each customer pushed."""
        if not pushed:
            return
        async with self._lock:
            await asyncio.to_thread(self._save, pushed)

    def _save(self, pushed: Sequence[tuple[str, Fields]]) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            for key, fields in pushed:
                db.execute(
                    "INSERT INTO pushed (key, fields) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET fields = excluded.fields",
                    (key, json.dumps(_encodable(fields), sort_keys=True)),
                )

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("PushedCustomers used before open()")
        return self._db


def _encodable(fields: Fields) -> dict[str, str | list[str] | None]:
    return {
        key: value if value is None or isinstance(value, str) else sorted(value)
        for key, value in fields.items()
    }


def _decode(text: str) -> Fields:
    raw = json.loads(text)
    return {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}

"""The connector's local mirror of one address book: each card's href, ETag, body and fields, and
the collection's sync-token (the cursor of RFC 6578 WebDAV sync).

The sync-token is also the engine's cursor for this side (``Connector.listing_cursor``): a run
lists only the cards changed since the token the last committed run ended at; the mirror keeps
every card's body, ETag and fields, which an update needs (it edits only the properties syncd
maps) and a full listing hands to syncd (unchanged cards carry their ETag as ``version``). On a
server without WebDAV sync, every run compares ETags from one PROPFIND and fetches the bodies of
changed cards alone.

The mirror is a cache: losing it (or any write to it, in a crash) costs a full fetch, never data.
Every write that reached the server but not the mirror is reported by the server again (the
token predates it, or the ETag differs).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS card (
    id TEXT PRIMARY KEY,
    href TEXT NOT NULL,
    etag TEXT,
    body TEXT,
    data TEXT,
    picks TEXT,
    error TEXT
);
"""


class Entry:
    """One card: its href, ETag, body, fields and which vCard lines they came from. A loaded
    entry decodes its fields when first asked (a run that lists incrementally reads few)."""

    __slots__ = ("_data", "_picks", "_stored", "body", "error", "etag", "href")

    def __init__(
        self,
        href: str,
        etag: str | None,
        body: str | None,
        data: dict[str, Any] | None,
        picks: dict[str, int],
        error: str | None = None,
    ) -> None:
        self.href, self.etag, self.body, self.error = href, etag, body, error
        self._data, self._picks = data, picks
        self._stored: tuple[str | None, str | None] | None = None

    @classmethod
    def stored(
        cls,
        href: str,
        etag: str | None,
        body: str | None,
        data: str | None,
        picks: str | None,
        error: str | None,
    ) -> Entry:
        entry = cls(href, etag, body, None, {}, error)
        entry._stored = (data, picks)
        return entry

    def _decode(self) -> None:
        if self._stored is not None:
            data, picks = self._stored
            self._stored = None
            self._data = json.loads(data) if data else None
            self._picks = json.loads(picks) if picks else {}

    @property
    def data(self) -> dict[str, Any] | None:
        self._decode()
        return self._data

    @property
    def picks(self) -> dict[str, int]:
        self._decode()
        return self._picks

    def columns(self) -> tuple[str | None, str]:
        """``data`` and ``picks`` as stored (JSON), decoded or not."""
        if self._stored is not None:
            data, picks = self._stored
            return data, picks or "{}"
        return (
            json.dumps(self._data) if self._data is not None else None,
            json.dumps(self._picks),
        )


class Mirror:
    """Loaded whole when a run starts; changes are written back in one transaction."""

    def __init__(self, path: Path | None, book_url: str) -> None:
        self.path = path
        self.book_url = book_url
        #: the cards, read from the file when first asked for (a run in which nothing
        #: changed on the server never reads them)
        self._entries: dict[str, Entry] | None = {}
        self.token: str | None = None
        self.sync_unsupported = False
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._meta_dirty = False

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            with sqlite3.connect(self.path) as db:
                db.executescript(SCHEMA)
                meta = dict(db.execute("SELECT key, value FROM meta"))
                if meta.get("book_url") != self.book_url:
                    # another address book (or a new file): start afresh
                    self._reset_file = self._meta_dirty = True
                    return
                self.token = meta.get("sync_token") or None
                self.sync_unsupported = meta.get("sync_unsupported") == "1"
        except (sqlite3.DatabaseError, ValueError):
            self._broken()
            return
        self._entries = None
        self._meta_dirty = False

    def _broken(self) -> None:
        # a broken cache costs one full fetch
        self._entries = {}
        self.token = None
        self._meta_dirty = True
        self._reset_file = True

    @property
    def entries(self) -> dict[str, Entry]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, Entry] = {}
        assert self.path is not None
        try:
            with sqlite3.connect(self.path) as db:
                for cid, href, etag, body, data, picks, error in db.execute(
                    "SELECT id, href, etag, body, data, picks, error FROM card"
                ):
                    entries[cid] = Entry.stored(href, etag, body, data, picks, error)
        except (sqlite3.DatabaseError, ValueError):
            self._broken()
            entries = {}
        self._entries = entries
        return entries

    _reset_file = False

    def put(self, cid: str, entry: Entry) -> None:
        self.entries[cid] = entry
        self._dirty.add(cid)
        self._removed.discard(cid)

    def remove(self, cid: str) -> None:
        if self.entries.pop(cid, None) is not None or cid in self._dirty:
            self._removed.add(cid)
        self._dirty.discard(cid)

    def forget_etag(self, cid: str) -> None:
        """The card changed on the server in a way not known here: fetch it next time."""
        entry = self.entries.get(cid)
        if entry is not None:
            entry.etag = None
            self._dirty.add(cid)

    def set_token(self, token: str | None) -> None:
        if token != self.token:
            self.token = token
            self._meta_dirty = True

    def set_sync_unsupported(self, value: bool) -> None:
        if value != self.sync_unsupported:
            self.sync_unsupported = value
            self._meta_dirty = True

    def clear(self) -> None:
        """Forget every card (a listing in full fills the mirror again)."""
        self._removed.update(self.entries)
        self.entries.clear()
        self._dirty.clear()

    @property
    def dirty(self) -> bool:
        return bool(self._dirty or self._removed or self._meta_dirty)

    def save(self) -> None:
        """Write the changes since the last save (call it off the event loop)."""
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._reset_file:
            self.path.unlink(missing_ok=True)
            self._reset_file = False
            self._dirty = set(self.entries)
        dirty, removed = self._dirty, self._removed
        self._dirty, self._removed = set(), set()
        rows = []
        for cid in dirty:
            entry = self.entries.get(cid)
            if entry is None:
                continue
            data, picks = entry.columns()
            rows.append((cid, entry.href, entry.etag, entry.body, data, picks, entry.error))
        with sqlite3.connect(self.path) as db:
            db.executescript(SCHEMA)
            db.executemany("DELETE FROM card WHERE id = ?", [(cid,) for cid in removed])
            db.executemany("INSERT OR REPLACE INTO card VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            meta = {
                "book_url": self.book_url,
                "sync_token": self.token or "",
                "sync_unsupported": "1" if self.sync_unsupported else "0",
            }
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        self._meta_dirty = False

"""An in-memory connector for tests and benchmarks (and for plugin authors' own tests).

Records live in a :class:`MemoryApp`, looked up by the ``account`` setting in a process-wide
registry, so a test can edit "the app" between syncs and inspect what the engine wrote. The app
counts every write call, can rewrite what it stores the way real apps do (re-casing names,
reformatting phone numbers), and can refuse records.

It is not registered by default: tests register it with ``load_plugins(extra=[memory])``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.connector import (
    Capabilities,
    Connector,
    FieldSpec,
    RawValue,
    RecordWrite,
    RemoteRecord,
    Setting,
    WriteResult,
)
from syncd.contact import CANONICAL_FIELDS
from syncd.hookspecs import hookimpl

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: one clock for every app, so that "newest" compares like real timestamps do
_CLOCK = itertools.count(1)
_TICKS = [0]


def _last_tick() -> int:
    return _TICKS[0]


@dataclass
class MemoryRecord:
    data: dict[str, RawValue]
    updated: int
    archived: bool = False
    #: what listings hand out, made once per version (a benchmark lists 300,000 records)
    listed: RemoteRecord | None = None
    listed_version: int = -1


@dataclass
class MemoryApp:
    """One fake app account."""

    records: dict[str, MemoryRecord] = field(default_factory=dict)
    write_calls: int = 0
    written_records: int = 0
    list_calls: int = 0
    #: store names title-cased and phones with spaces, as some apps do
    rewrites: bool = False
    #: records whose email contains this text are refused
    refuse_marker: str | None = None
    seen_keys: dict[str, str] = field(default_factory=dict)
    #: hand out a revision number with every record (as apps with etags do)
    versions: bool = True
    _listing: list[RemoteRecord] | None = None
    _listing_stamp: tuple[int, int] | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def tick(self) -> int:
        _TICKS[0] = next(_CLOCK)
        return _TICKS[0]

    def add(self, data: dict[str, RawValue], record_id: str | None = None) -> str:
        """Create a record as a user of the app would (not counted as a sync write)."""
        new_id = record_id or f"m{next(self._ids)}"
        self.records[new_id] = MemoryRecord(dict(data), self.tick())
        return new_id

    def edit(self, record_id: str, **changes: RawValue) -> None:
        record = self.records[record_id]
        record.data.update(changes)
        record.updated = self.tick()

    def delete(self, record_id: str) -> None:
        del self.records[record_id]
        self.tick()

    def full_listing(
        self, render: Callable[[str, MemoryRecord], RemoteRecord]
    ) -> list[RemoteRecord]:
        """Every record, made again only when something changed since the last listing (every
        change ticks the shared clock), so that a benchmark measures syncd, not this app."""
        stamp = (_last_tick(), len(self.records))
        if self._listing is None or self._listing_stamp != stamp:
            self._listing = [render(rid, record) for rid, record in self.records.items()]
            self._listing_stamp = stamp
        return self._listing

    def live(self) -> dict[str, dict[str, RawValue]]:
        return {rid: r.data for rid, r in self.records.items() if not r.archived}

    def _store(self, data: dict[str, RawValue]) -> dict[str, RawValue]:
        if not self.rewrites:
            return dict(data)
        stored: dict[str, RawValue] = {}
        for key, value in data.items():
            if isinstance(value, str) and key in ("first_name", "last_name", "name"):
                value = value.title()
            elif isinstance(value, str) and key in ("phone", "mobile") and value.startswith("+44"):
                digits = value[3:]
                value = f"+44 {digits[:4]} {digits[4:]}"
            stored[key] = value
        return stored


APPS: dict[str, MemoryApp] = {}


def app(account: str) -> MemoryApp:
    """The app behind ``account`` (created on first use)."""
    return APPS.setdefault(account, MemoryApp())


def reset() -> None:
    APPS.clear()


class MemoryConnector(Connector):
    name = "memory"
    title = "In-memory app (tests)"
    settings = (
        Setting("account", "which in-memory app to use", required=True),
        Setting("token", "a pretend credential", secret=True),
        Setting("batch_size", "largest write batch", type=int, default=100),
        Setting("incremental", "list only what changed since the cursor", type=bool, default=False),
    )
    capabilities = Capabilities(
        incremental=True,
        lookup_by_email=True,
        archive="archive",
        create_batch_size=100,
        update_batch_size=100,
        idempotency_keys=True,
        custom_fields=True,
    )
    fields = (
        *(FieldSpec(name, name) for name in CANONICAL_FIELDS),
        FieldSpec("created_by", None, read_only=True),
    )

    def __init__(self, settings: dict[str, Any], context: Any) -> None:
        super().__init__(settings, context)
        self.app = app(str(self.config["account"]))
        batch = int(self.config.get("batch_size") or 100)
        self.capabilities = Capabilities(
            incremental=bool(self.config.get("incremental")),
            lookup_by_email=True,
            archive="archive",
            create_batch_size=batch,
            update_batch_size=batch,
            idempotency_keys=True,
            custom_fields=True,
        )

    async def check(self) -> str:
        return f"memory app with {len(self.app.records)} records"

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        self.app.list_calls += 1
        since = int(cursor) if cursor else 0
        if since == 0:
            listing = self.app.full_listing(self._remote)
        else:
            listing = [
                self._remote(rid, record)
                for rid, record in list(self.app.records.items())
                if record.updated >= since
            ]
        for start in range(0, len(listing), 1000):
            yield listing[start : start + 1000]

    def make_cursor(self, watermark: datetime) -> str:
        return str(int((watermark - EPOCH).total_seconds()))

    def _version(self, rid: str | None) -> str | None:
        record = self.app.records.get(rid or "")
        return str(record.updated) if record is not None and self.app.versions else None

    def _remote(self, rid: str, record: MemoryRecord) -> RemoteRecord:
        listed = record.listed
        if listed is None or record.listed_version != record.updated:
            record.listed_version = record.updated
            listed = record.listed = RemoteRecord(
                rid,
                dict(record.data),
                updated_at=EPOCH + timedelta(seconds=record.updated),
                archived=record.archived,
                version=str(record.updated) if self.app.versions else None,
            )
        return listed

    async def lookup_by_email(self, emails: Sequence[str]) -> list[RemoteRecord]:
        wanted = set(emails)
        return [
            self._remote(rid, r)
            for rid, r in self.app.records.items()
            if isinstance(r.data.get("email"), str)
            and str(r.data["email"]).strip().lower() in wanted
        ]

    def _refused(self, data: dict[str, RawValue]) -> str | None:
        marker = self.app.refuse_marker
        email = data.get("email")
        if marker and isinstance(email, str) and marker in email:
            return f"email {email!r} refused by the app"
        return None

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        self.app.write_calls += 1
        results = []
        for write in writes:
            if write.key in self.app.seen_keys:
                results.append(WriteResult(write.key, self.app.seen_keys[write.key]))
                continue
            reason = self._refused(write.data)
            if reason:
                results.append(WriteResult(write.key, error=reason))
                continue
            self.app.written_records += 1
            new_id = self.app.add(self.app._store(write.data))
            self.app.seen_keys[write.key] = new_id
            results.append(WriteResult(write.key, new_id, version=self._version(new_id)))
        return results

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        self.app.write_calls += 1
        results = []
        for write in writes:
            record = self.app.records.get(write.id or "")
            if record is None:
                results.append(WriteResult(write.key, write.id, "record not found"))
                continue
            reason = self._refused({**record.data, **write.data})
            if reason:
                results.append(WriteResult(write.key, write.id, reason))
                continue
            self.app.written_records += 1
            record.data.update(self.app._store(write.data))
            record.updated = self.app.tick()
            results.append(WriteResult(write.key, write.id, version=self._version(write.id)))
        return results

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        self.app.write_calls += 1
        results = []
        for rid in ids:
            record = self.app.records.get(rid)
            if record is None:
                results.append(WriteResult(rid, rid, "record not found"))
                continue
            record.archived = True
            record.updated = self.app.tick()
            results.append(WriteResult(rid, rid))
        return results


class MemoryNoTagsConnector(MemoryConnector):
    """An app that keeps no tags (like Xero contacts)."""

    name = "memory-notags"
    fields = tuple(f for f in MemoryConnector.fields if f.name != "tags")


class MemoryPushConnector(MemoryConnector):
    """A write-only app (like Salesfire): it takes records and can never be read."""

    name = "memory-push"
    title = "In-memory write-only app (tests)"
    capabilities = Capabilities(read=False, write=True, create_batch_size=100)

    def __init__(self, settings: dict[str, Any], context: Any) -> None:
        super().__init__(settings, context)
        self.capabilities = MemoryPushConnector.capabilities

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        # an upsert by email, as write-only apps do
        self.app.write_calls += 1
        results = []
        by_email = {str(r.data.get("email")): rid for rid, r in self.app.records.items()}
        for write in writes:
            self.app.written_records += 1
            email = str(write.data.get("email"))
            rid = by_email.get(email)
            if rid is None:
                rid = self.app.add(dict(write.data))
                by_email[email] = rid
            else:
                self.app.records[rid].data = dict(write.data)
                self.app.records[rid].updated = self.app.tick()
            results.append(WriteResult(write.key, rid))
        return results

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        return await self.create(writes)


@hookimpl
def register_connectors(register: Any) -> None:
    register(MemoryConnector)
    register(MemoryNoTagsConnector)
    register(MemoryPushConnector)

"""A compact in-process app for the engine benchmark.

``syncd.testing.memory`` keeps every record as a dict and caches its listings, which is right for
tests but weighs more than syncd itself at 100,000 contacts a side. This app generates its
original records from their number, keeps only what was written since (as tuples in one field
order) and builds each page of a listing when it is asked for, as a real connector parses one
page of JSON at a time. It gives a revision with every record and lists incrementally.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
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
FIELDS = ("email", "first_name", "last_name", "company", "city", "phone", "mobile", "title", "tags")
PAGE = 1000
#: generated records were last changed at tick 1000, long before anything syncd writes
GENERATED_AT = 1000
_CLOCK = itertools.count(2 * GENERATED_AT)

Row = tuple[RawValue, ...]
Generator = Callable[[int], Row]


class SyntheticApp:
    """One app account: ``count`` generated records plus whatever was written since."""

    def __init__(self, prefix: str, count: int, generate: Generator) -> None:
        self.prefix = prefix
        #: every record's fields by id; a write replaces the dict, so a listing can hand out
        #: the stored one (as a parsed page of JSON would be, without the parsing)
        self.rows: dict[str, dict[str, RawValue]] = {
            f"{prefix}{i}": dict(zip(FIELDS, generate(i), strict=True)) for i in range(count)
        }
        #: id → (tick, updated_at, version) of every record changed since it was generated,
        #: oldest change first; one updated_at per write call, as apps stamp whole seconds
        self.changed: dict[str, tuple[int, datetime, str]] = {}
        self.archived: set[str] = set()
        self.write_calls = 0
        self.next_id = count
        self._generated = EPOCH + timedelta(seconds=GENERATED_AT), str(GENERATED_AT)
        self._stamp = self._generated[0]

    def new_call(self) -> None:
        self._stamp = EPOCH + timedelta(seconds=next(_CLOCK))

    def touch(self, rid: str) -> int:
        tick = next(_CLOCK)
        self.changed.pop(rid, None)
        self.changed[rid] = (tick, self._stamp, str(tick))
        return tick

    def put(self, rid: str, data: dict[str, RawValue]) -> None:
        current = dict(self.rows[rid])
        current.update((k, v) for k, v in data.items() if k in current)
        self.rows[rid] = current
        self.touch(rid)

    def edit(self, rid: str, **changes: RawValue) -> None:
        self.new_call()
        self.put(rid, changes)

    def create(self, data: dict[str, RawValue]) -> str:
        rid = f"{self.prefix}{self.next_id}"
        self.next_id += 1
        self.rows[rid] = {name: data.get(name) for name in FIELDS}
        self.touch(rid)
        return rid

    def ids(self) -> list[str]:
        return list(self.rows)

    def records(self, ids: Sequence[str]) -> list[RemoteRecord]:
        """A page of records, as a connector makes them from a parsed page of JSON."""
        rows, changed, archived = self.rows, self.changed, self.archived
        generated_at, generated = self._generated
        page = []
        for rid in ids:
            change = changed.get(rid)
            if change is None:
                stamp, version = generated_at, generated
            else:
                _, stamp, version = change
            page.append(RemoteRecord(rid, rows[rid], stamp, rid in archived, None, version))
        return page

    def record(self, rid: str) -> RemoteRecord:
        change = self.changed.get(rid)
        stamp, version = self._generated if change is None else change[1:]
        return RemoteRecord(rid, self.rows[rid], stamp, rid in self.archived, None, version)

    def version(self, rid: str) -> str:
        return self.changed[rid][2]


APPS: dict[str, SyntheticApp] = {}


class SyntheticConnector(Connector):
    name = "synthetic"
    title = "Generated in-process app (engine benchmark)"
    settings = (
        Setting("account", "which generated app to use", required=True),
        Setting("batch_size", "largest write batch", type=int, default=1000),
    )
    capabilities = Capabilities(
        incremental=True,
        lookup_by_email=True,
        archive="archive",
        create_batch_size=1000,
        update_batch_size=1000,
    )
    fields = tuple(FieldSpec(name, name) for name in CANONICAL_FIELDS)

    def __init__(self, settings: dict[str, Any], context: Any) -> None:
        super().__init__(settings, context)
        self.app = APPS[str(self.config["account"])]

    async def check(self) -> str:
        return f"generated app with {self.app.count} records"

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        since = int(cursor) if cursor else 0
        if since > 0:
            # newest changes last: walk back to the cursor
            recent = []
            for rid, change in reversed(self.app.changed.items()):
                if change[0] < since:
                    break
                recent.append(rid)
            ids = recent[::-1]
        else:
            ids = self.app.ids()
        for start in range(0, len(ids), PAGE):
            yield self.app.records(ids[start : start + PAGE])

    def make_cursor(self, watermark: datetime) -> str:
        return str(max(0, int((watermark - EPOCH).total_seconds())))

    async def lookup_by_email(self, emails: Sequence[str]) -> list[RemoteRecord]:
        wanted = set(emails)
        return [
            self.app.record(rid)
            for rid in self.app.ids()
            if str(self.app.rows[rid]["email"] or "").lower() in wanted
        ]

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        self.app.write_calls += 1
        self.app.new_call()
        results = []
        for write in writes:
            rid = self.app.create(write.data)
            results.append(WriteResult(write.key, rid, version=self.app.version(rid)))
        return results

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        self.app.write_calls += 1
        self.app.new_call()
        results = []
        for write in writes:
            rid = write.id or ""
            self.app.put(rid, write.data)
            results.append(WriteResult(write.key, rid, version=self.app.version(rid)))
        return results

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        self.app.write_calls += 1
        self.app.new_call()
        for rid in ids:
            self.app.archived.add(rid)
            self.app.touch(rid)
        return [WriteResult(rid, rid) for rid in ids]


@hookimpl
def register_connectors(register: Any) -> None:
    register(SyntheticConnector)

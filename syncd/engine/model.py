"""The planner's inputs and outputs: plain data, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from syncd.config import Rule
from syncd.connector import RawValue, RemoteRecord
from syncd.contact import FieldValue
from syncd.engine.fields import FieldPair, SideFields
from syncd.store import IssueRow, JournalRow, LinkRow
from syncd.store.history import Held

SIDES = ("a", "b")


def other(side: str) -> str:
    return "b" if side == "a" else "a"


@dataclass(slots=True)
class SideRecord:
    """One listed record. ``changed`` is false when its fingerprint equals its link's."""

    id: str
    fp: str
    raw: dict[str, RawValue]
    changed: bool = True
    archived: bool = False
    updated_at: datetime | None = None
    _values: dict[str, FieldValue] | None = None

    def values(self, fields: SideFields) -> dict[str, FieldValue]:
        if self._values is None:
            self._values = fields.view(self.raw)
        return self._values

    def forget_view(self) -> None:
        self._values = None

    def value(self, fields: SideFields, key: str) -> FieldValue:
        """One value, from the view when it was made, else on its own (the view is not kept)."""
        if self._values is not None:
            return self._values.get(key)
        return fields.value(self.raw, key)


@dataclass
class SideInput:
    name: str
    fields: SideFields
    #: listed records that changed since their link's fingerprint, or have no link
    records: dict[str, SideRecord]
    #: listed in full (absence means deleted) rather than incrementally
    complete: bool
    readable: bool = True
    writable: bool = True
    can_archive: bool = False
    #: records refused recently: not to be tried again yet
    backed_off: set[str] = field(default_factory=set)
    #: its records carry the app's revision (so a fingerprint cannot be predicted)
    versioned: bool = False
    #: records listed but unreadable (a broken CSV row): present, never taken for deleted
    unreadable: set[str] = field(default_factory=set)
    #: listed records whose fingerprint equals their link's, kept as the connector gave them:
    #: most records of most runs, so no engine object is made for them unless a plan needs it
    unchanged: dict[str, RemoteRecord] = field(default_factory=dict)
    _made: dict[str, SideRecord] = field(default_factory=dict)
    #: records let go once written (``release``): the latest update time among them, and the
    #: update times of those the cursor must not pass (held)
    released_count: int = 0
    released_high: datetime | None = None
    released_held: dict[str, datetime | None] = field(default_factory=dict)

    def take_page(
        self,
        page: Iterable[RemoteRecord],
        fingerprint: Callable[[RemoteRecord], str],
        linked: Mapping[str, str | None],
    ) -> None:
        """``take`` for a page of readable records: the hot loop of a run, where most records
        of most runs are unchanged and cost a fingerprint and a dictionary lookup."""
        unchanged, linked_fp = self.unchanged, linked.get
        # a revision's fingerprint made here (``SideFields.version_fingerprint``, inlined):
        # an app with revisions lists 200,000 records after a first merge
        suffix = self.fields.version_suffix
        versioned = False
        for record in page:
            version = record.version
            if version is None or record.archived:
                fp = fingerprint(record)
            else:
                fp = "v:" + version + suffix
            if version is not None:
                versioned = True
            if fp == linked_fp(record.id):
                unchanged[record.id] = record
            else:
                self.take(record, fp, None)
        if versioned:
            self.versioned = True

    def take(self, record: RemoteRecord, fp: str, linked_fp: str | None) -> None:
        """Add a listed record: kept as it is when its fingerprint is its link's."""
        if record.version is not None:
            self.versioned = True
        if fp == linked_fp:
            self.unchanged[record.id] = record
        else:
            self.records[record.id] = SideRecord(
                record.id, fp, record.data, True, record.archived, record.updated_at
            )

    def listed(self, rid: str) -> bool:
        return rid in self.records or rid in self.unchanged

    def get(self, rid: str) -> SideRecord | None:
        """The listed record ``rid`` (an unchanged one is made into a record when first asked)."""
        record = self.records.get(rid)
        if record is not None:
            return record
        made = self._made.get(rid)
        if made is None:
            remote = self.unchanged.get(rid)
            if remote is None:
                return None
            made = self._made[rid] = SideRecord(
                rid,
                self.fields.record_fingerprint(remote),
                remote.data,
                changed=False,
                archived=remote.archived,
                updated_at=remote.updated_at,
            )
        return made

    def count(self) -> int:
        return len(self.records) + len(self.unchanged) + self.released_count

    def release(self, rid: str, held: bool) -> None:
        """Let a written record go (a first merge would keep 200,000 of them, and the app's
        data they hold, to the end), keeping what the cursor needs: its update time when it
        is ``held`` (failed or backed off: to be listed again), else only the latest."""
        record = self.records.pop(rid, None)
        if record is None:
            return
        self.released_count += 1
        stamp = record.updated_at
        if held:
            self.released_held[rid] = stamp
        elif stamp is not None and (self.released_high is None or stamp > self.released_high):
            self.released_high = stamp

    def latest_update(self) -> datetime | None:
        """The latest update time among the listed records."""
        stamps = [r.updated_at for r in self.records.values() if r.updated_at is not None]
        stamps.extend(r.updated_at for r in self.unchanged.values() if r.updated_at is not None)
        stamps.extend(s for s in self.released_held.values() if s is not None)
        if self.released_high is not None:
            stamps.append(self.released_high)
        return max(stamps, default=None)

    def update_time(self, rid: str) -> datetime | None:
        """When the listed record ``rid`` was last updated (None: unknown, or not listed).

        A released record is known only if it was held when let go; the executor lets a
        record go only after its slice was written, and no later slice writes it again."""
        listed = self.records.get(rid) or self.unchanged.get(rid)
        if listed is not None:
            return listed.updated_at
        return self.released_held.get(rid)

    def forget_views(self) -> None:
        """Drop the normalised values made while planning (they are made again if asked)."""
        for record in self.records.values():
            record.forget_view()
        self._made.clear()


#: a journaled field: (hash sent, hash of the source's value it came from, target's before)
Sent = tuple[str | None, str | None, str | None]


@dataclass
class Journal:
    """What runs that died before committing their outcome had sent (rule 4), for the planner.

    A field whose value on the target equals what was sent is syncd's own write: its base is
    what was sent (and the source's value it came from), so that a person's later edit on
    either side is an edit, not a conflict with syncd's half-finished write. A field that holds
    neither what was sent nor what it held before was edited since by a person.
    """

    #: (side, record id) → the fields sent to that record, newest entry first
    updates: dict[tuple[str, str], list[dict[str, Sent]]] = field(default_factory=dict)
    #: (side created on, source record id) → the fields the create sent, newest first
    creates: dict[tuple[str, str], list[dict[str, Sent]]] = field(default_factory=dict)
    #: records syncd archived
    archives: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def build(cls, rows: Iterable[JournalRow]) -> Journal:
        journal = cls()
        for row in rows:
            if row.kind == "archive" and row.record_id is not None:
                journal.archives.add((row.side, row.record_id))
            elif row.kind == "create" and row.source_id is not None:
                journal.creates.setdefault((row.side, row.source_id), []).append(row.hashes())
            elif row.record_id is not None:
                journal.updates.setdefault((row.side, row.record_id), []).append(row.hashes())
        return journal

    def __bool__(self) -> bool:
        return bool(self.updates or self.creates or self.archives)

    def sent_to(
        self, side: str, record_id: str | None, source_id: str | None
    ) -> list[tuple[bool, dict[str, Sent]]]:
        """The entries of writes to ``record_id`` on ``side`` (or of a create there from
        ``source_id``), newest first, each with whether it was a create."""
        found: list[tuple[bool, dict[str, Sent]]] = []
        if record_id is not None:
            found.extend((False, e) for e in self.updates.get((side, record_id), ()))
        if source_id is not None:
            found.extend((True, e) for e in self.creates.get((side, source_id), ()))
        return found


@dataclass
class PlanInput:
    pairs: list[FieldPair]
    a: SideInput
    b: SideInput
    links: list[LinkRow]
    direction: str = "two-way"
    winner: str = "a"
    #: the initial mode on the first run, ``None`` afterwards
    initial: str | None = None
    deletions: str = "ignore"
    deletion_tag: str = "syncd-deleted"
    match_phone: bool = False
    rules_a_to_b: tuple[Rule, ...] = ()
    rules_b_to_a: tuple[Rule, ...] = ()
    #: whether ``links`` holds every link of the sync, or only those of the records listed
    #: as changed and of the records a full listing no longer shows
    all_links: bool = True
    #: over every link of the sync (``links`` may be a part): how many are ``linked``, and
    #: how many of those have a record on each side (for the guards of rule 7)
    linked_count: int = 0
    linked_on: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    #: writes of earlier runs whose outcome was never committed (a crash)
    journal: Journal = field(default_factory=Journal)
    #: ``stop``, or ``review``: a run past the mass-deletion guard holds its deletions
    on_mass_deletion: str = "stop"

    def side(self, name: str) -> SideInput:
        return self.a if name == "a" else self.b

    def travels(self, to: str) -> bool:
        return self.direction == "two-way" or self.direction == f"{other(to)}-to-{to}"

    def rules(self, to: str) -> tuple[Rule, ...]:
        return self.rules_a_to_b if to == "b" else self.rules_b_to_a


@dataclass(slots=True)
class Write:
    """Values (by view key) to write to one side: an update of ``record_id`` or a create."""

    side: str
    record_id: str | None
    values: dict[str, FieldValue]
    source_id: str | None = None
    email: str | None = None
    #: the record's email (hash) before this write, which the write frees on its side
    old_email_hash: str | None = None
    #: an update's fields as the target held them before (hashes; None: empty), journaled
    #: with what is sent so that the next run tells a write that never landed from an edit
    before: dict[str, str | None] | None = None


@dataclass
class Conflict:
    email: str | None
    field: str
    value_a: FieldValue
    value_b: FieldValue
    winner: str


@dataclass(slots=True)
class PairPlan:
    """What happens to one link (or a new one) in this run.

    ``base``/``fp``/``state`` are the link's values once every write and archive succeeded;
    bases as the JSON text the store keeps (a first merge holds 100,000 of them).
    """

    link: LinkRow
    writes: dict[str, Write] = field(default_factory=dict)
    archive: tuple[str, ...] = ()
    base: dict[str, str | None] = field(default_factory=dict)
    fp: dict[str, str | None] = field(default_factory=dict)
    state: str = "linked"
    drop: bool = False
    conflicts: tuple[Conflict, ...] = ()
    #: a new pair found by matching emails (counted as "linked")
    matched: bool = False

    @property
    def has_remote_work(self) -> bool:
        return bool(self.writes or self.archive)


class NewRecordQueue(Protocol):
    """New records waiting to be planned (see ``syncd.engine.planner.NewRecords``)."""

    @property
    def remaining(self) -> int: ...

    def next_slice(self, limit: int) -> Plan: ...


@dataclass
class Plan:
    pairs: list[PairPlan] = field(default_factory=list)
    issues: list[IssueRow] = field(default_factory=list)
    #: records that did not travel because no rule of their direction matched (``filtered``)
    filtered: list[IssueRow] = field(default_factory=list)
    #: records that synced cleanly this run: their old issues are resolved
    resolved: list[tuple[str, str]] = field(default_factory=list)
    #: why the run must stop unless forced (rule 7), or None
    guard: str | None = None
    #: the plan was cut short: it has new records to match (or emails to move) and must be
    #: made again with every link
    needs_all_links: bool = False
    #: new records still to be matched and planned, a slice at a time (``match_all`` plans
    #: them into this plan); the pairs above are those of existing links
    new_records: NewRecordQueue | None = None
    #: the new records a slice planned (side, id): the executor lets them go once it is written
    covered: list[tuple[str, str]] = field(default_factory=list)
    #: deletions held for review instead of propagated (``deletions = "review"``, or a mass
    #: deletion with ``on_mass_deletion = "review"``); their links are left as they were
    held: list[Held] = field(default_factory=list)

    def match_all(self) -> None:
        """Plan every new record into this plan (a dry run shows the whole plan)."""
        queue, self.new_records = self.new_records, None
        if queue is not None and queue.remaining:
            part = queue.next_slice(queue.remaining)
            self.pairs.extend(part.pairs)
            self.issues.extend(part.issues)
            self.filtered.extend(part.filtered)
            self.resolved.extend(part.resolved)

    def writes(self, side: str, create: bool) -> list[tuple[PairPlan, Write]]:
        found = []
        for pair in self.pairs:
            write = pair.writes.get(side)
            if write is not None and (write.record_id is None) == create:
                found.append((pair, write))
        return found

    def archives(self, side: str) -> list[PairPlan]:
        return [pair for pair in self.pairs if side in pair.archive]

    @property
    def conflicts(self) -> list[Conflict]:
        return [c for pair in self.pairs for c in pair.conflicts]

    def summary(self) -> dict[str, int]:
        counts = {
            "linked": sum(1 for p in self.pairs if p.matched),
            "create_a": len(self.writes("a", create=True)),
            "create_b": len(self.writes("b", create=True)),
            "update_a": len(self.writes("a", create=False)),
            "update_b": len(self.writes("b", create=False)),
            "archive_a": len(self.archives("a")),
            "archive_b": len(self.archives("b")),
            "conflicts": len(self.conflicts),
            "excluded": sum(1 for i in self.issues if i.kind == "excluded"),
            "ambiguous": sum(1 for i in self.issues if i.kind == "ambiguous"),
        }
        return counts


ViewFn = Callable[[SideRecord], dict[str, FieldValue]]

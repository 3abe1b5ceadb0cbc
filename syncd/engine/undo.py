"""Undo of a run (issue 15): put back what one run wrote, field by field, from the journal.

A field is restored only where the record still holds what that run wrote (or what the app
said it stored): a value a person or another run changed since is left alone and reported.
A record the run created is archived (or deleted, where the app can only delete), under the
same mass-deletion guard as a sync (rule 7), unless a person edited it since. A record the run
archived is made again from the values the journal kept. Comparisons are of the normalised,
hashed values a sync compares, so an app's own reformatting is no change.

An undo is a run of its own, under the sync's lock (rule 8), journaled like any other: it can
itself be undone, and a second undo of the same run finds every field as it was before and
writes nothing. Its writes take the link bases along (the restored value is the side's base),
so the next sync neither sends the restored values on nor takes them for edits; a crash in the
middle of an undo is recognised like any other (its journal entries are the crash record), and
undoing again finishes the job without restoring anything twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.config import SyncConfig
from syncd.connector import Connector, RecordWrite, RemoteRecord, WriteResult
from syncd.contact import display, normalise
from syncd.engine import executor
from syncd.engine import journal as history
from syncd.engine.fields import SideFields, build_pairs, hashes, value_hash
from syncd.engine.model import SIDES, other
from syncd.redact import redact
from syncd.store import JournalResult, JournalRow, LinkRow, PendingRow, Store, encode_base
from syncd.store.history import Change, run_changes, run_exists
from syncd.store.lock import SyncLock

_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


class UndoError(Exception):
    """An undo that cannot start (no such run, nothing journaled): exit status 2, a 404."""


@dataclass
class UndoItem:
    """One field (or record) the undo restores, archives, makes again, or leaves alone."""

    side: str
    record_id: str | None
    email: str | None
    action: str  # restore | archive | recreate | skip
    field: str | None = None
    now: Any = None
    restored: Any = None
    reason: str = ""

    def json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "record_id": self.record_id,
            "email": self.email,
            "action": self.action,
            "field": self.field,
            "now": self.now,
            "restored": self.restored,
            "reason": self.reason,
        }


@dataclass
class UndoResult:
    sync: str
    undone_run: int
    run_id: int | None
    dry_run: bool
    outcome: str = "success"
    message: str | None = None
    items: list[UndoItem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "sync": self.sync,
            "undone_run": self.undone_run,
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "outcome": self.outcome,
            "message": self.message,
            "counts": self.counts,
            "restored": [i.json() for i in self.items if i.action == "restore"],
            "archived": [i.json() for i in self.items if i.action == "archive"],
            "recreated": [i.json() for i in self.items if i.action == "recreate"],
            "skipped": [i.json() for i in self.items if i.action == "skip"],
        }


@dataclass
class _Update:
    side: str
    record_id: str
    email: str | None
    data: dict[str, Any] = field(default_factory=dict)  # app field → value restored
    was: dict[str, Any] = field(default_factory=dict)  # app field → value now
    keys: dict[str, str] = field(default_factory=dict)  # app field → view key
    #: view key → hash restored (None: empty), also for fields found restored already
    base: dict[str, str | None] = field(default_factory=dict)


@dataclass
class _Work:
    updates: dict[tuple[str, str], _Update] = field(default_factory=dict)
    archives: list[tuple[str, str, Change]] = field(default_factory=list)
    recreates: list[tuple[str, Change, dict[str, Any]]] = field(default_factory=list)


async def undo_run(
    sync: SyncConfig,
    store: Store,
    run_id: int,
    record: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    trigger: str = "cli",
) -> UndoResult:
    """Undo what run ``run_id`` of ``sync`` wrote (only ``record``'s writes, by email or id)."""
    lock = SyncLock(store.state_dir, sync.name)
    lock.acquire()  # raises SyncBusy: one run per sync at a time
    try:
        return await _Undo(sync, store, run_id, record, dry_run, force, trigger).execute()
    finally:
        lock.release()


class _Undo:
    def __init__(
        self,
        sync: SyncConfig,
        store: Store,
        run_id: int,
        record: str | None,
        dry_run: bool,
        force: bool,
        trigger: str,
    ) -> None:
        self.sync, self.store, self.undone = sync, store, run_id
        self.record, self.dry_run, self.force, self.trigger = record, dry_run, force, trigger
        pairs = build_pairs(sync)
        self.fields = {
            s: SideFields.build(s, pairs, sync.side(s).connector_class, sync.phone_region)
            for s in SIDES
        }
        self.kinds = {s: {k: kind for k, _, kind in self.fields[s].fields} for s in SIDES}
        self.names = {s: {k: name for k, name, _ in self.fields[s].fields} for s in SIDES}
        self.connectors: dict[str, Connector] = {}
        self.listed: dict[str, dict[str, RemoteRecord]] = {}
        self.links: dict[tuple[str, str], LinkRow] = {}
        self.result = UndoResult(sync.name, run_id, None, dry_run)
        self.counts = {
            "restored_fields": 0,
            "updated_a": 0,
            "updated_b": 0,
            "archived_a": 0,
            "archived_b": 0,
            "created_a": 0,
            "created_b": 0,
            "skipped": 0,
            "failed": 0,
        }
        self.reason = history.UNDO.format(run=run_id)

    # --- entry --------------------------------------------------------------------------------

    async def execute(self) -> UndoResult:
        store, name = self.store, self.sync.name
        store.set_history(name, self.sync.history_days)
        if not await store.run(run_exists, store, name, self.undone):
            raise UndoError(f"sync {name!r} has no run {self.undone} (see 'syncd history {name}')")
        changes = await store.run(run_changes, store, name, self.undone)
        changes = [c for c in changes if c.outcome != "refused" and self._wanted(c)]
        if not changes:
            what = f" for {self.record}" if self.record else ""
            raise UndoError(
                f"run {self.undone} of {name!r} has no journaled write{what} to undo (the journal "
                f"keeps {self.sync.history_days} days; history_days = 0 keeps none)"
            )
        if not self.dry_run:
            self.result.run_id = await store.run(store.start_run, name, self.trigger, False)
        outcome, message = "success", None
        try:
            await self._open(changes)
            work = self._decide(changes)
            guard = await self._guard(work)
            if guard and not self.force:
                outcome, message = "failed", guard
            elif not self.dry_run:
                await self._write(work)
                if self.counts["failed"]:
                    outcome = "partial"
                    message = f"{self.counts['failed']} record(s) failed"
            elif guard:
                message = f"forced past the guard: {guard}"
        except UndoError:
            raise
        except Exception as exc:
            outcome, message = "failed", redact(f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:
            outcome, message = "interrupted", "stopped dead; committed work is kept"
            raise
        finally:
            for connector in self.connectors.values():
                await connector.close()
            if self.result.run_id is not None:
                await store.run(store.finish_run, self.result.run_id, outcome, self.counts, message)
            self.result.outcome = "dry_run" if self.dry_run and outcome == "success" else outcome
            self.result.message = message
            self.result.counts = dict(self.counts)
        return self.result

    def _wanted(self, change: Change) -> bool:
        if self.record is None:
            return True
        wanted = self.record.strip()
        return wanted in (change.record_id, change.source_id) or (
            change.email is not None and change.email.lower() == wanted.lower()
        )

    async def _open(self, changes: Sequence[Change]) -> None:
        for side in sorted({c.side for c in changes}):
            connector = executor.make_connector(self.sync, side, self.store, self.dry_run)
            self.connectors[side] = connector
            await connector.open()
            found: dict[str, RemoteRecord] = {}
            async for page in connector.list_records(None):
                for remote in page:
                    found[remote.id] = remote
            self.listed[side] = found
        for link in await self.store.run(self.store.load_links, self.sync.name):
            for side in SIDES:
                rid = link.record_id(side)
                if rid is not None:
                    self.links[(side, rid)] = link

    # --- deciding -----------------------------------------------------------------------------

    def _hash(self, side: str, key: str, raw: Any) -> str | None:
        if raw is None or raw == "":
            return None
        kind = self.kinds[side].get(key)
        if kind is None:
            return value_hash(str(raw))
        if isinstance(raw, list):
            raw = tuple(raw)
        value = normalise(kind, raw, self.sync.phone_region)
        return None if value is None else value_hash(value)

    def _skip(self, change: Change, reason: str, name: str | None = None, now: Any = None) -> None:
        self.counts["skipped"] += 1
        self.result.items.append(
            UndoItem(
                change.side,
                change.record_id,
                change.email,
                "skip",
                None if name is None else change.field_key(name),
                now,
                None,
                reason,
            )
        )

    def _live_with_email(self, side: str, email: str | None) -> RemoteRecord | None:
        if not email:
            return None
        name = self.names[side].get("email", "email")
        for remote in self.listed[side].values():
            value = remote.data.get(name)
            wanted = email.strip().lower()
            if not remote.archived and isinstance(value, str) and value.strip().lower() == wanted:
                return remote
        return None

    def _decide(self, changes: Sequence[Change]) -> _Work:
        work = _Work()
        # newest write first: a record written twice by the run goes back to its first value
        for change in reversed(changes):
            if change.kind == "update":
                self._decide_update(change, work)
            elif change.kind == "create":
                self._decide_create(change, work)
            elif change.kind == "archive":
                self._decide_archive(change, work)
        return work

    def _decide_update(self, change: Change, work: _Work) -> None:
        side, rid = change.side, change.record_id or ""
        before = change.before()
        remote = self.listed[side].get(rid)
        if remote is None or remote.archived:
            gone = "is archived" if remote is not None else "no longer exists"
            self._skip(change, f"the record {gone} on side {side}")
            return
        if before is None:
            self._skip(change, "the journal has no value before for this write")
            return
        update = work.updates.get((side, rid))
        if update is None:
            update = work.updates[(side, rid)] = _Update(side, rid, change.email)
        for name in change.sent:
            key = change.field_key(name)
            old, written = before.get(name), change.written(name)
            now = remote.data.get(name)
            h_now, h_old = self._hash(side, key, now), self._hash(side, key, old)
            h_written = self._hash(side, key, written)
            if name in update.data:
                # an earlier write of the same run to this field: restore to that one's before
                if self._hash(side, key, update.data[name]) == h_written:
                    update.data[name] = old
                    update.base[key] = h_old
                continue
            if h_now == h_old:
                update.base[key] = h_old  # as it was before (perhaps a crashed undo's work)
                self._skip(change, "already as it was before", name, display_value(now))
            elif h_now == h_written:
                update.data[name], update.was[name], update.keys[name] = old, now, key
                update.base[key] = h_old
                self.result.items.append(
                    UndoItem(
                        side,
                        rid,
                        change.email,
                        "restore",
                        key,
                        now,
                        old,
                        change.field_reason(name) or "",
                    )
                )
                self.counts["restored_fields"] += 1
            else:
                self._skip(
                    change,
                    f"changed since the run wrote it (now {display_value(now)!r})",
                    name,
                    display_value(now),
                )

    def _decide_create(self, change: Change, work: _Work) -> None:
        side = change.side
        rid = change.record_id
        remote = self.listed[side].get(rid or "")
        if rid is None:
            # a create whose outcome a crash never committed: the record made, if it was
            remote = self._live_with_email(side, change.email)
            rid = remote.id if remote is not None else None
        if remote is None or remote.archived:
            self._skip(change, f"the record it created is gone from side {side} already")
            return
        edited = [
            change.field_key(n)
            for n in change.sent
            if self._hash(side, change.field_key(n), remote.data.get(n))
            != self._hash(side, change.field_key(n), change.written(n))
        ]
        if edited:
            self._skip(change, f"edited since it was created ({', '.join(sorted(edited))})")
            return
        if self.connectors[side].capabilities.archive is None:
            self._skip(change, f"side {side} can neither archive nor delete records")
            return
        work.archives.append((side, remote.id, change))
        what = self.connectors[side].capabilities.archive or "archive"
        self.result.items.append(
            UndoItem(
                side, remote.id, change.email, "archive", reason=f"created by the run ({what})"
            )
        )

    def _decide_archive(self, change: Change, work: _Work) -> None:
        side, rid = change.side, change.record_id or ""
        remote = self.listed[side].get(rid)
        if remote is not None and not remote.archived:
            self._skip(change, "the record is not archived any more")
            return
        again = self._live_with_email(side, change.email)
        if again is not None:
            self._skip(change, f"a record with this email is on side {side} again ({again.id})")
            return
        values = change.before()
        if not values:
            self._skip(change, "the journal does not hold the archived record's values")
            return
        writable = set(self.names[side].values())
        data = {k: v for k, v in values.items() if k in writable and v not in (None, "")}
        work.recreates.append((side, change, data))
        self.result.items.append(
            UndoItem(side, rid, change.email, "recreate", reason="archived by the run")
        )

    async def _guard(self, work: _Work) -> str | None:
        linked = await self.store.run(self.store.count_links, self.sync.name)
        limit = max(10, linked // 10)
        for side in SIDES:
            count = sum(1 for s, _, _ in work.archives if s == side)
            if count > limit:
                return (
                    f"this undo would archive or delete {count} records on side {side}, more "
                    f"than the limit of {limit} (10% of {linked} links, at least 10); "
                    "use --force if this is right"
                )
        return None

    # --- writing ------------------------------------------------------------------------------

    async def _write(self, work: _Work) -> None:
        await self._updates(list(work.updates.values()))
        await self._archives(work.archives)
        await self._recreates(work.recreates)

    def _link_base(self, link: LinkRow | None, side: str, base: dict[str, str | None]) -> str:
        current = dict((link.base(side) if link is not None else None) or {})
        for key, h in base.items():
            if h is None:
                current.pop(key, None)
            else:
                current[key] = h
        return encode_base(current) or "{}"

    async def _updates(self, updates: Sequence[_Update]) -> None:
        store, name, run_id = self.store, self.sync.name, self.result.run_id
        for side in SIDES:
            items = [u for u in updates if u.side == side]
            if not items:
                continue
            quiet = [u for u in items if not u.data]
            if quiet:  # nothing to send; the bases still become what the record holds
                await self._commit_updates(side, quiet, [])
            loud = [u for u in items if u.data]
            size = max(1, self.connectors[side].capabilities.update_batch_size)
            for start in range(0, len(loud), size):
                chunk = loud[start : start + size]
                writes = [
                    RecordWrite(f"{run_id}:{side}:{u.record_id}", u.data, u.record_id)
                    for u in chunk
                ]
                rows = [self._journal_row(u, w) for u, w in zip(chunk, writes, strict=True)]
                await store.run(store.add_journal, name, rows, run_id)
                executor._crash_point("journaled")
                results = await self._send(
                    self.connectors[side].update, writes, [w.key for w in writes]
                )
                executor._crash_point("sent")
                await self._commit_updates(side, chunk, results)
                executor._crash_point("committed")

    def _journal_row(self, update: _Update, write: RecordWrite) -> JournalRow:
        side = update.side
        link = self.links.get((side, update.record_id))
        target = self._link_base(link, side, update.base)
        source = (link.base_json(other(side)) if link is not None else None) or "{}"
        keys = [update.keys[n] for n in write.data]
        was = {update.keys[n]: self._hash(side, update.keys[n], v) for n, v in update.was.items()}
        packed = f'{{"t":{target},"s":{source},"b":{_ENCODE(was)},"w":{_ENCODE(keys)},"o":null}}'
        return JournalRow(
            side,
            "update",
            update.record_id,
            link.record_id(other(side)) if link is not None else None,
            write.key,
            dict(write.data),
            packed,
            self.result.run_id,
            update.email,
            self.reason,
            history.detail(self.names[side], keys, dict(update.was), {}),
        )

    async def _commit_updates(
        self, side: str, chunk: Sequence[_Update], results: Sequence[WriteResult]
    ) -> None:
        links, done, answers = [], [], []
        ok = {r.key for r in results if r.ok}
        for update in chunk:
            key = f"{self.result.run_id}:{side}:{update.record_id}"
            if update.data and key not in ok:
                self.counts["failed"] += 1
                answers.append(JournalResult(key, "failed"))
                continue
            if update.data:
                self.counts[f"updated_{side}"] += 1
            link = self.links.get((side, update.record_id))
            if link is not None:
                link.set_base_json(side, self._link_base(link, side, update.base))
                setattr(link, f"fp_{side}", None)
                links.append(link)
            done.append((side, update.record_id))
        await self.store.run(
            self.store.commit_outcomes,
            self.sync.name,
            links=links,
            run_id=self.result.run_id,
            journal_done=done,
            journal_results=answers,
        )

    async def _send(
        self, call: Any, batch: Sequence[Any], keys: Sequence[str]
    ) -> list[WriteResult]:
        try:
            results: list[WriteResult] = await call(batch)
        except Exception as exc:
            reason = redact(f"{type(exc).__name__}: {exc}")
            return [WriteResult(key, error=reason) for key in keys]
        by_key = {r.key: r for r in results}
        return [by_key.get(k) or WriteResult(k, error="the connector gave no result") for k in keys]

    async def _archives(self, archives: Sequence[tuple[str, str, Change]]) -> None:
        store, name, run_id = self.store, self.sync.name, self.result.run_id
        for side in SIDES:
            items = [(rid, c) for s, rid, c in archives if s == side]
            size = max(1, self.connectors[side].capabilities.update_batch_size) if items else 1
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                rows = []
                for rid, change in chunk:
                    remote = self.listed[side][rid]
                    link = self.links.get((side, rid))
                    rows.append(
                        JournalRow(
                            side,
                            "archive",
                            rid,
                            link.record_id(other(side)) if link is not None else None,
                            f"{run_id}:{side}:{rid}:archive",
                            {},
                            run_id=run_id,
                            email=change.email,
                            reason=self.reason,
                            # what the record held: an undo of this undo makes it again
                            detail=history.detail(
                                self.names[side], self.names[side], dict(remote.data), {}
                            ),
                        )
                    )
                await store.run(store.add_journal, name, rows, run_id)
                executor._crash_point("journaled")
                ids = [rid for rid, _ in chunk]
                results = await self._send(self.connectors[side].archive, ids, ids)
                executor._crash_point("sent")
                links, done, answers = [], [], []
                for (rid, _), result, row in zip(chunk, results, rows, strict=True):
                    if not result.ok:
                        self.counts["failed"] += 1
                        answers.append(JournalResult(row.key or "", "failed"))
                        continue
                    self.counts[f"archived_{side}"] += 1
                    link = self.links.get((side, rid))
                    if link is not None:
                        # the partner stays; only its later edit makes the record again
                        link.state = f"gone_{side}"
                        links.append(link)
                    done.append((side, rid))
                await store.run(
                    store.commit_outcomes,
                    name,
                    links=links,
                    run_id=run_id,
                    journal_done=done,
                    journal_results=answers,
                )
                executor._crash_point("committed")

    async def _recreates(self, recreates: Sequence[tuple[str, Change, dict[str, Any]]]) -> None:
        store, name, run_id = self.store, self.sync.name, self.result.run_id
        for side, change, data in recreates:
            # a stable key: undoing again after a crash sends the same create (no duplicate)
            key = hashlib.blake2b(
                f"{name}:{change.id}:{side}:{change.record_id}".encode(), digest_size=16
            ).hexdigest()
            link = self.links.get((side, change.record_id or ""))
            source_id = (link.record_id(other(side)) if link is not None else None) or ""
            view = self.fields[side].view(data)
            packed = (
                f'{{"t":{encode_base(hashes(view))},"s":{_source_base(link, side)},'
                f'"b":{{}},"w":{_ENCODE(sorted(view))},"o":null}}'
            )
            row = JournalRow(
                side,
                "create",
                None,
                source_id,
                key,
                dict(data),
                packed,
                run_id,
                change.email,
                self.reason,
                history.detail(self.names[side], view, None, {}),
            )
            pending = PendingRow(side, source_id, key, change.email)
            await store.run(store.add_pending, name, [pending], run_id, [row])
            executor._crash_point("journaled")
            results = await self._send(
                self.connectors[side].create, [RecordWrite(key, data)], [key]
            )
            executor._crash_point("sent")
            result = results[0]
            links = []
            if result.ok and result.id:
                self.counts[f"created_{side}"] += 1
                if link is not None:
                    setattr(link, f"{side}_id", result.id)
                    # a deletion policy's archive: the partner was deleted, and stays so (the
                    # record made again is a survivor); an undo's archive: both are there again
                    link.state = f"gone_{other(side)}" if link.state == "archived" else "linked"
                    link.set_base(side, hashes(view))
                    setattr(link, f"fp_{side}", None)
                    links.append(link)
                answer = JournalResult(key, "confirmed", result.id)
            else:
                self.counts["failed"] += 1
                answer = JournalResult(key, "refused")
            await store.run(
                store.commit_outcomes,
                name,
                links=links,
                run_id=run_id,
                pending_done=[key],
                journal_results=[answer],
            )
            executor._crash_point("committed")


def _source_base(link: LinkRow | None, side: str) -> str:
    return (link.base_json(other(side)) if link is not None else None) or "{}"


def display_value(raw: Any) -> Any:
    """A raw value as a person reads it (tags joined)."""
    if isinstance(raw, list | tuple):
        return display(frozenset(str(v) for v in raw))
    return raw

"""Reading the change journal and the review queue (issue 15).

Plain functions over a :class:`syncd.store.Store`'s database, run on its thread
(``await store.run(list_changes, store, ...)``). The journal keeps one row per write (see
migration ``0004_history``); :func:`change_json` turns one into what ``syncd changes`` and
``GET /api/v1/syncs/{name}/changes`` show: the write with a list of its fields.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from syncd.timefmt import rfc3339

if TYPE_CHECKING:
    from syncd.store import RunRow, Store

CHANGES_LIMIT_DEFAULT = 100
CHANGES_LIMIT_MAX = 1000

_COLUMNS = (
    "id, run_id, created_at, side, kind, record_id, source_id, key, email, reason, sent,"
    " detail, stored, outcome, settled_at"
)


@dataclass(slots=True)
class Change:
    """One journaled write, decoded."""

    id: int
    run_id: int | None
    created_at: datetime | None
    side: str
    kind: str
    record_id: str | None
    source_id: str | None
    key: str | None
    email: str | None
    reason: str | None
    sent: dict[str, Any]
    detail: dict[str, Any]
    stored: dict[str, Any]
    outcome: str
    settled_at: datetime | None

    def field_key(self, name: str) -> str:
        """The view key of the app field ``name`` (the name itself when they are the same)."""
        return str((self.detail.get("k") or {}).get(name, name))

    def before(self) -> dict[str, Any] | None:
        value = self.detail.get("b")
        return value if isinstance(value, dict) else None

    def written(self, name: str) -> Any:
        """What the record holds for ``name`` after this write: what the app said it stored,
        else what was sent."""
        if name in self.stored:
            return self.stored[name]
        return self.sent.get(name)

    def field_reason(self, name: str) -> str | None:
        return (self.detail.get("r") or {}).get(name) or self.reason


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _decode(row: Sequence[Any]) -> Change:
    (rid, run_id, created, side, kind, record_id, source_id, key, email, reason) = row[:10]
    sent, detail, stored, outcome, settled = row[10:]
    return Change(
        int(rid),
        run_id,
        _time(created),
        side,
        kind,
        record_id,
        source_id,
        key,
        email,
        reason,
        json.loads(sent or "{}"),
        json.loads(detail or "{}"),
        json.loads(stored or "{}"),
        outcome or "pending",
        _time(settled),
    )


def _iso(value: datetime | None) -> str | None:
    return rfc3339(value)


def query_changes(
    store: Store,
    sync: str,
    run_id: int | None = None,
    record: str | None = None,
    since: float | None = None,
    limit: int = CHANGES_LIMIT_DEFAULT,
    offset: int = 0,
    oldest_first: bool = True,
) -> tuple[list[Change], int]:
    """The journaled writes of ``sync`` (of one run, one record — by email or record id on
    either side — or younger than ``since`` seconds), a page of them, and how many match."""
    where = ["sync = ?"]
    args: list[Any] = [sync]
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    if record is not None:
        where.append("(record_id = ? OR lower(email) = lower(?))")
        args.extend([record, record.strip()])
    if since is not None:
        cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=since)
        where.append("created_at >= ?")
        args.append(cutoff.isoformat(" "))
    clause = " AND ".join(where)
    db = store.db
    total = int(db.execute_sql(f"SELECT count(*) FROM journal WHERE {clause}", args).fetchone()[0])
    order = "ASC" if oldest_first else "DESC"
    cursor = db.execute_sql(
        f"SELECT {_COLUMNS} FROM journal WHERE {clause} ORDER BY id {order} LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return [_decode(row) for row in cursor.fetchall()], total


def run_changes(store: Store, sync: str, run_id: int) -> list[Change]:
    """Every journaled write of one run, in the order they were made."""
    cursor = store.db.execute_sql(
        f"SELECT {_COLUMNS} FROM journal WHERE sync = ? AND run_id = ? ORDER BY id",
        (sync, run_id),
    )
    return [_decode(row) for row in cursor.fetchall()]


def run_exists(store: Store, sync: str, run_id: int) -> bool:
    row = store.db.execute_sql(
        "SELECT count(*) FROM run WHERE sync = ? AND id = ?", (sync, run_id)
    ).fetchone()
    return bool(row[0])


def change_json(change: Change) -> dict[str, Any]:
    """One write as ``--json`` and the API show it: its fields with value before, sent, stored."""
    before = change.before() if change.kind != "archive" else None
    fields = []
    for name, value in change.sent.items():
        entry: dict[str, Any] = {
            "field": change.field_key(name),
            "app_field": name,
            "before": None if before is None else before.get(name),
            "sent": value,
            "reason": change.field_reason(name),
        }
        if name in change.stored:
            entry["stored"] = change.stored[name]
        fields.append(entry)
    return {
        "id": change.id,
        "run_id": change.run_id,
        "at": _iso(change.created_at),
        "side": change.side,
        "kind": change.kind,
        "record_id": change.record_id,
        "source_id": change.source_id,
        "email": change.email,
        "reason": change.reason,
        "outcome": change.outcome,
        "settled_at": _iso(change.settled_at),
        "fields": fields,
    }


# --- the review queue -----------------------------------------------------------------------


@dataclass(slots=True)
class Held:
    """A deletion held for review (see :class:`syncd.store.models.Review`)."""

    id: int | None
    link_id: int
    deleted_side: str
    deleted_id: str | None
    survivor_side: str
    survivor_id: str | None
    email: str | None
    action: str
    why: str
    state: str = "held"
    detected_at: datetime | None = None
    run_id: int | None = None


_REVIEW_COLUMNS = (
    "id, link_id, deleted_side, deleted_id, survivor_side, survivor_id, email, action, why,"
    " state, detected_at, run_id"
)


def list_held(store: Store, sync: str, states: Sequence[str] = ("held",)) -> list[Held]:
    marks = ", ".join("?" * len(states))
    cursor = store.db.execute_sql(
        f"SELECT {_REVIEW_COLUMNS} FROM review WHERE sync = ? AND state IN ({marks}) ORDER BY id",
        (sync, *states),
    )
    found = []
    for row in cursor.fetchall():
        held = Held(*row)
        held.detected_at = _time(held.detected_at)
        found.append(held)
    return found


def hold(store: Store, sync: str, entries: Sequence[Held], run_id: int | None) -> None:
    """Hold these deletions (one open entry per link: a deletion held again stays as it was)."""
    if not entries:
        return
    db = store.db
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    with db.atomic():
        open_links = {
            row[0]
            for row in db.execute_sql(
                "SELECT link_id FROM review WHERE sync = ? AND state = 'held'", (sync,)
            ).fetchall()
        }
        fresh = [e for e in entries if e.link_id not in open_links]
        db.cursor().executemany(
            "INSERT INTO review (sync, link_id, deleted_side, deleted_id, survivor_side,"
            " survivor_id, email, action, why, state, run_id, detected_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'held', ?, ?)",
            [
                (
                    sync,
                    e.link_id,
                    e.deleted_side,
                    e.deleted_id,
                    e.survivor_side,
                    e.survivor_id,
                    e.email,
                    e.action,
                    e.why,
                    run_id,
                    stamp,
                )
                for e in fresh
            ],
        )


def decide(store: Store, sync: str, ids: Sequence[int], state: str, note: str) -> None:
    """Close held entries: ``approved``, ``rejected`` or ``dropped`` (with why)."""
    if not ids:
        return
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    with store.db.atomic():
        store.db.cursor().executemany(
            "UPDATE review SET state = ?, decided_at = ?, note = ? WHERE sync = ? AND id = ?"
            " AND state = 'held'",
            [(state, stamp, note, sync, i) for i in ids],
        )


def held_json(held: Held) -> dict[str, Any]:
    return {
        "id": held.id,
        "email": held.email,
        "deleted_side": held.deleted_side,
        "deleted_id": held.deleted_id,
        "survivor_side": held.survivor_side,
        "survivor_id": held.survivor_id,
        "action": held.action,
        "why": held.why,
        "detected_at": _iso(held.detected_at),
        "run_id": held.run_id,
    }


def get_run(store: Store, sync: str, run_id: int) -> RunRow | None:
    """One run of ``sync`` by its id (the console's run page)."""
    from syncd.store import _run_row
    from syncd.store.models import Run

    run = Run.get_or_none((Run.id == run_id) & (Run.sync == sync))
    return _run_row(run) if run is not None else None

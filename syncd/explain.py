""" "Why did this contact not sync?": what syncd knows about one contact, in plain words.

:func:`explain` looks a contact up by email or by record id in the status database (links,
record issues, the decisions the engine records, pending creates) and says, for each contact
found, where it is on each side (ids, linked since which run) and what the engine decided last
and why: in sync, excluded, ambiguous, failed (with attempts and the next retry), filtered out
(which rule did not match), deleted on one side, waiting (a ``new-only`` baseline), or unknown.

The database keeps hashes, never contact data: a lookup by email hashes the email the way the
engine does and finds the links whose base holds that hash. :func:`live_values` spends API
calls: it asks both apps for the contact's current values (a lookup by email where the app has
one, else a listing) and puts them side by side, field by field, the differing ones marked.

``syncd explain``, ``GET /api/v1/syncs/{name}/explain`` and the console's sync page share these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.config import SyncConfig
from syncd.connector import Connector, RemoteRecord
from syncd.contact import display, normalise_email
from syncd.engine.fields import FieldPair, SideFields, build_pairs, value_hash
from syncd.health import ISSUE_COLUMNS
from syncd.redact import redact
from syncd.store import Store
from syncd.timefmt import issue_json, rfc3339

SIDES = ("a", "b")
#: at most this many contacts are explained for one query (an id shared by many records)
MAX_CONTACTS = 10
#: a live lookup without lookup by email lists the app until it finds the record, at most this
#: many records
MAX_LISTED = 200_000
#: the longest query (an email address is at most 254 characters)
MAX_QUERY = 320

STATUS_WORDS = {
    "in_sync": "in sync",
    "failed": "failed",
    "ambiguous": "ambiguous",
    "excluded": "excluded",
    "filtered": "filtered out",
    "deleted": "deleted on one side",
    "archived": "archived",
    "waiting": "waiting for a change",
    "pending": "being created",
    "unknown": "not known to syncd",
}


DECISION_COLUMNS = ("side", "record_id", "kind", "email", "reason", "run_id", "decided_at")


class ExplainError(ValueError):
    """The query cannot be looked up (empty, too long)."""


@dataclass
class Contact:
    """One contact found: its records by side, its link, issues and decisions."""

    records: dict[str, str | None] = field(default_factory=lambda: {"a": None, "b": None})
    email: str | None = None
    link: dict[str, Any] | None = None
    issues: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)

    def holds(self, side: str, record_id: str) -> bool:
        return self.records.get(side) == record_id


def check_query(query: str) -> str:
    raw = query or ""
    if len(raw) > MAX_QUERY or any(ord(c) < 32 for c in raw):
        raise ExplainError(
            f"an email address or a record id is one line of at most {MAX_QUERY} characters"
        )
    text = raw.strip()
    if not text:
        raise ExplainError("give an email address or a record id")
    return text


def explain(store: Store, sync: SyncConfig, query: str) -> dict[str, Any]:
    """What syncd knows about the contact ``query`` (an email or a record id) in ``sync``.

    Runs on the store's thread (``await store.run(explain, store, sync, query)``)."""
    text = check_query(query)
    email = normalise_email(text) if "@" in text else None
    contacts = _find(store, sync.name, text, email)
    last = store.last_run(sync.name)
    runs = _run_times(store, [c.link["linked_run"] for c in contacts if c.link])
    explained = [_explain_contact(sync, c, runs) for c in contacts[:MAX_CONTACTS]]
    result: dict[str, Any] = {
        "sync": sync.name,
        "query": text,
        "by": "email" if email else "record_id",
        "apps": {side: sync.side(side).connector for side in SIDES},
        "found": bool(explained),
        "contacts": explained,
        "more": max(0, len(contacts) - MAX_CONTACTS),
        "last_run": None
        if last is None
        else {
            "id": last.id,
            "outcome": last.outcome,
            "finished_at": rfc3339(last.finished_at),
        },
    }
    if not explained:
        what = f"the email {email}" if email else f"a record with the id {text}"
        result["summary"] = (
            f"syncd knows no contact with {what} in {sync.name}: no run has listed it (a "
            "contact added since the last run, a typo, or a different email); fetch the live "
            "values to ask both apps"
        )
    elif len(explained) == 1:
        result["summary"] = explained[0]["summary"]
    else:
        result["summary"] = f"{len(contacts)} contacts match; each is explained below"
    return result


# --- finding ---------------------------------------------------------------------------------


def _find(store: Store, sync: str, text: str, email: str | None) -> list[Contact]:
    columns = "id, a_id, b_id, state, linked_run, updated_at"
    if email is not None:
        pattern = f'%"email":"{value_hash(email)}"%'
        links = store.rows(
            f"SELECT {columns} FROM link WHERE sync = ? AND (base_a LIKE ? OR base_b LIKE ?)",
            (sync, pattern, pattern),
        )
        where, args = "lower(email) = ?", (email,)
    else:
        links = store.rows(
            f"SELECT {columns} FROM link WHERE sync = ? AND (a_id = ? OR b_id = ?)",
            (sync, text, text),
        )
        where, args = "record_id = ?", (text,)
    contacts: list[Contact] = []
    for link_id, a_id, b_id, state, linked_run, updated_at in links:
        contact = Contact(records={"a": a_id, "b": b_id}, email=email)
        contact.link = {
            "id": link_id,
            "state": state,
            "linked_run": linked_run,
            "updated_at": rfc3339(updated_at),
        }
        contacts.append(contact)
    # the link's records' own issues and decisions, and those found by the query itself
    ids = {(side, rid) for c in contacts for side, rid in c.records.items() if rid}
    for table, into in (("record_issue", "issues"), ("record_decision", "decisions")):
        rows = _rows(store, table, sync, where, args)
        rows += [
            row
            for side, rid in sorted(ids)
            for row in _rows(store, table, sync, "side = ? AND record_id = ?", (side, rid))
        ]
        seen: set[tuple[str, str]] = set()
        for row in rows:
            key = (row["side"], row["record_id"])
            if key in seen:
                continue
            seen.add(key)
            owner = next((c for c in contacts if c.holds(row["side"], row["record_id"])), None)
            if owner is None:
                owner = Contact(email=row.get("email") or email)
                owner.records[row["side"]] = row["record_id"]
                contacts.append(owner)
            getattr(owner, into).append(row)
            owner.email = owner.email or row.get("email")
    pending_where = "lower(email) = ?" if email is not None else "source_id = ?"
    for side, source_id, pending_email in store.rows(
        f"SELECT side, source_id, email FROM pending_write WHERE sync = ? AND {pending_where}",
        (sync, email if email is not None else text),
    ):
        source = "b" if side == "a" else "a"
        owner = next((c for c in contacts if c.holds(source, source_id)), None)
        if owner is None:
            owner = Contact(email=pending_email)
            owner.records[source] = source_id
            contacts.append(owner)
        owner.pending.append({"side": side, "source_id": source_id})
    return contacts


def _rows(store: Store, table: str, sync: str, where: str, args: tuple[Any, ...]) -> list[Any]:
    if table == "record_issue":
        cursor = store.rows(
            "SELECT side, record_id, kind, email, reason, attempts, first_seen, last_seen,"
            f" next_attempt_at FROM record_issue WHERE sync = ? AND {where}",
            (sync, *args),
        )
        return [issue_json(dict(zip(ISSUE_COLUMNS, row, strict=True))) for row in cursor]
    cursor = store.rows(
        "SELECT side, record_id, kind, email, reason, run_id, decided_at FROM record_decision"
        f" WHERE sync = ? AND {where}",
        (sync, *args),
    )
    found = []
    for row in cursor:
        data = dict(zip(DECISION_COLUMNS, row, strict=True))
        data["decided_at"] = rfc3339(data["decided_at"])
        found.append(data)
    return found


def _run_times(store: Store, run_ids: Sequence[int | None]) -> dict[int, str | None]:
    wanted = sorted({r for r in run_ids if r is not None})
    if not wanted:
        return {}
    marks = ", ".join("?" * len(wanted))
    cursor = store.rows(f"SELECT id, started_at FROM run WHERE id IN ({marks})", wanted)
    return {int(run_id): rfc3339(started) for run_id, started in cursor}


# --- deciding what to say --------------------------------------------------------------------


def _explain_contact(
    sync: SyncConfig, contact: Contact, runs: dict[int, str | None]
) -> dict[str, Any]:
    apps = {side: sync.side(side).connector for side in SIDES}
    link = contact.link
    if link is not None and link["linked_run"] is not None:
        link["linked_at"] = runs.get(link["linked_run"])
    elif link is not None:
        link["linked_at"] = None
    status, summary = _verdict(contact, apps)
    sides = {}
    for side in SIDES:
        rid = contact.records[side]
        sides[side] = {
            "app": apps[side],
            "record_id": rid,
            "linked": link is not None and rid is not None and link["state"] == "linked",
        }
    return {
        "status": status,
        "status_words": STATUS_WORDS[status],
        "summary": summary,
        "email": contact.email,
        "sides": sides,
        "link": link,
        "issues": contact.issues,
        "decisions": contact.decisions,
        "pending": contact.pending,
    }


def _where(side: str, apps: dict[str, str], rid: str | None) -> str:
    return f"side {side} ({apps[side]}) record {rid}" if rid else f"side {side} ({apps[side]})"


def _linked_since(link: dict[str, Any]) -> str:
    if link.get("linked_run") is None:
        return ""
    when = f" ({link['linked_at']})" if link.get("linked_at") else ""
    return f", linked since run {link['linked_run']}{when}"


def _verdict(contact: Contact, apps: dict[str, str]) -> tuple[str, str]:
    """The status of a contact and one sentence saying it, the most pressing first."""
    by_kind = {issue["kind"]: issue for issue in contact.issues}
    failed = by_kind.get("failed")
    if failed is not None:
        attempts = int(failed.get("attempts") or 1)
        retry = failed.get("next_attempt_at")
        when = f"next retry after {retry}" if retry else "retried on the next run"
        return "failed", (
            f"failed on {_where(failed['side'], apps, failed['record_id'])}: {failed['reason']}"
            f" ({attempts} attempt{'' if attempts == 1 else 's'}; {when})"
        )
    for kind in ("ambiguous", "excluded"):
        issue = by_kind.get(kind)
        if issue is not None:
            where = _where(issue["side"], apps, issue["record_id"])
            return kind, f"{kind} ({where}): {issue['reason']}"
    if contact.decisions:
        decision = contact.decisions[0]
        where = _where(decision["side"], apps, decision["record_id"])
        run = f" (run {decision['run_id']})" if decision.get("run_id") else ""
        return "filtered", f"filtered out{run}, {where}: {decision['reason']}"
    link = contact.link
    a_id, b_id = contact.records["a"], contact.records["b"]
    if link is not None:
        state = link["state"]
        if state == "linked" and a_id and b_id:
            return "in_sync", (
                f"in sync: {_where('a', apps, a_id)} ⇄ {_where('b', apps, b_id)}"
                f"{_linked_since(link)}"
            )
        if state.startswith("gone_"):
            gone = state[-1]
            kept = "b" if gone == "a" else "a"
            return "deleted", (
                f"deleted on {_where(gone, apps, contact.records[gone])}; "
                f"{_where(kept, apps, contact.records[kept])} is kept, and is created there "
                "again only if it is edited"
            )
        if state == "archived":
            return "archived", (
                f"archived: {_where('a', apps, a_id)} and {_where('b', apps, b_id)} were "
                "archived by the deletion policy after the other was deleted"
            )
        if state == "seen":
            side = "a" if a_id else "b"
            return "waiting", (
                f"left as it was by the new-only first run ({_where(side, apps, a_id or b_id)}); "
                "it syncs once it is edited"
            )
    if contact.pending:
        pending = contact.pending[0]
        return "pending", (
            f"a create on side {pending['side']} ({apps[pending['side']]}) was sent when a run "
            "stopped; the next run links what the app made, or creates it"
        )
    side = "a" if a_id else "b"
    return "unknown", f"{_where(side, apps, a_id or b_id)} is known, with no decision recorded"


# --- live values -----------------------------------------------------------------------------


async def live_values(
    sync: SyncConfig, store: Store, explanation: dict[str, Any]
) -> dict[str, Any]:
    """The current values of the explained contacts on both sides, fetched through the
    connectors, with the fields side by side (``differs`` marks a mapped field whose values
    are not equal). Spends API calls: a lookup by email where the app has one, else a listing
    until the record is found. Adds ``live`` to each contact (and to a query that found none,
    by email) and returns ``explanation``."""
    from syncd.engine.executor import make_connector  # the engine is not needed to explain

    pairs = build_pairs(sync)
    fields = {
        side: SideFields.build(side, pairs, sync.side(side).connector_class, sync.phone_region)
        for side in SIDES
    }
    targets = explanation["contacts"][:3]
    if not targets:
        # nothing known: ask both apps for the email, or for a record with that id
        by_email = explanation["by"] == "email"
        email = normalise_email(explanation["query"]) if by_email else None
        record_id = None if by_email else explanation["query"]
        targets = [{"email": email, "sides": {s: {"record_id": record_id} for s in SIDES}}]
        explanation["contacts_live"] = targets
    for side in SIDES:
        connector: Connector | None = None
        try:
            connector = make_connector(sync, side, store, dry_run=True)
            await connector.open()
            for contact in targets:
                record_id = contact["sides"][side]["record_id"]
                email = contact.get("email")
                found, how = await _fetch(connector, side, record_id, email, fields[side])
                contact.setdefault("live", {"sides": {}})["sides"][side] = {
                    "found": found is not None,
                    "record_id": found.id if found is not None else record_id,
                    "fetched_by": how,
                    "values": _values(fields[side], found),
                }
        except Exception as exc:
            for contact in targets:
                contact.setdefault("live", {"sides": {}})["sides"][side] = {
                    "found": False,
                    "error": redact(f"{type(exc).__name__}: {exc}"),
                    "values": {},
                }
        finally:
            if connector is not None:
                with contextlib.suppress(Exception):
                    await connector.close()
    for contact in targets:
        contact["live"]["fields"] = _side_by_side(pairs, contact["live"]["sides"])
    return explanation


async def _fetch(
    connector: Connector, side: str, record_id: str | None, email: str | None, fields: SideFields
) -> tuple[RemoteRecord | None, str]:
    caps = connector.capabilities
    if not caps.read:
        return None, "cannot read (write-only app)"
    if email and caps.lookup_by_email:
        found = await connector.lookup_by_email([email])
        for record in found:
            if record_id is None or record.id == record_id:
                return record, "lookup by email"
        if record_id is None:
            return None, "lookup by email"
    listed = 0
    async for page in connector.list_records(None):
        for record in page:
            if record_id is not None and record.id == record_id:
                return record, "listing"
            if record_id is None and email and fields.value(record.data, "email") == email:
                return record, "listing"
        listed += len(page)
        if listed >= MAX_LISTED:
            break
    return None, "listing"


def _values(fields: SideFields, record: RemoteRecord | None) -> dict[str, str]:
    if record is None:
        return {}
    view = fields.view(record.data)
    return {key: display(value) for key, value in view.items()}


def _side_by_side(
    pairs: Sequence[FieldPair], sides: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    a_values = sides.get("a", {}).get("values", {})
    b_values = sides.get("b", {}).get("values", {})
    rows = []
    for pair in pairs:
        a_value, b_value = a_values.get(pair.key), b_values.get(pair.key)
        both = sides.get("a", {}).get("found") and sides.get("b", {}).get("found")
        rows.append(
            {
                "key": pair.key,
                "a_field": pair.a,
                "b_field": pair.b,
                "a": a_value,
                "b": b_value,
                # loosely, as the engine compares: an app's re-casing is no difference
                "differs": bool(both) and (a_value or "").casefold() != (b_value or "").casefold(),
            }
        )
    return rows


async def explain_contact(
    store: Store, sync: SyncConfig, query: str, live: bool = False
) -> dict[str, Any]:
    """:func:`explain` from the event loop, with the live values when ``live``."""
    result = await store.run(explain, store, sync, query)
    if live:
        await live_values(sync, store, result)
    return result

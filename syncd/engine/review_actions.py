"""Approving and rejecting held deletions (issue 15; see :mod:`syncd.engine.review`).

Approving applies a held deletion the way ``archive`` would (or tags the survivor where its
app cannot archive; where it can do neither, forgets the link), under the sync's lock, as a
run with its own journal; rejecting forgets the link as ``ignore`` would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.config import SyncConfig
from syncd.engine import journal as history
from syncd.engine.executor import make_connector
from syncd.engine.fields import SideFields, build_pairs, hashes
from syncd.engine.model import other
from syncd.store import JournalResult, JournalRow, LinkRow, Store, encode_base
from syncd.store.history import Held, decide, list_held
from syncd.store.lock import SyncLock


class ReviewError(Exception):
    """A review request that cannot be done (an unknown id); exit status 2, a 404 or 400."""


# --- a person's decision --------------------------------------------------------------------


@dataclass
class ReviewResult:
    sync: str
    run_id: int | None
    approved: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


async def decide_held(
    sync: SyncConfig,
    store: Store,
    approve: Sequence[int] | None = None,
    reject: Sequence[int] | None = None,
    trigger: str = "cli",
) -> ReviewResult:
    """Approve or reject held deletions (``None``: none; an empty list: all of them)."""
    lock = SyncLock(store.state_dir, sync.name)
    lock.acquire()  # raises SyncBusy
    try:
        return await _decide(sync, store, approve, reject, trigger)
    finally:
        lock.release()


def _pick(held: Sequence[Held], ids: Sequence[int] | None) -> list[Held]:
    if ids is None:
        return []
    if not ids:
        return list(held)
    by_id = {h.id: h for h in held}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        shown = ", ".join(str(i) for i in unknown)
        raise ReviewError(f"no held deletion with id {shown} (see 'syncd review {{sync}}')")
    return [by_id[i] for i in ids]


async def _decide(
    sync: SyncConfig,
    store: Store,
    approve: Sequence[int] | None,
    reject: Sequence[int] | None,
    trigger: str,
) -> ReviewResult:
    store.set_history(sync.name, sync.history_days)
    held = await store.run(list_held, store, sync.name)
    try:
        approving = _pick(held, approve)
        rejecting = _pick(held, reject)
    except ReviewError as exc:
        raise ReviewError(str(exc).replace("{sync}", sync.name)) from None
    both = {h.id for h in approving} & {h.id for h in rejecting}
    if both:
        raise ReviewError(f"deletion {min(i or 0 for i in both)} is both approved and rejected")
    result = ReviewResult(sync.name, None)
    if not approving and not rejecting:
        return result
    run_id = await store.run(store.start_run, sync.name, f"review-{trigger}", False)
    result.run_id = run_id
    links = {link.id: link for link in await store.run(store.load_links, sync.name)}
    counts = {"archived_a": 0, "archived_b": 0, "updated_a": 0, "updated_b": 0, "failed": 0}
    outcome, message = "success", None
    connectors: dict[str, Any] = {}
    try:
        for entry in rejecting:
            link = links.get(entry.link_id)
            if link is not None:
                _forget(link, entry)
                await store.run(store.save_links, sync.name, [link])
            await store.run(
                decide, store, sync.name, [entry.id or 0], "rejected", "rejected: link forgotten"
            )
            result.rejected.append({"id": entry.id, "email": entry.email})
        pairs = build_pairs(sync)
        for entry in approving:
            link = links.get(entry.link_id)
            side = entry.survivor_side
            if side not in connectors:
                connectors[side] = make_connector(sync, side, store)
                await connectors[side].open()
            connector = connectors[side]
            ok, problem = True, None
            if link is None or entry.survivor_id is None:
                ok, problem = True, None
            elif entry.action in ("archive", "delete"):
                ok, problem = await _archive(sync, store, connector, entry, run_id)
                if ok:
                    link.state = "archived"
                    counts[f"archived_{side}"] += 1
            elif entry.action == "tag":
                fields = SideFields.build(
                    side, pairs, sync.side(side).connector_class, sync.phone_region
                )
                ok, problem = await _tag(sync, store, connector, fields, link, entry, run_id)
                if ok:
                    counts[f"updated_{side}"] += 1
                    link.state = f"gone_{entry.deleted_side}"
            else:
                _forget(link, entry)
            if not ok:
                counts["failed"] += 1
                result.failed.append({"id": entry.id, "email": entry.email, "reason": problem})
                continue
            if link is not None:
                await store.run(
                    store.commit_outcomes,
                    sync.name,
                    links=[link],
                    run_id=run_id,
                    journal_done=[(side, entry.survivor_id or "")],
                )
            await store.run(
                decide, store, sync.name, [entry.id or 0], "approved", f"approved: {entry.action}"
            )
            result.approved.append({"id": entry.id, "email": entry.email, "action": entry.action})
        if counts["failed"]:
            outcome, message = "partial", f"{counts['failed']} approved deletion(s) failed"
    except BaseException as exc:
        outcome, message = "failed", f"{type(exc).__name__}"
        raise
    finally:
        for connector in connectors.values():
            await connector.close()
        await store.run(store.finish_run, run_id, outcome, counts, message)
    return result


def _forget(link: LinkRow, entry: Held) -> None:
    """What ``ignore`` does: the deleted side's record is gone; the survivor stays unlinked."""
    link.state = f"gone_{entry.deleted_side}"


async def _archive(
    sync: SyncConfig, store: Store, connector: Any, entry: Held, run_id: int
) -> tuple[bool, str | None]:
    side, rid = entry.survivor_side, entry.survivor_id or ""
    row = JournalRow(
        side,
        "archive",
        rid,
        entry.deleted_id,
        f"{run_id}:{side}:{rid}:archive",
        {},
        run_id=run_id,
        email=entry.email,
        reason=history.REVIEWED.format(decision="approved", deleted=entry.deleted_side),
    )
    await store.run(store.add_journal, sync.name, [row], run_id)
    results = await connector.archive([rid])
    result = results[0] if results else None
    if result is None or not result.ok:
        reason = "no answer" if result is None else result.error
        await store.run(
            store.commit_outcomes,
            sync.name,
            journal_results=[JournalResult(row.key or "", "failed")],
        )
        return False, f"archive refused: {reason}"
    return True, None


async def _tag(
    sync: SyncConfig,
    store: Store,
    connector: Any,
    fields: SideFields,
    link: LinkRow,
    entry: Held,
    run_id: int,
) -> tuple[bool, str | None]:
    from syncd.connector import RecordWrite

    side, rid = entry.survivor_side, entry.survivor_id or ""
    record = None
    async for page in connector.list_records(None):
        for item in page:
            if item.id == rid:
                record = item
    if record is None:
        return False, f"record {rid} is not on side {side} any more"
    values = fields.view(record.data)
    tags = values.get("tags")
    current = set(tags) if isinstance(tags, frozenset) else set()
    new_tags = frozenset(current | {sync.deletion_tag})
    name = {key: app for key, app, _ in fields.fields}.get("tags", "tags")
    write = RecordWrite(f"{run_id}:{side}:{rid}", {name: tuple(sorted(new_tags))}, rid)
    after = dict(hashes(values))
    after.update(hashes({"tags": new_tags}))
    packed = (
        f'{{"t":{encode_base(after)},"s":{link.base_json(other(side)) or "{}"},'
        f'"b":{json.dumps({"tags": hashes(values).get("tags")})},"w":["tags"],"o":null}}'
    )
    row = JournalRow(
        side,
        "update",
        rid,
        entry.deleted_id,
        write.key,
        dict(write.data),
        packed,
        run_id,
        entry.email,
        history.REVIEWED.format(decision="approved", deleted=entry.deleted_side),
        history.detail({"tags": name}, ["tags"], {name: record.data.get(name)}, {}),
    )
    await store.run(store.add_journal, sync.name, [row], run_id)
    results = await connector.update([write])
    result = results[0] if results else None
    if result is None or not result.ok:
        return False, "tag refused: " + ("no answer" if result is None else str(result.error))
    link.set_base(side, after)
    if side == "a":
        link.fp_a = None
    else:
        link.fp_b = None
    return True, None


__all__ = ["ReviewError", "ReviewResult", "decide_held"]

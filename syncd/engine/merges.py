"""Records the app merged into another (Xero's ``MergedToContactID``): re-point the link.

When a person merges two contacts in the app, the one merged away is archived and names the
survivor. Taken at face value that is an archive, and the deletion policy would act on the other
side's record. Instead, a link from the merged record moves to the survivor, when the survivor
is not linked already; the survivor is then read and merged with the other side as usual. A
merged record without a link, or whose survivor is linked to something else, is an ordinary
archived record.
"""

from __future__ import annotations

from typing import Any, Protocol

from syncd.config import SyncConfig
from syncd.connector import Connector, RemoteRecord
from syncd.engine.model import SIDES, SideInput
from syncd.store import LinkIndex, LinkRow, Store


class EngineRun(Protocol):
    """What these helpers use of :class:`syncd.engine.executor.SyncRun` (which imports them)."""

    store: Store
    sync: SyncConfig
    connectors: dict[str, Connector]
    index: LinkIndex
    merged: dict[str, list[RemoteRecord]]
    log: Any
    options: Any
    run_id: int | None


async def repoint(run: EngineRun, sides: dict[str, SideInput]) -> None:
    store, sync = run.store, run.sync.name
    moved_any = False
    survivors: dict[str, list[str]] = {"a": [], "b": []}
    for side in SIDES:
        merged = run.merged[side]
        if not merged:
            continue
        info = sides[side]
        ids = [record.id for record in merged]
        links = await store.run(
            store.load_links_of, sync, ids if side == "a" else (), ids if side == "b" else ()
        )
        by_id: dict[str, LinkRow] = {}
        for row in links:
            rid = row.record_id(side)
            if rid is not None:
                by_id[rid] = row
        linked = run.index.fps[side]
        taken: set[str] = set()
        moved: list[LinkRow] = []
        fingerprint = info.fields.record_fingerprint
        for record in merged:
            survivor = record.merged_into
            link = by_id.get(record.id)
            if (
                link is None
                or survivor is None
                or run.options.dry_run
                or survivor in linked
                or survivor in taken
            ):
                info.take(record, fingerprint(record), linked.get(record.id))
                continue
            taken.add(survivor)
            setattr(link, f"{side}_id", survivor)
            setattr(link, f"fp_{side}", None)
            moved.append(link)
            if not info.listed(survivor):
                survivors[side].append(survivor)
        run.merged[side] = []
        if moved:
            moved_any = True
            run.log.info("merged records re-pointed", side=side, count=len(moved))
            await store.run(store.commit_outcomes, sync, links=moved, run_id=run.run_id)
    if not moved_any:
        return
    run.index = await store.run(store.load_link_index, sync)
    for side in SIDES:
        connector = run.connectors[side]
        if not survivors[side] or not connector.capabilities.read_by_ids:
            continue
        info = sides[side]
        fps = run.index.fps[side]
        async for page in connector.read_records(survivors[side]):
            for record in page:
                if record.error is None and not info.listed(record.id):
                    info.take(record, info.fields.record_fingerprint(record), fps.get(record.id))

"""A targeted run: what a webhook-driven run reads instead of listing.

The daemon hands the engine the record ids the app said changed (``RunOptions.targets``). Each
side then reads, by id (``Connector.read_records``: Xero takes 50 ids a call), the changed ids
and the records linked to the other side's changed ids, so that the three-way merge sees both
sides' current values (a field edited on both sides still goes to the winner). A side that cannot
read by id is listed incrementally from its cursor instead, or, if it cannot do that either,
taken as unchanged (its base). Nothing is listed in full, so nothing is taken for deleted, and no
cursor moves: the interval's runs still list every change, and the periodic full listing still
finds deletions. Every other rule (matching, merge, journal, pending creates) is the usual run's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from syncd.engine.merges import EngineRun
from syncd.engine.model import SIDES, other

#: as the executor's ``CURSOR_OVERLAP``: the hash rule makes an overlap harmless
OVERLAP = timedelta(minutes=2)
#: what a side reads: (cursor for an incremental listing, or None; ids to read, or None)
Read = tuple[str | None, Sequence[str] | None]


async def reads(
    run: EngineRun,
    targets: Mapping[str, frozenset[str]],
    complete: Mapping[str, bool],
    cursors: Mapping[str, str | None],
    state: Any,
) -> dict[str, Read]:
    store, sync = run.store, run.sync.name
    changed = {side: set(targets.get(side, ())) for side in SIDES}
    links = await store.run(store.load_links_of, sync, changed["a"], changed["b"])
    wanted = {side: set(changed[side]) for side in SIDES}
    for link in links:
        for side in SIDES:
            rid, partner = link.record_id(side), link.record_id(other(side))
            if rid is not None and partner in changed[other(side)]:
                wanted[side].add(rid)
    out: dict[str, Read] = {}
    for side in SIDES:
        if complete[side]:
            continue  # listed in full after all (creates a killed run left to reconcile)
        caps = run.connectors[side].capabilities
        if not caps.read or not wanted[side]:
            out[side] = (None, ())
        elif caps.read_by_ids:
            out[side] = (None, sorted(wanted[side]))
        elif caps.incremental and since(run, side, cursors, state):
            out[side] = (since(run, side, cursors, state), None)
        else:
            out[side] = (None, ())
    return out


def since(run: EngineRun, side: str, cursors: Mapping[str, str | None], state: Any) -> str | None:
    """Where an incremental listing of ``side`` starts: its cursor, else (a side whose listings
    found nothing yet has none) its last full listing, less the usual overlap."""
    cursor = cursors.get(side)
    if cursor:
        return cursor
    last_full = getattr(state, f"last_full_{side}", None)
    if last_full is None:
        return None
    return run.connectors[side].make_cursor(last_full - OVERLAP)

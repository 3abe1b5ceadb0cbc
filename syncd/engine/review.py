"""The review queue for deletions (issue 15).

With ``deletions = "review"``, a record deleted (or archived) on one side is not propagated:
the planner holds it (:attr:`syncd.engine.model.Plan.held`) and leaves its link as it was, and
the run keeps it in the ``review`` table. ``on_mass_deletion = "review"`` holds a whole batch
that would trip the mass-deletion guard, whatever the policy. Every run sees a held deletion's
link again; one whose deleted record is listed again, or whose survivor was edited (edit beats
delete), is dropped by itself.

``syncd review SYNC --approve`` applies the held deletion the way ``archive`` would (or tags the
survivor where its app cannot archive; or, where it can do neither, forgets the link), under the
sync's lock, as a run with its own journal; ``--reject`` forgets the link as ``ignore`` would.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.engine.model import Plan, PlanInput
from syncd.store import LinkRow, Store
from syncd.store.history import Held, decide, hold, list_held

# --- during a run ---------------------------------------------------------------------------


async def open_entries(store: Store, sync: str) -> list[Held]:
    return await store.run(list_held, store, sync)


async def links_of_held(
    store: Store, sync: str, links: list[LinkRow], held: Sequence[Held]
) -> list[LinkRow]:
    """``links`` with the links of every held deletion (each run decides them again)."""
    have = {link.id for link in links}
    missing = [h for h in held if h.link_id not in have]
    if not missing:
        return links
    wanted: dict[str, list[str]] = {"a": [], "b": []}
    for entry in missing:
        for side, rid in (
            (entry.deleted_side, entry.deleted_id),
            (entry.survivor_side, entry.survivor_id),
        ):
            if rid:
                wanted[side].append(rid)
    extra = await store.run(store.load_links_of, sync, wanted["a"], wanted["b"])
    return [*links, *(link for link in extra if link.id not in have)]


async def keep_queue(
    store: Store,
    sync: str,
    inp: PlanInput,
    the_plan: Plan,
    held: Sequence[Held],
    run_id: int | None,
) -> None:
    """Hold what the plan holds; drop the open entries the run decided otherwise: the deleted
    record is listed again, or the planner saw the link and did not hold it (edited)."""
    planned = {link.id for link in inp.links}
    now_held = {h.link_id for h in the_plan.held}
    dropped_back, dropped_edited = [], []
    for entry in held:
        deleted = inp.side(entry.deleted_side)
        record = deleted.get(entry.deleted_id or "") if entry.deleted_id else None
        if record is not None and not record.archived:
            dropped_back.append(entry.id or 0)
        elif entry.link_id in planned and entry.link_id not in now_held:
            dropped_edited.append(entry.id or 0)
    await store.run(decide, store, sync, dropped_back, "dropped", "the deleted record is back")
    await store.run(decide, store, sync, dropped_edited, "dropped", "the record was edited since")
    await store.run(hold, store, sync, the_plan.held, run_id)


__all__ = ["keep_queue", "links_of_held", "open_entries"]

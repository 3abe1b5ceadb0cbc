"""What the console's history pages ask the daemon for (issue 15): a record's or a run's journal,
an undo (its dry run first), the review queue and its decisions, through the same service
functions the JSON API uses (:mod:`syncd.daemon.history_api`): the store reached only through
``store.run``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from syncd.engine.review_actions import decide_held
from syncd.engine.undo import undo_run
from syncd.store.history import change_json, get_run, held_json, list_held, query_changes

if TYPE_CHECKING:
    from syncd.daemon.service import Daemon
    from syncd.store import RunRow

#: the most changes a page lists
PAGE_LIMIT = 500


class HistoryService:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def changes(
        self, name: str, run_id: int | None = None, record: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """The journaled writes (oldest first) of one run or one record, and how many match."""
        store = self.daemon.store
        found, total = await store.run(
            query_changes, store, name, run_id, record, None, PAGE_LIMIT, 0
        )
        return [change_json(c) for c in found], total

    async def run(self, name: str, run_id: int) -> RunRow | None:
        store = self.daemon.store
        return await store.run(get_run, store, name, run_id)

    async def undo(self, name: str, run_id: int, dry_run: bool) -> dict[str, Any]:
        """Raises :class:`syncd.engine.undo.UndoError` and :class:`syncd.store.lock.SyncBusy`."""
        slot = self.daemon.scheduler.slot(name)
        result = await undo_run(
            slot.config, self.daemon.store, run_id, None, dry_run, False, "console"
        )
        data: dict[str, Any] = result.json()
        return data

    async def held(self, name: str) -> list[dict[str, Any]]:
        store = self.daemon.store
        return [held_json(h) for h in await store.run(list_held, store, name)]

    async def decide(
        self, name: str, approve: Sequence[int] | None, reject: Sequence[int] | None
    ) -> dict[str, Any]:
        """Raises :class:`syncd.engine.review_actions.ReviewError` and ``SyncBusy``."""
        slot = self.daemon.scheduler.slot(name)
        result = await decide_held(slot.config, self.daemon.store, approve, reject, "console")
        return {
            "approved": result.approved,
            "rejected": result.rejected,
            "failed": result.failed,
        }

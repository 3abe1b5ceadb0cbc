"""What the sync page asks the daemon for beyond :class:`~syncd.console.service.ConsoleService`:
the health view, "Retry now" and "why did this contact not sync?", through the same service
functions as the JSON API (:mod:`syncd.health`, :mod:`syncd.explain`), the store reached only
through ``store.run`` as the API reaches it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from syncd.daemon.scheduler import AlreadyRunning, ShuttingDown
from syncd.explain import explain_contact
from syncd.health import health_on_store, retry_message, retry_on_store

if TYPE_CHECKING:
    from syncd.daemon.service import Daemon
    from syncd.store import RunRow


class InsightService:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def health(self, name: str) -> dict[str, Any]:
        store = self.daemon.store
        return await store.run(health_on_store, store, name)

    async def runs(self, name: str, limit: int = 50) -> list[RunRow]:
        store = self.daemon.store
        return await store.run(store.list_runs, name, limit)

    async def explain(self, name: str, query: str, live: bool) -> dict[str, Any]:
        """Raises :class:`syncd.explain.ExplainError` for an empty or overlong query."""
        slot = self.daemon.scheduler.slot(name)
        return await explain_contact(self.daemon.store, slot.config, query, live=live)

    async def retry(self, name: str, records: Sequence[tuple[str, str]] | None) -> str:
        """Reset the backoff of the failing records (all when None) and start a run; what
        happened, in one sentence."""
        store = self.daemon.store
        done = await store.run(retry_on_store, store, name, records)
        run_id = None
        if done["retried"]:
            try:
                run_id = (await self.daemon.scheduler.trigger(name)).run_id
            except (AlreadyRunning, ShuttingDown):
                run_id = None
        slot = self.daemon.scheduler.slot(name)
        message = retry_message(done["retried"], run_id, slot.current is not None)
        if done["not_failing"]:
            message += " (that record is not failing any more)"
        return message[0].upper() + message[1:] + "."

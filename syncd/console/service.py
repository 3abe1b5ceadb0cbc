"""What the console's pages ask the daemon for: the same service objects and the same JSON
shapes as the JSON API (``syncd.daemon.api.Api``), never the store directly (design.md §3.4).

Every page module gets one :class:`ConsoleService` (``state(request).service``). Add a method
here when a page needs something new, built on the scheduler, the API's helpers and the store's
own queries through ``store.run`` exactly as the API uses them.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from syncd.daemon.scheduler import AlreadyRunning, ShuttingDown, SyncSlot, UnknownSync
from syncd.redact import redact
from syncd.timefmt import issue_json, run_json

if TYPE_CHECKING:
    from syncd.connector import Connector
    from syncd.daemon.service import Daemon

__all__ = ["AlreadyRunning", "ConsoleService", "ShuttingDown", "SideView", "UnknownSync"]

#: arrows for each direction, from side a (left) to side b (right)
ARROWS = {"two-way": "⇄", "a-to-b": "→", "b-to-a": "←"}
DIRECTION_WORDS = {
    "two-way": "both ways",
    "a-to-b": "from {a} to {b}",
    "b-to-a": "from {b} to {a}",
}


@dataclass(frozen=True)
class SideView:
    """One side of a sync, as a page shows it."""

    side: str
    connector: str
    title: str
    account: str | None
    #: the console can run this connector's authorisation in the browser
    web_authorization: bool
    needs_authorization: bool


def account_label(connector_class: type[Connector], settings: dict[str, Any]) -> str | None:
    """A short, non-secret name of the account a side reaches (``Connector.account_label``)."""
    try:
        label = connector_class.account_label(settings)
    except Exception:
        return None
    return redact(label) if label else None


class ApiShapes(Protocol):
    """What the console takes from :class:`syncd.daemon.api.Api` (which hands itself in: the
    console never imports the API module, so that the two stay apart)."""

    def summary(self, slot: SyncSlot) -> dict[str, Any]: ...

    async def detail(self, slot: SyncSlot) -> dict[str, Any]: ...

    async def _json_body(self, request: Any, keys: tuple[str, ...]) -> dict[str, Any]: ...


class ConsoleService:
    def __init__(self, daemon: Daemon, api: ApiShapes) -> None:
        self.daemon = daemon
        self.api = api

    @property
    def scheduler(self) -> Any:
        return self.daemon.scheduler

    # --- syncs ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.scheduler.slots)

    def slot(self, name: str) -> SyncSlot:
        """Raises :class:`UnknownSync`."""
        slot: SyncSlot = self.scheduler.slot(name)
        return slot

    def sides(self, slot: SyncSlot) -> dict[str, SideView]:
        views = {}
        for side in ("a", "b"):
            config = slot.config.side(side)
            cls = config.connector_class
            views[side] = SideView(
                side,
                config.connector,
                cls.title or config.connector,
                account_label(cls, dict(config.settings)),
                bool(getattr(cls, "web_authorization", False)),
                bool(cls.needs_authorization),
            )
        return views

    def summary(self, slot: SyncSlot) -> dict[str, Any]:
        """``GET /api/v1/syncs``'s entry for the sync, with what a page shows beside it."""
        data = self.api.summary(slot)
        sides = self.sides(slot)
        data["sides"] = sides
        data["arrow"] = ARROWS.get(slot.config.direction, "⇄")
        data["direction_words"] = DIRECTION_WORDS.get(slot.config.direction, "").format(
            a=sides["a"].title, b=sides["b"].title
        )
        data["counts"] = dict(slot.last.counts) if slot.last is not None else {}
        data["progress"] = (
            self.scheduler.progress_of(slot.current) if slot.current is not None else None
        )
        return data

    def summaries(self) -> list[dict[str, Any]]:
        return [self.summary(self.slot(name)) for name in self.names()]

    async def detail(self, name: str) -> dict[str, Any]:
        """``GET /api/v1/syncs/{name}`` (counts, cursors, …) plus :meth:`summary`'s extras."""
        slot = self.slot(name)
        data = await self.api.detail(slot)
        data.update({k: v for k, v in self.summary(slot).items() if k not in data})
        return data

    async def runs(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        store = self.daemon.store
        rows = await store.run(store.list_runs, self.slot(name).name, limit)
        return [run_json(row) for row in rows]

    async def errors(self, name: str) -> list[dict[str, Any]]:
        store = self.daemon.store
        issues = await store.run(store.list_issues, self.slot(name).name)
        return [issue_json(issue) for issue in issues]

    # --- actions ----------------------------------------------------------------------------

    async def trigger(self, name: str, full: bool = False) -> int | None:
        """Start a run; its id. Raises :class:`AlreadyRunning`, :class:`ShuttingDown`."""
        handle = await self.scheduler.trigger(self.slot(name).name, full=full)
        run_id: int | None = handle.run_id
        return run_id

    async def pause(self, name: str) -> None:
        await self.scheduler.pause(self.slot(name).name)

    async def resume(self, name: str) -> None:
        await self.scheduler.resume(self.slot(name).name)

    # --- plugins ----------------------------------------------------------------------------

    def plugins(self) -> dict[str, Any]:
        """``GET /api/v1/plugins``'s answer."""
        return dict(self.daemon.plugins.as_json())

    # --- authorisation ----------------------------------------------------------------------

    def connector(self, name: str, side: str) -> Connector:
        from syncd.engine.executor import make_connector

        return make_connector(self.slot(name).config, side, self.daemon.store)


def host_of(url: str) -> str | None:
    try:
        return urllib.parse.urlsplit(url).hostname
    except ValueError:
        return None

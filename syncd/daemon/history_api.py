"""The API of the change journal, undo and the review queue (issue 15; docs/api.md).

``GET /api/v1/syncs/{name}/changes`` pages through the journal (the filters of ``syncd
changes``); ``POST …/undo`` undoes a run (the options of ``syncd undo``); ``GET …/review`` lists
held deletions and ``POST …/review`` approves or rejects them. An undo or a decision runs in the
daemon under the sync's lock: a sync running at that moment answers 409. The web console calls
these same endpoints.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from syncd.engine.review_actions import ReviewError, decide_held
from syncd.engine.undo import UndoError, undo_run
from syncd.store.history import (
    CHANGES_LIMIT_DEFAULT,
    CHANGES_LIMIT_MAX,
    change_json,
    held_json,
    list_held,
    query_changes,
)
from syncd.store.lock import SyncBusy

Handler = Callable[[web.Request], Awaitable[dict[str, Any]]]

#: the query parameters of the changes path
CHANGES_QUERY = ("run", "record", "since", "limit", "offset")
UNDO_KEYS = ("run_id", "record", "dry_run", "force")
REVIEW_KEYS = ("approve", "reject")
#: the largest ``since`` (about ten years, in seconds) and ``offset``
SINCE_MAX = 10 * 366 * 86400
OFFSET_MAX = 10**9


class HistoryProblem(Exception):
    """A request these routes refuse; the API answers it as its JSON error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> Exception:
    return HistoryProblem(status, code, message)


def _number(request: web.Request, key: str, low: int, high: int, default: int | None) -> int | None:
    values = request.query.getall(key, [])
    if not values:
        return default
    raw = values[0]
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(high))
    if len(values) > 1 or not digits or not low <= int(raw) <= high:
        raise _error(400, "bad_request", f"{key} must be one whole number from {low} to {high}")
    return int(raw)


def _whole(value: Any) -> int | None:
    """A JSON whole number (``3`` or ``3.0``, as JSON Schema counts integers), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**62:
        return int(value)
    return None


class HistoryRoutes:
    """The handlers; each answers the data of a 200. ``api`` is the daemon's
    :class:`syncd.daemon.api.Api` (its ``_slot``, ``_json_body`` and ``daemon``)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/api/v1/syncs/{name}/changes", self.changes),
            ("POST", "/api/v1/syncs/{name}/undo", self.undo),
            ("GET", "/api/v1/syncs/{name}/review", self.review),
            ("POST", "/api/v1/syncs/{name}/review", self.decide),
        ]

    async def changes(self, request: web.Request) -> dict[str, Any]:
        slot = self.api._slot(request)
        run_id = _number(request, "run", 1, 2**62, None)
        since = _number(request, "since", 1, SINCE_MAX, None)
        limit = _number(request, "limit", 1, CHANGES_LIMIT_MAX, CHANGES_LIMIT_DEFAULT) or 1
        offset = _number(request, "offset", 0, OFFSET_MAX, 0) or 0
        records = request.query.getall("record", [])
        if len(records) > 1 or (records and not 0 < len(records[0]) <= 320):
            raise _error(400, "bad_request", "record must be one email or record id")
        record = records[0] if records else None
        store = self.api.daemon.store
        found, total = await store.run(
            query_changes, store, slot.name, run_id, record, since, limit, offset
        )
        return {
            "sync": slot.name,
            "total": total,
            "limit": limit,
            "offset": offset,
            "changes": [change_json(c) for c in found],
        }

    async def undo(self, request: web.Request) -> dict[str, Any]:
        slot = self.api._slot(request)
        body = await self.api._json_body(request, UNDO_KEYS)
        run_id = _whole(body.get("run_id"))
        if run_id is None or not 1 <= run_id < 2**62:
            raise _error(400, "bad_request", "run_id must be the id of a run (a whole number)")
        record = body.get("record")
        if "record" in body and (not isinstance(record, str) or not 0 < len(record) <= 320):
            raise _error(400, "bad_request", "record must be one email or record id")
        flags = {}
        for key in ("dry_run", "force"):
            value = body.get(key, False)
            if not isinstance(value, bool):
                raise _error(400, "bad_request", f"{key} must be true or false")
            flags[key] = value
        store = self.api.daemon.store
        try:
            result = await undo_run(
                slot.config, store, run_id, record, flags["dry_run"], flags["force"], "api"
            )
        except UndoError as exc:
            raise _error(404, "not_found", str(exc)) from None
        except SyncBusy as exc:
            raise _error(409, "already_running", str(exc)) from None
        data: dict[str, Any] = result.json()
        return data

    async def review(self, request: web.Request) -> dict[str, Any]:
        slot = self.api._slot(request)
        store = self.api.daemon.store
        held = await store.run(list_held, store, slot.name)
        return {"sync": slot.name, "held": [held_json(h) for h in held]}

    async def decide(self, request: web.Request) -> dict[str, Any]:
        slot = self.api._slot(request)
        body = await self.api._json_body(request, REVIEW_KEYS)
        chosen: dict[str, list[int] | None] = {}
        for key in REVIEW_KEYS:
            value = body.get(key)
            if key not in body:
                chosen[key] = None
            elif value == "all":
                chosen[key] = []
            elif (
                isinstance(value, list)
                and 0 < len(value) <= 100
                and all(_whole(i) is not None for i in value)
            ):
                chosen[key] = [int(i) for i in value]
            else:
                raise _error(
                    400, "bad_request", f'{key} must be a list of up to 100 review ids, or "all"'
                )
        if chosen["approve"] is None and chosen["reject"] is None:
            raise _error(400, "bad_request", "say what to approve or reject")
        store = self.api.daemon.store
        try:
            result = await decide_held(
                slot.config, store, chosen["approve"], chosen["reject"], "api"
            )
        except ReviewError as exc:
            status, code = (
                (404, "not_found") if "no held deletion" in str(exc) else (400, "bad_request")
            )
            raise _error(status, code, str(exc)) from None
        except SyncBusy as exc:
            raise _error(409, "already_running", str(exc)) from None
        return _decision_json(slot.name, result)


def _decision_json(name: str, result: Any) -> dict[str, Any]:
    return {
        "sync": name,
        "run_id": result.run_id,
        "approved": result.approved,
        "rejected": result.rejected,
        "failed": result.failed,
    }

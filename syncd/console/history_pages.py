"""The console's parts of the change journal (issue 15): a run's page
(``/syncs/{name}/runs/{id}``) listing what that run wrote, field by field, with "Undo this run"
(``POST …/undo``: first the dry run — what would be restored, archived or left alone and why —
then, confirmed, the undo itself), and the review queue's decisions (``POST /syncs/{name}/review``).
The timeline of one record is on the sync page's explanation (sync_page.py). Everything goes
through :class:`~syncd.console.history_service.HistoryService`, as the JSON API does."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from syncd.console.history_service import HistoryService
from syncd.console.web import (
    ConsoleError,
    checks_csrf,
    done,
    form,
    render,
    requires_session,
    state,
    sync_slot,
    wants_json,
)
from syncd.console.words import app_name
from syncd.engine.review_actions import ReviewError
from syncd.engine.undo import UndoError
from syncd.store.lock import SyncBusy

BUSY = "The sync is running: try again when its run has finished."
#: the most review ids one form may name
REVIEW_IDS_MAX = 100


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/syncs/{name}/runs/{run}", run_page, name="console.run", allow_head=False)
    router.add_post("/syncs/{name}/runs/{run}/undo", undo, name="console.undo")
    router.add_post("/syncs/{name}/review", review, name="console.review")


def history(request: web.Request) -> HistoryService:
    return HistoryService(state(request).daemon)


def _run_id(request: web.Request) -> int:
    raw = request.match_info["run"]
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= 18 and int(raw) > 0):
        raise ConsoleError(404, f"There is no run {raw!r}.")
    return int(raw)


def _apps(request: web.Request, name: str) -> dict[str, str]:
    sync = state(request).service.slot(name).config
    return {side: app_name(sync, side) for side in ("a", "b")}


async def _run_row(request: web.Request, name: str, run_id: int) -> Any:
    row = await history(request).run(name, run_id)
    if row is None:
        raise ConsoleError(404, f"{name} has no run {run_id}.")
    return row


@requires_session
async def run_page(request: web.Request) -> web.Response:
    name, run_id = sync_slot(request).name, _run_id(request)
    run = await _run_row(request, name, run_id)
    changes, total = await history(request).changes(name, run_id=run_id)
    return render(
        request,
        "run.html",
        {
            "title": f"{name}: run {run_id}",
            "name": name,
            "run": run,
            "apps": _apps(request, name),
            "changes": changes,
            "total": total,
            "preview": None,
            "result": None,
            "result_words": None,
        },
    )


@requires_session
@checks_csrf
async def undo(request: web.Request) -> web.StreamResponse:
    name, run_id = sync_slot(request).name, _run_id(request)
    run = await _run_row(request, name, run_id)
    data = await form(request)
    confirmed = data.get("confirm") == "yes"
    service = history(request)
    try:
        answer = await service.undo(name, run_id, dry_run=not confirmed)
    except UndoError as exc:
        raise ConsoleError(404, str(exc)) from None
    except SyncBusy:
        raise ConsoleError(409, BUSY) from None
    if confirmed and wants_json(request):
        return done(request, _undo_words(answer), f"/syncs/{name}/runs/{run_id}")
    changes, total = await service.changes(name, run_id=run_id)
    return render(
        request,
        "run.html",
        {
            "title": f"{name}: undo run {run_id}",
            "name": name,
            "run": run,
            "apps": _apps(request, name),
            "changes": changes,
            "total": total,
            "preview": None if confirmed else answer,
            "result": answer if confirmed else None,
            "result_words": _undo_words(answer),
        },
    )


def _undo_words(answer: dict[str, Any]) -> str:
    counts = {key: len(answer[key]) for key in ("restored", "archived", "recreated", "skipped")}
    parts = [f"{n} {key}" for key, n in counts.items() if n]
    what = ", ".join(parts) if parts else "nothing to undo"
    head = f"Run {answer['undone_run']}"
    if answer["dry_run"]:
        return f"{head}, if undone: {what}."
    run = f" (run {answer['run_id']})" if answer.get("run_id") else ""
    message = f" {answer['message']}" if answer.get("message") else ""
    return f"{head} undone{run}: {what}.{message}"


def _ids(values: list[str]) -> list[int]:
    if not all(values) or len(values) > REVIEW_IDS_MAX:
        raise ConsoleError(400, "Choose one or more held deletions.")
    ids = []
    for value in values:
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise ConsoleError(400, f"{value!r} is not the id of a held deletion.")
        ids.append(int(value))
    return ids


@requires_session
@checks_csrf
async def review(request: web.Request) -> web.StreamResponse:
    name = sync_slot(request).name
    data = await form(request)
    decision = data.get("decision", "")
    if decision not in ("approve", "reject"):
        raise ConsoleError(400, "Say whether to approve or reject.")
    chosen: list[int] = [] if data.get("all") == "yes" else _ids([data.get("id", "")])
    approve = chosen if decision == "approve" else None
    reject = chosen if decision == "reject" else None
    try:
        result = await history(request).decide(name, approve, reject)
    except ReviewError as exc:
        raise ConsoleError(404 if "no held deletion" in str(exc) else 400, str(exc)) from None
    except SyncBusy:
        raise ConsoleError(409, BUSY) from None
    words = []
    for key in ("approved", "rejected", "failed"):
        if result[key]:
            words.append(f"{len(result[key])} {key}")
    message = (", ".join(words) or "Nothing decided") + "."
    return done(request, message[0].upper() + message[1:], f"/syncs/{name}#review")

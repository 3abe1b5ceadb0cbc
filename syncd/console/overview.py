"""The overview (``/``): every sync, its two apps, direction, state, last and next run, and the
buttons Run now / Pause / Resume; and the actions those buttons post to."""

from __future__ import annotations

from aiohttp import web

from syncd.console.service import AlreadyRunning, ShuttingDown
from syncd.console.web import (
    ConsoleError,
    checks_csrf,
    done,
    form,
    render,
    requires_session,
    safe_next,
    state,
    sync_slot,
)

#: what each state looks like in words (beside its colour)
STATE_WORDS = {
    "idle": "Idle",
    "running": "Running",
    "paused": "Paused",
    "needs_auth": "Needs authorisation",
    "failing": "Failing",
}
OUTCOME_WORDS = {
    "success": "Succeeded",
    "partial": "Partly succeeded",
    "failed": "Failed",
    "needs_auth": "Needs authorisation",
    "config_error": "Configuration error",
    "retry_later": "App unavailable, retrying later",
    "deferred": "Out of API budget, continues later",
    "interrupted": "Interrupted",
    "running": "Running",
}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", overview, name="console.overview", allow_head=False)
    router.add_post("/syncs/{name}/trigger", trigger, name="console.trigger")
    router.add_post("/syncs/{name}/pause", pause, name="console.pause")
    router.add_post("/syncs/{name}/resume", resume, name="console.resume")


def written(counts: dict[str, int]) -> int:
    return sum(
        counts.get(key, 0)
        for key in ("created_a", "created_b", "updated_a", "updated_b", "archived_a", "archived_b")
    )


@requires_session
async def overview(request: web.Request) -> web.Response:
    console = state(request)
    syncs = console.service.summaries()
    daemon = console.daemon
    problem = daemon.config_error
    return render(
        request,
        "overview.html",
        {
            "title": "Syncs",
            "syncs": syncs,
            "state_words": STATE_WORDS,
            "outcome_words": OUTCOME_WORDS,
            "written": written,
            "config_error": problem.message if problem is not None else None,
        },
    )


async def _back(request: web.Request) -> str:
    return safe_next((await form(request)).get("next"))


@requires_session
@checks_csrf
async def trigger(request: web.Request) -> web.StreamResponse:
    name = sync_slot(request).name
    try:
        run_id = await state(request).service.trigger(name)
    except AlreadyRunning as exc:
        raise ConsoleError(409, f"{exc}.") from None
    except ShuttingDown as exc:
        raise ConsoleError(503, f"{exc}.") from None
    run = f"run {run_id}" if run_id is not None else "a run"
    return done(request, f"Started {run} of {name}.", await _back(request))


@requires_session
@checks_csrf
async def pause(request: web.Request) -> web.StreamResponse:
    name = sync_slot(request).name
    await state(request).service.pause(name)
    return done(
        request, f"Paused {name}: it does not run until you resume it.", await _back(request)
    )


@requires_session
@checks_csrf
async def resume(request: web.Request) -> web.StreamResponse:
    name = sync_slot(request).name
    await state(request).service.resume(name)
    return done(request, f"Resumed {name}.", await _back(request))

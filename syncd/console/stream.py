"""``GET /api/v1/events``: the daemon's events as Server-Sent Events.

Authorised like the rest of the API (``Authorization: Bearer``), or by a console's session
cookie. ``Last-Event-ID`` (the header browsers send when they reconnect, or the query parameter
``last_event_id``) replays the kept events after it. A comment line every
:data:`HEARTBEAT` seconds keeps proxies from closing an idle stream; a console's stream ends
when its session does (sign-out, expiry), and every stream ends when the daemon stops.
"""

from __future__ import annotations

import json

from aiohttp import web

from syncd.console.sessions import Session
from syncd.console.web import STATE_KEY, current_session
from syncd.daemon.events import EventHub
from syncd.redact import redact

EVENTS_PATH = "/api/v1/events"
HEARTBEAT = 15.0
#: the client's reconnect delay, in milliseconds (the ``retry:`` field)
RETRY_MS = 3000


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(EVENTS_PATH, events, allow_head=False)


def _last_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def hello(hub: EventHub, request: web.Request) -> bytes:
    """The first event of every stream: the current state of every sync (so that a console that
    reconnects after missing more than the replay buffer is right again)."""
    console = request.app[STATE_KEY]
    syncs = [
        {
            "sync": s["name"],
            "state": s["state"],
            "progress": s["progress"],
            "last_run": s["last_run"],
            "next_run_at": s["next_run_at"],
        }
        for s in console.service.summaries()
    ]
    body = json.dumps({"last_event_id": hub.last_id, "syncs": syncs}, default=str)
    return f"retry: {RETRY_MS}\nevent: hello\ndata: {body}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:

    console = request.app[STATE_KEY]
    hub = console.daemon.events
    session: Session | None = request.get("session")
    subscription = hub.subscribe(_last_id(request))
    if session is not None:
        # signing out ends this stream at once (auth_pages.sign_out)
        console.streams.setdefault(session.key, set()).add(subscription)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass events on at once
        }
    )
    try:
        await response.prepare(request)
        await response.write(redact(hello(hub, request).decode()).encode())
        while True:
            try:
                event = await subscription.get(HEARTBEAT)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                event = None
                if not hub.closed and not _session_ended(request, session):
                    continue
                break
            if event is None or _session_ended(request, session):
                break
            await response.write(event.sse())
    except ConnectionError:
        pass  # the client went away: nothing to answer
    finally:
        subscription.close()
        if session is not None:
            console.streams.get(session.key, set()).discard(subscription)
    return response


def _session_ended(request: web.Request, session: Session | None) -> bool:
    if session is None:
        return False  # a bearer-token client
    return current_session(request) is None

"""Authorising a connector from the console: the "Connect" button of a sync that needs
authorisation, and ``/oauth/callback``, where the app sends the browser back.

The flow: ``GET /syncs/{name}/connect/{side}`` (a signed-in browser) asks the connector for its
consent URL with a fresh ``state`` (and PKCE, kept here), remembers it for
:data:`PENDING_LIFETIME` seconds, sets a short-lived ``SameSite=Lax`` cookie with a random
nonce, and sends the browser to the app. The app sends it back to ``/oauth/callback?code&state``;
the callback is only taken when its ``state`` is one we began, not expired and not used, and the
browser carries that authorisation's nonce (so a link someone else crafted cannot make your
browser finish *their* authorisation). The session cookie is ``SameSite=Strict`` and so not sent
on that cross-site return; the nonce cookie is what ties the two ends together.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from syncd.connector import ConnectorError, WebAuthorization
from syncd.console.service import AlreadyRunning, ShuttingDown, UnknownSync
from syncd.console.web import (
    OAUTH_COOKIE,
    ConsoleError,
    is_https,
    origin,
    render,
    requires_session,
    state,
)
from syncd.logs import get_logger
from syncd.redact import redact

log = get_logger("syncd.console")

CALLBACK_PATH = "/oauth/callback"
PENDING_LIFETIME = 600.0
MAX_PENDING = 50


@dataclass
class PendingConsoleAuth:
    sync: str
    side: str
    authorization: WebAuthorization
    nonce: str
    expires: float


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(
        "/syncs/{name}/connect/{side:[ab]}", connect, name="console.connect", allow_head=False
    )
    router.add_get(CALLBACK_PATH, callback, name="console.oauth_callback", allow_head=False)


def redirect_uri(request: web.Request) -> str:
    return origin(request) + state(request).url(CALLBACK_PATH)


@requires_session
async def connect(request: web.Request) -> web.StreamResponse:
    console = state(request)
    name, side = request.match_info["name"], request.match_info["side"]
    try:
        connector = console.service.connector(name, side)
    except UnknownSync:
        raise ConsoleError(404, f"There is no sync named {name!r}.") from None
    if not connector.web_authorization:
        raise ConsoleError(
            400,
            f"{connector.title or connector.name} cannot be authorised from the console: run "
            f"'syncd auth {name} {side}' on the daemon's machine.",
        )
    try:
        authorization = await connector.begin_web_authorization(redirect_uri(request))
    except ConnectorError as exc:
        raise ConsoleError(400, f"Cannot start the authorisation: {exc}") from None
    finally:
        await connector.close()
    now = time.monotonic()
    pending = console.pending_auth
    for key in [k for k, p in pending.items() if p.expires <= now]:
        del pending[key]
    while len(pending) >= MAX_PENDING:
        del pending[next(iter(pending))]
    nonce = secrets.token_urlsafe(24)
    pending[authorization.state] = PendingConsoleAuth(
        name, side, authorization, nonce, now + PENDING_LIFETIME
    )
    response = web.HTTPFound(authorization.url)
    response.set_cookie(
        OAUTH_COOKIE,
        nonce,
        max_age=int(PENDING_LIFETIME),
        path=console.url(CALLBACK_PATH),
        httponly=True,
        samesite="Lax",
        secure=is_https(request),
    )
    log.info("console authorisation started", sync=name, side=side)
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    console = state(request)
    given_state = request.query.get("state", "")
    pending = console.pending_auth.pop(given_state, None) if given_state else None
    if pending is None or pending.expires <= time.monotonic():
        raise ConsoleError(
            400,
            "This authorisation is not one the console started, or it expired (after 10 "
            "minutes) or was finished already. Start it again from the overview.",
        )
    nonce = request.cookies.get(OAUTH_COOKIE, "")
    if not hmac.compare_digest(nonce.encode(), pending.nonce.encode()):
        raise ConsoleError(
            400,
            "This authorisation was started in another browser; finish it in the browser "
            "that started it.",
        )
    try:
        connector = console.service.connector(pending.sync, pending.side)
    except UnknownSync:
        raise ConsoleError(404, f"The sync {pending.sync!r} is no longer configured.") from None
    try:
        summary = await connector.finish_web_authorization(
            pending.authorization, dict(request.query)
        )
    except ConnectorError as exc:
        log.warning(
            "console authorisation failed", sync=pending.sync, side=pending.side, error=str(exc)
        )
        raise ConsoleError(400, f"The authorisation did not complete: {exc}") from None
    finally:
        await connector.close()
    log.info("console authorisation finished", sync=pending.sync, side=pending.side)
    started = await _run_now(console.service, pending.sync)
    response = render(
        request,
        "connected.html",
        {
            "title": "Connected",
            "summary": redact(summary),
            "sync": pending.sync,
            "started": started,
        },
    )
    response.del_cookie(OAUTH_COOKIE, path=console.url(CALLBACK_PATH))
    return response


async def _run_now(service: object, name: str) -> bool:
    """Run the sync at once with its new credentials (it would at its next interval anyway)."""
    from syncd.console.service import ConsoleService

    assert isinstance(service, ConsoleService)
    try:
        await asyncio.shield(service.trigger(name))
    except (AlreadyRunning, ShuttingDown, UnknownSync):
        return False
    return True

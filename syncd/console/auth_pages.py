"""Signing in and out, and the one-time codes of ``syncd console``.

``GET /signin`` shows the form (or, with ``?code=``, signs in with a one-time code and goes on);
``POST /signin`` takes the API token; ``POST /signout`` ends the session (CSRF-checked).
``POST /api/v1/console/codes`` (bearer token: what ``syncd console`` calls) issues a code.
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from syncd.console.web import (
    COOKIE,
    ConsoleError,
    checks_csrf,
    client_address,
    current_session,
    form,
    is_https,
    render,
    requires_session,
    safe_next,
    state,
)
from syncd.logs import get_logger
from syncd.redact import redact_data
from syncd.timefmt import rfc3339

log = get_logger("syncd.console")

CODES_PATH = "/api/v1/console/codes"
#: the sign-in form's own CSRF token (double submit: a cookie and a field that must match), so
#: that another site cannot post its own token through your browser to sign you in as itself
SIGNIN_COOKIE = "syncd_signin"
SIGNIN_FIELD = "signin_csrf"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/signin", sign_in_page, name="console.signin", allow_head=False)
    router.add_post("/signin", sign_in, name="console.signin.post")
    router.add_post("/signout", sign_out, name="console.signout")
    router.add_post(CODES_PATH, issue_code)


async def _signed_in(request: web.Request, next_path: str) -> web.StreamResponse:
    console = state(request)
    cookie, session = await console.sessions.create(console.daemon.token)
    response = web.HTTPSeeOther(console.url(safe_next(next_path)))
    response.del_cookie(SIGNIN_COOKIE, path=console.url("/signin"))
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(console.sessions.lifetime),
        path=console.base_path or "/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )
    request["session"] = session
    log.info("console signed in", client=client_address(request))
    return response


def _throttled(request: web.Request) -> None:
    wait = state(request).throttle.wait(client_address(request))
    if wait > 0:
        raise ConsoleThrottled(wait)


class ConsoleThrottled(ConsoleError):
    def __init__(self, wait: float) -> None:
        seconds = math.ceil(wait)
        super().__init__(
            429,
            f"Too many failed sign-ins from your address: wait {seconds} s and try again.",
        )
        self.wait = seconds


def _form_page(
    request: web.Request, next_path: str, error: str | None, status: int = 200
) -> web.Response:
    """The sign-in form, with a fresh form token in a cookie and in the form."""
    console = state(request)
    token = secrets.token_urlsafe(24)
    response = render(
        request, "signin.html", {"next": next_path, "error": error, "signin_csrf": token}, status
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        path=console.url("/signin"),
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )
    return response


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    next_path = safe_next(request.query.get("next"))
    code = request.query.get("code")
    if code is not None:
        console = state(request)
        try:
            _throttled(request)
        except ConsoleThrottled as exc:
            return _throttle_answer(request, exc, next_path)
        if console.codes.redeem(code):
            console.throttle.succeeded(client_address(request))
            return await _signed_in(request, next_path)
        console.throttle.failed(client_address(request))
        return _form_page(
            request,
            next_path,
            "That sign-in link was used already or has expired. Run 'syncd console' again "
            "for a new one, or paste the API token.",
            403,
        )
    if current_session(request) is not None:
        raise web.HTTPSeeOther(state(request).url(next_path))
    return _form_page(request, next_path, None)


def _throttle_answer(
    request: web.Request, exc: ConsoleThrottled, next_path: str
) -> web.StreamResponse:
    response = _form_page(request, next_path, exc.message, 429)
    response.headers["Retry-After"] = str(exc.wait)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    console = state(request)
    data = await form(request)
    next_path = safe_next(data.get("next"))
    try:
        _throttled(request)
    except ConsoleThrottled as exc:
        return _throttle_answer(request, exc, next_path)
    form_token = request.cookies.get(SIGNIN_COOKIE, "")
    if not form_token or not hmac.compare_digest(
        form_token.encode(), data.get(SIGNIN_FIELD, "").encode()
    ):
        return _form_page(
            request,
            next_path,
            "This sign-in form was not sent from this console (or it expired): sign in again.",
            403,
        )
    supplied = data.get("token", "").strip()
    expected = console.daemon.token
    if expected and hmac.compare_digest(
        supplied.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    ):
        console.throttle.succeeded(client_address(request))
        return await _signed_in(request, next_path)
    console.throttle.failed(client_address(request))
    log.warning("console sign-in refused", client=client_address(request))
    return _form_page(
        request,
        next_path,
        "That is not the API token. It is [api] token in syncd.toml, or the api-token file "
        "in the state directory; 'syncd console' prints a sign-in link.",
        401,
    )


@requires_session
@checks_csrf
async def sign_out(request: web.Request) -> web.StreamResponse:
    console = state(request)
    session = request["session"]
    await console.sessions.end(session)
    for subscription in console.streams.pop(session.key, set()):
        subscription.put(None)
    response = web.HTTPSeeOther(console.url("/signin"))
    response.del_cookie(COOKIE, path=console.base_path or "/")
    return response


def json_reply(data: dict[str, Any], status: int) -> web.Response:
    """As the API answers (sorted, indented, redacted)."""
    body = json.dumps(redact_data(data), indent=2, sort_keys=True, default=str)
    return web.Response(text=body + "\n", status=status, content_type="application/json")


async def issue_code(request: web.Request) -> web.Response:
    """The API route (bearer token) behind ``syncd console``."""
    console = state(request)
    await console.service.api._json_body(request, ())  # none, or {}: as the other POSTs
    code = console.codes.issue()
    expires = datetime.now(UTC) + timedelta(seconds=console.codes.lifetime)
    path = "/signin?" + urllib.parse.urlencode({"code": code})
    return json_reply(
        {
            "code": code,
            "path": path,
            "base_path": console.base_path,
            "expires_at": rfc3339(expires),
            "expires_in_seconds": int(console.codes.lifetime),
        },
        201,
    )

"""The console's plumbing: its state on the aiohttp app, the security headers, sessions and CSRF
checks for handlers, and rendering a template with the context every page has.

Page modules use :func:`requires_session`, :func:`checks_csrf`, :func:`render`,
:func:`redirect` and :func:`state` (see syncd/console/README.md).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from syncd import __version__
from syncd.console.service import UnknownSync
from syncd.console.sessions import Session, Sessions, SignInCodes, Throttle
from syncd.console.templating import Templates
from syncd.daemon.events import Subscription
from syncd.logs import get_logger
from syncd.redact import redact

if TYPE_CHECKING:
    from syncd.console.service import ConsoleService
    from syncd.daemon.scheduler import SyncSlot
    from syncd.daemon.service import Daemon

log = get_logger("syncd.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE = "syncd_session"
#: the Lax cookie that ties an OAuth callback to the browser that started the authorisation
OAUTH_COOKIE = "syncd_oauth"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: paths the console does not own (the JSON API keeps its own middlewares and bearer token)
API_PREFIXES = ("/api/",)
API_PATHS = frozenset({"/healthz", "/metrics"})
#: console paths that need no session: /signin, /oauth/callback (the app sends the browser back
#: without the Strict cookie; the state and a nonce cookie guard it) and /static/; every other
#: page is wrapped in requires_session

#: the Content-Security-Policy of every console page: nothing inline, nothing from elsewhere
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

STATE_KEY: web.AppKey[ConsoleState] = web.AppKey("syncd.console")


@dataclass
class ConsoleState:
    daemon: Daemon
    service: ConsoleService
    sessions: Sessions
    #: the jinja2 environment, made on the first page (:mod:`syncd.console.templating`)
    templates: Templates = field(default_factory=lambda: Templates({}))
    codes: SignInCodes = field(default_factory=SignInCodes)
    throttle: Throttle = field(default_factory=Throttle)
    #: authorisations begun in the console, by their OAuth ``state``
    pending_auth: dict[str, Any] = field(default_factory=dict)
    #: open event streams of each session (by session key), ended when it signs out
    streams: dict[str, set[Subscription]] = field(default_factory=dict)

    @property
    def base_path(self) -> str:
        return self.daemon.daemon_config.api_base_path if self.daemon.config else ""

    @property
    def trust_proxy(self) -> bool:
        return self.daemon.daemon_config.api_trust_proxy if self.daemon.config else False

    def url(self, path: str) -> str:
        """A path of the console as the browser must ask for it (behind ``base_path``)."""
        return self.base_path + path


def state(request: web.Request) -> ConsoleState:
    return request.app[STATE_KEY]


def sync_slot(request: web.Request, name: str | None = None) -> SyncSlot:
    """The sync the path names (``{name}``), or the sync ``name``: a 404 page if there is none."""
    name = request.match_info["name"] if name is None else name
    try:
        return state(request).service.slot(name)
    except UnknownSync:
        raise ConsoleError(404, f"There is no sync named {name!r}.") from None


def is_console_path(path: str) -> bool:
    return path not in API_PATHS and not path.startswith(API_PREFIXES)


# --- where the request came from ------------------------------------------------------------


def is_https(request: web.Request) -> bool:
    """Served over HTTPS, or behind a trusted proxy that says it was (``X-Forwarded-Proto``)."""
    if request.secure:
        return True
    if state(request).trust_proxy:
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False


def client_address(request: web.Request) -> str:
    """The address failed sign-ins are counted against: the peer, or behind a trusted proxy the
    last address the proxy added to ``X-Forwarded-For``."""
    if state(request).trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return request.remote or "unknown"


def origin(request: web.Request) -> str:
    """``scheme://host`` as the browser sees this daemon (for OAuth redirect URIs)."""
    scheme = "https" if is_https(request) else "http"
    host = request.host
    if state(request).trust_proxy and request.headers.get("X-Forwarded-Host"):
        host = request.headers["X-Forwarded-Host"].split(",")[0].strip()
    return f"{scheme}://{host}"


# --- sessions and CSRF ----------------------------------------------------------------------


def current_session(request: web.Request) -> Session | None:
    console = state(request)
    return console.sessions.get(request.cookies.get(COOKIE), console.daemon.token)


def requires_session(handler: Handler) -> Handler:
    """The handler runs only for a signed-in browser (``request["session"]``); a page asked for
    without one sends the browser to sign in and back, anything else is refused with 401."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        session = current_session(request)
        if session is None:
            if request.method == "GET":
                target = request.rel_url.path_qs
                query = "" if target == "/" else "?" + urllib.parse.urlencode({"next": target})
                raise web.HTTPSeeOther(state(request).url("/signin") + query)
            raise ConsoleError(401, "You are signed out. Sign in again and repeat what you did.")
        request["session"] = session
        return await handler(request)

    return wrapper


async def form(request: web.Request) -> dict[str, str]:
    """The posted form as plain strings (read once; kept on the request)."""
    if "form" not in request:
        data = await request.post()
        request["form"] = {k: v for k, v in data.items() if isinstance(v, str)}
    result: dict[str, str] = request["form"]
    return result


def checks_csrf(handler: Handler) -> Handler:
    """A state-changing handler: the form field ``csrf_token`` (or the ``X-CSRF-Token`` header of
    a fetch) must be the session's token. Use below :func:`requires_session`."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        session: Session = request["session"]
        supplied = request.headers.get(CSRF_HEADER) or (await form(request)).get(CSRF_FIELD, "")
        if not hmac.compare_digest(supplied.encode(), session.csrf.encode()):
            raise ConsoleError(
                403,
                "This form was not sent from this console (its CSRF token is missing or "
                "outdated). Reload the page and try again.",
            )
        return await handler(request)

    return wrapper


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go back to (never another site: no ``//host``, no scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x20 for ch in value):
        return default
    return value


def redirect(request: web.Request, path: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(state(request).url(path))


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def done(request: web.Request, notice: str, back: str = "/") -> web.StreamResponse:
    """The answer to a form the console posted: JSON for console.js's fetch, else a notice for
    the next page and a redirect back."""
    if wants_json(request):
        return web.json_response({"ok": True, "message": notice})
    session: Session | None = request.get("session")
    if session is not None:
        session.flash.append(notice)
    raise redirect(request, back)


# --- rendering ------------------------------------------------------------------------------


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    console = state(request)
    session: Session | None = request.get("session")
    flash: list[str] = []
    if session is not None and session.flash:
        flash, session.flash = session.flash, []
    common = {
        "base_path": console.base_path,
        "csrf_token": session.csrf if session is not None else "",
        "signed_in": session is not None,
        "version": __version__,
        "path": request.path,
        "flash": flash,
        "url": console.url,
    }
    common.update(context or {})
    text = console.templates.render(template, common)
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


class ConsoleError(Exception):
    """An error page (with its status) instead of the page asked for."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_TITLES = {
    400: "Bad request",
    401: "Signed out",
    403: "Refused",
    404: "Not found",
    405: "Method not allowed",
    409: "Busy",
    413: "Too large",
    429: "Too many attempts",
}


def error_page(request: web.Request, status: int, message: str) -> web.StreamResponse:
    if wants_json(request):
        return web.json_response(
            {"error": {"code": _TITLES.get(status, "error").lower(), "message": redact(message)}},
            status=status,
        )
    return render(
        request,
        "error.html",
        {"status": status, "title": _TITLES.get(status, "Error"), "message": redact(message)},
        status,
    )


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console paths get their handler straight (not the API's bearer check and JSON errors),
    HTML error pages, and the security headers; API paths go on down the API's middlewares."""
    unrouted = request.match_info.http_exception is not None
    if not is_console_path(request.path) or (unrouted and "Authorization" in request.headers):
        # the API's, and a script's (bearer header) request for a path that is nobody's: the
        # API answers it (401 or its JSON 404), as it always did
        response = await handler(request)
        if request.path == "/api/v1/events":
            response.headers.update(SECURITY_HEADERS)
        return response
    templates = state(request).templates
    if not templates.ready:
        await asyncio.to_thread(templates.environment)  # jinja2's import: not on the loop
    try:
        response = await request.match_info.handler(request)
    except ConsoleError as exc:
        response = error_page(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(SECURITY_HEADERS)
            raise
        if exc.status == 404 and current_session(request) is None:
            # like the API, a stranger cannot even tell which paths exist
            response = web.Response(status=303, headers={"Location": state(request).url("/signin")})
        else:
            message = {404: "There is no such page.", 405: "This page does not take that."}.get(
                exc.status, exc.reason
            )
            response = error_page(request, exc.status, message)
    except Exception:
        log.exception("console request failed", path=request.path, method=request.method)
        response = error_page(request, 500, "Something went wrong; the daemon's log says what.")
    response.headers.update(SECURITY_HEADERS)
    return response

"""Mounting the console on the API's aiohttp application."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from syncd.console import auth_pages, stream
from syncd.console.pages import PAGE_MODULES
from syncd.console.service import ConsoleService
from syncd.console.sessions import SESSIONS_FILE, Sessions
from syncd.console.templating import Templates
from syncd.console.web import STATE_KEY, ConsoleState, current_session
from syncd.timefmt import rfc3339

if TYPE_CHECKING:
    from syncd.console.service import ApiShapes
    from syncd.daemon.service import Daemon

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
#: how long browsers may keep console.js/console.css (their URLs carry the version)
STATIC_MAX_AGE = 3600


def setup_console(app: web.Application, daemon: Daemon, api: ApiShapes) -> None:
    config = daemon.config.daemon if daemon.config is not None else None
    lifetime = config.session_lifetime if config is not None else 7 * 86400.0
    path = config.state_dir / SESSIONS_FILE if config is not None else None
    templates = Templates({"when": when, "ago": ago, "count": count_text})
    console = ConsoleState(
        daemon, ConsoleService(daemon, api), Sessions(path, lifetime), templates=templates
    )
    app[STATE_KEY] = console

    async def load_sessions(app: web.Application) -> None:
        import asyncio

        await asyncio.to_thread(console.sessions.load)

    app.on_startup.append(load_sessions)
    router = app.router
    router.add_get("/static/{name}", static, name="console.static", allow_head=False)
    auth_pages.add_routes(router)
    stream.add_routes(router)
    for module in PAGE_MODULES:
        module.add_routes(router)


def session_allows(request: web.Request) -> bool:
    """Whether a console session may use this API path (the event stream, with its cookie)."""
    if request.path != stream.EVENTS_PATH or STATE_KEY not in request.app:
        return False
    session = current_session(request)
    if session is None:
        return False
    request["session"] = session
    return True


_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    suffix = Path(name).suffix
    if "/" in name or name.startswith(".") or suffix not in _TYPES:
        raise web.HTTPNotFound()
    path = STATIC / name
    try:
        body = path.read_bytes()  # a few kB from the package: not worth a thread
    except FileNotFoundError:
        raise web.HTTPNotFound() from None
    return web.Response(
        body=body,
        headers={
            "Content-Type": f"{_TYPES[suffix]}; charset=utf-8",
            "Cache-Control": f"private, max-age={STATIC_MAX_AGE}",
        },
    )


# --- template filters -----------------------------------------------------------------------


def when(stamp: str | None) -> str:
    """An RFC 3339 stamp as people read it in the page (UTC, to the minute)."""
    if not stamp:
        return "never"
    return stamp.replace("T", " ")[:16] + " UTC"


def ago(stamp: str | None) -> str:
    from datetime import UTC, datetime

    if not stamp:
        return "never"
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    seconds = (datetime.now(UTC) - then).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        text = f"{int(seconds)} s"
    return f"in {text}" if future else f"{text} ago"


def count_text(value: int, word: str) -> str:
    return f"{value:,} {word}" if value == 1 else f"{value:,} {word}s"


__all__ = ["rfc3339", "session_allows", "setup_console"]

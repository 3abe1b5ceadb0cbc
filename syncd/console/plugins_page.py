"""The plugins page: installed distributions and versions, their connectors and sandboxes, and
plugins that failed to load, with their error."""

from __future__ import annotations

from aiohttp import web

from syncd.console.web import render, requires_session, state


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/plugins", plugins, name="console.plugins", allow_head=False)


@requires_session
async def plugins(request: web.Request) -> web.Response:
    data = state(request).service.plugins()
    return render(
        request,
        "plugins.html",
        {"title": "Plugins", "plugins": data["plugins"], "problems": data["problems"]},
    )

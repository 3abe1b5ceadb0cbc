"""The local HTTP API (design.md §3.3), on aiohttp. ``docs/api.md`` documents every endpoint.

Every path but ``/healthz`` needs ``Authorization: Bearer <token>``, compared in constant time
(:func:`hmac.compare_digest`) before routing, so an unauthenticated caller cannot even tell which
paths exist. Errors are ``{"error": {"code": ..., "message": ...}}`` with a fitting status, and
every JSON body passes the secret redaction on its way out (rule 12).

Bad input is a 400 (or 401, 404, 405, 413), never a 500: the query, the body and the headers are
read defensively (``limit`` is ASCII digits only, a body is UTF-8 JSON of bounded size and depth,
a header with bytes that are not UTF-8 is compared as bytes). A 500 is a bug: it still answers the
documented JSON error body, without details, and the log has the traceback.

:mod:`syncd.daemon.openapi` documents every route; ``GET /api/v1/openapi.json`` serves it. The
API depends on :mod:`syncd.daemon.service` (the daemon it serves), never the other way round:
the command that starts the daemon hands it :func:`make_app`.

The status endpoints answer from the scheduler's memory, not the database: the store has one
worker thread, which a large run keeps busy, and ``syncd status`` must stay quick meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from syncd import __version__
from syncd.config import ConfigError
from syncd.daemon.history_api import CHANGES_QUERY, HistoryProblem, HistoryRoutes
from syncd.daemon.hooks import ROUTE_NAME as HOOK_ROUTE
from syncd.daemon.hooks import add_routes as add_hook_routes
from syncd.daemon.metrics import CONTENT_TYPE
from syncd.daemon.scheduler import (
    AlreadyRunning,
    ShuttingDown,
    SyncSlot,
    UnknownSync,
    aware,
    last_run_json,
    utcnow,
)
from syncd.explain import ExplainError, explain_contact
from syncd.health import health_on_store, parse_retry_request, retry_message, retry_on_store
from syncd.logs import get_logger
from syncd.redact import redact, redact_data
from syncd.timefmt import RUNS_LIMIT_DEFAULT, RUNS_LIMIT_MAX, issue_json, rfc3339, run_json

if TYPE_CHECKING:
    from syncd.daemon.service import Daemon

log = get_logger("syncd.daemon.api")

OPEN_PATHS = frozenset({"/healthz"})
MAX_RUNS = RUNS_LIMIT_MAX
#: the largest request body (a trigger takes a few bytes of flags; the other POSTs take none)
MAX_BODY = 16 * 1024
#: the keys a trigger's body may have
TRIGGER_FLAGS = ("full", "force")
UNAUTHORIZED = "a valid 'Authorization: Bearer <token>' is needed"
#: the query parameters a path takes; any other is a 400 (a typo must not pass for a default)
QUERY_PARAMETERS = {
    "/api/v1/syncs/{name}/runs": ("limit",),
    "/api/v1/syncs/{name}/explain": ("record", "live"),
    "/api/v1/events": ("last_event_id",),
    "/api/v1/syncs/{name}/changes": CHANGES_QUERY,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(redact_data(data), indent=2, sort_keys=True, default=str)
    return web.Response(
        text=body + "\n", status=status, content_type="application/json", headers=headers
    )


def error_reply(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="syncd"'
    return reply({"error": {"code": code, "message": redact(message)}}, status, headers or None)


_CODES = {
    400: ("bad_request", "the request is malformed"),
    404: ("not_found", "no such path"),
    405: ("method_not_allowed", "the path does not take this method"),
    413: ("too_large", f"the body is larger than {MAX_BODY} bytes"),
}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer that is not a success is the JSON error body, whatever went wrong."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_reply(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _CODES.get(exc.status, ("http_error", exc.reason))
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_reply(exc.status, code, message, allow)
    except HttpProcessingError as exc:  # a body the connection could not read (chunking, size)
        status = exc.code if 400 <= exc.code < 500 else 400
        code, message = _CODES.get(status, ("bad_request", "the request is malformed"))
        return error_reply(status, code, message)
    except Exception:
        log.exception("API request failed", path=request.path, method=request.method)
        return error_reply(500, "internal", "internal error; the daemon's log has the details")


def token_matches(header: str, expected: str) -> bool:
    """Whether an ``Authorization`` header carries the token, in constant time.

    The header comes decoded by aiohttp; bytes that were not UTF-8 are in it as lone
    surrogates, which ``surrogatepass`` turns back into bytes (never equal to a real token's)
    instead of failing.
    """
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not expected:
        return False
    given = supplied.strip().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(given, expected.encode("utf-8", "surrogatepass"))


def auth_middleware(
    daemon: Daemon, session_allows: Callable[[web.Request], bool] = lambda request: False
) -> Any:
    """The bearer token, or (``session_allows``: the event stream) a console's session cookie."""

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        if request.match_info.route.name == HOOK_ROUTE:
            # webhooks: the vendor's signature is their authentication (syncd.daemon.hooks)
            return await handler(request)
        if not token_matches(
            request.headers.get("Authorization", ""), daemon.token
        ) and not session_allows(request):
            raise ApiError(401, "unauthorized", UNAUTHORIZED)
        return await handler(request)

    return check_token


@web.middleware
async def query_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    if resource is not None and request.query:
        known = QUERY_PARAMETERS.get(resource.canonical, ())
        unknown = sorted(set(request.query) - set(known))
        if unknown:
            shown = ", ".join(repr(key[:40]) for key in unknown[:5])
            takes = f"this path takes: {', '.join(known)}" if known else "this path takes none"
            raise ApiError(400, "bad_request", f"unknown query parameter {shown} ({takes})")
    return await handler(request)


def make_app(daemon: Daemon) -> web.Application:
    from syncd.console.setup import session_allows, setup_console
    from syncd.console.web import console_middleware

    app = web.Application(
        middlewares=[
            console_middleware,  # the console's own paths skip the API's middlewares
            errors_middleware,
            auth_middleware(daemon, session_allows),
            query_middleware,
        ],
        client_max_size=MAX_BODY,
    )
    api = Api(daemon)
    # no HEAD beside each GET: the API is what docs/api.md and the OpenAPI document say
    get = functools.partial(app.router.add_get, allow_head=False)
    get("/healthz", api.healthz)
    get("/api/v1/openapi.json", api.openapi)
    get("/api/v1/status", api.status)
    get("/api/v1/syncs", api.syncs)
    get("/api/v1/syncs/{name}", api.sync_detail)
    get("/api/v1/syncs/{name}/runs", api.runs)
    get("/api/v1/syncs/{name}/errors", api.errors)
    app.router.add_post("/api/v1/syncs/{name}/trigger", api.trigger)
    app.router.add_post("/api/v1/syncs/{name}/pause", api.pause)
    app.router.add_post("/api/v1/syncs/{name}/resume", api.resume)
    app.router.add_post("/api/v1/reload", api.reload)
    get("/api/v1/syncs/{name}/health", api.health)
    get("/api/v1/syncs/{name}/explain", api.explain)
    app.router.add_post("/api/v1/syncs/{name}/retry", api.retry)
    get("/api/v1/plugins", api.plugins)
    get("/metrics", api.metrics)
    # changes, undo, review (issue 15; syncd/daemon/history_api.py)
    for method, path, handler in HistoryRoutes(api).routes():
        app.router.add_route(method, path, api.answering(handler))
    add_hook_routes(app, lambda: daemon.hooks)
    setup_console(app, daemon, api)  # the web console at / and GET /api/v1/events
    return app


class Api:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        """The OpenAPI document, built when first asked for (not at every start-up)."""
        from syncd.daemon.openapi import document

        return document()

    # --- helpers ------------------------------------------------------------------------------

    def _slot(self, request: web.Request) -> SyncSlot:
        name = request.match_info["name"]
        try:
            return self.daemon.scheduler.slot(name)
        except UnknownSync:
            known = ", ".join(sorted(self.daemon.scheduler.slots)) or "none"
            raise ApiError(
                404, "unknown_sync", f"no sync named {name!r} (configured: {known})"
            ) from None

    def summary(self, slot: SyncSlot) -> dict[str, Any]:
        sync = slot.config
        current = slot.current
        state = slot.state
        return {
            "name": slot.name,
            "state": state,
            "enabled": sync.enabled,
            "paused": slot.paused,
            "a": sync.a.connector,
            "b": sync.b.connector,
            "direction": sync.direction,
            "interval_seconds": sync.interval,
            "last_run": last_run_json(slot.last),
            "last_success_at": rfc3339(slot.last_success_at),
            "next_run_at": rfc3339(self.daemon.scheduler.next_run(slot.name)),
            "running": None
            if current is None
            else {
                "run_id": current.run_id,
                "trigger": current.trigger,
                "started_at": rfc3339(current.started_at),
                "progress": {"done": current.done, "total": current.total},
            },
            "running_elsewhere": slot.busy_elsewhere,
            "claim": claim_json(self.daemon.scheduler.claims.get(slot.name)),
            "webhooks": self.daemon.hooks.status(slot.name),
            "message": slot.last.message
            if slot.last is not None and state in ("failing", "needs_auth")
            else None,
        }

    async def _json_body(self, request: web.Request, keys: tuple[str, ...]) -> dict[str, Any]:
        """The body as a JSON object with only ``keys``; ``{}`` without a body.

        Read as bytes and decoded here (not by the charset the client names), so that
        neither an unknown charset, bytes that are not UTF-8 nor JSON nested deeper than the
        parser's recursion can get past a 400. aiohttp answers 413 past ``MAX_BODY``.
        """
        if not request.body_exists:
            return {}
        raw = await request.read()
        if not raw:
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ApiError(400, "bad_request", "the body is not valid JSON (UTF-8)") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object")
        unknown = sorted(set(body) - set(keys))
        if unknown:
            shown = ", ".join(repr(key[:40]) for key in unknown[:5])
            known = f"known: {', '.join(keys)}" if keys else "this path takes none"
            raise ApiError(400, "bad_request", f"unknown key {shown} in the body ({known})")
        return body

    def _limit(self, request: web.Request) -> int:
        values = request.query.getall("limit", [])
        if not values:
            return RUNS_LIMIT_DEFAULT
        raw = values[0]
        # isdigit() alone takes "²" and "٣"; a 5,000-digit number is not worth converting
        digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_RUNS))
        if len(values) > 1 or not digits or not 1 <= int(raw) <= MAX_RUNS:
            raise ApiError(400, "bad_request", f"limit must be one number from 1 to {MAX_RUNS}")
        return int(raw)

    def answering(self, handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        """A handler that returns the data of a 200 (or raises a ``HistoryProblem``)."""

        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                data = await handler(request)
            except HistoryProblem as exc:
                raise ApiError(exc.status, exc.code, exc.message) from None
            return reply(data)

        return answer

    # --- endpoints ----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        checks = await self.daemon.health()
        healthy = all(value == "ok" for value in checks.values())
        return reply(
            {"status": "ok" if healthy else "unhealthy", "checks": checks}, 200 if healthy else 503
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return reply(self.document)

    async def status(self, request: web.Request) -> web.Response:
        daemon = self.daemon
        scheduler = daemon.scheduler
        if daemon.store.shared:
            await scheduler.refresh_claims()
        problem = daemon.config_error
        return reply(
            {
                "version": __version__,
                "pid": os.getpid(),
                "started_at": rfc3339(daemon.started_at),
                "uptime_seconds": round(daemon.uptime, 3),
                "state": "stopping" if daemon.stopping else "running",
                "api": str(daemon.endpoint),
                "config": {
                    "directory": str(daemon.config_dir),
                    "loaded_at": rfc3339(daemon.config_loaded_at),
                    "error": None
                    if problem is None
                    else {
                        "message": problem.message,
                        "at": rfc3339(problem.at),
                        "source": problem.source,
                    },
                    "restart_needed": daemon.restart_needed,
                },
                "runs_in_progress": scheduler.running_count(),
                "syncs": [self.summary(scheduler.slots[n]) for n in sorted(scheduler.slots)],
            }
        )

    async def syncs(self, request: web.Request) -> web.Response:
        scheduler = self.daemon.scheduler
        return reply({"syncs": [self.summary(scheduler.slots[n]) for n in sorted(scheduler.slots)]})

    async def sync_detail(self, request: web.Request) -> web.Response:
        return reply(await self.detail(self._slot(request)))

    async def detail(self, slot: SyncSlot) -> dict[str, Any]:
        """A sync's detail (``GET /api/v1/syncs/{name}``; the console's pages use it too)."""
        store = self.daemon.store
        sync = slot.config
        state = await store.run(store.get_state, sync.name)
        issues = await store.run(store.count_issues, sync.name)
        links = await store.run(store.count_links, sync.name)
        now = utcnow()

        def age(value: Any) -> float | None:
            stamp = aware(value)
            return None if stamp is None else round((now - stamp).total_seconds(), 3)

        detail = self.summary(slot)
        detail.update(
            {
                "initial": sync.initial,
                "winner": sync.winner,
                "deletions": sync.deletions,
                "match": sync.match,
                "full_every_seconds": sync.full_every,
                "counts": dict(slot.last.counts) if slot.last is not None else {},
                "issues": issues,
                "links": links,
                "initialized_at": rfc3339(state.initialized_at),
                # the cursors move at the end of every completed run and nowhere else
                "cursor_age_seconds": age(slot.last_success_at),
                "cursors": {
                    side: {
                        "incremental": getattr(state, f"cursor_{side}") is not None,
                        "last_full_listing_at": rfc3339(getattr(state, f"last_full_{side}")),
                        "last_full_listing_age_seconds": age(getattr(state, f"last_full_{side}")),
                    }
                    for side in ("a", "b")
                },
            }
        )
        return detail

    async def runs(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        limit = self._limit(request)
        store = self.daemon.store
        rows = await store.run(store.list_runs, slot.name, limit)
        return reply({"sync": slot.name, "runs": [run_json(row) for row in rows]})

    async def errors(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        store = self.daemon.store
        issues = await store.run(store.list_issues, slot.name)
        return reply({"sync": slot.name, "errors": [issue_json(issue) for issue in issues]})

    async def trigger(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        body = await self._json_body(request, TRIGGER_FLAGS)
        flags = {}
        for key in TRIGGER_FLAGS:
            value = body.get(key, False)
            if not isinstance(value, bool):
                raise ApiError(400, "bad_request", f"{key} must be true or false")
            flags[key] = value
        try:
            handle = await self.daemon.scheduler.trigger(slot.name, **flags)
        except AlreadyRunning as exc:
            raise ApiError(409, "already_running", str(exc)) from None
        except ShuttingDown as exc:
            raise ApiError(503, "shutting_down", str(exc)) from None
        return reply(
            {"sync": slot.name, "run_id": handle.run_id, "trigger": handle.trigger, **flags},
            202,
            {"Location": f"/api/v1/syncs/{slot.name}/runs"},
        )

    async def pause(self, request: web.Request) -> web.Response:
        name = self._slot(request).name
        await self._json_body(request, ())  # none, or {}: the same cap and checks as a trigger's
        slot = await self.daemon.scheduler.pause(name)
        return reply(self.summary(slot))

    async def resume(self, request: web.Request) -> web.Response:
        name = self._slot(request).name
        await self._json_body(request, ())
        slot = await self.daemon.scheduler.resume(name)
        return reply(self.summary(slot))

    async def reload(self, request: web.Request) -> web.Response:
        await self._json_body(request, ())
        try:
            changes = await self.daemon.reload("api")
        except ConfigError as exc:
            raise ApiError(
                422, "config_error", f"{exc} (the previous config keeps running)"
            ) from None
        return reply(changes)

    # --- health, retry, explain (syncd/health.py, syncd/explain.py) ---------------------------

    async def health(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        store = self.daemon.store
        return reply(await store.run(health_on_store, store, slot.name))

    async def retry(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        try:
            records, run = parse_retry_request(await self._json_body(request, ("records", "run")))
        except ValueError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        store = self.daemon.store
        done = await store.run(retry_on_store, store, slot.name, records)
        run_id = None
        if run and done["retried"]:
            with contextlib.suppress(AlreadyRunning, ShuttingDown):
                run_id = (await self.daemon.scheduler.trigger(slot.name)).run_id
        message = retry_message(done["retried"], run_id, slot.current is not None)
        return reply({"sync": slot.name, **done, "run_id": run_id, "message": message})

    async def explain(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        records = request.query.getall("record", [])
        lives = request.query.getall("live", [])
        if len(records) != 1:
            raise ApiError(400, "bad_request", "record must be given once: an email or a record id")
        if len(lives) > 1 or (lives and lives[0] not in ("true", "false")):
            raise ApiError(400, "bad_request", "live must be true or false")
        try:
            result = await explain_contact(
                self.daemon.store, slot.config, records[0], live=lives == ["true"]
            )
        except ExplainError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        return reply(result)

    async def plugins(self, request: web.Request) -> web.Response:
        return reply(plugins_json(self.daemon.plugins))

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.daemon.metrics.render(), headers={"Content-Type": CONTENT_TYPE}
        )


def plugins_json(plugins: Any) -> dict[str, Any]:
    return dict(plugins.as_json())


def claim_json(claim: Any) -> dict[str, Any] | None:
    """A shared store: which daemon runs the sync now, and since when (issue 17)."""
    if claim is None:
        return None
    since = claim.since.replace(tzinfo=UTC) if claim.since is not None else None
    return {"daemon": claim.holder, "since": rfc3339(since)}

"""The local HTTP API (design.md §3.3), on aiohttp. ``docs/api.md`` documents every endpoint.

Every path but ``/healthz`` needs ``Authorization: Bearer <token>``, compared in constant time
(:func:`hmac.compare_digest`) before routing, so an unauthenticated caller cannot even tell which
paths exist. Errors are ``{"error": {"code": ..., "message": ...}}`` with a fitting status, and
every JSON body passes the secret redaction on its way out (rule 12).

The status endpoints answer from the scheduler's memory, not the database: the store has one
worker thread, which a large run keeps busy, and ``syncd status`` must stay quick meanwhile.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from syncd import __version__
from syncd.config import ConfigError
from syncd.daemon.metrics import CONTENT_TYPE
from syncd.daemon.scheduler import (
    AlreadyRunning,
    ShuttingDown,
    SyncSlot,
    UnknownSync,
    aware,
    describe_time,
    last_run_json,
    utcnow,
)
from syncd.logs import get_logger
from syncd.redact import redact, redact_data

if TYPE_CHECKING:
    from syncd.daemon.service import Daemon

log = get_logger("syncd.daemon.api")

OPEN_PATHS = frozenset({"/healthz"})
MAX_RUNS = 1000

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


def error_reply(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="syncd"'} if status == 401 else None
    return reply({"error": {"code": code, "message": redact(message)}}, status, headers)


_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_reply(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "http_error")
        return error_reply(exc.status, code, exc.reason)
    except Exception:
        log.exception("API request failed", path=request.path, method=request.method)
        return error_reply(500, "internal", "internal error; the daemon's log has the details")


def auth_middleware(daemon: Daemon) -> Any:
    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        expected = daemon.token.encode()
        ok = scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), expected)
        if not ok or not expected:
            raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer <token>' is needed")
        return await handler(request)

    return check_token


def make_app(daemon: Daemon) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware(daemon)], client_max_size=64 * 1024
    )
    api = Api(daemon)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/api/v1/status", api.status)
    app.router.add_get("/api/v1/syncs", api.syncs)
    app.router.add_get("/api/v1/syncs/{name}", api.sync_detail)
    app.router.add_get("/api/v1/syncs/{name}/runs", api.runs)
    app.router.add_get("/api/v1/syncs/{name}/errors", api.errors)
    app.router.add_post("/api/v1/syncs/{name}/trigger", api.trigger)
    app.router.add_post("/api/v1/syncs/{name}/pause", api.pause)
    app.router.add_post("/api/v1/syncs/{name}/resume", api.resume)
    app.router.add_post("/api/v1/reload", api.reload)
    app.router.add_get("/api/v1/plugins", api.plugins)
    app.router.add_get("/metrics", api.metrics)
    return app


class Api:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

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
            "last_success_at": describe_time(slot.last_success_at),
            "next_run_at": describe_time(self.daemon.scheduler.next_run(slot.name)),
            "running": None
            if current is None
            else {
                "run_id": current.run_id,
                "trigger": current.trigger,
                "started_at": describe_time(current.started_at),
                "progress": {"done": current.done, "total": current.total},
            },
            "running_elsewhere": slot.busy_elsewhere,
            "message": slot.last.message
            if slot.last is not None and state in ("failing", "needs_auth")
            else None,
        }

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "bad_request", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object")
        return body

    # --- endpoints ----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        checks = await self.daemon.health()
        healthy = all(value == "ok" for value in checks.values())
        return reply(
            {"status": "ok" if healthy else "unhealthy", "checks": checks}, 200 if healthy else 503
        )

    async def status(self, request: web.Request) -> web.Response:
        daemon = self.daemon
        scheduler = daemon.scheduler
        problem = daemon.config_error
        return reply(
            {
                "version": __version__,
                "pid": os.getpid(),
                "started_at": describe_time(daemon.started_at),
                "uptime_seconds": round(daemon.uptime, 3),
                "state": "stopping" if daemon.stopping else "running",
                "api": str(daemon.endpoint),
                "config": {
                    "directory": str(daemon.config_dir),
                    "loaded_at": describe_time(daemon.config_loaded_at),
                    "error": None
                    if problem is None
                    else {
                        "message": problem.message,
                        "at": describe_time(problem.at),
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
        slot = self._slot(request)
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
                "initialized_at": describe_time(aware(state.initialized_at)),
                # the cursors move at the end of every completed run and nowhere else
                "cursor_age_seconds": age(slot.last_success_at),
                "cursors": {
                    side: {
                        "incremental": getattr(state, f"cursor_{side}") is not None,
                        "last_full_listing_at": describe_time(
                            aware(getattr(state, f"last_full_{side}"))
                        ),
                        "last_full_listing_age_seconds": age(getattr(state, f"last_full_{side}")),
                    }
                    for side in ("a", "b")
                },
            }
        )
        return reply(detail)

    async def runs(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        raw = request.query.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS:
            raise ApiError(400, "bad_request", f"limit must be a number from 1 to {MAX_RUNS}")
        store = self.daemon.store
        rows = await store.run(store.list_runs, slot.name, int(raw))
        runs = []
        for row in rows:
            started, finished = aware(row.started_at), aware(row.finished_at)
            duration: timedelta | None = finished - started if started and finished else None
            runs.append(
                {
                    "id": row.id,
                    "outcome": row.outcome,
                    "trigger": row.trigger,
                    "dry_run": row.dry_run,
                    "started_at": describe_time(started),
                    "finished_at": describe_time(finished),
                    "duration_seconds": None
                    if duration is None
                    else round(duration.total_seconds(), 3),
                    "counts": row.counts,
                    "message": row.message,
                }
            )
        return reply({"sync": slot.name, "runs": runs})

    async def errors(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        store = self.daemon.store
        issues = await store.run(store.list_issues, slot.name)
        return reply({"sync": slot.name, "errors": issues})

    async def trigger(self, request: web.Request) -> web.Response:
        slot = self._slot(request)
        body = await self._json_body(request)
        flags = {}
        for key in ("full", "force"):
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
        slot = await self.daemon.scheduler.pause(self._slot(request).name)
        return reply(self.summary(slot))

    async def resume(self, request: web.Request) -> web.Response:
        slot = await self.daemon.scheduler.resume(self._slot(request).name)
        return reply(self.summary(slot))

    async def reload(self, request: web.Request) -> web.Response:
        try:
            changes = await self.daemon.reload("api")
        except ConfigError as exc:
            raise ApiError(
                422, "config_error", f"{exc} (the previous config keeps running)"
            ) from None
        return reply(changes)

    async def plugins(self, request: web.Request) -> web.Response:
        return reply(plugins_json(self.daemon.plugins))

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.daemon.metrics.render(), headers={"Content-Type": CONTENT_TYPE}
        )


def plugins_json(plugins: Any) -> dict[str, Any]:
    return dict(plugins.as_json())

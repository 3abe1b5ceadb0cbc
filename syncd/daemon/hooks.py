"""Webhooks: vendor pushes that only mark records as changed; a targeted run does the rest.

Receiving, ``POST /hooks/<connector>/<account>`` (Xero: ``/hooks/xero/<client_id>``, one URL per
Xero app, which delivers the events of every organisation connected to it):

* on the API listener, *outside* the bearer check (the route is exempt by name, not by a path
  prefix, so no path trick reaches the API through it), and on ``[hooks] listen`` when set: a
  second listener that serves nothing but these paths, for a reverse proxy or a tunnel;
* authenticated only by the vendor's signature over the exact raw bytes
  (``Connector.verify_webhook``, constant time); 401 without it;
* an account no sync uses is the same 404 as a path that does not exist: nothing tells which
  accounts or syncs there are;
* bodies past :data:`MAX_BODY` are refused (413) before they are read;
* the answer is 200 without a body as soon as the events are marked (Xero wants one within 5 s):
  nothing is read from the app inline. A delivery seen a moment ago (the vendor retrying the same
  bytes) is answered 200 and changes nothing; even when one is not recognised, its run finds the
  records unchanged and writes nothing (rule 2).

Acting: each change is handed to every sync with a side on that account whose tenant matches
(an event of another organisation is ignored). The sync's ids wait :attr:`debounce` seconds
from the first event (a burst of edits becomes one run), then a targeted run reads just those ids
(:mod:`syncd.engine.targeted`). A run in progress, of any kind, is waited for; ids that arrive
meanwhile wait for the next one. A run that completes settles the ids that were waiting when it
started. The interval keeps running as the safety net.

Waiting ids are persisted in the store (its key-value table, ``hooks.pending``) before the answer
when the store answers within :data:`PERSIST_WAIT`; after a ``kill -9`` the daemon starts a
targeted run for them on start-up. Should one be lost anyway, the interval's run lists it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from syncd.config import SyncConfig
from syncd.connector import Connector
from syncd.engine.executor import RunResult, make_connector
from syncd.logs import get_logger
from syncd.redact import redact
from syncd.timefmt import rfc3339

if TYPE_CHECKING:
    from syncd.daemon.scheduler import RunHandle, SyncScheduler, SyncSlot
    from syncd.store import Store

log = get_logger("syncd.daemon.hooks")

HOOK_PATH = "/hooks/{connector}/{account}"
#: the route's name: the API's bearer check exempts this route (and only it)
ROUTE_NAME = "syncd-webhook"
#: the largest delivery taken (Xero batches events; a few hundred bytes each)
MAX_BODY = 1024 * 1024
#: how long a delivery's answer waits for its ids to be persisted (Xero allows 5 s)
PERSIST_WAIT = 2.0
PENDING_KEY = "hooks.pending"
#: waiting ids kept per side; past it the ids are dropped and a full run is asked for instead
MAX_WAITING = 10_000
#: deliveries remembered (by a digest of their bytes) to recognise a vendor's retry
RECENT_DELIVERIES = 2048
COMPLETED = ("success", "partial")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(eq=False)
class HookSide:
    """One side of one sync that receives webhooks."""

    sync: str
    side: str
    connector_name: str
    account: str
    connector: Connector
    #: the tenant this side uses (None: any tenant of the account), once resolved
    tenant: str | None = None
    resolved: bool = False

    @property
    def path(self) -> str:
        return f"/hooks/{self.connector_name}/{self.account}"


@dataclass(eq=False)
class SyncHooks:
    """A sync's webhook state, for status and the debouncer."""

    name: str
    sides: list[HookSide] = field(default_factory=list)
    #: waiting record ids per side, each with the number of the event that marked it last (a
    #: run settles an id only if no event came for it since the run started)
    waiting: dict[str, dict[str, int]] = field(default_factory=lambda: {"a": {}, "b": {}})
    last_event_at: datetime | None = None
    events_received: int = 0
    events_ignored: int = 0
    runs: int = 0
    #: more ids arrived than are kept: the next run must be a normal one
    overflow: bool = False
    timer: asyncio.Task[None] | None = None

    def waiting_count(self) -> int:
        return len(self.waiting["a"]) + len(self.waiting["b"])


def utcnow() -> datetime:
    from syncd.daemon.scheduler import utcnow as now

    return now()


class Hooks:
    def __init__(self, store: Store, scheduler: SyncScheduler, debounce: float = 2.0) -> None:
        self.store = store
        self.scheduler = scheduler
        self.debounce = debounce
        self.syncs: dict[str, SyncHooks] = {}
        self.accounts: dict[tuple[str, str], list[HookSide]] = {}
        self.refused = 0
        self.duplicates = 0
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self._persist_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: ids of each run, by run handle: settled when the run completes
        self._covering: dict[int, dict[str, dict[str, int]]] = {}
        self._closed = False
        self._seq = 0
        scheduler.listeners.append(self)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    # --- configuration ----------------------------------------------------------------------

    async def start(self, syncs: Mapping[str, SyncConfig]) -> None:
        saved = await self._load()
        self.apply(syncs)
        for name, sides in saved.items():
            state = self.syncs.get(name)
            if state is None:
                continue
            for side in ("a", "b"):
                for rid in sides.get(side, ()):
                    state.waiting[side][rid] = self._next()
            if state.waiting_count():
                log.info(
                    "webhook events waiting from before a restart",
                    sync=name,
                    events=state.waiting_count(),
                )
                self._arm(state)

    def apply(self, syncs: Mapping[str, SyncConfig]) -> None:
        """Match the receiving sides to a (re)loaded config; waiting ids of kept syncs stay."""
        old = self.syncs
        self.syncs = {}
        self.accounts = {}
        for sync in syncs.values():
            state = old.pop(sync.name, None) or SyncHooks(sync.name)
            state.sides = []
            for side in ("a", "b"):
                hook = self._side(sync, side)
                if hook is not None:
                    state.sides.append(hook)
                    self.accounts.setdefault((hook.connector_name, hook.account), []).append(hook)
                    self._spawn(self._resolve(hook))
            self.syncs[sync.name] = state
        for state in old.values():  # removed syncs
            if state.timer is not None:
                state.timer.cancel()

    def _side(self, sync: SyncConfig, side: str) -> HookSide | None:
        config = sync.side(side)
        if config.connector_class.webhook_account is Connector.webhook_account:
            return None  # the connector has no webhooks at all: not even built
        try:
            connector = make_connector(sync, side, self.store)
            caps = connector.capabilities  # a connector may set them per instance
            if not (caps.webhooks and caps.read_by_ids):
                return None
            account = connector.webhook_account()
        except Exception as exc:  # a connector that cannot even be built: its runs say why
            log.warning(
                "webhooks unavailable",
                sync=sync.name,
                side=side,
                error=redact(f"{type(exc).__name__}: {exc}"),
            )
            return None
        if not account:
            return None
        return HookSide(sync.name, side, config.connector, account, connector)

    async def _resolve(self, hook: HookSide) -> None:
        """Which tenant the side uses (a connector call at most once per config load)."""
        try:
            hook.tenant = await hook.connector.webhook_tenant()
            hook.resolved = True
        except Exception as exc:
            log.info(
                "webhook tenant not known yet; events of every tenant are taken",
                sync=hook.sync,
                side=hook.side,
                error=redact(f"{type(exc).__name__}: {exc}"),
            )
        finally:
            with contextlib.suppress(Exception):
                await hook.connector.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        self._closed = True
        for state in self.syncs.values():
            if state.timer is not None:
                state.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)

    # --- receiving --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["connector"], request.match_info["account"])
        sides = self.accounts.get(key)
        if not sides:
            return not_found()
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
        body = await _read_limited(request, MAX_BODY)
        if body is None:
            return _error(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
        headers = dict(request.headers)
        reply = None
        for hook in _distinct_connectors(sides):
            try:
                answer = hook.connector.verify_webhook(headers, body)
            except Exception:  # a connector's bug must not become a 500 with a traceback
                log.exception("webhook verification failed", connector=key[0])
                continue
            if answer.verified:
                reply = answer
                break
        if reply is None:
            self.refused += 1
            log.warning("webhook refused: bad or missing signature", connector=key[0])
            return web.Response(status=401)
        digest = hashlib.sha256(body).digest()
        if digest in self._recent:
            self.duplicates += 1
            log.info("webhook delivery seen before; nothing to do", connector=key[0])
        elif reply.changes:
            self._remember(digest)
            marked = self._route(sides, reply.changes)
            if marked:
                persist = self._spawn(self._persist())
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(persist), PERSIST_WAIT)
        return web.Response(
            status=reply.status, body=reply.body or None, content_type=reply.content_type
        )

    def _remember(self, digest: bytes) -> None:
        self._recent[digest] = None
        while len(self._recent) > RECENT_DELIVERIES:
            self._recent.popitem(last=False)

    def _route(self, sides: list[HookSide], changes: list[Any]) -> int:
        now = utcnow()
        marked = 0
        touched: set[str] = set()
        for hook in sides:
            state = self.syncs.get(hook.sync)
            if state is None:
                continue
            ids = {
                change.record_id
                for change in changes
                if not hook.resolved
                or hook.tenant is None
                or change.tenant is None
                or change.tenant.lower() == hook.tenant.lower()
            }
            ignored = len(changes) - len({c.record_id for c in changes} & ids)
            state.events_ignored += max(0, ignored)
            if not ids:
                continue
            state.events_received += len(ids)
            state.last_event_at = now
            waiting = state.waiting[hook.side]
            seq = self._next()
            for rid in ids:
                waiting[rid] = seq
            if len(waiting) > MAX_WAITING:
                waiting.clear()
                state.overflow = True
            marked += len(ids)
            touched.add(hook.sync)
        for name in touched:
            self._arm(self.syncs[name])
        if marked:
            log.info("webhook events received", events=marked, syncs=sorted(touched))
        return marked

    # --- acting -----------------------------------------------------------------------------

    def _arm(self, state: SyncHooks) -> None:
        if self._closed or (state.timer is not None and not state.timer.done()):
            return
        state.timer = asyncio.ensure_future(self._after_debounce(state))

    async def _after_debounce(self, state: SyncHooks) -> None:
        # the debounce: events of a burst arriving meanwhile join this run
        await asyncio.sleep(self.debounce)
        from syncd.daemon.scheduler import AlreadyRunning, ShuttingDown

        while not self._closed and self.syncs.get(state.name) is state:
            slot = self.scheduler.slots.get(state.name)
            if slot is None or slot.paused or not slot.config.enabled:
                return  # the ids wait; a resumed sync's next run covers them
            if slot.current is not None and slot.current.task is not None:
                # any run in progress first; what it does not cover, the next run does
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(slot.current.task)
                continue
            targets = {side: frozenset(ids) for side, ids in state.waiting.items() if ids}
            if not targets and not state.overflow:
                return
            try:
                if state.overflow:
                    state.overflow = False
                    await self.scheduler.trigger(state.name)
                else:
                    self.scheduler.start_targeted(state.name, targets)
                    state.runs += 1
            except AlreadyRunning:
                continue
            except ShuttingDown:
                return
            return

    # hooks the scheduler calls ---------------------------------------------------------------

    def run_started(self, slot: SyncSlot, handle: RunHandle) -> None:
        state = self.syncs.get(slot.name)
        if state is None:
            return
        self._covering[id(handle)] = {side: dict(ids) for side, ids in state.waiting.items() if ids}

    def run_finished(self, slot: SyncSlot, handle: RunHandle, result: RunResult | None) -> None:
        covered = self._covering.pop(id(handle), {})
        state = self.syncs.get(slot.name)
        if state is None:
            return
        if result is not None and result.outcome in COMPLETED and covered:
            for side, ids in covered.items():
                waiting = state.waiting[side]
                for rid, seq in ids.items():
                    if waiting.get(rid) == seq:
                        del waiting[rid]
            self._spawn(self._persist())
        if state.waiting_count() and not self._closed:
            self._arm(state)

    # --- persistence ------------------------------------------------------------------------

    async def _load(self) -> dict[str, dict[str, list[str]]]:
        try:
            raw = await self.store.run(self.store.get_value, PENDING_KEY)
            data = json.loads(raw) if raw else {}
        except Exception as exc:
            log.warning(
                "waiting webhook events could not be read; the interval covers them",
                error=redact(f"{type(exc).__name__}: {exc}"),
            )
            return {}
        if not isinstance(data, dict):
            return {}
        out: dict[str, dict[str, list[str]]] = {}
        for name, sides in data.items():
            if isinstance(sides, dict):
                out[str(name)] = {
                    side: [str(i) for i in sides.get(side, []) if isinstance(i, str)]
                    for side in ("a", "b")
                    if isinstance(sides.get(side), list)
                }
        return out

    async def _persist(self) -> None:
        async with self._persist_lock:
            data = {
                name: {side: sorted(ids) for side, ids in state.waiting.items() if ids}
                for name, state in self.syncs.items()
                if state.waiting_count()
            }
            try:
                await self.store.run(
                    self.store.set_value, PENDING_KEY, json.dumps(data, sort_keys=True)
                )
            except Exception as exc:
                log.warning(
                    "waiting webhook events could not be saved; the interval covers them",
                    error=redact(f"{type(exc).__name__}: {exc}"),
                )

    # --- status -----------------------------------------------------------------------------

    def status(self, name: str) -> dict[str, Any]:
        state = self.syncs.get(name)
        sides = state.sides if state is not None else []
        return {
            "active": bool(sides),
            "sides": [hook.side for hook in sides],
            "paths": sorted({hook.path for hook in sides}),
            "last_event_at": rfc3339(state.last_event_at) if state is not None else None,
            "events_received": state.events_received if state is not None else 0,
            "events_waiting": state.waiting_count() if state is not None else 0,
            "runs": state.runs if state is not None else 0,
        }


def _distinct_connectors(sides: list[HookSide]) -> list[HookSide]:
    """One side per distinct set of settings (syncs sharing an account share its key)."""
    seen: set[str] = set()
    out = []
    for hook in sides:
        marker = json.dumps(hook.connector.config, sort_keys=True, default=str)
        if marker not in seen:
            seen.add(marker)
            out.append(hook)
    return out


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None past ``limit`` bytes (read by chunks, never all at once)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def not_found() -> web.Response:
    """The same answer as a path that does not exist (see ``syncd.daemon.api``)."""
    return _error(404, "not_found", "no such path")


def add_routes(app: web.Application, hooks: Callable[[], Hooks]) -> None:
    """The hook route, POST only (``hooks`` gives the daemon's :class:`Hooks` when called)."""

    async def route(request: web.Request) -> web.StreamResponse:
        return await hooks().handle(request)

    app.router.add_post(HOOK_PATH, route, name=ROUTE_NAME)


@web.middleware
async def _hooks_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return not_found()
        return _error(exc.status, "http_error", exc.reason)
    except Exception:
        log.exception("webhook request failed", path=request.path)
        return _error(500, "internal", "internal error; the daemon's log has the details")


def make_hooks_app(hooks: Hooks) -> web.Application:
    """The ``[hooks] listen`` application: the hook paths and nothing else."""
    app = web.Application(middlewares=[_hooks_errors])
    add_routes(app, lambda: hooks)
    return app

"""What every vendor emulator ("sandbox") shares: misbehaviour switches, counters, a test server.

A plugin builds its emulator as an ``aiohttp.web.Application`` and calls :func:`install_switches`
on it. That adds a middleware which, as the switches say, delays responses, answers 5xx (in the
vendor's own error shape, through ``fault``, with the statuses drawn in the proportions of
``error_statuses``), answers bursts of 429 (in the vendor's own shape, through ``too_many``),
drops the connection, or accepts a request and never answers it (``timeout_rate``: the request
hangs until the client gives up or the server stops); and it adds control endpoints under
``/_sandbox/`` which are **not part of any vendor's API**:

* ``GET  /_sandbox/switches`` and ``POST /_sandbox/switches`` (JSON: ``latency_ms``,
  ``error_rate``, ``error_statuses`` (``{"500": 1, "503": 3}`` or ``"500:1,503:3"``),
  ``drop_rate``, ``timeout_rate``, ``burst_429``, ``retry_after``, ``seed``)
* ``GET  /_sandbox/calls``: request counts by ``METHOD path``, for benchmarks and tests, and
  ``never_answered`` (the requests ``timeout_rate`` held)
* ``POST /_sandbox/calls/reset``

:class:`SandboxServer` runs an application on 127.0.0.1 on a free port, for tests and ``make demo``.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TooMany = Callable[[web.Request, float], web.StreamResponse]
#: the vendor's answer to an ``error_rate`` fault of the given status (500, 502, 503 or 504)
Fault = Callable[[web.Request, int], web.StreamResponse]

FAULT_STATUSES = (500, 502, 503, 504)

SWITCHES_KEY = web.AppKey("sandbox_switches", object)
CALLS_KEY = web.AppKey("sandbox_calls", Counter)


@dataclass
class Switches:
    """How the sandbox misbehaves. All off by default."""

    latency_ms: float = 0.0
    #: share of requests answered with a 5xx (see ``error_statuses``)
    error_rate: float = 0.0
    #: relative weights of the 5xx statuses an ``error_rate`` fault answers, by status
    error_statuses: dict[str, float] = field(default_factory=lambda: {"503": 1.0})
    #: share of requests whose connection is closed without an answer
    drop_rate: float = 0.0
    #: share of requests accepted and never answered (they hang until the server stops)
    timeout_rate: float = 0.0
    #: the next N requests are answered with 429
    burst_429: int = 0
    #: the Retry-After sent with those 429s, in seconds
    retry_after: float = 1.0
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    #: draws the status of a fault (apart from ``rng``, so that which requests fail stays the
    #: same for a seed whatever the mix)
    status_rng: random.Random = field(default_factory=random.Random, repr=False)

    def update(self, values: dict[str, Any]) -> None:
        for key in values:
            if key not in self.public():
                raise KeyError(key)
        for key, value in values.items():
            if key == "error_statuses":
                self.error_statuses = parse_error_statuses(value)
            else:
                setattr(self, key, type(getattr(self, key))(value))
        if "seed" in values:
            self.rng.seed(self.seed)
            self.status_rng.seed(self.seed)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("rng")
        data.pop("status_rng")
        return data

    def fault_status(self) -> int:
        """One of 500/502/503/504, drawn in the proportions of ``error_statuses``."""
        statuses = [int(k) for k in self.error_statuses]
        weights = list(self.error_statuses.values())
        return self.status_rng.choices(statuses, weights)[0]


def parse_error_statuses(value: Any) -> dict[str, float]:
    """``{"500": 1, "503": 3}``, ``"500:1,503:3"`` or ``"503"`` → weights by status.

    Raises ``ValueError`` for a status other than 500/502/503/504, a negative weight, or weights
    that are all zero."""
    if isinstance(value, str):
        pairs: list[tuple[Any, Any]] = []
        for part in value.split(","):
            status, sep, weight = part.strip().partition(":")
            if status:
                pairs.append((status, weight if sep else 1))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ValueError("error_statuses must be an object of status: weight")
    mix: dict[str, float] = {}
    for status, weight in pairs:
        code = str(status).strip()
        if code not in {str(s) for s in FAULT_STATUSES}:
            raise ValueError(f"error_statuses: {code!r} is not one of 500, 502, 503, 504")
        share = float(weight)
        if share < 0:
            raise ValueError(f"error_statuses: the weight of {code} is negative")
        mix[code] = share
    if not mix or not any(mix.values()):
        raise ValueError("error_statuses: at least one status needs a weight above 0")
    return mix


def option_list(value: Any) -> list[str]:
    """A list option as ``syncd sandbox --option key=a,b`` gives it (one comma-separated string)
    or as a test passes it (a list): ``"id, name"`` and ``["id", "name"]`` → ``["id", "name"]``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def default_too_many(request: web.Request, retry_after: float) -> web.StreamResponse:
    return web.json_response(
        {"error": "Too Many Requests"},
        status=429,
        headers={"Retry-After": str(int(retry_after) if retry_after >= 1 else retry_after)},
    )


def default_fault(request: web.Request, status: int) -> web.StreamResponse:
    return web.json_response({"error": f"HTTP {status} (sandbox)"}, status=status)


def switches(app: web.Application) -> Switches:
    value = app[SWITCHES_KEY]
    assert isinstance(value, Switches)
    return value


def install_switches(
    app: web.Application,
    too_many: TooMany = default_too_many,
    initial: Switches | None = None,
    fault: Fault = default_fault,
    error_statuses: dict[str, float] | None = None,
) -> Switches:
    """Add the misbehaviour middleware and the ``/_sandbox/`` control endpoints to ``app``.

    ``fault`` answers an ``error_rate`` fault in the vendor's shape; ``error_statuses`` is the
    vendor's default status mix (503 only when not given)."""
    state = initial or Switches()
    if error_statuses is not None and initial is None:
        state.error_statuses = parse_error_statuses(error_statuses)
    state.rng.seed(state.seed)
    state.status_rng.seed(state.seed)
    app[SWITCHES_KEY] = state
    app[CALLS_KEY] = Counter()
    #: set when the server stops: releases the requests that ``timeout_rate`` holds
    stopping = asyncio.Event()
    hung = [0]

    async def release_hung(app: web.Application) -> None:
        stopping.set()

    app.on_shutdown.append(release_hung)

    @web.middleware
    async def misbehave(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        app[CALLS_KEY][f"{request.method} {request.path}"] += 1
        if state.latency_ms:
            await asyncio.sleep(state.latency_ms / 1000)
        if state.burst_429 > 0:
            state.burst_429 -= 1
            return too_many(request, state.retry_after)
        if state.drop_rate and state.rng.random() < state.drop_rate:
            transport = request.transport
            if transport is not None:
                transport.close()
            raise asyncio.CancelledError
        if state.timeout_rate and state.rng.random() < state.timeout_rate:
            hung[0] += 1
            await stopping.wait()  # accepted, never answered
            transport = request.transport
            if transport is not None:
                transport.close()
            raise asyncio.CancelledError
        if state.error_rate and state.rng.random() < state.error_rate:
            return fault(request, state.fault_status())
        return await handler(request)

    app.middlewares.append(misbehave)

    async def get_switches(request: web.Request) -> web.Response:
        return web.json_response(state.public())

    async def set_switches(request: web.Request) -> web.Response:
        try:
            state.update(await request.json())
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": f"bad switch: {exc}"}, status=400)
        return web.json_response(state.public())

    async def get_calls(request: web.Request) -> web.Response:
        calls = app[CALLS_KEY]
        return web.json_response(
            {"total": sum(calls.values()), "by_route": dict(calls), "never_answered": hung[0]}
        )

    async def reset_calls(request: web.Request) -> web.Response:
        app[CALLS_KEY].clear()
        return web.json_response({"total": 0})

    app.router.add_get("/_sandbox/switches", get_switches)
    app.router.add_post("/_sandbox/switches", set_switches)
    app.router.add_get("/_sandbox/calls", get_calls)
    app.router.add_post("/_sandbox/calls/reset", reset_calls)
    return state


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SandboxServer:
    """Serve an aiohttp application on 127.0.0.1 for the duration of an ``async with``."""

    def __init__(self, app: web.Application, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = port or free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> SandboxServer:
        # a stop waits this long for requests still being answered (aiohttp's default is a
        # minute: Ctrl-C on `syncd sandbox` looked like a hang)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

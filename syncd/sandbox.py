"""What every vendor emulator ("sandbox") shares: misbehaviour switches, counters, a test server.

A plugin builds its emulator as an ``aiohttp.web.Application`` and calls :func:`install_switches`
on it. That adds a middleware which, as the switches say, delays responses, answers 5xx, answers
bursts of 429 (in the vendor's own shape, through ``too_many``), or drops the connection; and it
adds control endpoints under ``/_sandbox/`` which are **not part of any vendor's API**:

* ``GET  /_sandbox/switches`` and ``POST /_sandbox/switches`` (JSON: ``latency_ms``,
  ``error_rate``, ``drop_rate``, ``burst_429``, ``retry_after``, ``seed``)
* ``GET  /_sandbox/calls``: request counts by ``METHOD path``, for benchmarks and tests
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

SWITCHES_KEY = web.AppKey("sandbox_switches", object)
CALLS_KEY = web.AppKey("sandbox_calls", Counter)


@dataclass
class Switches:
    """How the sandbox misbehaves. All off by default."""

    latency_ms: float = 0.0
    #: share of requests answered with 503
    error_rate: float = 0.0
    #: share of requests whose connection is closed without an answer
    drop_rate: float = 0.0
    #: the next N requests are answered with 429
    burst_429: int = 0
    #: the Retry-After sent with those 429s, in seconds
    retry_after: float = 1.0
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in self.public():
                raise KeyError(key)
            setattr(self, key, type(getattr(self, key))(value))
        if "seed" in values:
            self.rng.seed(self.seed)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("rng")
        return data


def default_too_many(request: web.Request, retry_after: float) -> web.StreamResponse:
    return web.json_response(
        {"error": "Too Many Requests"},
        status=429,
        headers={"Retry-After": str(int(retry_after) if retry_after >= 1 else retry_after)},
    )


def switches(app: web.Application) -> Switches:
    value = app[SWITCHES_KEY]
    assert isinstance(value, Switches)
    return value


def install_switches(
    app: web.Application, too_many: TooMany = default_too_many, initial: Switches | None = None
) -> Switches:
    """Add the misbehaviour middleware and the ``/_sandbox/`` control endpoints to ``app``."""
    state = initial or Switches()
    state.rng.seed(state.seed)
    app[SWITCHES_KEY] = state
    app[CALLS_KEY] = Counter()

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
        if state.error_rate and state.rng.random() < state.error_rate:
            return web.json_response({"error": "Service Unavailable (sandbox)"}, status=503)
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
        return web.json_response({"total": sum(calls.values()), "by_route": dict(calls)})

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
        self._runner = web.AppRunner(self.app, access_log=None)
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

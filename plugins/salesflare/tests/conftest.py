"""Fixtures: a Salesflare sandbox on 127.0.0.1 and the real connector pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from syncd_salesflare.connector import SalesflareConnector
from syncd_salesflare.sandbox import STATE, make_app
from syncd_salesflare.sandbox_store import SalesflareState

from syncd.connector import ConnectorContext
from syncd.sandbox import SandboxServer
from syncd.testing.runner import Syncd

API_KEY = "sandbox-api-key"


@dataclass
class Sandbox:
    server: SandboxServer
    app: web.Application
    #: every request the sandbox received: (method, path, query as a list of pairs, body bytes)
    requests: list[tuple[str, str, list[tuple[str, str]], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> SalesflareState:
        return self.app[STATE]


StartSandbox = Callable[..., Awaitable[Sandbox]]
MakeConnector = Callable[..., Awaitable[SalesflareConnector]]


@pytest.fixture
async def start_sandbox() -> AsyncIterator[StartSandbox]:
    servers: list[SandboxServer] = []

    async def start(seed: int | None = None, middlewares: Any = (), **options: Any) -> Sandbox:
        """Serve a sandbox; ``middlewares`` run before everything else (to hold answers)."""
        options.setdefault("rate_limit", 0)
        app = make_app(seed, options)
        sandbox = Sandbox(SandboxServer(app), app)

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            if not request.path.startswith("/_sandbox/"):
                body = await request.read()
                sandbox.requests.append(
                    (request.method, request.path, list(request.query.items()), body)
                )
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.insert(0, record)
        for index, middleware in enumerate(middlewares):
            app.middlewares.insert(index, middleware)
        await sandbox.server.start()
        servers.append(sandbox.server)
        return sandbox

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def make_connector(tmp_path: Path) -> AsyncIterator[MakeConnector]:
    opened: list[SalesflareConnector] = []

    async def make(sandbox: Sandbox, **settings: Any) -> SalesflareConnector:
        config: dict[str, Any] = {
            "api_key": API_KEY,
            "base_url": sandbox.url,
            "calls_per_minute": 60000,
            "concurrency": 4,
            "backoff_seconds": 0.001,
        }
        config.update(settings)
        connector = SalesflareConnector(config, ConnectorContext("test", "b", tmp_path))
        await connector.open()
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.close()


# --- syncd itself, run as a user runs it ----------------------------------------------------


@pytest.fixture
def syncd(tmp_path: Path) -> Syncd:
    """The shared runner (``syncd.testing.runner``) on this test's directories."""
    return Syncd(tmp_path)

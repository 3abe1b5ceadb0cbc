"""Fixtures: a Salesflare sandbox on 127.0.0.1 and the real connector pointed at it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
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

SYNCD = [sys.executable, "-m", "syncd.cli"]
RUN_TIMEOUT = 120.0


class Syncd:
    """A config directory and a state directory, and ``syncd`` run on them in a subprocess.

    Subprocesses are started with asyncio, so the sandboxes (served by the test's own event
    loop) keep answering while ``syncd`` runs, and the test can edit the apps between runs.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config"
        self.state = root / "state"
        (self.config / "syncs").mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)

    def write_sync(self, name: str, body: str) -> Path:
        path = self.config / "syncs" / f"{name}.toml"
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        return await asyncio.create_subprocess_exec(
            *SYNCD,
            "--config",
            str(self.config),
            "--state-dir",
            str(self.state),
            *args,
            cwd=self.root,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str) -> tuple[int, str, str]:
        process = await self.start(*args)
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    async def sync(self, name: str, *flags: str) -> dict[str, Any]:
        """Run ``syncd sync NAME --json``; it must succeed. Returns the JSON result."""
        status, out, err = await self.run("sync", name, "--json", *flags)
        assert status == 0 and out, (status, out, err[-3000:])
        result: dict[str, Any] = json.loads(out)
        assert result["outcome"] == "success", result
        return result

    async def links(self, name: str) -> list[dict[str, Any]]:
        status, out, err = await self.run("links", name, "--json")
        assert status == 0, err
        links: list[dict[str, Any]] = json.loads(out)
        return links


@pytest.fixture
def syncd(tmp_path: Path) -> Syncd:
    return Syncd(tmp_path)

"""Fixtures: the Salesfire emulator on 127.0.0.1 and connectors pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from syncd_salesfire.connector import SalesfireConnector
from syncd_salesfire.sandbox import SalesfireState, create_app, state

from syncd.connector import ConnectorContext
from syncd.http import RetryPolicy
from syncd.sandbox import SandboxServer

SECRET = "s3cr3t-list-key"  # the same in test_salesfire_connector.py

MakeConnector = Callable[..., Coroutine[Any, Any, SalesfireConnector]]


class Hold:
    """A middleware that, once :meth:`start` is called, holds every push until :meth:`release`:
    a vendor that does not answer in time, for as long as the test needs (no clock decides)."""

    def __init__(self) -> None:
        self.holding = False
        self.released = asyncio.Event()

    def start(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.released.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.holding and request.path.startswith("/client/"):
            await self.released.wait()
        response: web.StreamResponse = await handler(request)
        return response


class Sandbox:
    def __init__(self, server: SandboxServer, hold: Hold) -> None:
        self.server = server
        self.hold = hold

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> SalesfireState:
        return state(self.server.app)

    def customers(self, list_name: str = "newsletter") -> list[Any]:
        return list(self.state.lists[list_name].customers.values())


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    return {"secret": SECRET, "rate_limit": 0}


@pytest.fixture
async def sandbox(sandbox_options: dict[str, Any]) -> AsyncIterator[Sandbox]:
    hold = Hold()
    app = create_app(None, sandbox_options)
    app.middlewares.append(hold.middleware)
    async with SandboxServer(app) as server:
        try:
            yield Sandbox(server, hold)
        finally:
            hold.release()


@pytest.fixture
async def make_connector(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[MakeConnector]:
    opened: list[SalesfireConnector] = []

    async def make(**settings: Any) -> SalesfireConnector:
        values: dict[str, Any] = {
            "base_url": sandbox.url,
            "site": "demo-site",
            "list": "newsletter",
            "secret": SECRET,
            # the connector's own pace is tested on its own; elsewhere it would only slow tests
            "rate_limit": 100_000,
            **settings,
        }
        context = ConnectorContext(sync="crm-to-salesfire", side="b", state_dir=tmp_path)
        connector = SalesfireConnector(values, context)
        await connector.open()
        assert connector.client is not None
        # keep retries quick: waits are the app's Retry-After or a few milliseconds
        connector.client.retry = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.01)
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.close()

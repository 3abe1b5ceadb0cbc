"""Fixtures: Woodpecker emulators on 127.0.0.1 and real connectors pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from syncd_woodpecker.connector import WoodpeckerConnector
from syncd_woodpecker.sandbox import DEFAULT_API_KEY, make_app, store_of
from syncd_woodpecker.sandbox_store import ProspectStore

from syncd.connector import ConnectorContext
from syncd.http import RetryPolicy
from syncd.sandbox import SandboxServer

API_KEY = DEFAULT_API_KEY


@dataclass
class Sandbox:
    server: SandboxServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.url + "/rest"

    @property
    def store(self) -> ProspectStore:
        return store_of(self.server.app)

    async def switches(self, **values: Any) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/_sandbox/switches", json=values) as response,
        ):
            assert response.status == 200, await response.text()

    async def calls(self) -> dict[str, int]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/_sandbox/calls") as response,
        ):
            body: dict[str, Any] = await response.json()
            return dict(body["by_route"])


StartSandbox = Callable[..., Coroutine[Any, Any, Sandbox]]
Connect = Callable[..., Coroutine[Any, Any, WoodpeckerConnector]]


@pytest.fixture
async def exit_stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def start_sandbox(exit_stack: AsyncExitStack) -> StartSandbox:
    async def start(seed: int | None = None, **options: Any) -> Sandbox:
        server = SandboxServer(make_app(seed, options))
        await exit_stack.enter_async_context(server)
        return Sandbox(server)

    return start


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> Sandbox:
    return await start_sandbox()


@pytest.fixture
def connect(exit_stack: AsyncExitStack, tmp_path: Path) -> Connect:
    """Open a connector on a sandbox, with retries fast enough for tests."""

    async def make(sandbox: Sandbox, sync: str = "test", **settings: Any) -> WoodpeckerConnector:
        values = {"api_key": API_KEY, "base_url": sandbox.base_url, **settings}
        connector = WoodpeckerConnector(
            values, ConnectorContext(sync=sync, side="b", state_dir=tmp_path)
        )
        await connector.open()
        exit_stack.push_async_callback(connector.close)
        assert connector.client is not None
        connector.client.retry = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.01)
        return connector

    return make

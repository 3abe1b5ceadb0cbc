"""Fixtures: the Salesfire emulator on 127.0.0.1 and connectors pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from syncd_salesfire.connector import SalesfireConnector
from syncd_salesfire.sandbox import SalesfireState, create_app, state

from syncd.connector import ConnectorContext
from syncd.http import RetryPolicy
from syncd.sandbox import SandboxServer

SECRET = "s3cr3t-list-key"  # the same in test_salesfire_connector.py

MakeConnector = Callable[..., Coroutine[Any, Any, SalesfireConnector]]


class Sandbox:
    def __init__(self, server: SandboxServer) -> None:
        self.server = server

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
    async with SandboxServer(create_app(None, sandbox_options)) as server:
        yield Sandbox(server)


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

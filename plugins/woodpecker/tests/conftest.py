"""Fixtures: Woodpecker emulators on 127.0.0.1 and real connectors pointed at them."""

from __future__ import annotations

import csv
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
from syncd.testing.runner import Syncd

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
    async def start(seed: int | None = None, middlewares: Any = (), **options: Any) -> Sandbox:
        app = make_app(seed, options)
        # test-only middlewares go innermost, next to the handlers (after the one-at-a-time
        # rule, authentication and the switches)
        app.middlewares.extend(middlewares)
        server = SandboxServer(app)
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


# --- syncd itself, as a user runs it ------------------------------------------------------


@pytest.fixture
def syncd(tmp_path: Path) -> Syncd:
    """The shared runner (``syncd.testing.runner``) on this test's directories."""
    return Syncd(tmp_path)


class CsvFile:
    """The CSV side of a sync, as the tests write, edit and inspect it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, header: str, *rows: str) -> None:
        self.path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")

    def rows(self) -> list[dict[str, str]]:
        with self.path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def by_email(self) -> dict[str, dict[str, str]]:
        """Rows by lower-cased email; fails on a repeated email (a duplicate)."""
        found: dict[str, dict[str, str]] = {}
        for row in self.rows():
            email = row.get("email", "").strip().lower()
            if email:
                assert email not in found, f"duplicate row for {email} in {self.path.name}"
                found[email] = row
        return found

    def edit(self, email: str, **values: str) -> None:
        """Change the row with ``email`` as a user would (other rows and columns kept)."""
        rows = self.rows()
        header = list(rows[0]) if rows else []
        hits = [row for row in rows if row.get("email", "").strip().lower() == email]
        assert len(hits) == 1, f"{email}: {len(hits)} rows"
        for key, value in values.items():
            if key not in header:
                header.append(key)
            hits[0][key] = value
        self.save(header, rows)

    def add(self, **values: str) -> None:
        rows = self.rows()
        header = list(rows[0]) if rows else list(values)
        header += [key for key in values if key not in header]
        self.save(header, [*rows, dict(values)])

    def save(self, header: list[str], rows: list[dict[str, str]]) -> None:
        with self.path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, header, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[[str], CsvFile]:
    return lambda name: CsvFile(tmp_path / name)

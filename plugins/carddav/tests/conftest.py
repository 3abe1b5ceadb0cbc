"""Fixtures: real Radicale and Xandikos servers (one of each per test session, on 127.0.0.1,
in temporary folders), a fresh address book per test, and connectors pointed at them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from syncd_carddav.connector import CardDavConnector
from syncd_carddav.proxy import make_proxy
from syncd_carddav.servers import DavServer, Radicale, Running, Xandikos
from syncd_carddav.testing import Book, Connect, MakeBook, MakeProxy, Proxy

from syncd.connector import ConnectorContext
from syncd.sandbox import SandboxServer


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with Running(Radicale(tmp_path_factory.mktemp("radicale"))) as server:
        yield server


@pytest.fixture(scope="session")
def xandikos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with Running(Xandikos(tmp_path_factory.mktemp("xandikos"))) as server:
        yield server


@pytest.fixture(params=["radicale", "xandikos"])
def server(request: pytest.FixtureRequest) -> DavServer:
    """Each of the two independent servers in turn (the core of the suite runs on both)."""
    found: DavServer = request.getfixturevalue(f"{request.param}_server")
    return found


@pytest.fixture
def radicale(radicale_server: DavServer) -> DavServer:
    return radicale_server


@pytest.fixture
def new_book() -> MakeBook:
    async def make(server: DavServer, display: str | None = None) -> Book:
        name = f"book-{uuid.uuid4().hex[:10]}"
        return Book(server, await server.make_addressbook(name, display or name))

    return make


@pytest.fixture
async def book(server: DavServer, new_book: MakeBook) -> Book:
    """A fresh address book on each server in turn."""
    return await new_book(server)


@pytest.fixture
async def rbook(radicale: DavServer, new_book: MakeBook) -> Book:
    """A fresh address book on Radicale."""
    return await new_book(radicale)


@pytest.fixture
async def connect(tmp_path: Path) -> AsyncIterator[Connect]:
    """Open connectors (closed after the test); ``state`` names a state folder to share."""
    opened: list[CardDavConnector] = []

    async def make(
        server: DavServer, url: str, *, state: str = "state", side: str = "a", **settings: Any
    ) -> CardDavConnector:
        config = {
            "url": url,
            "username": server.user,
            "password": server.password,
            "verify_tls": True,
            "concurrency": 4,
            **settings,
        }
        connector = CardDavConnector(
            config, ConnectorContext(sync="t", side=side, state_dir=tmp_path / state)
        )
        await connector.open()
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.close()


@pytest.fixture
async def proxy() -> AsyncIterator[MakeProxy]:
    """A counting proxy in front of a server (``without_sync=True``: one that refuses WebDAV
    sync, as some servers do)."""
    servers: list[SandboxServer] = []

    async def make(server: DavServer, middlewares: Any = (), **options: Any) -> Proxy:
        app = make_proxy(lambda: server.url, **options)
        app.middlewares.extend(middlewares)
        running = SandboxServer(app)
        await running.start()
        servers.append(running)
        return Proxy(running)

    yield make
    for running in servers:
        await running.stop()

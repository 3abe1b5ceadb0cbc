"""Helpers of the plugin's tests and benchmark: address books on a real server, a counting
proxy in front of it, and a connector's whole listing."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from syncd.connector import RemoteRecord
from syncd.sandbox import SandboxServer
from syncd_carddav.connector import CardDavConnector
from syncd_carddav.proxy import PROXY_COUNTS, Counts
from syncd_carddav.servers import DavServer


@dataclass
class Book:
    server: DavServer
    url: str

    async def put(self, name: str, body: str, etag: str | None = None) -> str:
        return await self.server.put_card(self.url, name, body, etag)

    async def put_many(self, cards: Iterable[tuple[str, str]]) -> None:
        """PUT cards over one connection (a phone's first upload)."""
        async with self.server.session() as session:
            for name, body in cards:
                async with session.put(
                    self.url + name,
                    data=body.encode(),
                    headers={"Content-Type": "text/vcard; charset=utf-8"},
                ) as response:
                    assert response.status in (200, 201, 204), await response.text()

    async def get(self, name: str) -> tuple[int, str, str]:
        return await self.server.get_card(self.url, name)

    async def delete(self, name: str) -> None:
        await self.server.delete_card(self.url, name)

    async def names(self) -> list[str]:
        return await self.server.card_names(self.url)


MakeBook = Callable[..., Coroutine[Any, Any, Book]]
Connect = Callable[..., Coroutine[Any, Any, CardDavConnector]]


async def listing(connector: CardDavConnector) -> dict[str, RemoteRecord]:
    records: dict[str, RemoteRecord] = {}
    async for page in connector.list_records(None):
        for record in page:
            records[record.id] = record
    return records


@dataclass
class Proxy:
    server: SandboxServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def counts(self) -> Counts:
        return self.server.app[PROXY_COUNTS]

    def book_url(self, book: Book) -> str:
        return self.url + "/" + book.url.split("/", 3)[3]


MakeProxy = Callable[..., Coroutine[Any, Any, Proxy]]

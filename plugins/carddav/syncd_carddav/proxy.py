"""A small reverse proxy in front of a DAV server: it counts requests and bytes (for the
benchmark), can refuse WebDAV sync (to play a server without ``sync-collection``), and is what
``syncd sandbox carddav`` serves in front of its Radicale."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
NO_SYNC_ERROR = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<d:error xmlns:d="DAV:"><d:supported-report/></d:error>'
)


@dataclass
class Counts:
    requests: int = 0
    bytes_sent: int = 0  # by the client, request lines and headers left out
    bytes_received: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    #: time the server took to answer, summed over requests (in parallel ones add up)
    server_seconds: float = 0.0
    #: time with at least one request at the server (the server's share of the wall time)
    busy_seconds: float = 0.0
    _in_flight: int = 0
    _busy_since: float = 0.0

    def reset(self) -> None:
        self.requests = self.bytes_sent = self.bytes_received = 0
        self.server_seconds = self.busy_seconds = 0.0
        self.by_method.clear()

    def started(self) -> float:
        now = time.monotonic()
        if self._in_flight == 0:
            self._busy_since = now
        self._in_flight += 1
        return now

    def finished(self, began: float) -> None:
        now = time.monotonic()
        self.server_seconds += now - began
        self._in_flight -= 1
        if self._in_flight == 0:
            self.busy_seconds += now - self._busy_since


PROXY_COUNTS = web.AppKey("proxy_counts", Counts)


def make_proxy(
    upstream: Callable[[], str],
    *,
    without_sync: bool = False,
    strip_sync_token: bool = False,
    mangle: Callable[[bytes], bytes] | None = None,
) -> web.Application:
    """An application forwarding every request to ``upstream()`` (a URL root)."""
    counts = Counts()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[PROXY_COUNTS] = counts
    sessions: list[aiohttp.ClientSession] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        counts.requests += 1
        counts.bytes_sent += len(body)
        counts.by_method[request.method] = counts.by_method.get(request.method, 0) + 1
        if without_sync and request.method == "REPORT" and b"sync-collection" in body:
            counts.bytes_received += len(NO_SYNC_ERROR)
            return web.Response(status=403, body=NO_SYNC_ERROR, content_type="application/xml")
        if not sessions:
            sessions.append(aiohttp.ClientSession(auto_decompress=False))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if mangle is not None or strip_sync_token:
            headers["Accept-Encoding"] = "identity"  # the proxy edits what it passes on
        began = counts.started()
        try:
            async with sessions[0].request(
                request.method,
                upstream().rstrip("/") + request.rel_url.raw_path_qs,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
        finally:
            counts.finished(began)
        if mangle is not None:
            payload = mangle(payload)
        if strip_sync_token and b"sync-token" in payload:
            payload = _strip_sync_token(payload)
        counts.bytes_received += len(payload)
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return web.Response(status=answer.status, body=payload, headers=out_headers)

    async def close(app: web.Application) -> None:
        for session in sessions:
            await session.close()

    app.on_cleanup.append(close)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def _strip_sync_token(payload: bytes) -> bytes:
    """Remove ``<sync-token>`` properties, as a server without WebDAV sync would answer."""
    import re

    return re.sub(rb"<(?:\w+:)?sync-token\b[^>]*?(?:/>|>.*?</(?:\w+:)?sync-token>)", b"", payload)

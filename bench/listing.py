"""Benchmark: listing contacts at the speed of the wire, for Xero, Salesflare and Woodpecker.

    make bench-venv
    .venv-bench/bin/python bench/listing.py [--count 10000] [--repeats 5] [--vendors xero,...]

For each vendor, its emulator (``syncd sandbox NAME``) runs in a **separate process**, seeded with
``--count`` contacts (Xero's archived ones included), its rate limits off: the figures are about
the client's code, not about a vendor's budget (with Xero's 60 calls a minute, any client lists
10,000 contacts in 10 calls either way). In this process, alternating within each repeat (the order
rotating from one repeat to the next), it lists them all with:

1. **connector**: the connector's own ``list_records(None)``, consumed as the engine consumes it
   (page by page, yielding to the loop between pages), records mapped;
2. **bare**: an aiohttp loop over the same requests (the same URLs, query and headers), each
   answer read and ``json.loads``-decoded and nothing else: the floor. It gets the same read-ahead
   the vendor's concurrency permits and the connector uses: after the first page, **Xero** keeps up
   to 5 requests in flight (5 concurrent calls per organisation, vendors.md §1.7); **Woodpecker**
   one in flight while the last answer is decoded (one request at a time, §3.4); **Salesflare**
   (no published limit) one in flight while the last answer is decoded, like the connector;
3. **sdk** (Xero only): the official ``xero-python`` SDK (installed by ``make bench-venv``, never a
   dependency of syncd), ``AccountingApi.get_contacts`` page after page, as its documentation uses
   it, with its host pointed at the emulator and the connector's OAuth2 access token.

Printed per variant: the median wall time and the median **client CPU** (this process's
``time.process_time``: the emulator's CPU is not in it), the throughput, and the ratios the targets
are about: connector/bare throughput ≥ 0.9 for each vendor, connector/SDK ≥ 2 for Xero. Exit
status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from syncd.connector import Connector, ConnectorContext

SYNCD = str(Path(sys.executable).with_name("syncd"))
XERO_PAGE = 1000
SALESFLARE_PAGE = 500
WOODPECKER_PAGE = 1000

# --- the emulators, each in its own process ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Emulator:
    """``syncd sandbox NAME`` as a child process (so that its CPU is not the client's)."""

    def __init__(self, name: str, count: int, options: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [SYNCD, "sandbox", name, "--port", str(self.port), "--seed", "1"]
        for key, value in {"count": str(count), **options}.items():
            args += ["--option", f"{key}={value}"]
        env = {**os.environ, "SYNCD_LOAD_PLUGINS": f"syncd-{name}"}
        self.process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise SystemExit(f"the {self.name} emulator exited: {err[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_sandbox/switches", timeout=5):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise SystemExit(f"the {self.name} emulator did not start within {timeout:.0f}s")

    def control(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def cpu(self) -> float:
        """CPU seconds the emulator process has used (user + system), from /proc."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Figures:
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    servers: list[float] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)

    @property
    def server(self) -> float:
        return statistics.median(self.servers)


#: a variant prepares (opens its connector or session: not timed, as the engine opens a connector
#: once per run), then ``list`` returns how many contacts it listed (timed), then ``done``
Variant = Callable[
    [], Awaitable[tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]]
]


async def measure(variant: Variant, expected: int, figures: Figures, emulator: Emulator) -> None:
    listing, done = await variant()
    try:
        server, cpu, wall = emulator.cpu(), time.process_time(), time.perf_counter()
        listed = await listing()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = emulator.cpu() - server
    finally:
        await done()
    if listed != expected:
        raise SystemExit(f"listed {listed} contacts, expected {expected}")
    figures.walls.append(wall)
    figures.cpus.append(cpu)
    figures.servers.append(server)


def through_connector(make: Callable[[], Awaitable[Connector]]) -> Variant:
    async def prepare() -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
        connector = await make()

        async def listing() -> int:
            listed = 0
            pages = connector.list_records(None)
            async with aclosing(pages):
                async for page in pages:  # as the engine's executor consumes a listing
                    listed += sum(1 for record in page if record.error is None)
                    await asyncio.sleep(0)
            return listed

        return listing, connector.close

    return prepare


def through_session(
    headers: dict[str, str], listing: Callable[[aiohttp.ClientSession], Awaitable[int]]
) -> Variant:
    async def prepare() -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
        session = aiohttp.ClientSession(headers=headers)

        async def run() -> int:
            return await listing(session)

        return run, session.close

    return prepare


def blocking(run: Callable[[], int]) -> Variant:
    async def prepare() -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
        async def listing() -> int:
            return run()

        async def done() -> None:
            return None

        return listing, done

    return prepare


async def bare_pages(
    session: aiohttp.ClientSession,
    requests: list[tuple[str, dict[str, str]]],
    window: int,
) -> list[Any]:
    """GET each request and json-decode it, in order, up to ``window`` in flight after the
    first. Returns the decoded bodies."""

    async def get(request: tuple[str, dict[str, str]]) -> bytes:
        url, params = request
        async with session.get(url, params=params) as response:
            if response.status not in (200, 204):
                raise SystemExit(f"bare loop: HTTP {response.status} for {url} {params}")
            return await response.read()

    bodies: list[Any] = []
    pending: list[asyncio.Task[bytes]] = []
    queue = list(requests)
    while queue or pending:
        while queue and len(pending) < max(1, window):
            pending.append(asyncio.ensure_future(get(queue.pop(0))))
        raw = await pending.pop(0)
        bodies.append(json.loads(raw) if raw else None)
        await asyncio.sleep(0)
    return bodies


# --- Xero -----------------------------------------------------------------------------------------


class ConsentingPrompt:
    """``syncd auth``'s prompt answered as a browser would (the emulator consents at once)."""

    url = ""

    def show(self, text: str) -> None:
        for word in text.split():
            if "/identity/connect/authorize?" in word:
                self.url = word

    def ask(self, question: str) -> str:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(self.url, timeout=30)
        except urllib.error.HTTPError as redirect:
            return str(redirect.headers["Location"])
        raise RuntimeError("the emulator did not redirect")


async def bench_xero(count: int, repeats: int) -> dict[str, Figures]:
    from syncd_xero.connector import ACCOUNTING_PATH, XeroConnector

    emulator = Emulator("xero", count, {"rate_limits": "false"})
    try:
        emulator.wait_ready()
        expected = emulator.control("/_sandbox/xero/state")["organisations"][0]["contacts"]
        state = Path(tempfile.mkdtemp(prefix="bench-listing-"))
        settings = {
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
            "tenant": "Demo Company (UK)",
            "api_url": emulator.url,
            "identity_url": emulator.url,
            "login_url": emulator.url,
            "page_size": XERO_PAGE,
            "minute_limit": 1_000_000,
            "day_limit": 10_000_000,
        }
        context = ConnectorContext("bench", "a", state)
        first = XeroConnector(settings, context)
        await first.authorize(ConsentingPrompt())
        await first.open()
        token = await first.tokens.access_token()
        tenant = first.tenant_id or ""
        await first.close()

        async def make() -> Connector:
            connector = XeroConnector(settings, context)
            await connector.open()
            return connector

        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant}
        headers["Accept"] = "application/json"
        url = emulator.url + ACCOUNTING_PATH + "/Contacts"
        pages = -(-expected // XERO_PAGE)

        def query(page: int) -> dict[str, str]:
            return {
                "includeArchived": "true",
                "order": "ContactID ASC",
                "page": str(page),
                "pageSize": str(XERO_PAGE),
            }

        async def bare(session: aiohttp.ClientSession) -> int:
            [head] = await bare_pages(session, [(url, query(1))], 1)
            assert head["pagination"]["pageCount"] == pages
            rest = [(url, query(n)) for n in range(2, pages + 1)]
            bodies = [head, *await bare_pages(session, rest, 5)]
            return sum(len(body["Contacts"]) for body in bodies)

        variants = {
            "connector": through_connector(make),
            "bare": through_session(headers, bare),
            "sdk": blocking(xero_sdk(emulator.url + ACCOUNTING_PATH, token, tenant)),
        }
        figures = await alternate(variants, expected, repeats, emulator)
        most = emulator.control("/_sandbox/xero/state").get("most_in_flight")
        print(f"   the emulator saw at most {most} Accounting requests at once (Xero allows 5)")
        return figures
    finally:
        emulator.stop()


def xero_sdk(base_url: str, token: str, tenant: str) -> Callable[[], int]:
    """Listing all contacts with the official SDK, page after page as its docs do."""
    try:
        from xero_python.accounting import AccountingApi
        from xero_python.api_client import ApiClient, Configuration
        from xero_python.api_client.oauth2 import OAuth2Token
    except ImportError:
        raise SystemExit(
            "bench/listing.py compares with the xero-python SDK: run `make bench-venv` and "
            "use .venv-bench/bin/python"
        ) from None

    client = ApiClient(
        Configuration(oauth2_token=OAuth2Token(client_id="sandbox-client")), pool_threads=1
    )
    token_set = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 1800,
        "expires_at": time.time() + 1800,
        "scope": ["offline_access", "accounting.contacts"],
    }
    client.oauth2_token_getter(lambda: token_set)
    client.oauth2_token_saver(lambda value: None)
    api = AccountingApi(client, base_url=base_url)

    def run() -> int:
        listed, page = 0, 1
        while True:
            answer = api.get_contacts(
                tenant, page=page, page_size=XERO_PAGE, include_archived=True, order="ContactID ASC"
            )
            listed += len(answer.contacts or [])
            if page >= answer.pagination.page_count:
                return listed
            page += 1

    return run


# --- Salesflare -----------------------------------------------------------------------------------


async def bench_salesflare(count: int, repeats: int) -> dict[str, Figures]:
    from syncd_salesflare.connector import SalesflareConnector
    from syncd_salesflare.sandbox import DEFAULT_API_KEY

    emulator = Emulator("salesflare", count, {"rate_limit": "0"})
    try:
        emulator.wait_ready()
        state = Path(tempfile.mkdtemp(prefix="bench-listing-"))
        settings = {
            "api_key": DEFAULT_API_KEY,
            "base_url": emulator.url,
            "page_size": SALESFLARE_PAGE,
            "calls_per_minute": 100_000,
        }

        async def make() -> Connector:
            connector = SalesflareConnector(settings, ConnectorContext("bench", "b", state))
            await connector.open()
            return connector

        headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "Accept": "application/json"}
        # pages overlap by one record (syncd_salesflare.paging); the list ends on a short page
        offsets = list(range(0, count, SALESFLARE_PAGE - 1))
        requests = [
            (
                emulator.url + "/contacts",
                {
                    "includeArchived": "true",
                    "limit": str(SALESFLARE_PAGE),
                    "offset": str(offset),
                    "order_by": "id",
                },
            )
            for offset in offsets
        ]

        async def bare(session: aiohttp.ClientSession) -> int:
            bodies = await bare_pages(session, requests, 1)
            return len({contact["id"] for body in bodies for contact in body})

        variants = {"connector": through_connector(make), "bare": through_session(headers, bare)}
        return await alternate(variants, count, repeats, emulator)
    finally:
        emulator.stop()


# --- Woodpecker -----------------------------------------------------------------------------------


async def bench_woodpecker(count: int, repeats: int) -> dict[str, Figures]:
    from syncd_woodpecker.connector import PROSPECTS, WoodpeckerConnector
    from syncd_woodpecker.sandbox import DEFAULT_API_KEY

    emulator = Emulator("woodpecker", count, {})
    try:
        emulator.wait_ready()
        state = Path(tempfile.mkdtemp(prefix="bench-listing-"))
        base = emulator.url + "/rest"
        settings = {"api_key": DEFAULT_API_KEY, "base_url": base, "per_page": WOODPECKER_PAGE}

        async def make() -> Connector:
            connector = WoodpeckerConnector(settings, ConnectorContext("bench", "b", state))
            await connector.open()
            return connector

        headers = {"x-api-key": DEFAULT_API_KEY, "Accept": "application/json"}
        pages = -(-count // WOODPECKER_PAGE)
        requests = [
            (base + PROSPECTS, {"page": str(n), "per_page": str(WOODPECKER_PAGE), "sort": "+id"})
            for n in range(1, pages + 1)
        ]

        async def bare(session: aiohttp.ClientSession) -> int:
            bodies = await bare_pages(session, requests, 1)
            return sum(len(body) for body in bodies if body)

        variants = {"connector": through_connector(make), "bare": through_session(headers, bare)}
        return await alternate(variants, count, repeats, emulator)
    finally:
        emulator.stop()


# --- the run ----------------------------------------------------------------------------------


async def alternate(
    variants: dict[str, Variant], expected: int, repeats: int, emulator: Emulator
) -> dict[str, Figures]:
    names = list(variants)
    figures = {name: Figures() for name in names}
    for name in names:  # one warm-up round each, not counted (imports, first connections)
        await measure(variants[name], expected, Figures(), emulator)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            await measure(variants[name], expected, figures[name], emulator)
    return figures


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def report(vendor: str, count: int, figures: dict[str, Figures]) -> bool:
    print(f"== {vendor}: {count} contacts, medians of {len(figures['connector'].walls)} runs")
    print(
        f"   {'variant':<10} {'wall s':>8} {'client CPU s':>13} {'emulator CPU s':>15} "
        f"{'contacts/s':>11}"
    )
    for name, fig in figures.items():
        print(
            f"   {name:<10} {fig.wall:8.3f} {fig.cpu:13.3f} {fig.server:15.3f} "
            f"{count / fig.wall:11.0f}"
        )
    ok = True
    conn = figures["connector"]
    ratio = figures["bare"].wall / conn.wall
    good = ratio >= 0.9
    ok &= good
    print(f"   connector/bare throughput {ratio:.2f} (target >= 0.90) {'ok' if good else 'MISSED'}")
    if "sdk" in figures:
        ratio = figures["sdk"].wall / conn.wall
        good = ratio >= 2.0
        ok &= good
        print(
            f"   connector/SDK throughput {ratio:.2f} (target >= 2.00) {'ok' if good else 'MISSED'}"
        )
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vendors", default="xero,salesflare,woodpecker")
    args = parser.parse_args()
    benches = {"xero": bench_xero, "salesflare": bench_salesflare, "woodpecker": bench_woodpecker}
    vendors = [v.strip() for v in args.vendors.split(",") if v.strip()]
    unknown = [v for v in vendors if v not in benches]
    if unknown:
        print(f"--vendors: unknown {', '.join(unknown)} (known: {', '.join(benches)})")
        return 2
    print(f"before: {load()}")
    ok = True
    for vendor in vendors:
        figures = await benches[vendor](args.count, args.repeats)
        ok &= report(vendor, args.count, figures)
    print(f"after: {load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""A real daemon on the Xero and Salesflare sandboxes with webhooks on: for the webhook tests
and ``bench/latency.py``.

The sandboxes run on an event loop of their own in a background thread (so that a test or a
benchmark may block while it waits, and the sandboxes keep answering: the Xero sandbox posts its
webhooks to the daemon from there). The daemon is a real ``syncd run`` subprocess
(:class:`syncd.testing.daemon.DaemonProcess`). Everything is spoken over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from syncd.sandbox import SandboxServer
from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

T = TypeVar("T")

SYNC = "xero-salesflare"
WEBHOOK_KEY = "sandbox-webhook-key-0123456789"
CLIENT_ID = "sandbox-custom-client"
SALESFLARE_KEY = "sandbox-api-key"


class ServerThread:
    """aiohttp applications served on a loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sandboxes", daemon=True)
        self.thread.start()
        self.servers: list[SandboxServer] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, app: web.Application) -> SandboxServer:
        server = SandboxServer(app)
        self.run(server.start())
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            # a test's failure must not be hidden by a teardown's
            with contextlib.suppress(Exception):
                self.run(server.stop(), 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {url}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
    return json.loads(raw) if raw else None


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    """POST exact bytes; the status, body and headers, whatever the status (a redirect is
    answered as it is, not followed: a vendor's delivery does not follow one either)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _NO_REDIRECTS.open(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


class WebhookWorld:
    """The Xero and Salesflare sandboxes, a daemon syncing them, Xero's webhooks on the daemon."""

    def __init__(
        self,
        root: Path,
        interval: str = "10m",
        debounce: str = "2s",
        separate_listener: bool = False,
        subscribe: bool = True,
        extra_a: str = "",
        extra_sync: str = "",
    ) -> None:
        self.root = root
        self.interval = interval
        self.debounce = debounce
        self.separate_listener = separate_listener
        self.subscribe_on_start = subscribe
        self.extra_a = extra_a
        self.extra_sync = extra_sync
        self.servers: ServerThread | None = None
        self.daemon: DaemonProcess | None = None
        self.xero_url = ""
        self.salesflare_url = ""
        self.api_port = free_port()
        self.hooks_port = free_port() if separate_listener else self.api_port

    # --- life -------------------------------------------------------------------------------

    def start(self) -> WebhookWorld:
        # the plugins, as installed (the core knows no vendor; soak.py does the same)
        make_xero = importlib.import_module("syncd_xero.sandbox").make_app
        make_salesflare = importlib.import_module("syncd_salesflare.sandbox").make_app

        self.servers = ServerThread()
        xero = self.servers.serve(
            make_xero(None, {"minute_limit": 100000, "day_limit": 10**6, "concurrent_limit": 50})
        )
        salesflare = self.servers.serve(make_salesflare(None, {"rate_limit": 0}))
        self.xero_url, self.salesflare_url = xero.url, salesflare.url
        self.write_config()
        self.start_daemon()
        if self.subscribe_on_start:
            state = self.subscribe()
            assert state["active"], state
        return self

    def salesflare_calls(self) -> dict[str, int]:
        return dict(http("GET", f"{self.salesflare_url}/_sandbox/calls")["by_route"])

    def write_config(self) -> None:
        config, state = self.root / "config", self.root / "state"
        hooks = f'\n[hooks]\ndebounce = "{self.debounce}"\n'
        if self.separate_listener:
            hooks += f'listen = "127.0.0.1:{self.hooks_port}"\n'
        write_daemon_config(config, f"127.0.0.1:{self.api_port}", state, extra=hooks)
        (config / "syncs" / f"{SYNC}.toml").write_text(
            textwrap.dedent(
                f"""
                direction = "two-way"
                interval = "{self.interval}"
                {self.extra_sync}

                [a]
                connector = "xero"
                grant = "client_credentials"
                client_id = "{CLIENT_ID}"
                client_secret = "sandbox-custom-secret"
                api_url = "{self.xero_url}"
                identity_url = "{self.xero_url}"
                login_url = "{self.xero_url}"
                webhook_key = "{WEBHOOK_KEY}"
                minute_limit = 100000
                {self.extra_a}

                [b]
                connector = "salesflare"
                api_key = "{SALESFLARE_KEY}"
                base_url = "{self.salesflare_url}"
                calls_per_minute = 60000
                """
            )
        )

    def start_daemon(self) -> DaemonProcess:
        self.daemon = DaemonProcess(
            self.root / "config", self.root / "state", f"127.0.0.1:{self.api_port}"
        ).start()
        self.daemon.wait_ready()
        return self.daemon

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.close()
        if self.servers is not None:
            self.servers.close()

    def __enter__(self) -> WebhookWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the daemon -------------------------------------------------------------------------

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.hooks_port}/hooks/xero/{CLIENT_ID}"

    def sync(self) -> dict[str, Any]:
        assert self.daemon is not None
        return dict(self.daemon.get(f"/api/v1/syncs/{SYNC}"))

    def runs(self, limit: int = 200) -> list[dict[str, Any]]:
        assert self.daemon is not None
        return list(self.daemon.get(f"/api/v1/syncs/{SYNC}/runs?limit={limit}")["runs"])

    def finished_runs(self, trigger: str | None = None) -> list[dict[str, Any]]:
        return [
            run
            for run in self.runs()
            if run["outcome"] != "running" and (trigger is None or run["trigger"] == trigger)
        ]

    def wait_first_run(self, timeout: float = 120.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            runs = self.finished_runs()
            return runs[0] if runs else None

        run = wait_until(done, timeout, "the first run")
        assert run["outcome"] == "success", run
        return run

    def wait_idle(self, timeout: float = 120.0) -> dict[str, Any]:
        """The sync neither running nor holding waiting events."""

        def idle() -> dict[str, Any] | None:
            sync = self.sync()
            quiet = sync["state"] != "running" and not sync["webhooks"]["events_waiting"]
            return sync if quiet else None

        return wait_until(idle, timeout, "the sync to settle")

    def wait_received(self, events: int, timeout: float = 120.0) -> dict[str, Any]:
        """The daemon has taken at least ``events`` webhook events in all. A contact stored in
        Xero reaches the daemon a moment later (the sandbox gathers a burst first): a test that
        wants the run it causes over must wait for this before :meth:`wait_idle`, which would
        otherwise find the sync idle before the event arrived."""

        def received() -> dict[str, Any] | None:
            sync = self.sync()
            return sync if sync["webhooks"]["events_received"] >= events else None

        return wait_until(received, timeout, f"{events} webhook events at the daemon")

    def deliveries_answered(self) -> int:
        """How many deliveries (copies and retries included) the daemon has answered: the
        sandbox counts an attempt as it sends it, and its status once the answer is back."""
        return sum(len(d["statuses"]) for d in self.webhooks()["last"])

    # --- Xero -------------------------------------------------------------------------------

    def subscribe(self, url: str | None = None, key: str = WEBHOOK_KEY, **more: Any) -> Any:
        return http(
            "POST",
            f"{self.xero_url}/_sandbox/xero/webhooks",
            {"url": url or self.hook_url, "key": key, **more},
        )

    def webhooks(self, **settings: Any) -> Any:
        if settings:
            return http("POST", f"{self.xero_url}/_sandbox/xero/webhooks", settings)
        return http("GET", f"{self.xero_url}/_sandbox/xero/webhooks")

    def xero_put(self, *contacts: dict[str, Any]) -> list[dict[str, Any]]:
        """Store contacts as a person using Xero would (``ContactID`` to edit one)."""
        answer = http("POST", f"{self.xero_url}/_sandbox/xero/contacts", {"Contacts": contacts})
        return list(answer["Contacts"])

    def xero_contacts(self) -> list[dict[str, Any]]:
        return list(http("GET", f"{self.xero_url}/_sandbox/xero/contacts")["Contacts"])

    def xero_calls(self) -> int:
        return int(http("GET", f"{self.xero_url}/_sandbox/calls")["total"])

    def xero_calls_by_route(self) -> dict[str, int]:
        return dict(http("GET", f"{self.xero_url}/_sandbox/calls")["by_route"])

    # --- Salesflare -------------------------------------------------------------------------

    def salesflare(self, method: str, path: str, body: Any = None) -> Any:
        return http(
            method,
            self.salesflare_url + path,
            body,
            {"Authorization": f"Bearer {SALESFLARE_KEY}"},
        )

    def salesflare_contact(self, email: str) -> dict[str, Any] | None:
        from urllib.parse import quote

        found = self.salesflare("GET", f"/contacts?email={quote(email)}&includeArchived=true")
        return found[0] if found else None

    def salesflare_contacts(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.salesflare(
                "GET", f"/contacts?limit=100&offset={offset}&includeArchived=true"
            )
            out.extend(page)
            if len(page) < 100:
                return out
            offset += 100

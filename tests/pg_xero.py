"""Xero on a PostgreSQL store, for tests: the Xero emulator (a real HTTP server in a thread),
its consent played by a browser, and daemons sharing one database and one config directory."""

from __future__ import annotations

import os
import textwrap
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncd.connector import ConnectorContext
from syncd.store import Store
from syncd.testing.daemon import DaemonProcess, free_port, write_daemon_config
from syncd.testing.webhooks import ServerThread, http

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
UK = "Demo Company (UK)"
KEY_ENV = "SYNCD_TEST_TOKEN_KEY"


class Prompt:
    """``syncd auth``'s prompt, played by a browser that consents and reports where it landed."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.shown: list[str] = []

    def show(self, text: str) -> None:
        self.shown.append(text)
        for word in text.split():
            if "/identity/connect/authorize?" in word:
                self.url = word

    def ask(self, question: str) -> str:
        assert self.url is not None

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(self.url, timeout=120)
        except urllib.error.HTTPError as redirect:
            return str(redirect.headers["Location"])
        raise AssertionError("the authorize page did not redirect")


class XeroSandbox:
    """One Xero emulator on 127.0.0.1, in a thread of its own."""

    def __init__(self, middlewares: Sequence[Any] = (), **options: Any) -> None:
        from syncd_xero.sandbox import make_app

        self.thread = ServerThread()
        app = make_app(options.pop("seed", None), options)
        for index, middleware in enumerate(middlewares):
            app.middlewares.insert(index, middleware)  # outermost, in this order
        self.server = self.thread.serve(app)
        self.url = self.server.url

    def settings(self, **overrides: Any) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "tenant": UK,
            "api_url": self.url,
            "identity_url": self.url,
            "login_url": self.url,
            "page_size": 100,
        }
        settings.update(overrides)
        return settings

    def toml(self, **overrides: Any) -> str:
        lines = []
        for key, value in self.settings(**overrides).items():
            shown = f'"{value}"' if isinstance(value, str) else str(value).lower()
            lines.append(f"{key} = {shown}")
        return "\n".join(lines)

    def state(self) -> dict[str, Any]:
        return dict(http("GET", f"{self.url}/_sandbox/xero/state"))

    def refreshes(self) -> int:
        return int(self.state()["tokens_issued"].get("refresh_token", 0))

    def expire_access_tokens(self) -> None:
        http("POST", f"{self.url}/_sandbox/xero/tokens/expire", {})

    def close(self) -> None:
        self.thread.close()


def xero_connector(store: Store, sandbox: XeroSandbox, sync: str, side: str = "a") -> Any:
    """The Xero connector a daemon on ``store`` would make for ``sync``'s ``side``."""
    from syncd_xero.connector import XeroConnector

    context = ConnectorContext(
        sync, side, store.state_dir, tokens=store.tokens, budgets=store.budgets
    )
    return XeroConnector(sandbox.settings(), context)


async def authorise(store: Store, sandbox: XeroSandbox, sync: str, side: str = "a") -> str:
    """``syncd auth SYNC SIDE`` against the emulator; the summary it prints."""
    connector = xero_connector(store, sandbox, sync, side)
    try:
        return str(await connector.authorize(Prompt()))
    finally:
        await connector.close()


class XeroCluster:
    """Daemons sharing one config directory (xero → csv syncs) and one PostgreSQL database,
    each with its own API address and state directory, as on separate machines."""

    def __init__(self, root: Path, url: str, key: str, lease: float, extra_store: str = ""):
        self.root = root
        self.url = url
        self.key = key
        self.config = root / "config"
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.daemons: list[DaemonProcess] = []
        self.count = 0
        write_daemon_config(
            self.config,
            "127.0.0.1:1",
            root / "state",
            shutdown_deadline="5s",
            extra=f"""
            [store]
            url = "{url}"
            lease_timeout = "{lease}s"
            token_key = "${{env:{KEY_ENV}}}"
            {extra_store}
            """,
        )

    def add_sync(self, name: str, a_settings: str, interval: str = "1h", extra: str = "") -> None:
        body = textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = "{interval}"
            {extra}
            [b]
            connector = "csv"
            path = "{self.data / f"{name}-b.csv"}"

            [a]
            connector = "xero"
            """
        )
        (self.config / "syncs" / f"{name}.toml").write_text(body + a_settings + "\n")

    def start(self, config: Path | None = None) -> DaemonProcess:
        self.count += 1
        n = self.count
        listen = f"127.0.0.1:{free_port()}"
        state = self.root / f"state-{n}"
        own = self.root / f"config-{n}"
        own.mkdir()
        os.symlink((config or self.config) / "syncs", own / "syncs")
        text = (self.config / "syncd.toml").read_text()
        text = text.replace('listen = "127.0.0.1:1"', f'listen = "{listen}"')
        text = text.replace(f'state_dir = "{self.root / "state"}"', f'state_dir = "{state}"')
        (own / "syncd.toml").write_text(text)
        daemon = DaemonProcess(
            own, state, listen, env={KEY_ENV: self.key}, log_path=self.root / f"daemon-{n}.log"
        )
        daemon.start()
        self.daemons.append(daemon)
        daemon.wait_ready()
        return daemon

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.close()

"""Browser tests of the web console: headless Chromium (Debian's, through Playwright for Python)
against a real ``syncd run`` on the Xero and Salesflare sandboxes.

Use from a test module::

    from browser_support import ConsoleDaemon, browser, console, page, screenshot, sign_in

    def test_x(console: ConsoleDaemon, page: Page) -> None:
        sign_in(page, console)
        ...

``browser`` (module: see its docstring) is Chromium; ``console`` (module) the daemon with its
sandboxes; ``page`` (function) a fresh browser context (its own cookies) that fails the test on
any JavaScript dialog (an ``alert`` means a script ran that should not have), any uncaught page
error, or any Content-Security-Policy violation. The browser must be installed (``make test`` runs
contrib/install-browser.sh): a missing browser fails, it never skips.

The daemon's syncs (``ConsoleDaemon``):

* ``xero-salesflare``: Xero (a Custom Connection) ⇄ Salesflare, both ways;
* ``xero-login``: Xero through the authorization-code flow → a CSV file; it has no tokens, so it
  needs authorisation (the sandbox shows a consent page);
* ``held``: testcsv → testcsv whose writes wait for a hold file after the first batch
  (:meth:`ConsoleDaemon.hold` / :meth:`ConsoleDaemon.release`), so a test can see a run in the
  middle of its writes without depending on timing. Its source file is named like an HTML
  injection, which the overview shows as the account.

Salesflare has a contact named :data:`HOSTILE` (``<img src=x onerror=alert(1)>``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

CHROMIUM = os.environ.get("SYNCD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
HOSTILE = "<img src=x onerror=alert(1)>"
XERO_CUSTOM_SECRET = "sandbox-custom-secret"
SALESFLARE_KEY = "sandbox-api-key"
#: the records of the held sync (its second batch waits for the hold file)
HELD_RECORDS = 60
HELD_BATCH = 10
#: where screenshots go besides the test's tmp dir (``SYNCD_SCREENSHOTS=docs/console``)
SCREENSHOTS_ENV = "SYNCD_SCREENSHOTS"
#: how long a browser step may wait for the page (generous: two CPU hogs may run beside)
STEP_MS = 60_000
expect.set_options(timeout=STEP_MS)

__all__ = [
    "HOSTILE",
    "ConsoleDaemon",
    "browser",
    "console",
    "page",
    "screenshot",
    "sign_in",
]


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, for one test module: Playwright's sync API keeps an event loop running in this
    thread while it is open, which asyncio tests (and asyncio.run) must not find there, so it is
    closed at the end of every module that uses it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: run `make browser` (contrib/install-browser.sh installs "
            "Debian's chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(STEP_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    assert not problems, problems


def shots_dir() -> Path:
    path = Path(os.environ.get("SYNCD_SCREENSHOT_TMP", "/tmp/syncd-console-screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Page, name: str, full_page: bool = True, docs: bool = False) -> Path:
    """``name.png`` in the screenshot directory; a ``docs`` one also in ``$SYNCD_SCREENSHOTS``
    when set (``SYNCD_SCREENSHOTS=docs/console`` renews the pictures of docs/console.md)."""
    path = shots_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    extra = os.environ.get(SCREENSHOTS_ENV)
    if extra and docs:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


# --- the daemon and its sandboxes ---------------------------------------------------------------


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


class ConsoleDaemon:
    """A real daemon on real sandboxes (subprocesses), for the console's browser tests."""

    def __init__(self, root: Path, base_path: str = "", extra_api: str = "") -> None:
        self.root = root
        self.config = root / "config"
        self.state = root / "state"
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.base_path = base_path
        self.ports = {"xero": free_port(), "salesflare": free_port()}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.listen = f"127.0.0.1:{free_port()}"
        self.sandboxes: list[subprocess.Popen[bytes]] = []
        self.held_source = self.data / f"{HOSTILE}.csv"
        self.hold_file = self.data / "hold"
        api = f'base_path = "{base_path}"\n' if base_path else ""
        write_daemon_config(
            self.config, self.listen, self.state, shutdown_deadline="10s", extra=api + extra_api
        )
        self._write_syncs()
        self.daemon = DaemonProcess(
            self.config,
            self.state,
            self.listen,
            env={
                "SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv",
                "XERO_CLIENT_SECRET": XERO_CUSTOM_SECRET,
                "SALESFLARE_API_KEY": SALESFLARE_KEY,
            },
        )

    @property
    def url(self) -> str:
        """The console's address (without base_path: the daemon serves it at /)."""
        return f"http://{self.listen}"

    def _write_syncs(self) -> None:
        xero = self.urls["xero"]
        salesflare = self.urls["salesflare"]
        syncs = self.config / "syncs"
        (syncs / "xero-salesflare.toml").write_text(
            textwrap.dedent(
                f"""
                direction = "two-way"
                interval = "1h"
                [a]
                connector = "xero"
                grant = "client_credentials"
                client_id = "sandbox-custom-client"
                client_secret = "${{env:XERO_CLIENT_SECRET}}"
                api_url = "{xero}"
                identity_url = "{xero}"
                login_url = "{xero}"
                [b]
                connector = "salesflare"
                api_key = "${{env:SALESFLARE_API_KEY}}"
                base_url = "{salesflare}"
                create_accounts = true
                calls_per_minute = 1200
                """
            )
        )
        (syncs / "xero-login.toml").write_text(
            textwrap.dedent(
                f"""
                direction = "a-to-b"
                interval = "1h"
                [a]
                connector = "xero"
                client_id = "sandbox-client"
                client_secret = "sandbox-secret"
                tenant = "Demo Company (UK)"
                api_url = "{xero}"
                identity_url = "{xero}"
                login_url = "{xero}"
                [b]
                connector = "csv"
                path = "{self.data / "from-xero.csv"}"
                """
            )
        )
        self.write_held_people(HELD_RECORDS)
        (syncs / "held.toml").write_text(
            textwrap.dedent(
                f"""
                direction = "a-to-b"
                interval = "1h"
                [a]
                connector = "testcsv"
                path = "{self.held_source}"
                [b]
                connector = "testcsv"
                path = "{self.data / "held-copy.csv"}"
                batch_size = {HELD_BATCH}
                hold = "{self.hold_file}"
                hold_after = 1
                """
            )
        )
        # the first run goes through; a test holds the next with hold()
        self.hold_file.touch()

    def write_held_people(self, count: int, prefix: str = "held") -> None:
        lines = ["email,first_name,last_name"]
        lines += [f"{prefix}{i}@example.com,First{i},Last{i}" for i in range(count)]
        self.held_source.write_text("\n".join(lines) + "\n")

    def edit_held_people(self, first_name: str) -> None:
        """Give every record of the held sync's source a new first name (keeping the ids the
        CSV connector gave them): its next run updates them all, HELD_BATCH at a time."""
        with self.held_source.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows, "the held source is empty"
        with self.held_source.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "first_name": first_name})

    def hold(self) -> None:
        """The held sync's next run stops after its first write batch (until release())."""
        self.hold_file.unlink(missing_ok=True)
        Path(f"{self.hold_file}.held").unlink(missing_ok=True)

    def is_held(self) -> bool:
        return Path(f"{self.hold_file}.held").exists()

    def release(self) -> None:
        self.hold_file.touch()

    # --- life -----------------------------------------------------------------------------

    def start(self) -> ConsoleDaemon:
        for name, seed, options in (
            ("xero", 11, ["count=15", "consent_page=true"]),
            ("salesflare", 12, ["count=15", "rate_limit=5000"]),
        ):
            command = [
                sys.executable,
                "-m",
                "syncd.cli",
                "sandbox",
                name,
                "--port",
                str(self.ports[name]),
                "--seed",
                str(seed),
            ]
            for option in options:
                command += ["--option", option]
            log = (self.root / f"{name}.log").open("ab")
            self.sandboxes.append(
                subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            )
        for name, process in zip(self.urls, self.sandboxes, strict=True):
            wait_until(lambda n=name, p=process: self._sandbox_up(n, p), 120, name)
        http_json(
            "POST",
            f"{self.urls['salesflare']}/contacts?force=false",
            [{"email": "hostile@example.com", "firstname": HOSTILE, "lastname": "Person"}],
            {"Authorization": f"Bearer {SALESFLARE_KEY}"},
        )
        self.daemon.start()
        self.daemon.wait_ready()
        # every sync made its first run (xero-login stops at needs_auth)
        wait_until(
            lambda: all(
                s["last_run"] is not None and s["state"] != "running"
                for s in self.daemon.get("/api/v1/syncs")["syncs"]
            ),
            300,
            "the first runs",
        )
        return self

    def _sandbox_up(self, name: str, process: subprocess.Popen[bytes]) -> bool:
        """The sandbox answers; one that exited (its port taken meanwhile, say) fails at once
        with its log, rather than after the whole wait."""
        if _answers(self.urls[name] + "/_sandbox/switches"):
            return True
        if process.poll() is not None:
            log = (self.root / f"{name}.log").read_text(errors="replace")
            raise RuntimeError(f"the {name} sandbox exited ({process.returncode}):\n{log[-3000:]}")
        return False

    def close(self) -> None:
        self.release()
        try:
            self.daemon.close()
        finally:
            for process in self.sandboxes:
                process.terminate()
            for process in self.sandboxes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()

    def token(self) -> str:
        return self.daemon.token()

    def syncs(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.daemon.get("/api/v1/syncs")["syncs"]}

    def sign_in_link(self) -> str:
        data = self.daemon.post("/api/v1/console/codes")
        return self.url + data["path"]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    daemon = ConsoleDaemon(tmp_path_factory.mktemp("console"))
    try:
        daemon.start()
        yield daemon
        log = daemon.daemon.log_text()
    finally:
        daemon.close()
    assert "Traceback" not in log, log[-5000:]
    assert "console request failed" not in log, log[-5000:]


def sign_in(page: Page, console: ConsoleDaemon, next_path: str = "/") -> None:
    """Sign in through the sign-in form with the API token."""
    page.goto(console.url + "/signin" + (f"?next={next_path}" if next_path != "/" else ""))
    page.get_by_label("API token").fill(console.token())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(console.url + next_path)

"""The web console over plain HTTP, on a real daemon: sessions, CSRF, throttling, the security
headers, the event stream, base_path behind a proxy, and ``syncd console``.

The browser's view of the same is tests/test_console_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web
from console_support import page_csrf, signed_in

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

TOKEN = "console-http-token-5d1f0c9a"
#: with a plugin that cannot be imported, for the plugins page to show
ENV = {"SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv,syncd_plugin_that_is_not_there"}


def write_syncs(config: Path, data: Path) -> None:
    data.mkdir(exist_ok=True)
    (data / "a.csv").write_text("email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n")
    (config / "syncs" / "alpha.toml").write_text(
        textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = "1h"
            [a]
            connector = "testcsv"
            path = "{data / "a.csv"}"
            [b]
            connector = "testcsv"
            path = "{data / "b.csv"}"
            """
        )
    )


class Daemon:
    def __init__(self, root: Path, extra: str = "") -> None:
        self.config, self.state = root / "config", root / "state"
        self.listen = f"127.0.0.1:{free_port()}"
        write_daemon_config(
            self.config, self.listen, self.state, extra=f'token = "{TOKEN}"\n' + extra
        )
        write_syncs(self.config, root / "data")
        self.process = DaemonProcess(self.config, self.state, self.listen, env=ENV)
        self.url = f"http://{self.listen}"
        self.direct = self.url

    def start(self) -> Daemon:
        self.process.start()
        self.process.wait_ready()
        wait_until(
            lambda: all(
                s["last_run"] is not None and s["state"] != "running"
                for s in self.api("GET", "/api/v1/syncs")["syncs"]
            ),
            120,
            "the first run",
        )
        return self

    def api(self, method: str, path: str, body: Any = None) -> Any:
        answer = requests.request(
            method,
            self.direct + path,
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )
        assert answer.status_code < 300, answer.text
        return answer.json()

    def sign_in(
        self, headers: dict[str, str] | None = None, keep_secure: bool = False
    ) -> requests.Session:
        return signed_in(self.url, TOKEN, headers, keep_secure)

    def csrf(self, browser: requests.Session) -> str:
        return page_csrf(browser, self.url)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = Daemon(tmp_path_factory.mktemp("console-http"))
    with contextlib.closing(started.process):
        started.start()
        yield started
        log = started.process.log_text()
    assert "Traceback" not in log, log[-3000:]


class Proxy:
    """A reverse proxy, as Caddy's ``handle_path /syncd/*`` or nginx's ``location /syncd/``
    with ``proxy_pass http://daemon/`` are: it strips the prefix and says where the request came
    from (``X-Forwarded-Proto``, ``X-Forwarded-For``, ``X-Forwarded-Host``)."""

    def __init__(self, upstream: str, prefix: str) -> None:
        self.upstream = upstream
        self.prefix = prefix
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        #: the address the proxy says each request came from
        self.client = "192.0.2.10"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.path_qs[len(self.prefix) :] or "/"
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        # the browser reached the proxy over plain http here; a test says when it was https
        headers["X-Forwarded-Proto"] = request.headers.get("X-Test-Proto", "http")
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-For"] = request.headers.get("X-Test-Client", self.client)
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                self.upstream + path,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as answer,
        ):
            body = await answer.read()
            out = web.Response(status=answer.status, body=body)
            for key, value in answer.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "date", "server"):
                    out.headers.add(key, value)
            return out

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", self.prefix + "/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> Proxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)

    @property
    def url(self) -> str:
        """The console's address as the browser sees it (http here: the proxy says https)."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon behind a reverse proxy at /syncd; the returned Daemon's ``url`` is the
    proxy's (``direct`` the daemon's own)."""
    started = Daemon(
        tmp_path_factory.mktemp("console-proxied"),
        'base_path = "/syncd"\ntrust_proxy = true\n',
    )
    with contextlib.closing(started.process):
        started.start()
        proxy = Proxy(started.url, "/syncd").start()
        try:
            started.direct = started.url
            started.url = proxy.url
            yield started
        finally:
            proxy.stop()


# --- sessions -----------------------------------------------------------------------------------


PAGES = ["/", "/plugins", "/syncs/alpha", "/syncs/alpha/connect/a", "/nowhere"]
POSTS = ["/syncs/alpha/trigger", "/syncs/alpha/pause", "/syncs/alpha/resume", "/signout"]


def test_every_page_but_sign_in_and_healthz_needs_a_session(daemon: Daemon) -> None:
    for path in PAGES:
        answer = requests.get(daemon.url + path, allow_redirects=False, timeout=60)
        assert answer.status_code == 303, path
        assert answer.headers["Location"].startswith("/signin"), path
    for path in POSTS:
        answer = requests.post(daemon.url + path, data={"csrf_token": "x"}, timeout=60)
        assert answer.status_code == 401, path
        assert "signed out" in answer.text.lower()
    assert daemon.api("GET", "/api/v1/syncs")["syncs"][0]["paused"] is False
    assert requests.get(daemon.url + "/signin", timeout=60).status_code == 200
    assert requests.get(daemon.url + "/healthz", timeout=60).status_code == 200
    assert requests.get(daemon.url + "/api/v1/events", timeout=60).status_code == 401
    # the JSON API keeps the bearer token exactly as before; a cookie does not open it
    browser = daemon.sign_in()
    assert browser.get(daemon.url + "/api/v1/syncs", timeout=60).status_code == 401


def test_the_session_cookie_is_httponly_strict_and_not_secure_over_plain_http(
    daemon: Daemon,
) -> None:
    browser = daemon.sign_in()
    cookie = next(c for c in browser.cookies if c.name == "syncd_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") == "Strict"
    assert not cookie.secure
    assert cookie.path == "/"
    assert cookie.expires is not None  # seven days (the default session_lifetime)
    # a proxy's word is not taken unless trust_proxy says so
    lying = daemon.sign_in({"X-Forwarded-Proto": "https"})
    assert not next(c for c in lying.cookies if c.name == "syncd_session").secure


def test_every_console_answer_has_the_security_headers_and_no_inline_code(
    daemon: Daemon,
) -> None:
    browser = daemon.sign_in()
    for path in ("/signin", "/", "/plugins", "/static/console.js", "/static/console.css", "/x"):
        answer = browser.get(daemon.url + path, timeout=60)
        csp = answer.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        if answer.headers["Content-Type"].startswith("text/html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text), path
            assert not re.search(r"\sstyle=|<style", answer.text), path
            assert not re.search(r"\son[a-z]+=", answer.text), path
            assert "https://" not in answer.text  # nothing fetched from elsewhere


def test_a_post_without_the_csrf_token_is_refused_and_with_it_accepted(daemon: Daemon) -> None:
    browser = daemon.sign_in()
    for data in ({"next": "/"}, {"next": "/", "csrf_token": "forged"}):
        answer = browser.post(daemon.url + "/syncs/alpha/pause", data=data, timeout=60)
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    assert daemon.api("GET", "/api/v1/syncs/alpha")["paused"] is False
    token = daemon.csrf(browser)
    answer = browser.post(
        daemon.url + "/syncs/alpha/pause",
        data={"next": "/", "csrf_token": token},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 303
    assert daemon.api("GET", "/api/v1/syncs/alpha")["paused"] is True
    # the same with fetch's header and JSON answer
    answer = browser.post(
        daemon.url + "/syncs/alpha/resume",
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert daemon.api("GET", "/api/v1/syncs/alpha")["paused"] is False
    # a session's token is no good for another session
    other = daemon.sign_in()
    answer = other.post(
        daemon.url + "/syncs/alpha/pause", data={"next": "/", "csrf_token": token}, timeout=60
    )
    assert answer.status_code == 403


def test_a_sign_in_form_posted_from_elsewhere_is_refused(daemon: Daemon) -> None:
    answer = requests.post(
        daemon.url + "/signin", data={"token": TOKEN, "next": "/"}, allow_redirects=False
    )
    assert answer.status_code == 403
    assert "syncd_session" not in answer.cookies


def test_failed_sign_ins_are_throttled_per_client_address(proxied: Daemon) -> None:
    # behind the trusted proxy, the address is the one it adds to X-Forwarded-For
    attacker = {"X-Test-Client": "198.51.100.7"}
    browser = requests.Session()
    browser.headers.update(attacker)
    for _ in range(5):
        form = browser.get(proxied.url + "/signin", timeout=60)
        field = re.search(r'name="signin_csrf" value="([^"]+)"', form.text)
        assert field
        answer = browser.post(
            proxied.url + "/signin",
            data={"token": "guess", "signin_csrf": field.group(1)},
            timeout=60,
        )
        assert answer.status_code == 401
    form = browser.get(proxied.url + "/signin", timeout=60)
    field = re.search(r'name="signin_csrf" value="([^"]+)"', form.text)
    assert field
    answer = browser.post(
        proxied.url + "/signin",
        data={"token": TOKEN, "signin_csrf": field.group(1)},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 429, "even the right token waits"
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert "Too many failed sign-ins" in answer.text
    # another address is not held up
    proxied.sign_in({"X-Test-Client": "198.51.100.8"})


def test_sign_out_ends_the_session_and_its_event_stream(daemon: Daemon) -> None:
    browser = daemon.sign_in()
    cookie = browser.cookies.get("syncd_session")
    assert cookie
    token = daemon.csrf(browser)
    stream = browser.get(daemon.url + "/api/v1/events", stream=True, timeout=60)
    assert stream.status_code == 200
    lines = stream.iter_lines(decode_unicode=True)
    assert next(lines) == "retry: 3000"
    assert next(lines) == "event: hello"
    answer = browser.post(
        daemon.url + "/signout", data={"csrf_token": token}, allow_redirects=False, timeout=60
    )
    assert answer.status_code == 303
    # the stream ends at once (no heartbeat to wait for): the iterator runs out
    rest = list(lines)
    assert all(not line.startswith("event:") for line in rest[1:]), rest
    # the old cookie opens nothing
    old = requests.Session()
    old.cookies.set("syncd_session", cookie)
    assert old.get(daemon.url + "/", allow_redirects=False).status_code == 303
    assert old.get(daemon.url + "/api/v1/events", timeout=60).status_code == 401


def test_sessions_survive_a_restart_and_end_when_the_token_changes(
    tmp_path: Path,
) -> None:
    started = Daemon(tmp_path)
    with contextlib.closing(started.process):
        started.start()
        browser = started.sign_in()
        cookie = browser.cookies.get("syncd_session")
        assert cookie
        started.process.stop()
        kept = (started.state / "console-sessions.json").read_text()
        assert cookie not in kept, "the file keeps hashes, never the cookie"
        mode = stat.S_IMODE(os.stat(started.state / "console-sessions.json").st_mode)
        assert mode == 0o600
    again = DaemonProcess(started.config, started.state, started.listen, env=ENV, notify=False)
    with again:
        again.wait_ready()
        assert browser.get(started.url + "/", allow_redirects=False).status_code == 200
        # a new API token signs every console out
        toml = started.config / "syncd.toml"
        toml.write_text(toml.read_text().replace(TOKEN, "another-token-0b9c8d7e"))
        reloaded = requests.post(
            started.url + "/api/v1/reload",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert reloaded.status_code == 200
        assert browser.get(started.url + "/", allow_redirects=False).status_code == 303


def test_the_plugins_page_shows_versions_connectors_and_a_broken_plugin(daemon: Daemon) -> None:
    page = daemon.sign_in().get(daemon.url + "/plugins", timeout=60).text
    assert "Plugins that failed to load" in page
    assert "syncd_plugin_that_is_not_there" in page
    assert "failed to import: No module named &#39;syncd_plugin_that_is_not_there&#39;" in page
    row = re.search(r"<th scope=\"row\">xero</th>(.*?)</tr>", page, re.S)
    assert row and "syncd-xero" in row.group(1) and "0.1.0" in row.group(1)


# --- the event stream ---------------------------------------------------------------------------


def read_events(
    answer: requests.Response, until: Any, limit: int = 500
) -> Iterator[tuple[str, str, Any]]:
    """(id, event, data) of each event, until ``until(event, data)`` is true."""
    current: dict[str, str] = {}
    for line in answer.iter_lines(decode_unicode=True):
        if line == "":
            if "event" in current:
                data = json.loads(current.get("data", "null"))
                yield current.get("id", ""), current["event"], data
                if until(current["event"], data):
                    return
                limit -= 1
                assert limit > 0, "too many events"
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = value


def test_the_event_stream_tells_a_script_a_run_from_start_to_end(daemon: Daemon) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    stream = requests.get(daemon.url + "/api/v1/events", headers=auth, stream=True, timeout=60)
    assert stream.status_code == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    events = read_events(stream, lambda kind, data: kind == "hello")
    _, kind, hello = next(events)
    assert kind == "hello" and hello["syncs"][0]["sync"] == "alpha"
    run = daemon.api("POST", "/api/v1/syncs/alpha/trigger")["run_id"]
    seen = list(
        read_events(
            stream, lambda kind, data: kind == "sync.state" and data["previous"] == "running"
        )
    )
    kinds = [kind for _, kind, _ in seen]
    assert kinds[0] == "sync.state" and seen[0][2]["state"] == "running"
    assert kinds.index("run.started") < kinds.index("run.progress") < kinds.index("run.finished")
    started = next(data for _, kind, data in seen if kind == "run.started")
    assert started["run_id"] == run and started["trigger"] == "api"
    progress = [data for _, kind, data in seen if kind == "run.progress"][-1]
    assert set(progress) == {"sync", "run_id", "listed", "planned", "written", "total"}
    assert progress["listed"] == 4  # two records on each side
    finished = next(data for _, kind, data in seen if kind == "run.finished")
    assert finished["outcome"] == "success" and finished["counts"]["read_a"] == 2
    stream.close()
    # reconnecting with Last-Event-ID replays what came after it
    first_id = seen[0][0]
    again = requests.get(
        daemon.url + "/api/v1/events",
        headers={**auth, "Last-Event-ID": first_id},
        stream=True,
        timeout=60,
    )
    replayed = read_events(again, lambda kind, data: kind == "run.finished")
    got = [kind for _, kind, _ in replayed]
    assert got[0] == "hello" and got[1:] == kinds[1 : kinds.index("run.finished") + 1]
    again.close()
    bad = requests.get(daemon.url + "/api/v1/events?since=1", headers=auth, stream=True, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"


# --- behind a reverse proxy ---------------------------------------------------------------------


def test_base_path_prefixes_every_link_and_a_trusted_proxy_makes_the_cookie_secure(
    proxied: Daemon,
) -> None:
    answer = requests.get(proxied.url + "/", allow_redirects=False, timeout=60)
    assert answer.headers["Location"] == "/syncd/signin"
    browser = proxied.sign_in()
    cookie = next(c for c in browser.cookies if c.name == "syncd_session")
    assert not cookie.secure and cookie.path == "/syncd"
    # the proxy says the browser came over https: the cookie is Secure
    over_https = proxied.sign_in({"X-Test-Proto": "https"}, keep_secure=True)
    assert next(c for c in over_https.cookies if c.name == "syncd_session").secure
    page = browser.get(proxied.url + "/", timeout=60)
    links = re.findall(r'(?:href|action|src)="([^"#]+)"', page.text)
    assert links
    for link in links:
        if link.startswith("data:"):
            continue
        assert link.startswith("/syncd/"), link
    assert 'data-base-path="/syncd"' in page.text


# --- syncd console ------------------------------------------------------------------------------


def syncd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_syncd_console_prints_a_link_good_for_one_sign_in(daemon: Daemon) -> None:
    done = syncd(daemon.config, "console", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["url"] == daemon.url + data["path"]
    assert data["expires_in_seconds"] == 120
    browser = requests.Session()
    first = browser.get(data["url"], allow_redirects=False, timeout=60)
    assert first.status_code == 303 and first.headers["Location"] == "/"
    assert browser.get(daemon.url + "/", allow_redirects=False).status_code == 200
    second = requests.get(data["url"], allow_redirects=False, timeout=60)
    assert second.status_code == 403
    human = syncd(daemon.config, "console", "--base-url", "https://home.example/syncd/")
    assert human.returncode == 0
    assert re.search(r"https://home\.example/syncd/signin\?code=\S+", human.stdout)
    assert data["code"] not in daemon.process.log_text()


def test_syncd_console_without_a_daemon_says_so(tmp_path: Path) -> None:
    write_daemon_config(tmp_path / "config", f"127.0.0.1:{free_port()}", tmp_path / "state")
    done = syncd(tmp_path / "config", "console")
    assert done.returncode == 3
    assert "is 'syncd run' running?" in done.stderr
    assert done.stderr.count("\n") == 1
    bad = syncd(tmp_path / "config", "console", "--base-url", "home.example")
    assert bad.returncode == 2
    assert "--base-url must start with http:// or https://" in bad.stderr

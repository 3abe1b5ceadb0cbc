"""Real CardDAV servers as subprocesses on 127.0.0.1, for the sandbox, tests and benchmarks.

:class:`Radicale` (htpasswd auth, a storage folder of its own) and :class:`Xandikos` (no auth
of its own, as it expects a proxy in front) are started on a free port and awaited until they
print that they listen: a state, never a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from syncd_carddav.dav import basic_auth

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, deadline: float) -> None:
    """Until 127.0.0.1:``port`` accepts a connection (some servers say they listen a moment
    before they do)."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


async def await_port(port: int, deadline: float) -> None:
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return


class ServerMissing(RuntimeError):
    """The server's package is not installed."""


@dataclass
class DavServer:
    """A server process; ``url`` is its root, ``user``/``password`` an account on it."""

    folder: Path
    user: str = "ann"
    password: str = "ann-secret-pass"
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    log: list[str] = field(default_factory=list)
    kind: str = "dav"
    #: serve HTTPS with this certificate chain and key (PEM files), where the server can
    tls: tuple[Path, Path] | None = None
    #: what the helpers below trust when ``tls`` is set (the CA that signed the certificate)
    client_ssl: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def home(self) -> str:
        """The user's address book home (where address books are made)."""
        return f"{self.url}/{self.user}/"

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> DavServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.process = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            await asyncio.wait_for(self._listening(), STARTUP_TIMEOUT)
            await await_port(self.port, time.monotonic() + STARTUP_TIMEOUT)
        except BaseException:
            await self.stop()
            raise
        self._drain = asyncio.ensure_future(self._keep_reading())
        return self

    async def _listening(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.kind} exited before listening:\n" + "".join(self.log))
            text = line.decode("utf-8", "replace")
            self.log.append(text)
            if "Listening on" in text:
                return

    async def _keep_reading(self) -> None:
        # a full pipe would stall the server: keep its output (the last lines, for failures)
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        while line := await stdout.readline():
            self.log.append(line.decode("utf-8", "replace"))
            del self.log[:-200]

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        self.process = None
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain

    async def __aenter__(self) -> DavServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- making address books and cards over HTTP (as a phone or a web UI would) ------------

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers={"Authorization": basic_auth(self.user, self.password)},
            connector=aiohttp.TCPConnector(ssl=self.client_ssl or True),
        )

    async def make_addressbook(self, name: str, display: str | None = None) -> str:
        """Create an address book under the user's home (extended MKCOL); returns its URL."""
        url = f"{self.addressbook_home()}{name}/"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<d:mkcol xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav"><d:set><d:prop>'
            "<d:resourcetype><d:collection/><c:addressbook/></d:resourcetype>"
            f"<d:displayname>{display or name}</d:displayname>"
            "</d:prop></d:set></d:mkcol>"
        )
        async with (
            self.session() as session,
            session.request(
                "MKCOL", url, data=body, headers={"Content-Type": "application/xml"}
            ) as response,
        ):
            if response.status not in (200, 201):
                raise RuntimeError(f"MKCOL {url}: HTTP {response.status} {await response.text()}")
        return url

    def addressbook_home(self) -> str:
        return self.home

    async def put_card(self, book_url: str, name: str, body: str, etag: str | None = None) -> str:
        headers = {"Content-Type": "text/vcard; charset=utf-8"}
        if etag:
            headers["If-Match"] = etag
        async with (
            self.session() as session,
            session.put(book_url + name, data=body.encode(), headers=headers) as response,
        ):
            if response.status not in (200, 201, 204):
                raise RuntimeError(f"PUT {name}: HTTP {response.status} {await response.text()}")
            return response.headers.get("ETag", "")

    async def get_card(self, book_url: str, name: str) -> tuple[int, str, str]:
        async with self.session() as session, session.get(book_url + name) as response:
            return response.status, await response.text(), response.headers.get("ETag", "")

    async def delete_card(self, book_url: str, name: str) -> None:
        async with self.session() as session, session.delete(book_url + name) as response:
            if response.status not in (200, 204):
                raise RuntimeError(f"DELETE {name}: HTTP {response.status}")

    async def card_names(self, book_url: str) -> list[str]:
        body = (
            '<?xml version="1.0"?><d:propfind xmlns:d="DAV:">'
            "<d:prop><d:getetag/></d:prop></d:propfind>"
        )
        async with (
            self.session() as session,
            session.request(
                "PROPFIND",
                book_url,
                data=body,
                headers={"Depth": "1", "Content-Type": "application/xml"},
            ) as response,
        ):
            text = await response.text()
        import xml.etree.ElementTree as ET
        from urllib.parse import unquote

        names = []
        for href in ET.fromstring(text).iter("{DAV:}href"):
            path = unquote(href.text or "")
            if not path.endswith("/"):
                names.append(path.rsplit("/", 1)[-1])
        return sorted(names)


@dataclass
class Radicale(DavServer):
    kind: str = "radicale"

    def command(self) -> list[str]:
        try:
            import radicale  # noqa: F401
        except ImportError:
            raise ServerMissing(
                "Radicale is not installed: pip install 'syncd-carddav[sandbox]'"
            ) from None
        users = self.folder / "users"
        users.write_text(f"{self.user}:{self.password}\n")
        tls: list[str] = []
        if self.tls is not None:
            certificate, key = self.tls
            tls = ["--server-ssl", "--server-certificate", str(certificate)]
            tls += ["--server-key", str(key)]
        return [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            "",
            "--server-hosts",
            f"127.0.0.1:{self.port}",
            "--storage-filesystem-folder",
            str(self.folder / "collections"),
            "--auth-type",
            "htpasswd",
            "--auth-htpasswd-filename",
            str(users),
            "--auth-htpasswd-encryption",
            "plain",
            "--auth-delay",
            "0",
            "--logging-level",
            "info",
            "--logging-mask-passwords",
            "True",
            *tls,
        ]

    def storage_of(self, book_url: str) -> Path:
        """The folder Radicale keeps an address book in (seeding writes .vcf files there)."""
        path = book_url.split("://", 1)[1].split("/", 1)[1].strip("/")
        return self.folder / "collections" / "collection-root" / path


@dataclass
class Xandikos(DavServer):
    """Xandikos keeps its address books in git repositories; ``--defaults`` makes one at
    ``/<user>/contacts/addressbook/``. It does no authentication itself."""

    kind: str = "xandikos"

    def command(self) -> list[str]:
        exe = Path(sys.executable).with_name("xandikos")
        return [
            str(exe),
            "serve",
            "--defaults",
            "-d",
            str(self.folder / "store"),
            "-l",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--current-user-principal",
            f"/{self.user}/",
        ]

    def addressbook_home(self) -> str:
        return f"{self.url}/{self.user}/contacts/"


def sample_card(uid: str | None = None, **fields: str) -> str:
    """A small vCard 3.0 for tests and seeding."""
    uid = uid or str(uuid.uuid4())
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}"]
    given, family = fields.get("given", ""), fields.get("family", "")
    lines.append(f"FN:{fields.get('fn') or (given + ' ' + family).strip() or 'Someone'}")
    lines.append(f"N:{family};{given};;;")
    if fields.get("email"):
        lines.append(f"EMAIL;TYPE=INTERNET:{fields['email']}")
    if fields.get("org"):
        lines.append(f"ORG:{fields['org']}")
    if fields.get("tel"):
        lines.append(f"TEL;TYPE=WORK,VOICE:{fields['tel']}")
    if fields.get("cell"):
        lines.append(f"TEL;TYPE=CELL:{fields['cell']}")
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


class Running:
    """A server started without an event loop (a test session's, a benchmark's): the same
    command, awaited the same way (until it prints that it listens)."""

    def __init__(self, server: DavServer) -> None:
        self.server = server
        self.popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DavServer:
        server = self.server
        server.folder.mkdir(parents=True, exist_ok=True)
        server.port = server.port or free_port()
        self.popen = subprocess.Popen(
            server.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stdout = self.popen.stdout
        assert stdout is not None
        for line in iter(stdout.readline, b""):
            server.log.append(line.decode("utf-8", "replace"))
            if b"Listening on" in line:
                break
        else:
            self.popen.wait()
            raise RuntimeError(f"{server.kind} exited before listening:\n" + "".join(server.log))
        wait_for_port(server.port, time.monotonic() + STARTUP_TIMEOUT)

        def drain() -> None:
            for line in iter(stdout.readline, b""):
                server.log.append(line.decode("utf-8", "replace"))
                del server.log[:-5000]

        threading.Thread(target=drain, daemon=True).start()
        return server

    def __exit__(self, *exc: object) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

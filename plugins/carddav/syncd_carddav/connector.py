"""The ``carddav`` connector: one CardDAV address book, card by card, field by field."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit

import aiohttp

from syncd.connector import (
    Capabilities,
    Connector,
    ConnectorConfigError,
    ConnectorContext,
    FieldSpec,
    HttpClient,
    HttpResponse,
    RateBudget,
    RecordWrite,
    RemoteRecord,
    RetryLater,
    Setting,
    SettingContext,
    WriteResult,
    http_url,
    shared_budget,
)
from syncd_carddav import vcard
from syncd_carddav.dav import (
    CARD,
    DAV,
    Dav,
    DavError,
    InvalidSyncToken,
    Member,
    SyncUnsupported,
    basic_auth,
)
from syncd_carddav.dav import classify as dav_classify
from syncd_carddav.discovery import AddressBook, choose, discover
from syncd_carddav.mirror import Entry, Mirror

log = logging.getLogger("syncd.carddav")

#: cards fetched per ``addressbook-multiget`` REPORT
MULTIGET_CHUNK = 100
#: cards per create/update batch handed to the connector (sent ``concurrency`` at a time)
BATCH = 50
#: records per page yielded to the engine
PAGE = 1000

T = TypeVar("T")


def _ca_bundle(value: object, context: SettingContext) -> str | None:
    if value is None or value == "":
        return None
    path = context.path(value)
    if not path.is_file():
        return f"{path} is not a file (a PEM bundle of CA certificates)"
    return None


class CardDavConnector(Connector):
    name = "carddav"
    title = "CardDAV address book"
    settings = (
        Setting(
            "url",
            "the server (https://cloud.example.com/remote.php/dav) or an address book's URL",
            required=True,
            public=True,
            validator=http_url,
        ),
        Setting("username", "the account's user name", public=True),
        Setting("password", "the account's password (an app password where offered)", secret=True),
        Setting(
            "addressbook",
            "which address book, by display name or path, when url is a server",
            public=True,
        ),
        Setting("verify_tls", "check the server's TLS certificate", type=bool, default=True),
        Setting(
            "ca_bundle",
            "a PEM file of CA certificates to trust (a self-signed home server)",
            public=True,
            validator=_ca_bundle,
        ),
        Setting(
            "concurrency",
            "requests in flight at once",
            type=int,
            default=4,
            minimum=1,
            maximum=32,
        ),
    )
    capabilities = Capabilities(
        read=True,
        write=True,
        # listed incrementally from the sync-token (RFC 6578), the engine's cursor through
        # Connector.listing_cursor; bodies and fields of unchanged cards stay in the mirror
        incremental=True,
        lookup_by_email=False,
        archive="delete",
        create_batch_size=BATCH,
        update_batch_size=BATCH,
        # a create's file name and UID come from its key: sent again, it finds its card
        idempotency_keys=True,
        custom_fields=True,
    )
    fields = tuple(FieldSpec(name, canonical) for name, canonical in vcard.FIELDS)
    #: cards per addressbook-multiget REPORT
    multiget_chunk = MULTIGET_CHUNK

    def __init__(self, settings: Any, context: ConnectorContext) -> None:
        super().__init__(settings, context)
        self.http: HttpClient | None = None
        self.dav: Dav | None = None
        self.book: AddressBook | None = None
        self.mirror: Mirror | None = None
        self.books: list[AddressBook] = []
        self.stats = {"fetched": 0, "sync_reports": 0, "full_listings": 0}
        #: the sync-token the last listing ended at (the engine's next cursor)
        self._listed_token: str | None = None

    # --- session ------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | bool:
        """What the connection trusts: the system's CAs, those of ``ca_bundle``, or nothing
        at all with ``verify_tls = false`` (which wins over ``ca_bundle``, and is warned of)."""
        if not self.config.get("verify_tls", True):
            return False
        bundle = self.config.get("ca_bundle")
        if bundle:
            path = Path(str(bundle)).expanduser()
            if not path.is_absolute() and self.context.config_dir is not None:
                path = self.context.config_dir / path
            try:
                return ssl.create_default_context(cafile=str(path))
            except (OSError, ssl.SSLError) as exc:
                raise ConnectorConfigError(f"cannot read {path}: {exc}", key="ca_bundle") from None
        return True

    def _unchecked_tls(self, url: str) -> bool:
        return url.startswith("https://") and not self.config.get("verify_tls", True)

    async def open(self) -> None:
        url = str(self.config["url"]).strip()
        if not url.endswith("/"):
            url += "/"
        concurrency = int(self.config.get("concurrency") or 4)
        user = self.config.get("username")
        budget = shared_budget(
            f"carddav:{urlsplit(url).netloc}:{user or ''}",
            lambda: RateBudget(calls=1_000_000, period=1, concurrency=concurrency),
        )
        headers = {"User-Agent": "syncd-carddav/0.1"}
        if user is not None:
            headers["Authorization"] = basic_auth(str(user), str(self.config.get("password") or ""))
        if self._unchecked_tls(url):
            log.warning(
                "carddav %s: verify_tls = false: the server's TLS certificate is not checked "
                "(anyone on the way can read the password); set ca_bundle instead",
                urlsplit(url).netloc,
            )
        self.http = DavHttp(
            base_url=url,
            budget=budget,
            headers=headers,
            classify=dav_classify,
            ssl=self._ssl(),
            pool=concurrency,
        )
        self.dav = Dav(self.http)

    async def close(self) -> None:
        if self.mirror is not None and self.mirror.dirty and not self.context.dry_run:
            await asyncio.to_thread(self.mirror.save)
        if self.http is not None:
            await self.http.close()

    async def _address_book(self) -> AddressBook:
        if self.book is not None:
            return self.book
        assert self.dav is not None
        url = self.dav.http.base_url
        try:
            self.books = await discover(self.dav, url)
        except DavError as exc:
            raise ConnectorConfigError(f"{url}: {exc}", key="url") from None
        except aiohttp.InvalidURL:
            raise ConnectorConfigError(f"{url} is not a URL", key="url") from None
        self.book = choose(self.books, self.config.get("addressbook"), url)
        if not self.book.url.endswith("/"):
            self.book = AddressBook(self.book.url + "/", self.book.name)
        return self.book

    def _mirror(self, book: AddressBook) -> Mirror:
        if self.mirror is None:
            path = None
            if self.context.state_dir:
                name = f"{self.context.sync}-{self.context.side}.sqlite"
                path = Path(self.context.state_dir) / "carddav" / name
            self.mirror = Mirror(path, book.url)
            self.mirror.load()
        return self.mirror

    async def check(self) -> str:
        book = await self._address_book()
        assert self.dav is not None
        _, status = await self.dav.propfind(book.url, "0", (DAV, "sync-token"), (DAV, "getctag"))
        sync = any(m.has(DAV, "sync-token") for m in status.members)
        others = len(self.books) - 1
        more = f" (of {len(self.books)} found)" if others > 0 else ""
        how = "WebDAV sync" if sync else "ETag comparison (no sync-token)"
        if self._unchecked_tls(book.url):
            how += "; WARNING: TLS certificate not checked (verify_tls = false)"
        return f"address book {book.describe()}{more} at {urlsplit(book.url).netloc}, {how}"

    # --- reading ------------------------------------------------------------------------

    def _card_id(self, href: str) -> str:
        return unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])

    def _card_url(self, book: AddressBook, cid: str) -> str:
        name = quote(cid)
        if "/" in name or name in (".", ".."):
            return urljoin(book.url, name)
        # what urljoin gives here (book.url ends in /), at a tenth of its cost
        return book.url + name

    def listing_cursor(self) -> str | None:
        return self._listed_token

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        """All cards (``cursor`` None), else those changed since the sync-token ``cursor``
        (removed ones as archived); a refused token falls back to every card."""
        book = await self._address_book()
        mirror = self._mirror(book)
        self._listed_token = None
        records: list[RemoteRecord] | None = None
        if cursor is not None and not mirror.sync_unsupported:
            records = await self._since(book, mirror, cursor)
        if records is None:
            await self._refresh(book, mirror)
            records = [_record(cid, entry) for cid, entry in mirror.entries.items()]
        if not mirror.sync_unsupported:
            self._listed_token = mirror.token
        if not self.context.dry_run:
            await asyncio.to_thread(mirror.save)
        for start in range(0, len(records), PAGE):
            yield records[start : start + PAGE]

    async def _since(
        self, book: AddressBook, mirror: Mirror, cursor: str
    ) -> list[RemoteRecord] | None:
        """The cards changed since ``cursor`` (fetched when the mirror's copy is older), or
        None when the server refuses the token or has no WebDAV sync."""
        try:
            changed, removed = await self._changes_since(book, mirror, cursor)
        except InvalidSyncToken as exc:
            log.info("sync-token refused (%s): listing %s in full", exc, book.path)
            mirror.set_token(None)
            return None
        except SyncUnsupported as exc:
            log.info("no sync-collection (%s): comparing ETags of %s", exc, book.path)
            mirror.set_sync_unsupported(True)
            mirror.set_token(None)
            return None
        stale = [
            cid
            for cid, etag in changed.items()
            if etag is None or cid not in mirror.entries or mirror.entries[cid].etag != etag
        ]
        await self._fetch(book, mirror, stale)
        records = [_record(cid, mirror.entries[cid]) for cid in changed if cid in mirror.entries]
        gone = removed | {cid for cid in changed if cid not in mirror.entries}
        records.extend(RemoteRecord(cid, {}, archived=True) for cid in sorted(gone))
        return records

    async def _refresh(self, book: AddressBook, mirror: Mirror) -> None:
        """Bring the mirror up to date: what changed since the token, else every ETag."""
        assert self.dav is not None
        changed: dict[str, str | None] | None = None
        if mirror.token and not mirror.sync_unsupported:
            try:
                changed, _ = await self._changes_since(book, mirror, mirror.token)
            except InvalidSyncToken as exc:
                log.info("sync-token refused (%s): listing %s in full", exc, book.path)
                mirror.set_token(None)
            except SyncUnsupported as exc:
                log.info("no sync-collection (%s): comparing ETags of %s", exc, book.path)
                mirror.set_sync_unsupported(True)
                mirror.set_token(None)
        if changed is None:
            changed = await self._full_listing(book, mirror)
        stale = [
            cid
            for cid, etag in changed.items()
            if etag is None or cid not in mirror.entries or mirror.entries[cid].etag != etag
        ]
        await self._fetch(book, mirror, stale)

    async def _changes_since(
        self, book: AddressBook, mirror: Mirror, token: str
    ) -> tuple[dict[str, str | None], set[str]]:
        """``sync-collection`` from ``token``: changed cards and their ETags, and the removed
        ones (which leave the mirror at once)."""
        assert self.dav is not None
        changed: dict[str, str | None] = {}
        removed: set[str] = set()
        for _ in range(1000):  # a truncated answer is continued from its token
            self.stats["sync_reports"] += 1
            answer = await self.dav.sync_collection(book.url, token)
            for member in answer.members:
                if _same(member.href, book.url):
                    continue
                cid = self._card_id(member.href)
                if member.status == 404:
                    mirror.remove(cid)
                    changed.pop(cid, None)
                    removed.add(cid)
                elif _is_card(member.href):
                    changed[cid] = _etag(member)
                    removed.discard(cid)
            token = answer.sync_token or token
            if not answer.truncated:
                break
        mirror.set_token(token)
        return changed, removed

    async def _full_listing(self, book: AddressBook, mirror: Mirror) -> dict[str, str | None]:
        """PROPFIND depth 1: every member's ETag, and the collection's sync-token."""
        assert self.dav is not None
        self.stats["full_listings"] += 1
        props = [(DAV, "getetag"), (DAV, "resourcetype")]
        if not mirror.sync_unsupported:
            props.append((DAV, "sync-token"))
        response, status = await self.dav.propfind(book.url, "1", *props)
        if response.status == 404:
            raise ConnectorConfigError(f"the address book {book.path} is gone", key="url")
        if response.status != 207:
            raise DavError(f"PROPFIND {book.path}: the server answered HTTP {response.status}")
        etags: dict[str, str | None] = {}
        token: str | None = None
        for member in status.members:
            if _same(member.href, book.url):
                token = member.text(DAV, "sync-token")
                continue
            if _is_collection(member) or not _is_card(member.href):
                continue
            etags[self._card_id(member.href)] = _etag(member)
        for cid in [c for c in mirror.entries if c not in etags]:
            mirror.remove(cid)
        if token is None:
            mirror.set_sync_unsupported(True)
        mirror.set_token(token)
        return etags

    async def _fetch(self, book: AddressBook, mirror: Mirror, ids: list[str]) -> None:
        """The bodies of ``ids`` through ``addressbook-multiget``, chunk by chunk."""
        assert self.dav is not None
        dav = self.dav
        size = self.multiget_chunk
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)]

        book_path = urlsplit(book.url).path

        def path_of(cid: str) -> str:
            url = self._card_url(book, cid)
            if url.startswith(book.url):  # the book's URL and a name: its path and the name
                return unquote(book_path + url[len(book.url) :])
            return unquote(urlsplit(url).path)

        async def one(chunk: list[str]) -> None:
            members = await dav.multiget(book.url, [path_of(cid) for cid in chunk])
            seen: set[str] = set()
            parsed = await asyncio.to_thread(_parse_members, members, self._card_id)
            for cid, entry in parsed:
                seen.add(cid)
                if entry is None:
                    mirror.remove(cid)
                else:
                    mirror.put(cid, entry)
            for cid in chunk:
                if cid not in seen:
                    mirror.remove(cid)  # gone between the listing and the REPORT
            self.stats["fetched"] += len(chunk)

        await _bounded(int(self.config.get("concurrency") or 4), [one(c) for c in chunks])

    # --- writing ------------------------------------------------------------------------

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        book = await self._address_book()
        mirror = self._mirror(book)
        results = await _bounded(
            int(self.config.get("concurrency") or 4),
            [self._create_one(book, mirror, write) for write in writes],
        )
        await asyncio.to_thread(mirror.save)
        return results

    async def _create_one(
        self, book: AddressBook, mirror: Mirror, write: RecordWrite
    ) -> WriteResult:
        assert self.dav is not None
        uid = vcard.uid_for(write.key)
        cid = f"{uid}.vcf"
        # the mirror's entry is made from the card as built, not by parsing it again
        body, parsed = vcard.built(uid, write.data)
        url = self._card_url(book, cid)
        response = await self.dav.put(url, body.encode(), etag=None)
        if response.status == 412:
            # a create sent before (a retry, or a run killed after sending it): the card is
            # ours when it carries the UID made from this write's key
            existing = await self.dav.get(url)
            if existing.status == 200:
                try:
                    found = vcard.parse(existing.text)
                except vcard.VCardError as exc:
                    return WriteResult(write.key, error=f"{cid} exists and is unreadable: {exc}")
                if found.uid == uid:
                    etag = _header(existing, "etag")
                    mirror.put(cid, Entry(url, etag, existing.text, found.data, found.picks))
                    stored = _stored(write, found, created=True)
                    return WriteResult(write.key, cid, version=etag, stored=stored)
            return WriteResult(write.key, error=f"{cid} already exists on the server (HTTP 412)")
        if response.status not in (200, 201, 204):
            return WriteResult(write.key, error=_refusal("PUT", response))
        etag = _header(response, "etag")
        mirror.put(cid, Entry(url, etag, body, parsed.data, parsed.picks))
        return WriteResult(write.key, cid, version=etag, stored=_stored(write, parsed, True))

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        book = await self._address_book()
        mirror = self._mirror(book)
        results = await _bounded(
            int(self.config.get("concurrency") or 4),
            [self._update_one(book, mirror, write) for write in writes],
        )
        await asyncio.to_thread(mirror.save)
        return results

    async def _update_one(
        self, book: AddressBook, mirror: Mirror, write: RecordWrite
    ) -> WriteResult:
        assert self.dav is not None and write.id is not None
        cid = write.id
        entry = mirror.entries.get(cid)
        url = self._card_url(book, cid)
        if entry is None or entry.body is None or entry.etag is None:
            current = await self.dav.get(url)
            if current.status == 404:
                return WriteResult(write.key, cid, error=f"{cid} is no longer on the server")
            if current.status != 200:
                return WriteResult(write.key, cid, error=_refusal("GET", current))
            try:
                found = vcard.parse(current.text)
            except vcard.VCardError as exc:
                return WriteResult(write.key, cid, error=f"{cid} is not a readable vCard: {exc}")
            entry = Entry(url, _header(current, "etag"), current.text, found.data, found.picks)
        if entry.data is None:
            return WriteResult(write.key, cid, error=f"{cid} is not a readable vCard")
        body = vcard.edit(entry.body or "", entry.picks, write.data)
        parsed = vcard.parse(body)
        if body == entry.body:
            return WriteResult(write.key, cid, version=entry.etag, stored=_stored(write, parsed))
        response = await self.dav.put(url, body.encode(), etag=entry.etag)
        if response.status == 412:
            # edited on the server (a phone) since it was read: never overwritten blindly.
            # The next run fetches the new version and merges the edit with this one.
            mirror.forget_etag(cid)
            return WriteResult(
                write.key,
                cid,
                error="changed on the server since it was read (HTTP 412 Precondition "
                "Failed); it is read again and merged on the next run",
            )
        if response.status == 404:
            mirror.remove(cid)
            return WriteResult(write.key, cid, error=f"{cid} is no longer on the server")
        if response.status not in (200, 201, 204):
            return WriteResult(write.key, cid, error=_refusal("PUT", response))
        etag = _header(response, "etag")
        mirror.put(cid, Entry(url, etag, body, parsed.data, parsed.picks))
        return WriteResult(write.key, cid, version=etag, stored=_stored(write, parsed))

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        book = await self._address_book()
        mirror = self._mirror(book)
        results = await _bounded(
            int(self.config.get("concurrency") or 4),
            [self._delete_one(book, mirror, cid) for cid in ids],
        )
        await asyncio.to_thread(mirror.save)
        return results

    async def _delete_one(self, book: AddressBook, mirror: Mirror, cid: str) -> WriteResult:
        assert self.dav is not None
        entry = mirror.entries.get(cid)
        response = await self.dav.delete(
            self._card_url(book, cid), etag=entry.etag if entry else None
        )
        if response.status == 412:
            mirror.forget_etag(cid)
            return WriteResult(
                cid, cid, error="changed on the server since it was read (HTTP 412); not deleted"
            )
        if response.status in (200, 204, 404):
            mirror.remove(cid)
            return WriteResult(cid, cid)
        return WriteResult(cid, cid, error=_refusal("DELETE", response))


class DavHttp(HttpClient):
    """syncd's HTTP client with what a self-hosted server needs: its own TLS trust
    and a connection pool of the configured size (connections are kept alive and reused)."""

    def __init__(
        self,
        *,
        ssl: ssl.SSLContext | bool,
        pool: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ssl = ssl
        self._pool = pool

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                headers=dict(self.headers),
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._pool),
            )
        return self._session

    async def _exchange(
        self,
        method: str,
        url: str,
        params: Any,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> HttpResponse:
        try:
            return await super()._exchange(method, url, params, data, headers)
        except aiohttp.ClientConnectorCertificateError as exc:
            # not worth a retry: the same certificate comes back
            reason = getattr(exc.certificate_error, "verify_message", None) or str(
                exc.certificate_error
            )
            raise ConnectorConfigError(
                f"{urlsplit(url).netloc}: the server's TLS certificate is not trusted "
                f"({reason}); set ca_bundle to a PEM file of the CA that signed it "
                "(or verify_tls = false, which checks nothing)",
                key="ca_bundle",
            ) from None


# --- helpers ------------------------------------------------------------------------------


def _record(cid: str, entry: Entry) -> RemoteRecord:
    if entry.data is None:
        return RemoteRecord(
            cid, {}, error=entry.error or "not a readable vCard", version=entry.etag
        )
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.data.items()}
    return RemoteRecord(cid, data, version=entry.etag)


def _parse_members(
    members: list[Member], card_id: Callable[[str], str]
) -> list[tuple[str, Entry | None]]:
    out: list[tuple[str, Entry | None]] = []
    for member in members:
        cid = card_id(member.href)
        if member.status == 404:
            out.append((cid, None))
            continue
        element = member.props.get(f"{{{CARD}}}address-data")
        body = element.text if element is not None else None
        etag = _etag(member)
        if not body:
            out.append((cid, Entry(member.href, etag, None, None, {}, "the server sent no body")))
            continue
        try:
            parsed = vcard.parse(body)
        except vcard.VCardError as exc:
            out.append((cid, Entry(member.href, etag, body, None, {}, f"bad vCard: {exc}")))
            continue
        out.append((cid, Entry(member.href, etag, body, parsed.data, parsed.picks)))
    return out


def _stored(
    write: RecordWrite, parsed: vcard.Parsed, created: bool = False
) -> dict[str, vcard.RawValue] | None:
    """What the server holds where it is not what was sent (a derived FN, trimmed text)."""
    stored: dict[str, vcard.RawValue] = {}
    for key, sent in write.data.items():
        held = parsed.data.get(key)
        if isinstance(sent, tuple | list | frozenset):
            if set(sent) != set(held or ()):
                stored[key] = held
        elif (sent or None) != held:
            stored[key] = held
    if created and "fn" not in write.data and parsed.data.get("fn"):
        stored["fn"] = parsed.data["fn"]
    return stored or None


def _header(response: HttpResponse, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name:
            return value
    return None


def _etag(member: Member) -> str | None:
    return member.text(DAV, "getetag")


def _is_collection(member: Member) -> bool:
    element = member.props.get(f"{{{DAV}}}resourcetype")
    return element is not None and element.find(f"{{{DAV}}}collection") is not None


def _is_card(href: str) -> bool:
    return not href.endswith("/")


def _same(href: str, url: str) -> bool:
    return urlsplit(href).path.rstrip("/") == urlsplit(url).path.rstrip("/")


def _refusal(method: str, response: HttpResponse) -> str:
    text = " ".join(response.text.split())[:200]
    return f"{method} answered HTTP {response.status}" + (f": {text}" if text else "")


async def _bounded(limit: int, tasks: Sequence[Awaitable[T]]) -> list[T]:
    """Await ``tasks`` at most ``limit`` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(task: Awaitable[T]) -> T:
        async with gate:
            return await task

    return list(await asyncio.gather(*(run(t) for t in tasks)))


__all__ = ["CardDavConnector", "RetryLater"]

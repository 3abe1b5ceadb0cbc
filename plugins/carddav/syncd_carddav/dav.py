"""WebDAV/CardDAV over syncd's shared HTTP client: PROPFIND, REPORTs, PUT and DELETE.

Only what the connector needs: RFC 4918 (PROPFIND, multistatus), RFC 6352 (CardDAV discovery,
``addressbook-multiget``), RFC 6578 (``sync-collection``) and RFC 6764 (``/.well-known``).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit

from syncd.connector import ConnectorError, HttpClient, HttpResponse, RetryLater

DAV = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
NS = {"d": DAV, "c": CARD, "cs": CS}
XML_HEADERS = {"Content-Type": 'application/xml; charset="utf-8"'}


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class DavError(ConnectorError):
    """The server answered something the connector cannot use."""


@dataclass(slots=True)
class Member:
    """One response of a multistatus: its href, status and the properties found."""

    href: str
    status: int
    props: dict[str, ET.Element] = field(default_factory=dict)

    def text(self, ns: str, name: str) -> str | None:
        element = self.props.get(_tag(ns, name))
        if element is None:
            return None
        return (element.text or "").strip() or None

    def has(self, ns: str, name: str) -> bool:
        return _tag(ns, name) in self.props

    def hrefs(self, ns: str, name: str) -> list[str]:
        element = self.props.get(_tag(ns, name))
        if element is None:
            return []
        return [(h.text or "").strip() for h in element.iter(_tag(DAV, "href")) if h.text]


@dataclass(slots=True)
class Multistatus:
    members: list[Member]
    sync_token: str | None = None
    #: the server cut the answer short (RFC 6578 3.6: a 507 on the request URI)
    truncated: bool = False


def _status_code(text: str | None) -> int:
    # "HTTP/1.1 200 OK"
    parts = (text or "").split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return 0


_RESPONSE, _HREF, _STATUS, _PROPSTAT, _PROP, _SYNC_TOKEN = (
    f"{{{DAV}}}{name}" for name in ("response", "href", "status", "propstat", "prop", "sync-token")
)


def parse_multistatus(body: bytes, request_path: str = "") -> Multistatus:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DavError(f"the server answered a multistatus that is not XML ({exc})") from None
    if root.tag != _tag(DAV, "multistatus"):
        raise DavError(f"the server answered <{root.tag}>, not a DAV multistatus")
    members: list[Member] = []
    truncated = False
    token: str | None = None
    # the children are walked once, by tag, rather than searched with paths: an answer holds
    # an element or two per card, and a path search costs several times a walk
    for response in root:
        if response.tag == _SYNC_TOKEN and token is None:
            token = response.text or ""
            continue
        if response.tag != _RESPONSE:
            continue
        href_text: str | None = None
        direct: ET.Element | None = None
        props: dict[str, ET.Element] = {}
        ok_status = 0
        for child in response:
            tag = child.tag
            if tag == _HREF:
                if href_text is None:
                    href_text = child.text or ""
            elif tag == _STATUS:
                if direct is None:
                    direct = child
            elif tag == _PROPSTAT:
                state: ET.Element | None = None
                prop: ET.Element | None = None
                for part in child:
                    if part.tag == _STATUS and state is None:
                        state = part
                    elif part.tag == _PROP and prop is None:
                        prop = part
                code = _status_code(state.text) if state is not None else 0
                if code // 100 != 2:
                    continue
                ok_status = ok_status or code
                if prop is not None:
                    for element in prop:
                        props[element.tag] = element
        href = unquote((href_text or "").strip())
        status = (_status_code(direct.text) if direct is not None else 0) or ok_status
        if status == 507 and _same_path(href, request_path):
            truncated = True
            continue
        members.append(Member(href, status or 200, props))
    return Multistatus(members, token.strip() if token else None, truncated)


def _same_path(a: str, b: str) -> bool:
    return urlsplit(a).path.rstrip("/") == urlsplit(b).path.rstrip("/")


def propfind_body(*props: tuple[str, str]) -> bytes:
    root = ET.Element(_tag(DAV, "propfind"))
    prop = ET.SubElement(root, _tag(DAV, "prop"))
    for ns, name in props:
        ET.SubElement(prop, _tag(ns, name))
    return _xml(root)


def multiget_body(hrefs: list[str]) -> bytes:
    root = ET.Element(_tag(CARD, "addressbook-multiget"))
    prop = ET.SubElement(root, _tag(DAV, "prop"))
    ET.SubElement(prop, _tag(DAV, "getetag"))
    ET.SubElement(prop, _tag(CARD, "address-data"))
    for href in hrefs:
        ET.SubElement(root, _tag(DAV, "href")).text = quote(href)
    return _xml(root)


def sync_collection_body(token: str) -> bytes:
    root = ET.Element(_tag(DAV, "sync-collection"))
    ET.SubElement(root, _tag(DAV, "sync-token")).text = token
    ET.SubElement(root, _tag(DAV, "sync-level")).text = "1"
    prop = ET.SubElement(root, _tag(DAV, "prop"))
    ET.SubElement(prop, _tag(DAV, "getetag"))
    return _xml(root)


def _xml(root: ET.Element) -> bytes:
    ET.register_namespace("d", DAV)
    ET.register_namespace("c", CARD)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root)


def _error_condition(response: HttpResponse) -> str | None:
    """The precondition a DAV error body names (``valid-sync-token``), if any."""
    if not response.body or b"<" not in response.body[:200]:
        return None
    try:
        root = ET.fromstring(response.body)
    except ET.ParseError:
        return None
    for child in root:
        return child.tag.rpartition("}")[2]
    return None


class DavPrecondition(Exception):
    """A 403/409 naming a DAV precondition (RFC 4918 16): not a refusal of the credentials."""

    def __init__(self, condition: str, response: HttpResponse) -> None:
        super().__init__(f"HTTP {response.status} {condition}")
        self.condition = condition
        self.response = response


def classify(response: HttpResponse) -> Exception | None:
    """For the shared client's ``classify=``: a 403 that names a DAV precondition (an expired
    sync-token, a report the server does not support) is that, not a refused password."""
    if response.status in (403, 409):
        condition = _error_condition(response)
        if condition:
            return DavPrecondition(condition, response)
    return None


class InvalidSyncToken(Exception):
    """The server no longer knows the sync-token (RFC 6578 3.2): list in full."""


class SyncUnsupported(Exception):
    """The server does not do ``sync-collection``: compare ETags instead."""


class Dav:
    """A CardDAV session on one server (one ``HttpClient``: pooled connections, retries)."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def absolute(self, href: str) -> str:
        return urljoin(self.http.base_url, href)

    async def propfind(
        self, url: str, depth: str, *props: tuple[str, str]
    ) -> tuple[HttpResponse, Multistatus]:
        response = await self.http.request(
            "PROPFIND",
            url,
            data=propfind_body(*props),
            headers={**XML_HEADERS, "Depth": depth},
        )
        if response.status != 207:
            return response, Multistatus([])
        return response, parse_multistatus(response.body, urlsplit(response.url or url).path)

    async def multiget(self, collection: str, hrefs: list[str]) -> list[Member]:
        response = await self.http.request(
            "REPORT",
            collection,
            data=multiget_body(hrefs),
            headers={**XML_HEADERS, "Depth": "1"},
        )
        self._expect(response, "addressbook-multiget", 207)
        return parse_multistatus(response.body).members

    async def sync_collection(self, collection: str, token: str) -> Multistatus:
        try:
            response = await self.http.request(
                "REPORT",
                collection,
                data=sync_collection_body(token),
                headers={**XML_HEADERS, "Depth": "1"},
            )
        except DavPrecondition as exc:
            if exc.condition == "valid-sync-token":
                raise InvalidSyncToken(str(exc)) from None
            raise SyncUnsupported(str(exc)) from None
        if response.status == 207:
            return parse_multistatus(response.body, urlsplit(collection).path)
        condition = _error_condition(response)
        if condition == "valid-sync-token" or (token and response.status in (403, 409, 410)):
            raise InvalidSyncToken(f"HTTP {response.status} {condition or ''}".strip())
        if response.status in (400, 403, 404, 405, 415, 422, 501):
            raise SyncUnsupported(f"HTTP {response.status} {condition or ''}".strip())
        self._expect(response, "sync-collection", 207)
        raise AssertionError("unreachable")

    async def get(self, url: str) -> HttpResponse:
        return await self.http.request("GET", url, headers={"Accept": "text/vcard"})

    async def put(self, url: str, body: bytes, *, etag: str | None) -> HttpResponse:
        headers = {"Content-Type": "text/vcard; charset=utf-8"}
        if etag is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = etag
        return await self.http.request("PUT", url, data=body, headers=headers)

    async def delete(self, url: str, *, etag: str | None) -> HttpResponse:
        headers = {"If-Match": etag} if etag else {}
        return await self.http.request("DELETE", url, headers=headers)

    @staticmethod
    def _expect(response: HttpResponse, what: str, status: int) -> None:
        if response.status == status:
            return
        if response.status == 404:
            raise DavError(f"{what}: the address book is not there (HTTP 404)")
        if response.status >= 500:
            raise RetryLater(f"{what}: HTTP {response.status}")
        raise DavError(f"{what}: the server answered HTTP {response.status}")

"""Finding the address book: ``/.well-known/carddav``, ``current-user-principal``,
``addressbook-home-set``, then the address books there (RFC 6764, RFC 5397, RFC 6352 7.1.1)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

from syncd.connector import ConnectorConfigError
from syncd_carddav.dav import CARD, DAV, Dav, Member

_ADDRESSBOOK = f"{{{CARD}}}addressbook"


@dataclass(frozen=True, slots=True)
class AddressBook:
    url: str
    name: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def describe(self) -> str:
        return f"{self.name!r} ({self.path})" if self.name else self.path


def _is_addressbook(member: Member) -> bool:
    element = member.props.get(f"{{{DAV}}}resourcetype")
    return element is not None and element.find(_ADDRESSBOOK) is not None


async def _principal(dav: Dav, url: str) -> tuple[str | None, Member | None]:
    """PROPFIND ``url`` (depth 0): the principal it names, and the answer when it is an address
    book itself or a home set."""
    response, status = await dav.propfind(
        url,
        "0",
        (DAV, "resourcetype"),
        (DAV, "displayname"),
        (DAV, "current-user-principal"),
        (CARD, "addressbook-home-set"),
    )
    if response.status != 207 or not status.members:
        return None, None
    member = status.members[0]
    final = response.url or url
    member.href = urljoin(final, member.href or urlsplit(final).path)
    principal = member.hrefs(DAV, "current-user-principal")
    return (urljoin(final, principal[0]) if principal else None), member


async def discover(dav: Dav, url: str) -> list[AddressBook]:
    """The address books reachable from ``url`` (itself, when it is one)."""
    principal, member = await _principal(dav, url)
    if member is not None and _is_addressbook(member):
        return [AddressBook(member.href, member.text(DAV, "displayname") or "")]
    homes = member.hrefs(CARD, "addressbook-home-set") if member is not None else []
    if principal is None and not homes:
        # RFC 6764: the server's well-known entry point redirects to its context path
        split = urlsplit(url)
        well_known = f"{split.scheme}://{split.netloc}/.well-known/carddav"
        principal, _ = await _principal(dav, well_known)
    if principal is None and not homes:
        raise ConnectorConfigError(
            f"{url} names no address book and no CardDAV principal (tried {url} and "
            "/.well-known/carddav); set url to the address book's URL",
            key="url",
        )
    if not homes and principal is not None:
        _, found = await _principal(dav, principal)
        homes = found.hrefs(CARD, "addressbook-home-set") if found is not None else []
        base = principal
    else:
        base = member.href if member is not None else url
    if not homes:
        raise ConnectorConfigError(
            f"the principal {urlsplit(principal or url).path} has no addressbook-home-set; "
            "set url to the address book's URL",
            key="url",
        )
    books: list[AddressBook] = []
    for home in homes:
        home_url = urljoin(base, home)
        response, status = await dav.propfind(
            home_url, "1", (DAV, "resourcetype"), (DAV, "displayname")
        )
        for found_member in status.members:
            if _is_addressbook(found_member):
                books.append(
                    AddressBook(
                        urljoin(response.url or home_url, found_member.href),
                        found_member.text(DAV, "displayname") or "",
                    )
                )
    return books


def choose(books: list[AddressBook], wanted: str | None, url: str) -> AddressBook:
    """The address book the settings name; a clear error listing them when that is ambiguous."""
    listing = ", ".join(b.describe() for b in books) or "none"
    if wanted:
        needle = wanted.strip()
        for book in books:
            if book.name and book.name.casefold() == needle.casefold():
                return book
        path = unquote(urlsplit(needle).path if "://" in needle else needle).strip("/")
        for book in books:
            book_path = unquote(book.path).strip("/")
            if book_path == path or book_path.rsplit("/", 1)[-1] == path:
                return book
        raise ConnectorConfigError(
            f"no address book {wanted!r} at {url}; found {len(books)}: {listing}",
            key="addressbook",
        )
    if len(books) == 1:
        return books[0]
    if not books:
        raise ConnectorConfigError(f"no address book found at {url}", key="url")
    raise ConnectorConfigError(
        f"{len(books)} address books found at {url}, set addressbook to one of: {listing}",
        key="addressbook",
    )

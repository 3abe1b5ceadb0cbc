"""Pure helpers for Xero's batched writes: idempotency keys, reading per-element outcomes, and
the duplicate-Name rule.

With ``summarizeErrors=false`` Xero answers ``200`` with one element per submitted contact, in
order, each carrying its own ``ValidationErrors`` and a ``StatusAttributeString`` of OK, WARNING
or ERROR (vendors.md §1.4, primary). Some failures still come back as ``400 ValidationException``
with ``Elements`` (the spec's 400 example): those are read the same way, element by element.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncd.connector import HttpResponse

#: Xero's limit on the Idempotency-Key header
IDEMPOTENCY_KEY_MAX = 128
NAME_MAX = 255

# "The contact name X is already assigned to another contact. The contact name must be unique
# across all active contacts." (the spec's 400 example)
_DUPLICATE_NAME = re.compile(r"already assigned to another contact", re.IGNORECASE)


def idempotency_key(operation: str, keys: Sequence[str]) -> str:
    """A key for one request, derived from the engine's write keys so that a retried batch sends
    the same key (and Xero answers from its cache instead of creating again)."""
    digest = hashlib.sha256("\n".join([operation, *keys]).encode()).hexdigest()
    return f"syncd-{operation}-{digest}"[:IDEMPOTENCY_KEY_MAX]


@dataclass
class Outcome:
    """What happened to one submitted contact."""

    contact: dict[str, Any]
    error: str | None = None

    @property
    def contact_id(self) -> str | None:
        value = self.contact.get("ContactID")
        return str(value) if value else None

    @property
    def duplicate_name(self) -> bool:
        return self.error is not None and bool(_DUPLICATE_NAME.search(self.error))


def element_error(element: dict[str, Any]) -> str | None:
    messages = [
        str(item.get("Message"))
        for item in element.get("ValidationErrors") or ()
        if isinstance(item, dict) and item.get("Message")
    ]
    if messages:
        return "; ".join(messages)
    if element.get("HasValidationErrors") is True or (
        str(element.get("StatusAttributeString") or "").upper() == "ERROR"
    ):
        return "Xero refused the contact without saying why"
    return None


def outcomes(response: HttpResponse, sent: Sequence[dict[str, Any]]) -> list[Outcome | None] | str:
    """One :class:`Outcome` per submitted contact, ``None`` where Xero did not say what became of
    it, or a reason that applies to the whole request.

    The spec says ``summarizeErrors=false`` answers 200 with every element in order, which is what
    the sandbox does. A Xero maintainer has also described the reverse (a 400 carrying only the
    invalid elements, XeroAPI/xero-php-oauth2#179), so when the elements do not line up with what
    was sent they are matched by ContactID, or by Name and email, and the rest come back ``None``
    for the caller to send again (harmless: updates repeat, and a repeated create is caught by the
    unique-Name rule and linked).
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"Xero answered HTTP {response.status} without a readable body"
    if response.status == 200:
        elements = body.get("Contacts")
    elif response.status == 400:
        elements = body.get("Elements")
    else:
        elements = None
    if not isinstance(elements, list) or not elements:
        reason = body.get("Message") or body.get("Detail") or body.get("Title") or body.get("Type")
        return f"Xero refused the request (HTTP {response.status}): {reason or 'no reason given'}"
    readable = [element if isinstance(element, dict) else {} for element in elements]
    if len(readable) == len(sent):
        return [Outcome(element, element_error(element)) for element in readable]
    matched: list[Outcome | None] = [None] * len(sent)
    for element in readable:
        index = _match(element, sent, matched)
        if index is not None:
            matched[index] = Outcome(element, element_error(element))
    return matched


def _match(
    element: dict[str, Any], sent: Sequence[dict[str, Any]], taken: Sequence[Outcome | None]
) -> int | None:
    def fold(value: object) -> str:
        return str(value or "").strip().casefold()

    for index, payload in enumerate(sent):
        if taken[index] is not None:
            continue
        if payload.get("ContactID"):
            if fold(payload["ContactID"]) == fold(element.get("ContactID")):
                return index
        elif fold(payload.get("Name")) == fold(element.get("Name")) and fold(
            payload.get("EmailAddress")
        ) == fold(element.get("EmailAddress")):
            return index
    return None


def distinct_name(name: str, email: str | None, key: str, attempt: int) -> str:
    """A deterministic Name that differs from ``name``: "Jane Smith (jane@x.com)".

    The same write always derives the same Name, so a retried create finds (and links to) what a
    previous attempt created instead of making a third variant.
    """
    tag = email or key[:12]
    if attempt > 0:
        tag = f"{tag}, {key[:8]}" if email else f"{key[:8]}-{attempt}"
    suffix = f" ({tag})"
    return name[: max(1, NAME_MAX - len(suffix))].rstrip() + suffix


def where_any(field: str, values: Sequence[str]) -> str:
    """``Field=="a" OR Field=="b"`` with the values quoted for Xero's filter syntax."""
    return " OR ".join(f'{field}=="{quote(value)}"' for value in values)


def where_chunks(field: str, values: Sequence[str], limit: int) -> list[list[str]]:
    """``values`` split so that each ``where_any`` filter stays within ``limit`` characters once
    URL-encoded (at least one value per chunk)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    for value in values:
        if current and len(urllib.parse.quote(where_any(field, [*current, value]))) > limit:
            chunks.append(current)
            current = []
        current.append(value)
    if current:
        chunks.append(current)
    return chunks


def quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')

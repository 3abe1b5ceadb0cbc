"""Xero webhooks (vendors.md §1.8): the signature, the payload, and reading the changed contacts.

* Signature: ``x-xero-signature`` is base64(HMAC-SHA256(raw body, webhook key)). It is computed
  over the exact bytes received: a body parsed and serialised again (other spacing, other key
  order) no longer matches, which is the point. Compared with :func:`hmac.compare_digest`.
* Intent to Receive: a correctly signed delivery with no events is answered 200, a wrongly
  signed one 401, like any other delivery: no special case is needed, only no shortcut.
* Events are thin (``resourceId``, ``tenantId``, ``eventCategory``, ``eventType``): CONTACT
  CREATE and UPDATE become changed record ids (the event type compared case-insensitively: the
  docs spell ``Update``, the spec ``UPDATE``); other categories are ignored.
* Reading: ``GET /Contacts?IDs=`` with at most 50 ids per call, fewer when the query would grow
  past :data:`IDS_QUERY_MAX` characters (long ``IDs=`` lists fail near 52 GUIDs, vendors.md §6).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from syncd.connector import WebhookChange, WebhookReply

SIGNATURE_HEADER = "x-xero-signature"
#: ids per ``GET /Contacts?IDs=`` (Xero recommends batches of about 50)
IDS_PER_CALL = 50
#: the longest ``IDs=`` value sent (50 GUIDs and their commas take 1,849 characters)
IDS_QUERY_MAX = 1900
EVENT_TYPES = ("CREATE", "UPDATE")


def signature(key: str, body: bytes) -> str:
    """What Xero sends in ``x-xero-signature`` for ``body``."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


def signed_correctly(key: str, headers: Mapping[str, str], body: bytes) -> bool:
    given = _header(headers, SIGNATURE_HEADER)
    if not given or not key:
        return False
    expected = signature(key, body).encode("ascii")
    # bytes that are not ASCII cannot be a base64 signature; compare them anyway, as bytes
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"), expected)


def verify(key: str, headers: Mapping[str, str], body: bytes) -> WebhookReply:
    """The answer to one delivery: 401 unless signed with ``key``; else 200 and its changes."""
    if not signed_correctly(key, headers, body):
        return WebhookReply(status=401)
    return WebhookReply(status=200, changes=list(changes(body)))


def changes(body: bytes) -> Iterator[WebhookChange]:
    """The CONTACT CREATE/UPDATE events of a (verified) payload; anything malformed is left out."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        return
    for event in events:
        if not isinstance(event, dict):
            continue
        if str(event.get("eventCategory") or "").upper() != "CONTACT":
            continue
        kind = str(event.get("eventType") or "").upper()
        resource = event.get("resourceId")
        if kind not in EVENT_TYPES or not isinstance(resource, str) or not resource.strip():
            continue
        tenant = event.get("tenantId")
        yield WebhookChange(
            record_id=resource.strip(),
            tenant=str(tenant).strip() if isinstance(tenant, str) and tenant.strip() else None,
            event=kind.lower(),
        )


def id_chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """``ids`` in chunks for ``IDs=``: at most :data:`IDS_PER_CALL`, and short enough a query."""
    chunk: list[str] = []
    length = 0
    for record_id in dict.fromkeys(ids):  # unique, in order
        grown = length + len(record_id) + (1 if chunk else 0)
        if chunk and (len(chunk) >= IDS_PER_CALL or grown > IDS_QUERY_MAX):
            yield chunk
            chunk, length = [], 0
            grown = len(record_id)
        chunk.append(record_id)
        length = grown
    if chunk:
        yield chunk


def merged_into(contact: Mapping[str, Any]) -> str | None:
    """The surviving ContactID of a contact Xero merged into another, else None."""
    target = str(contact.get("MergedToContactID") or "").strip()
    if not target or set(target) <= {"0", "-"}:
        return None
    if target == str(contact.get("ContactID") or ""):
        return None
    return target

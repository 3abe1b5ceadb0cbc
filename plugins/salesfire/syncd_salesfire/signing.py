"""The ``X-Signature`` header: HMAC-SHA256 of the exact request body, keyed by the list's secret.

Salesfire's help page says the header is an HMAC-SHA-256 of the body keyed with the list secret,
but not whether the digest is sent as hex or Base64 (vendors.md §4). Hex is the default: the
dashboard's (non-public) curl example most likely pipes the body through ``openssl dgst -sha256
-hmac``, which prints hex. ``signature_encoding = "base64"`` switches.

The digest must be computed over the very bytes put on the wire: the connector serialises a
customer once (:func:`encode_body`), signs those bytes and sends them unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Literal

Encoding = Literal["hex", "base64"]
ENCODINGS: tuple[Encoding, ...] = ("hex", "base64")


class Secret:
    """A signing secret that never shows itself in ``repr``, ``str`` or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value.encode("utf-8")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def sign(self, body: bytes, encoding: Encoding = "hex") -> str:
        return sign(body, self._value, encoding)


def sign(body: bytes, key: bytes, encoding: Encoding = "hex") -> str:
    """The ``X-Signature`` value for ``body``."""
    digest = hmac.new(key, body, hashlib.sha256).digest()
    if encoding == "base64":
        return base64.b64encode(digest).decode("ascii")
    return digest.hex()


def encode_body(payload: dict[str, Any]) -> bytes:
    """One customer as compact UTF-8 JSON, in the payload's own key order.

    Non-ASCII text is sent as UTF-8 rather than ``\\u`` escapes: smaller, and a body re-serialised
    by anything on the way would no longer match its signature, which tests rely on noticing.
    """
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

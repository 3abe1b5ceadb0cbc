"""X-Signature: HMAC-SHA256 over the body bytes, hex or Base64, and a secret that never shows."""

from __future__ import annotations

import json

from syncd_salesfire.signing import Secret, encode_body, sign

# HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a widely published vector
FOX = b"The quick brown fox jumps over the lazy dog"
FOX_HEX = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
FOX_BASE64 = "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="


def test_hex_and_base64_match_the_published_vector() -> None:
    assert sign(FOX, b"key") == FOX_HEX
    assert sign(FOX, b"key", "base64") == FOX_BASE64
    assert Secret("key").sign(FOX) == FOX_HEX


def test_secret_never_shows_itself() -> None:
    secret = Secret("do-not-print-me")
    assert "do-not-print-me" not in repr(secret)
    assert "do-not-print-me" not in str(secret)
    assert "do-not-print-me" not in f"{secret!r} {secret}"


def test_body_is_compact_utf8_in_payload_order() -> None:
    body = encode_body({"email": "zoe@example.com", "attributes": {"name": "Zoë Ó Súilleabháin"}})
    assert body == '{"email":"zoe@example.com","attributes":{"name":"Zoë Ó Súilleabháin"}}'.encode()
    # the same customer serialised another way signs differently: the bytes sent are what count
    other = json.dumps(json.loads(body)).encode()
    assert sign(other, b"k") != sign(body, b"k")

"""Secret redaction: every secret value resolved from the config is registered here, and log lines,
error messages and ``--json`` output pass through :func:`redact` before they leave the process.

A secret is masked where it stands as a whole token: not inside a longer word, an email address
or a host name (an API key ``sandbox`` must not turn ``sandbox.user@example.com`` into
``***.user@example.com``), but wherever it is delimited: by spaces, quotes, ``=``, ``&``, ``/``,
``:``, brackets, or a full stop ending a sentence. The config refuses secrets shorter than
:data:`MIN_LENGTH` characters, which could not be masked safely.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"
#: shorter values are never registered (the config refuses such secrets with a clear message)
MIN_LENGTH = 8
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# A token character, and the joiners that continue a token when a token character follows them
# (the dot of a host name or of an email address's local part, the @ of an address).
_BEFORE = r"(?<![\w])(?<![\w][.@+-])"
_AFTER = r"(?![\w])(?![.@+-][\w])"


def register_secret(value: object) -> None:
    global _pattern
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        with _lock:
            if value not in _secrets:
                _secrets.add(value)
                _pattern = None


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _secrets:
            alternatives = "|".join(
                re.escape(secret) for secret in sorted(_secrets, key=len, reverse=True)
            )
            _pattern = re.compile(f"{_BEFORE}(?:{alternatives}){_AFTER}")
        return _pattern


def redact(text: str) -> str:
    """``text`` with every registered secret that stands as a whole token replaced by ``***``."""
    pattern = _compiled()
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def redact_data(value: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value

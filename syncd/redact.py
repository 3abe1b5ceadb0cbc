"""Secret redaction: every secret value resolved from the config is registered here, and log lines,
error messages and ``--json`` output pass through :func:`redact` before they leave the process.

A secret is masked wherever it stands as a whole token: not glued to a letter or digit on either
side (an API key ``sandbox1`` must not turn ``Sandbox1User`` into ``***User``), but delimited by
anything else — spaces, quotes, ``=``, ``&``, ``/``, ``.``, ``-``, ``_``, ``@`` — so that a secret
in a URL path, a file name or an address is still masked (``https://h/KEY.json``, ``KEY@host``).
Leaking a secret is worse than masking a word too many. The config refuses secrets shorter than
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

# a token's edge: no ASCII letter or digit beside it
_BEFORE = r"(?<![A-Za-z0-9])"
_AFTER = r"(?![A-Za-z0-9])"


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

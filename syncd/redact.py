"""Secret redaction: every secret value resolved from the config is registered here, and log lines,
error messages and ``--json`` output pass through :func:`redact` before they leave the process."""

from __future__ import annotations

import threading
from typing import Any

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
# Very short values (a one-character password) would mask unrelated text everywhere.
MIN_LENGTH = 4


def register_secret(value: object) -> None:
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        with _lock:
            _secrets.add(value)


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    secrets = known_secrets()
    if not secrets:
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_data(value: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value

"""Woodpecker's error codes and how they become the contract's typed failures.

Woodpecker answers errors with a code such as ``E_SESSION`` [vendors.md §3.4], in a ``status``
object (``{"status": {"status": "ERROR", "code": "E_SESSION", "msg": "..."}}``). The exact shape
of v1 error bodies is not documented in the material we have, so :func:`error_of` also accepts a
bare ``code``/``error`` key and a code anywhere in a plain-text body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from syncd.connector import (
    ConnectorConfigError,
    HttpResponse,
    NeedsReauth,
    RetryLater,
)
from syncd.http import parse_retry_after

E_SESSION = "E_SESSION"
E_URL_NOT_FOUND = "E_URL_NOT_FOUND"
E_TOO_MANY_REQUESTS = "E_TOO_MANY_REQUESTS"
E_WRONG_PARAM = "E_WRONG_PARAM"
E_RECORD_NOT_FOUND = "E_RECORD_NOT_FOUND"

#: Codes that describe one prospect rather than the request as a whole: when a whole batch is
#: refused with one of these, the batch is split to find the prospect at fault.
RECORD_CODES = frozenset(
    {
        "E_EMAIL",
        "E_DUPLICATE",
        "E_EMAIL_NOT_EXISTS",
        "E_INV_STATUS",
        "E_REQUIRED_ELEMENT",
        E_WRONG_PARAM,
        E_RECORD_NOT_FOUND,
    }
)

REAUTH_FIX = (
    "set api_key to a valid Woodpecker API key (Woodpecker → Marketplace → Integrations → "
    "API keys; the account needs the 'API Key and Integrations' add-on)"
)

_CODE_IN_TEXT = re.compile(r"\bE_[A-Z_]+\b")


@dataclass(frozen=True)
class WoodpeckerError:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def error_in(obj: Any) -> WoodpeckerError | None:
    """The error code and message held by a JSON object (a response body or one result item)."""
    if not isinstance(obj, dict):
        return None
    status = obj.get("status")
    if isinstance(status, dict):
        found = error_in(status)
        if found is not None:
            return found
    code = obj.get("code") or obj.get("error") or obj.get("error_code")
    if isinstance(code, str) and code.startswith("E_"):
        message = obj.get("msg") or obj.get("message") or obj.get("error_message") or ""
        return WoodpeckerError(code, str(message))
    return None


def error_of(response: HttpResponse) -> WoodpeckerError | None:
    """The Woodpecker error a response carries, if any."""
    if not response.body:
        return None
    if response.status < 400 and response.body[:64].lstrip()[:1] == b"[":
        return None  # a list (a page of prospects): no error object, and not worth decoding
    try:
        found = error_in(json.loads(response.body))
    except ValueError:
        found = None
    if found is None and response.status >= 400:
        match = _CODE_IN_TEXT.search(response.text)
        if match:
            found = WoodpeckerError(match.group(0), "")
    return found


def classify(response: HttpResponse) -> Exception | None:
    """Turn request-level failures into typed ones; leave per-record ones to the caller."""
    error = error_of(response)
    code = error.code if error else None
    if code == E_SESSION or (code is None and response.status in (401, 403)):
        return NeedsReauth(
            f"Woodpecker refused the API key (HTTP {response.status}, {code or 'no code'})",
            fix=REAUTH_FIX,
        )
    if code == E_URL_NOT_FOUND or (code is None and response.status == 404):
        return ConnectorConfigError(
            f"Woodpecker answered 'URL not found' for {_path_of(response)}: check base_url",
            key="base_url",
        )
    if code == E_TOO_MANY_REQUESTS:
        # only reached once the retries are spent
        return RetryLater(
            "Woodpecker kept refusing requests (E_TOO_MANY_REQUESTS)",
            delay=parse_retry_after(response.headers.get("Retry-After")),
        )
    return None


def _path_of(response: HttpResponse) -> str:
    url = response.url.split("?", 1)[0]
    return url or "the request"


def too_many_requests(response: HttpResponse) -> bool:
    """Whether a response is Woodpecker's "too many requests" refusal in any of its shapes.

    Whether Woodpecker refuses an over-limit request with HTTP 429 or with 400 and
    ``E_TOO_MANY_REQUESTS`` is not documented [vendors.md §3.4]; the core retries 429 already,
    and this hook (the client's ``transient``) has it retry the other shape the same way,
    ``Retry-After`` included.
    """
    if response.status != 400:
        return False
    error = error_of(response)
    return error is not None and error.code == E_TOO_MANY_REQUESTS

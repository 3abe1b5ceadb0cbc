"""Reading Salesfire's refusals, whose shape is not documented (vendors.md §4).

The help page only says that "validation error messages are returned". The emulator answers in the
shape a Laravel API gives (``{"message": ..., "errors": {"field": ["..."]}}``, inferred); this
reader also copes with ``{"error": ...}``, ``{"errors": [...]}``, a bare string and plain text,
so that whatever Salesfire really sends reaches the user as the app's own reason.
"""

from __future__ import annotations

import json
from typing import Any

from syncd.connector import HttpResponse

#: a reason longer than this is cut (an HTML error page, say)
LONGEST_REASON = 500


def refusal_reason(response: HttpResponse) -> str:
    try:
        body: Any = json.loads(response.body) if response.body else None
    except ValueError:
        body = None
    if body is None:
        text = " ".join(response.text.split())
        return _cut(text) if text else f"HTTP {response.status} without a reason"
    return _cut(_reason(body) or json.dumps(body, ensure_ascii=False))


def _reason(body: Any) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, list):
        return "; ".join(filter(None, (_reason(item) for item in body)))
    if not isinstance(body, dict):
        return ""
    details = _details(body.get("errors"))
    message = body.get("message") or body.get("error") or body.get("detail")
    message_text = _reason(message) if message is not None else ""
    if details and message_text and message_text not in details:
        # Laravel's generic "The given data was invalid." adds nothing to the field messages.
        if message_text.lower().startswith("the given data was invalid"):
            return details
        return f"{message_text}: {details}"
    return details or message_text


def _details(errors: Any) -> str:
    if errors is None:
        return ""
    if isinstance(errors, dict):
        parts = []
        for field, messages in errors.items():
            parts.append(f"{field}: {_reason(messages)}")
        return "; ".join(parts)
    return _reason(errors)


def _cut(text: str) -> str:
    return text if len(text) <= LONGEST_REASON else text[: LONGEST_REASON - 1] + "…"

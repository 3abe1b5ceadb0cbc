"""Talking HTTP to Salesflare: auth, its error envelope, and backing off when it says 429.

Salesflare answers errors in Hapi/Boom's envelope ``{statusCode, error, message, validation}``
(vendors.md §2.5, observed by a third party). It publishes no rate-limit numbers and sends no
``Retry-After`` (§2.1, secondary), so the core's :class:`~syncd.http.HttpClient` backs off
exponentially from ``backoff_seconds``; on top of that every 429 holds back the whole account's
budget for a growing pause, so that all syncs sharing the API key slow down together.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.connector import (
    HttpClient,
    HttpResponse,
    NeedsReauth,
    RateBudget,
    shared_budget,
)
from syncd.http import RetryPolicy

DEFAULT_BASE_URL = "https://api.salesflare.com"
REAUTH_FIX = (
    "create an API key in Salesflare (Settings → API keys) and set it as api_key in the sync file"
)
# The longest pause a 429 without Retry-After imposes on the whole account.
LONGEST_429_PAUSE = 60.0


@dataclass(frozen=True)
class ApiError:
    """A non-2xx answer in Salesflare's envelope (or whatever the body held)."""

    status: int
    error: str
    message: str
    #: the ``validation.errors`` entries, when the payload failed validation
    details: tuple[Mapping[str, Any], ...] = ()

    @property
    def reason(self) -> str:
        """A one-line reason fit for a record's error (the app's own words)."""
        if self.message and self.message != self.error:
            return f"{self.error}: {self.message}" if self.error else self.message
        return self.error or f"HTTP {self.status}"

    @property
    def is_missing_route(self) -> bool:
        """A bare 404 (a wrong base_url), not one about something the payload refers to."""
        return self.status == 404 and self.message in ("", "Not Found", self.error)

    def mentions(self, word: str) -> bool:
        texts = [self.message] + [str(d.get("path", "")) for d in self.details]
        return any(word in text for text in texts)


def parse_error(response: HttpResponse) -> ApiError:
    """Read Salesflare's error envelope; tolerate a body that is not JSON at all."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:300]
        return ApiError(response.status, f"HTTP {response.status}", text)
    validation = body.get("validation")
    details: tuple[Mapping[str, Any], ...] = ()
    if isinstance(validation, dict) and isinstance(validation.get("errors"), list):
        details = tuple(e for e in validation["errors"] if isinstance(e, dict))
    return ApiError(
        status=int(body.get("statusCode") or response.status),
        error=str(body.get("error") or f"HTTP {response.status}"),
        message=str(body.get("message") or ""),
        details=details,
    )


_LABEL_INDEX = re.compile(r"^\[?(\d+)\]?(?:\.|$)")


def failing_item(error: ApiError) -> int | None:
    """Which item of an array payload a validation error is about, when it says so.

    Joi reports a path per error; depending on the server it comes as a list (``[2, "email"]``),
    a dotted string (``"2.email"``) or only in the label (``"[2].email"``). The root of the
    payload has the empty path.
    """
    for detail in error.details:
        path = detail.get("path")
        if isinstance(path, list) and path and isinstance(path[0], int):
            return path[0]
        for text in (path, detail.get("label")):
            if isinstance(text, str):
                match = _LABEL_INDEX.match(text)
                if match:
                    return int(match.group(1))
    match = re.match(r'^"\[(\d+)\]', error.message)
    return int(match.group(1)) if match else None


def item_reason(error: ApiError) -> str:
    """The reason for one item, with the array index taken out of Joi's label."""
    message = re.sub(r'"\[\d+\]\.?', '"', error.message)
    message = message.replace('""', '"value"')
    return f"{error.error}: {message}" if error.error and message else error.reason


def classify(response: HttpResponse) -> Exception | None:
    """Turn refused credentials into NeedsReauth; leave the rest to the caller."""
    if response.status in (401, 403):
        problem = parse_error(response)
        return NeedsReauth(
            f"Salesflare refused the API key (HTTP {response.status}: {problem.reason})",
            fix=REAUTH_FIX,
        )
    return None


def budget_key(api_key: str, base_url: str) -> str:
    """One budget per Salesflare account; the key itself never leaves this function."""
    digest = hashlib.sha256(f"{base_url}\0{api_key}".encode()).hexdigest()[:16]
    return f"salesflare:{digest}"


class SalesflareHttp:
    """The session of one connector: throttled, authenticated, retrying."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        calls_per_minute: float,
        concurrency: int,
        backoff_seconds: float,
        retry_attempts: int,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.backoff_seconds = backoff_seconds
        self._budget_settings = (calls_per_minute, concurrency)
        self._retry = RetryPolicy(
            attempts=retry_attempts,
            initial_wait=backoff_seconds,
            max_wait=max(backoff_seconds, min(LONGEST_429_PAUSE, backoff_seconds * 64)),
        )
        self._streak = 0
        self.budget: RateBudget | None = None
        self._client: HttpClient | None = None

    def __repr__(self) -> str:  # never show the key
        return f"SalesflareHttp(base_url={self.base_url!r})"

    async def open(self) -> None:
        calls, concurrency = self._budget_settings
        self.budget = shared_budget(
            budget_key(self._api_key, self.base_url),
            lambda: RateBudget(calls=calls, period=60.0, concurrency=concurrency),
        )
        self._client = HttpClient(
            base_url=self.base_url,
            budget=self.budget,
            headers={"Accept": "application/json"},
            auth=self._auth,
            classify=classify,
            on_response=self._watch_429,
            retry=self._retry,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def concurrency(self) -> int:
        """Requests in flight at once (the ``concurrency`` setting)."""
        return int(self._budget_settings[1])

    @property
    def calls(self) -> int:
        return self._client.calls if self._client is not None else 0

    async def _auth(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _watch_429(self, response: HttpResponse) -> None:
        # Salesflare sends no Retry-After: pause the account's whole budget for a doubling
        # interval, so that concurrent requests (and other syncs on this key) back off too.
        if response.status == 429 and "Retry-After" not in response.headers:
            pause = min(LONGEST_429_PAUSE, self.backoff_seconds * (2**self._streak))
            self._streak += 1
            if self.budget is not None:
                self.budget.pause_for(pause)
        elif response.status < 400:
            self._streak = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> HttpResponse:
        if self._client is None:
            raise RuntimeError("SalesflareHttp.open() was not called")
        # aiohttp takes a list of pairs for repeated keys; HttpClient's signature says Mapping
        query: Any = params
        return await self._client.request(method, path, params=query, json_body=json_body)

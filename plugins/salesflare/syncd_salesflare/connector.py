"""The ``salesflare`` connector: Salesflare contacts over its REST API.

* Listing: ``GET /contacts?includeArchived=true&order_by=id`` paged by offset through
  :func:`~syncd_salesflare.paging.stable_pages`; incremental runs add ``modification_after``.
* Creating: ``POST /contacts?force=false`` with an array. Salesflare takes no idempotency key and,
  by default (``force=true``), creates a second contact for an email it already has; with
  ``force=false`` a retried or repeated create cannot duplicate. Ids come back in the order sent.
  A payload that fails validation is refused as a whole and names (at most) one bad item, so the
  bad item is reported with Salesflare's reason and the rest re-sent.
* Updating and archiving: ``PUT /contacts/{id}``, one contact per call (there is no bulk update).
* Looking up: ``GET /contacts?email=`` with archived contacts included.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.connector import (
    Capabilities,
    Connector,
    ConnectorConfigError,
    ConnectorContext,
    ConnectorError,
    RecordWrite,
    RemoteRecord,
    RetryLater,
    Setting,
    WriteResult,
    http_url,
)
from syncd.paging import json_body
from syncd_salesflare.accounts import AccountDirectory, AccountUnavailable
from syncd_salesflare.client import (
    DEFAULT_BASE_URL,
    ApiError,
    SalesflareHttp,
    failing_item,
    item_reason,
    parse_error,
)
from syncd_salesflare.mapping import (
    FIELDS,
    CurrentState,
    WriteParts,
    create_body,
    format_time,
    listed_contact,
    split_write,
    update_body,
)
from syncd_salesflare.paging import stable_pages

# Sort keys tried in turn: ascending id keeps new contacts at the end of the list. Whether the
# API accepts ``id`` as a sort key is not documented; if it refuses, fall back (see paging.py).
ORDERINGS: tuple[str | None, ...] = ("id", "creation_date", None)
LOOKUP_LIMIT = 100
#: listing requests started ahead of the page being mapped
READ_AHEAD = 1


def _setting_int(config: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    raw = config.get(key)
    try:
        value = default if raw is None else int(raw)
    except (TypeError, ValueError):
        raise ConnectorConfigError(f"{key} must be a whole number", key=key) from None
    if value < minimum:
        raise ConnectorConfigError(f"{key} must be at least {minimum}", key=key)
    return value


def _setting_float(config: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    raw = config.get(key)
    try:
        value = default if raw is None else float(raw)
    except (TypeError, ValueError):
        raise ConnectorConfigError(f"{key} must be a number", key=key) from None
    if value < minimum:
        raise ConnectorConfigError(f"{key} must be at least {minimum}", key=key)
    return value


def _setting_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    raw = config.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConnectorConfigError(f"{key} must be true or false", key=key)


class SalesflareConnector(Connector):
    name = "salesflare"
    title = "Salesflare contacts"
    settings = (
        Setting(
            "api_key", "API key (Salesflare → Settings → API keys)", required=True, secret=True
        ),
        Setting(
            "base_url",
            "API root; point it at `syncd sandbox salesflare`",
            default=DEFAULT_BASE_URL,
            validator=http_url,
            public=True,
        ),
        Setting(
            "calls_per_minute",
            "throttle: requests per minute for this API key (Salesflare publishes no limit)",
            type=int,
            default=60,
            minimum=1,
            maximum=100_000,
        ),
        Setting(
            "concurrency",
            "throttle: requests in flight at once",
            type=int,
            default=2,
            minimum=1,
            maximum=100,
        ),
        Setting(
            "create_accounts",
            "create the account (company) of a contact when no account has that name",
            type=bool,
            default=True,
        ),
        Setting(
            "page_size",
            "contacts per listing request (limit)",
            type=int,
            default=500,
            minimum=2,
            maximum=10_000,
        ),
        Setting(
            "create_batch_size",
            "contacts per POST /contacts",
            type=int,
            default=100,
            minimum=1,
            maximum=1000,
        ),
        Setting(
            "backoff_seconds",
            "first wait after a 429 or 5xx (doubles on each retry; no Retry-After is sent)",
            type=float,
            default=1.0,
            minimum=0.0,
            maximum=3600.0,
        ),
        Setting(
            "retry_attempts",
            "attempts per request before giving up for this run",
            type=int,
            default=6,
            minimum=1,
            maximum=100,
        ),
    )
    capabilities = Capabilities(
        read=True,
        write=True,
        incremental=True,
        lookup_by_email=True,
        archive="archive",
        create_batch_size=100,
        update_batch_size=1,
        idempotency_keys=False,
        custom_fields=True,
    )
    fields = FIELDS

    def __init__(self, settings: Mapping[str, Any], context: ConnectorContext) -> None:
        super().__init__(settings, context)
        api_key = str(self.config.get("api_key") or "").strip()
        if not api_key:
            raise ConnectorConfigError("api_key is required", key="api_key")
        base_url = str(self.config.get("base_url") or DEFAULT_BASE_URL).strip()
        if not base_url.startswith(("http://", "https://")):
            raise ConnectorConfigError(
                "base_url must start with http:// or https://", key="base_url"
            )
        self.page_size = _setting_int(self.config, "page_size", 500, minimum=2)
        batch = _setting_int(self.config, "create_batch_size", 100, minimum=1)
        self.capabilities = dataclasses.replace(type(self).capabilities, create_batch_size=batch)
        self.http = SalesflareHttp(
            api_key=api_key,
            base_url=base_url,
            calls_per_minute=_setting_int(self.config, "calls_per_minute", 60, minimum=1),
            concurrency=_setting_int(self.config, "concurrency", 2, minimum=1),
            backoff_seconds=_setting_float(self.config, "backoff_seconds", 1.0, minimum=0.0),
            retry_attempts=_setting_int(self.config, "retry_attempts", 6, minimum=1),
        )
        self.accounts = AccountDirectory(
            self.http, create_missing=_setting_bool(self.config, "create_accounts", True)
        )
        self._ordering_index = 0
        self._current: dict[str, CurrentState] = {}

    def __repr__(self) -> str:
        return f"SalesflareConnector(base_url={self.http.base_url!r})"

    # --- life ---------------------------------------------------------------------------

    async def open(self) -> None:
        await self.http.open()
        self.accounts.clear()
        self._current.clear()

    async def close(self) -> None:
        await self.http.close()

    async def check(self) -> str:
        response = await self.http.request("GET", "/me")
        if response.status >= 400:
            raise self._unexpected("GET /me", parse_error(response))
        me = response.json()
        if not isinstance(me, dict):
            raise ConnectorConfigError(
                f"{self.http.base_url} did not answer like the Salesflare API", key="base_url"
            )
        who = " ".join(str(me.get(k)) for k in ("name", "email") if me.get(k))
        return (
            f"Salesflare at {self.http.base_url}: API key of {who or 'user ' + str(me.get('id'))}"
        )

    # --- reading ------------------------------------------------------------------------

    def make_cursor(self, watermark: datetime) -> str:
        return format_time(watermark)

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        base: list[tuple[str, str]] = [("includeArchived", "true")]
        if cursor:
            base.append(("modification_after", cursor))

        async def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            return await self._contacts_page(base, offset, limit)

        # the next page is fetched while this one is mapped, within the throttle's concurrency
        # (Salesflare publishes no limit; each speculative request past the list's end is a
        # wasted call, so never more than one ahead)
        window = min(READ_AHEAD, self.http.concurrency)
        async for page in stable_pages(fetch, self.page_size, window):
            records = []
            remember, current = self.accounts.remember, self._current
            for contact in page:
                remember(contact.get("account"))
                record, current[str(contact["id"])] = listed_contact(contact)
                records.append(record)
            yield records

    async def _contacts_page(
        self, base: list[tuple[str, str]], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        while True:
            ordering = ORDERINGS[self._ordering_index]
            params = [*base, ("limit", str(limit)), ("offset", str(offset))]
            if ordering is not None:
                params.append(("order_by", ordering))
            response = await self.http.request("GET", "/contacts", params=params)
            if response.status == 400 and ordering is not None:
                problem = parse_error(response)
                if problem.mentions("order_by"):
                    self._ordering_index += 1  # the API refuses this sort key: try the next
                    continue
            if response.status >= 400:
                raise self._unexpected("GET /contacts", parse_error(response))
            body = json_body(response.body)
            if not isinstance(body, list):
                raise ConnectorConfigError(
                    f"{self.http.base_url}/contacts did not answer with a list", key="base_url"
                )
            return [c for c in body if isinstance(c, dict) and c.get("id") is not None]

    async def lookup_by_email(self, emails: Sequence[str]) -> list[RemoteRecord]:
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        found = await asyncio.gather(*(self._contacts_with_email(email) for email in wanted))
        by_id: dict[str, RemoteRecord] = {}
        for contacts in found:
            for contact in contacts:
                record, self._current[str(contact["id"])] = listed_contact(contact)
                by_id[record.id] = record
        return list(by_id.values())

    async def _contacts_with_email(self, email: str) -> list[dict[str, Any]]:
        params = [("email", email), ("includeArchived", "true"), ("limit", str(LOOKUP_LIMIT))]
        response = await self.http.request("GET", "/contacts", params=params)
        if response.status >= 400:
            raise self._unexpected("GET /contacts?email=", parse_error(response))
        body = response.json()
        # The filter may match loosely; keep exact (trimmed, case-folded) matches only.
        return [
            c
            for c in (body if isinstance(body, list) else [])
            if isinstance(c, dict)
            and c.get("id") is not None
            and str(c.get("email") or "").strip().lower() == email
        ]

    # --- creating -----------------------------------------------------------------------

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        pending: list[tuple[RecordWrite, dict[str, Any]]] = []
        for write in writes:
            parts = split_write(write.data)
            try:
                account_id = await self._account_for(parts)
            except AccountUnavailable as exc:
                results[write.key] = WriteResult(write.key, None, str(exc))
                continue
            pending.append((write, create_body(parts, account_id)))
        # Each batch either succeeds whole or is refused whole (Joi validates the payload first).
        batches = [pending] if pending else []
        while batches:
            batch = batches.pop()
            response = await self.http.request(
                "POST", "/contacts", params={"force": "false"}, json_body=[b for _, b in batch]
            )
            if response.status < 300:
                results.update(await self._created(batch, response.json()))
                continue
            problem = parse_error(response)
            if response.status >= 500 or problem.is_missing_route:
                raise self._unexpected("POST /contacts", problem)
            if len(batch) == 1:
                write = batch[0][0]
                results[write.key] = WriteResult(write.key, None, item_reason(problem))
                continue
            index = failing_item(problem)
            if index is not None and 0 <= index < len(batch):
                write = batch[index][0]
                results[write.key] = WriteResult(write.key, None, item_reason(problem))
                batches.append(batch[:index] + batch[index + 1 :])
            else:
                # the refusal names no item: halve the batch until it does
                middle = len(batch) // 2
                batches.extend([batch[middle:], batch[:middle]])
        return [results[w.key] for w in writes]

    async def _created(
        self, batch: list[tuple[RecordWrite, dict[str, Any]]], body: Any
    ) -> dict[str, WriteResult]:
        """Map the returned ids back to their writes, by position."""
        items = body if isinstance(body, list) else [body]
        ids = [
            item.get("id") if isinstance(item, dict) else item
            for item in items
            if isinstance(item, (dict, int))
        ]
        results: dict[str, WriteResult] = {}
        if len(ids) == len(batch) and all(isinstance(i, int) for i in ids):
            for (write, _), new_id in zip(batch, ids, strict=True):
                results[write.key] = WriteResult(write.key, str(new_id))
            return results
        # An answer that does not line up with what was sent: find each contact by its email
        # (force=false guarantees at most one contact per email was made).
        emails = [str(payload.get("email") or "") for _, payload in batch]
        found = await self.lookup_by_email([e for e in emails if e])
        by_email = {str(r.data.get("email") or "").strip().lower(): r.id for r in found}
        for (write, _), email in zip(batch, emails, strict=True):
            record_id = by_email.get(email.strip().lower()) if email else None
            if record_id is None:
                results[write.key] = WriteResult(
                    write.key, None, "Salesflare accepted the contact but returned no id for it"
                )
            else:
                results[write.key] = WriteResult(write.key, record_id)
        return results

    async def _account_for(self, parts: WriteParts) -> int | None:
        if not parts.has_company or parts.company is None:
            return None
        return await self.accounts.resolve(parts.company)

    # --- updating and archiving ---------------------------------------------------------

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        return list(await asyncio.gather(*(self._update_one(w) for w in writes)))

    async def _update_one(self, write: RecordWrite) -> WriteResult:
        if not write.id:
            return WriteResult(write.key, None, "an update needs the contact's id")
        parts = split_write(write.data)
        try:
            account_id = await self._account_for(parts)
            current = await self._current_state(write.id) if parts.needs_current else None
        except AccountUnavailable as exc:
            return WriteResult(write.key, write.id, str(exc))
        except _NotFound as exc:
            return WriteResult(write.key, write.id, str(exc))
        body = update_body(parts, account_id, current)
        if not body:
            return WriteResult(write.key, write.id)
        return await self._put(write.key, write.id, body, parts)

    async def _put(
        self, key: str, contact_id: str, body: dict[str, Any], parts: WriteParts | None
    ) -> WriteResult:
        response = await self.http.request("PUT", f"/contacts/{contact_id}", json_body=body)
        if response.status >= 500:
            raise self._unexpected(f"PUT /contacts/{contact_id}", parse_error(response))
        if response.status >= 300:
            return WriteResult(key, contact_id, item_reason(parse_error(response)))
        if parts is not None and parts.needs_current:
            # the new address id (if one was added) is unknown: read it again if needed
            self._current.pop(contact_id, None)
        return WriteResult(key, contact_id)

    async def _current_state(self, contact_id: str) -> CurrentState:
        known = self._current.get(contact_id)
        if known is not None:
            return known
        response = await self.http.request("GET", f"/contacts/{contact_id}")
        if response.status == 404:
            raise _NotFound(item_reason(parse_error(response)))
        if response.status >= 400:
            raise self._unexpected(f"GET /contacts/{contact_id}", parse_error(response))
        contact = response.json()
        if isinstance(contact, list):  # tolerate an array of one
            contact = contact[0] if contact else {}
        state = CurrentState.of(contact if isinstance(contact, dict) else {})
        self._current[contact_id] = state
        return state

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        return list(await asyncio.gather(*(self._put(i, i, {"archived": True}, None) for i in ids)))

    # --- failures -----------------------------------------------------------------------

    def _unexpected(self, what: str, problem: ApiError) -> ConnectorError:
        if problem.status >= 500:
            return RetryLater(
                f"{what}: Salesflare answered HTTP {problem.status}: {problem.reason}"
            )
        if problem.status == 404:
            return ConnectorConfigError(
                f"{what}: {problem.reason} (is base_url {self.http.base_url} the Salesflare API?)",
                key="base_url",
            )
        return ConnectorError(f"{what}: HTTP {problem.status}: {problem.reason}")


class _NotFound(Exception):
    pass

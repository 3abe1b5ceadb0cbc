"""The sandbox's Accounting API: ``GET``/``PUT``/``POST /api.xro/2.0/Contacts`` with Xero's auth,
tenancy, paging, filters, validation, idempotency keys and rate limits.

Behaviours and where they come from (vendors.md §1):

* ``xero-tenant-id`` is required (spec) except for custom-connection tokens (§1.2); a tenant the
  token does not reach answers 403 ``AuthorizationUnsuccessful``.
* Paging: ``page`` (1-based) with ``pageSize`` (default 100; third parties say at most 1000, so
  larger values are cut to 1000) and a ``pagination`` object. Without ``page`` every contact comes
  back, without ContactPersons.
* ``If-Modified-Since``: contacts whose UpdatedDateUTC is at or after the given time. An
  unparseable value is ignored and everything is returned, which is how Xero is reported to behave
  with malformed values (§1.10 trap 2).
* ``summarizeErrors=false``: 200 with every element, refused ones carrying ``ValidationErrors``
  (spec). ``true`` (and absent, Xero's behaviour per its SDK maintainers): all or nothing, a 400
  ``ValidationException`` listing the refused elements. The option ``partial_400`` makes
  ``summarizeErrors=false`` answer the other way a maintainer described (xero-php-oauth2#179):
  valid elements saved, 400 with only the refused ones.
* ``Idempotency-Key`` (at most 128 characters): a repeated key within ``idempotency_ttl``
  (about 6 minutes: secondary) replays the first answer; replays still count against the limits.
* Rate limits per organisation (fixed windows that start with its first call, §1.7): 60 a minute,
  5,000 a day, 5 concurrent, plus 10,000 a minute per app. Every answer carries
  ``X-DayLimit-Remaining``, ``X-MinLimit-Remaining`` and ``X-AppMinLimit-Remaining``; a 429 names
  the limit in ``X-Rate-Limit-Problem`` and, for the minute and day limits, says ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from syncd_xero.sandbox_data import Org, echo, msdate, render
from syncd_xero.sandbox_filter import FilterError, parse_where
from syncd_xero.sandbox_identity import AccessToken, Identity, forbidden, unauthorized

API_PREFIX = "/api.xro/2.0"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
IDEMPOTENCY_KEY_MAX = 128

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_KEY = web.RequestKey("xero_token", AccessToken)
ORG_KEY = web.RequestKey("xero_org", Org)


@dataclass
class Window:
    """A fixed window counter: ``limit`` calls per ``length`` seconds from its first call."""

    limit: int
    length: float
    started: float = 0.0
    used: int = 0

    def roll(self, now: float) -> None:
        if now - self.started >= self.length:
            self.started, self.used = now, 0

    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def retry_after(self, now: float) -> float:
        return max(0.0, self.started + self.length - now)


@dataclass
class Limits:
    """Xero's per-organisation limits (and the per-app minute limit)."""

    enabled: bool = True
    minute_limit: int = 60
    day_limit: int = 5000
    concurrent_limit: int = 5
    app_minute_limit: int = 10_000
    minute_window: float = 60.0
    day_window: float = 86_400.0
    minute: dict[str, Window] = field(default_factory=dict)
    day: dict[str, Window] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    app_minute: Window | None = None
    #: 429s answered, by problem
    refused: dict[str, int] = field(default_factory=dict)

    def configure(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in (
                "enabled",
                "minute_limit",
                "day_limit",
                "concurrent_limit",
                "app_minute_limit",
                "minute_window",
                "day_window",
            ):
                raise KeyError(key)
            setattr(self, key, type(getattr(self, key))(value))
        self.reset()

    def reset(self) -> None:
        self.minute.clear()
        self.day.clear()
        self.app_minute = None

    def windows(self, tenant: str) -> tuple[Window, Window, Window]:
        minute = self.minute.setdefault(tenant, Window(self.minute_limit, self.minute_window))
        day = self.day.setdefault(tenant, Window(self.day_limit, self.day_window))
        if self.app_minute is None:
            self.app_minute = Window(self.app_minute_limit, self.minute_window)
        return minute, day, self.app_minute


@dataclass
class Accounting:
    identity: Identity
    limits: Limits
    msdate_offset: bool = True
    partial_400: bool = False
    idempotency_ttl: float = 360.0
    #: (tenant, key) → (expires, status, body)
    replies: dict[tuple[str, str], tuple[float, int, bytes]] = field(default_factory=dict)
    replays: int = 0
    requests_seen: list[dict[str, Any]] = field(default_factory=list)
    #: Accounting requests between arrival and answer (the latency switch included), and the
    #: most at once: tests and benchmarks read it to show a client keeps within 5 concurrent
    in_flight: int = 0
    most_in_flight: int = 0

    @property
    def orgs(self) -> dict[str, Org]:
        return self.identity.orgs


def _headers(minute: Window, day: Window, app: Window) -> dict[str, str]:
    return {
        "X-DayLimit-Remaining": str(day.remaining()),
        "X-MinLimit-Remaining": str(minute.remaining()),
        "X-AppMinLimit-Remaining": str(app.remaining()),
    }


def _seconds(value: float) -> str:
    # Xero sends whole seconds (RFC 9110's delay-seconds is a whole number, and clients refuse
    # "0.50"): a sub-second wait (test windows) is rounded up to 1
    return str(max(1, math.ceil(value)))


def too_many(problem: str, retry_after: float | None, headers: dict[str, str]) -> web.Response:
    extra = dict(headers)
    extra["X-Rate-Limit-Problem"] = problem
    if retry_after is not None:
        extra["Retry-After"] = _seconds(retry_after)
    return web.Response(status=429, text="", headers=extra)


def switch_too_many(request: web.Request, retry_after: float) -> web.StreamResponse:
    """The 429 the misbehaviour switch sends: Xero's minute-limit shape."""
    return too_many(
        "minute",
        retry_after,
        {
            "X-MinLimit-Remaining": "0",
            "X-DayLimit-Remaining": "4000",
            "X-AppMinLimit-Remaining": "9000",
        },
    )


def in_flight_counter(accounting: Accounting) -> Middleware:
    """Counts Accounting requests in flight; goes outermost, so that latency is in flight too.

    A request is in flight from its arrival until its answer is written. The handlers compute
    an answer without awaiting anything, so counting only around them would never see two at
    once, however many the client sent together: the count is taken, then the loop is let run
    once (the requests that arrived with this one are counted too), and the answer is written
    before the count goes down."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        accounting.in_flight += 1
        accounting.most_in_flight = max(accounting.most_in_flight, accounting.in_flight)
        try:
            await asyncio.sleep(0)
            response = await handler(request)
            if not response.prepared:
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            accounting.in_flight -= 1

    return count


def middleware(accounting: Accounting) -> Middleware:
    """Auth, tenancy and rate limits in front of every Accounting route."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        identity = accounting.identity
        token = identity.access(request.headers.get("Authorization"))
        if isinstance(token, str):
            return unauthorized(token)
        tenant = request.headers.get("xero-tenant-id", "").strip()
        if not tenant and token.custom and len(token.tenant_ids) == 1:
            tenant = token.tenant_ids[0]
        if not tenant or tenant not in token.tenant_ids or tenant not in accounting.orgs:
            return forbidden()
        request[TOKEN_KEY] = token
        request[ORG_KEY] = accounting.orgs[tenant]
        limits = accounting.limits
        if not limits.enabled:
            return await handler(request)
        now = time.monotonic()
        minute, day, app = limits.windows(tenant)
        for window in (minute, day, app):
            window.roll(now)
        problem = None
        if day.used >= day.limit:
            problem, wait = "day", day.retry_after(now)
        elif minute.used >= minute.limit:
            problem, wait = "minute", minute.retry_after(now)
        elif app.used >= app.limit:
            problem, wait = "appminute", app.retry_after(now)
        elif limits.in_flight.get(tenant, 0) >= limits.concurrent_limit:
            problem, wait = "concurrent", None
        if problem is not None:
            limits.refused[problem] = limits.refused.get(problem, 0) + 1
            return too_many(problem, wait, _headers(minute, day, app))
        for window in (minute, day, app):
            window.used += 1
        limits.in_flight[tenant] = limits.in_flight.get(tenant, 0) + 1
        try:
            response = await handler(request)
        finally:
            limits.in_flight[tenant] -= 1
        response.headers.update(_headers(minute, day, app))
        return response

    return guard


def _envelope(
    accounting: Accounting, contacts: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": "syncd sandbox",
        "DateTimeUTC": msdate(int(time.time() * 1000), with_offset=False),
        **extra,
        "Contacts": contacts,
    }


def _api_exception(number: int, kind: str, message: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"ErrorNumber": number, "Type": kind, "Message": message}, status=status
    )


def _since(value: str | None) -> int | None:
    """If-Modified-Since as epoch ms: ISO 8601 (no offset means UTC) or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


#: what ``summaryOnly=true`` leaves out: the "computation-heavy fields" of the spec's parameter
#: description (which ones is not listed anywhere found: balances and the fields Xero computes or
#: joins from other records are left out, inferred)
SUMMARY_LEFT_OUT = (
    "Balances",
    "ContactPersons",
    "ContactGroups",
    "PaymentTerms",
    "BatchPayments",
    "BrandingTheme",
    "Attachments",
    "HasAttachments",
    "Discount",
)


def summarised(contact: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in contact.items() if k not in SUMMARY_LEFT_OUT}


def _order_key(order: str) -> Callable[[dict[str, Any]], Any] | None:
    field_name, _, _direction = order.strip().partition(" ")
    if not field_name:
        return None
    return lambda c: (
        str(c.get(field_name, "")).casefold() if field_name != "UpdatedDateUTC" else c["_updated"],
        c["ContactID"],
    )


def routes(accounting: Accounting) -> web.RouteTableDef:
    table = web.RouteTableDef()

    @table.get(API_PREFIX + "/Contacts")
    async def get_contacts(request: web.Request) -> web.Response:
        org = request[ORG_KEY]
        query = request.query
        try:
            matches = parse_where(query.get("where", ""))
        except FilterError as exc:
            return _api_exception(16, "QueryParseException", str(exc))
        since = _since(request.headers.get("If-Modified-Since"))
        archived = query.get("includeArchived", "").lower() == "true"
        ids = {i.strip().lower() for i in query.get("IDs", "").split(",") if i.strip()}
        term = query.get("searchTerm", "").casefold()
        chosen = []
        for contact in org.contacts.values():
            if contact["ContactStatus"] == "ARCHIVED" and not archived and not ids:
                continue
            if since is not None and contact["_updated"] < since:
                continue
            if ids and contact["ContactID"].lower() not in ids:
                continue
            if term and not any(
                term in str(contact.get(k, "")).casefold()
                for k in ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress")
            ):
                continue
            if matches(contact):
                chosen.append(contact)
        order = query.get("order", "Name ASC")
        key = _order_key(order) or _order_key("Name ASC")
        assert key is not None
        chosen.sort(key=key, reverse=order.strip().upper().endswith("DESC"))
        page_text = query.get("page")
        extra: dict[str, Any] = {}
        if page_text is not None:
            try:
                page = max(1, int(page_text))
                size = int(query.get("pageSize") or DEFAULT_PAGE_SIZE)
            except ValueError:
                return _api_exception(
                    17, "ValidationException", "page and pageSize must be numbers"
                )
            size = min(max(1, size), MAX_PAGE_SIZE)
            extra["pagination"] = {
                "page": page,
                "pageSize": size,
                "pageCount": math.ceil(len(chosen) / size),
                "itemCount": len(chosen),
            }
            chosen = chosen[(page - 1) * size : page * size]
        summary = query.get("summaryOnly", "").lower() == "true"
        rendered = [
            render(c, page_text is not None or summary, accounting.msdate_offset) for c in chosen
        ]
        if summary:
            rendered = [summarised(c) for c in rendered]
        # orjson: a page of 1,000 contacts is ~1.5 MB of JSON, made for every listing request
        return web.Response(
            body=orjson.dumps(_envelope(accounting, rendered, **extra)),
            content_type="application/json",
            charset="utf-8",
        )

    @table.put(API_PREFIX + "/Contacts")
    async def put_contacts(request: web.Request) -> web.Response:
        return await write(accounting, request, allow_update=False)

    @table.post(API_PREFIX + "/Contacts")
    async def post_contacts(request: web.Request) -> web.Response:
        return await write(accounting, request, allow_update=True)

    return table


async def write(
    accounting: Accounting,
    request: web.Request,
    allow_update: bool,
    contact_id: str | None = None,
) -> web.Response:
    """PUT/POST ``/Contacts`` (and ``POST /Contacts/{ContactID}`` with ``contact_id``), with the
    ``Idempotency-Key`` replay."""
    org = request[ORG_KEY]
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if len(key) > IDEMPOTENCY_KEY_MAX:
            return _api_exception(
                10, "ValidationException", "Idempotency-Key must be at most 128 characters"
            )
        cached = accounting.replies.get((org.tenant_id, key))
        if cached is not None and cached[0] > time.monotonic():
            accounting.replays += 1
            return web.Response(status=cached[1], body=cached[2], content_type="application/json")
    response = await _write(accounting, request, org, allow_update, contact_id)
    if key is not None and response.body is not None:
        body = response.body if isinstance(response.body, bytes) else b""
        accounting.replies[(org.tenant_id, key)] = (
            time.monotonic() + accounting.idempotency_ttl,
            response.status,
            body,
        )
    return response


async def _write(
    accounting: Accounting,
    request: web.Request,
    org: Org,
    allow_update: bool,
    contact_id: str | None = None,
) -> web.Response:
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        return _api_exception(14, "PostDataInvalidException", "The request body is not valid JSON")
    items = body.get("Contacts") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return _api_exception(14, "PostDataInvalidException", "Expected a Contacts array")
    if contact_id is not None:
        # updateContact: the path names the contact; the body holds that one contact
        if not items:
            return _api_exception(14, "PostDataInvalidException", "Expected a Contacts array")
        items = [{**items[0], "ContactID": contact_id}]
    summarize = request.query.get("summarizeErrors", "true").lower() != "false"
    accounting.requests_seen.append(
        {"method": request.method, "summarize": summarize, "count": len(items)}
    )
    if summarize:
        # all or nothing: try on a copy, keep it only if every element passed
        trial = Org(org.tenant_id, org.name, org.clock, dict(org.contacts), org.last_stamp)
        trial.website_quirk = org.website_quirk
        refused = []
        for item in items:
            _, errors = trial.save(item, allow_update)
            if errors:
                refused.append(echo(item, errors, item.get("ContactID") if allow_update else None))
        if refused:
            org.read_only_received += trial.read_only_received
            return web.json_response(
                {
                    "ErrorNumber": 10,
                    "Type": "ValidationException",
                    "Message": "A validation exception occurred",
                    "Elements": refused,
                },
                status=400,
            )
        items_saved = []
        for item in items:
            stored, _ = org.save(item, allow_update)
            assert stored is not None
            items_saved.append(_ok(stored, accounting))
        return web.json_response(_envelope(accounting, items_saved))
    elements = []
    refused = []
    for item in items:
        stored, errors = org.save(item, allow_update)
        if stored is None:
            element = echo(item, errors, item.get("ContactID") if allow_update else None)
            refused.append(element)
            elements.append(element)
        else:
            elements.append(_ok(stored, accounting))
    if accounting.partial_400 and refused:
        return web.json_response(
            {
                "ErrorNumber": 10,
                "Type": "ValidationException",
                "Message": "A validation exception occurred",
                "Elements": refused,
            },
            status=400,
        )
    return web.json_response(_envelope(accounting, elements))


def _ok(stored: dict[str, Any], accounting: Accounting) -> dict[str, Any]:
    element = render(stored, paged=True, with_offset=accounting.msdate_offset)
    element["StatusAttributeString"] = "OK"
    return element

"""``syncd sandbox salesflare``: an emulator of the part of Salesflare's API the connector uses.

Routes (as Salesflare names them): ``GET /me``; ``GET|POST /contacts``, ``GET|PUT|DELETE
/contacts/{id}``; ``GET|POST /accounts``, ``GET /accounts/{id}``; ``GET /customfields/contacts``.
Every route needs ``Authorization: Bearer <api key>`` (the key is ``sandbox-api-key`` unless
``options["api_key"]`` says otherwise). Errors use Salesflare's Hapi/Boom envelope.

Options (``syncd sandbox salesflare --seed N`` plus what a test passes in ``options``):

* ``count``: contacts to seed when a seed is given (300);
* ``api_key``: the key to accept;
* ``rate_limit`` / ``rate_window``: at most ``rate_limit`` requests per ``rate_window`` seconds
  (300 per 60 by default; 0 turns it off). Salesflare publishes no numbers (vendors.md §2.1), so
  these are assumptions. Over the limit it answers 429 in its envelope **without Retry-After**;
  the ``burst_429`` switch answers the same way;
* ``max_batch``: the most contacts one ``POST /contacts`` takes (100; undocumented, assumed);
* ``sort_keys``: the ``order_by`` keys accepted (others are refused with a 400);
* ``page_cap``: silently answer at most this many contacts per page, whatever ``limit`` asks
  (0, off). No maximum is documented; this emulates the alternative of an undocumented cap;
* ``custom_fields``: extra contact custom field api names to define.

Tests reach the state directly as ``app[STATE]`` (a :class:`SalesflareState`).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from syncd.sandbox import install_switches, option_list
from syncd_salesflare.sandbox_seed import install_custom_fields, seed
from syncd_salesflare.sandbox_store import (
    DEFAULT_SORT_KEYS,
    Invalid,
    NotFound,
    SalesflareState,
    parse_date,
)

STATE = web.AppKey("salesflare_state", SalesflareState)
DEFAULT_API_KEY = "sandbox-api-key"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LIST_PARAMS = frozenset(
    {
        "id", "name", "email", "phone_number", "domain", "modification_after",
        "modification_before", "creation_after", "creation_before", "account", "tag",
        "tag.name", "position.role", "address.country", "address.state_region", "address.city",
        "includeArchived", "search", "type", "limit", "offset", "custom", "order_by", "export",
        "q", "details",
    }
)  # fmt: skip
ACCOUNT_PARAMS = frozenset(
    {
        "id", "name", "search", "domain", "limit", "offset", "order_by", "details", "min_size",
        "hotness", "creation_after", "tag.name",
    }
)  # fmt: skip
CONTACT_TYPES = ("customer", "mycontacts")
#: the 5xx Salesflare's spec lists (vendors.md §2.1): 500 only
DEFAULT_ERROR_STATUSES = {"500": 1.0}
_BOOM_ERRORS = {
    500: ("Internal Server Error", "An internal server error occurred"),
    502: ("Bad Gateway", "Bad Gateway"),
    503: ("Service Unavailable", "Service Unavailable"),
    504: ("Gateway Timeout", "Gateway Timeout"),
}


def boom(status: int, error: str, message: str) -> web.Response:
    return web.json_response(
        {"statusCode": status, "error": error, "message": message}, status=status
    )


def too_many(request: web.Request, retry_after: float) -> web.StreamResponse:
    # Salesflare sends no Retry-After (vendors.md §2.1): the switch's value is deliberately unused
    return boom(429, "Too Many Requests", "Rate limit exceeded")


def fault(request: web.Request, status: int) -> web.StreamResponse:
    """An ``error_rate`` fault as Hapi answers it (Boom hides a 500's own message)."""
    error, message = _BOOM_ERRORS.get(status, ("Internal Server Error", "An internal error"))
    return boom(status, error, message)


def query_invalid(key: str, tail: str, constraint: str) -> web.Response:
    body = Invalid([key], tail, "any", constraint, source="query").body()
    return web.json_response(body, status=400)


class _QueryError(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _int_param(request: web.Request, key: str, default: int, minimum: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise _QueryError(query_invalid(key, "must be a number", "base")) from None
    if value < minimum:
        raise _QueryError(query_invalid(key, f"must be greater than or equal to {minimum}", "min"))
    return value


def _bool_param(request: web.Request, key: str) -> bool:
    raw = request.query.get(key, "false").lower()
    if raw not in ("true", "false"):
        raise _QueryError(query_invalid(key, "must be a boolean", "base"))
    return raw == "true"


def _date_param(request: web.Request, key: str) -> datetime | None:
    raw = request.query.get(key)
    if raw is None:
        return None
    parsed = parse_date(raw)
    if parsed is None:
        raise _QueryError(query_invalid(key, "must be a valid date", "base"))
    return parsed


def _check_unknown(request: web.Request, allowed: frozenset[str]) -> None:
    for key in request.query:
        if key not in allowed:
            raise _QueryError(query_invalid(key, "is not allowed", "unknown"))


async def _payload(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        raise _QueryError(boom(400, "Bad Request", "Invalid request payload JSON format")) from None


def make_app(
    seed_value: int | None = None, options: dict[str, Any] | None = None
) -> web.Application:
    options = dict(options or {})
    state = SalesflareState(
        max_batch=int(options.get("max_batch", 100)),
        sort_keys=tuple(option_list(options.get("sort_keys", DEFAULT_SORT_KEYS))),
    )
    install_custom_fields(state, option_list(options.get("custom_fields")))
    if seed_value is not None:
        seed(state, seed_value, int(options.get("count", 300)))
    api_key = str(options.get("api_key", DEFAULT_API_KEY))
    page_cap = int(options.get("page_cap", 0))
    rate_limit = int(options.get("rate_limit", 300))
    rate_window = float(options.get("rate_window", 60.0))
    recent: deque[float] = deque()

    @web.middleware
    async def salesflare_rules(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header:
            return boom(401, "Unauthorized", "Missing authentication")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != api_key:
            return boom(401, "Unauthorized", "Bad token")
        if rate_limit > 0:
            now = time.monotonic()
            while recent and recent[0] <= now - rate_window:
                recent.popleft()
            if len(recent) >= rate_limit:
                return too_many(request, 0)
            recent.append(now)
        try:
            return await handler(request)
        except _QueryError as exc:
            return exc.response
        except Invalid as exc:
            return web.json_response(exc.body(), status=400)
        except NotFound as exc:
            return boom(404, "Not Found", str(exc))
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            # Hapi routes by method and path together: a wrong method is a 404 too
            return boom(404, "Not Found", "Not Found")

    app = web.Application(middlewares=[salesflare_rules])
    app[STATE] = state
    # the switches' middleware runs first: latency, 5xx, drops and 429 bursts precede the rules
    install_switches(app, too_many=too_many, fault=fault, error_statuses=DEFAULT_ERROR_STATUSES)
    app.middlewares.reverse()

    @web.middleware
    async def count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
        # outermost, so that the latency switch counts as time in flight
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            return await handler(request)
        finally:
            state.in_flight -= 1

    app.middlewares.insert(0, count_in_flight)

    routes = web.RouteTableDef()

    @routes.get("/me")
    async def me(request: web.Request) -> web.Response:
        return web.json_response({**state.user, "team": {"id": 1, "name": "Sandbox team"}})

    @routes.get("/contacts")
    async def list_contacts(request: web.Request) -> web.Response:
        return await contacts_listing(request, mine=False)

    @routes.get("/me/contacts")
    async def my_contacts(request: web.Request) -> web.Response:
        return await contacts_listing(request, mine=True)

    async def contacts_listing(request: web.Request, mine: bool) -> web.Response:
        _check_unknown(request, LIST_PARAMS)
        limit = _int_param(request, "limit", 20, 1)
        if page_cap:
            limit = min(limit, page_cap)
        offset = _int_param(request, "offset", 0, 0)
        include_archived = _bool_param(request, "includeArchived")
        order_by = request.query.getall("order_by", [])
        for i, key in enumerate(order_by):
            if key.split()[0] not in state.sort_keys:
                options_text = ", ".join(state.sort_keys)
                raise Invalid(
                    ["order_by", i], f"must be one of [{options_text}]", "any", "only", "query"
                )
        records = _filter_contacts(state, request, include_archived)
        if mine:
            # the current user's contacts: the ones they own (every contact the sandbox makes is
            # owned by its one user unless ``owner`` says otherwise)
            records = [c for c in records if c.get("owner") in (None, state.user["id"])]
        page = state.sort(records, order_by)[offset : offset + limit]
        body = [state.render_contact(c) for c in page]
        if state.after_page is not None:
            state.after_page(state)
        return web.json_response(body)

    @routes.post("/contacts")
    async def create_contacts(request: web.Request) -> web.Response:
        _check_unknown(request, frozenset({"force"}))
        force = request.query.get("force", "true").lower() != "false"
        payload = await _payload(request)
        items = payload if isinstance(payload, list) else [payload]
        if isinstance(payload, list) and len(payload) > state.max_batch:
            raise Invalid([], f"must contain less than or equal to {state.max_batch} items",
                          "array", "max")  # fmt: skip
        prefix = isinstance(payload, list)
        values = [
            state.validate_contact(item, [i] if prefix else [], creating=True)
            for i, item in enumerate(items)
        ]
        for item in values:  # all refused before any is made
            state.check_account(item.get("account"))
        index = state.email_index()
        ids = [{"id": state.create_contact(v, force=force, index=index)} for v in values]
        # "if just an object or an array with 1 item you get an object back"
        return web.json_response(ids if isinstance(payload, list) and len(ids) > 1 else ids[0])

    @routes.get("/contacts/{contact_id}")
    async def get_contact(request: web.Request) -> web.Response:
        contact = state.contacts.get(_id(request, "contact_id"))
        if contact is None:
            raise NotFound("Not Found")
        return web.json_response(state.render_contact(contact))

    @routes.put("/contacts/{contact_id}")
    async def update_contact(request: web.Request) -> web.Response:
        _check_unknown(request, frozenset({"force"}))
        contact_id = _id(request, "contact_id")
        if contact_id not in state.contacts:
            raise NotFound("Not Found")
        values = state.validate_contact(await _payload(request), [], creating=False)
        state.update_contact(contact_id, values)
        return web.json_response({"id": contact_id})

    @routes.delete("/contacts/{contact_id}")
    async def delete_contact(request: web.Request) -> web.Response:
        contact_id = _id(request, "contact_id")
        if state.contacts.pop(contact_id, None) is None:
            raise NotFound("Not Found")
        return web.json_response({"id": contact_id})

    @routes.get("/accounts")
    async def list_accounts(request: web.Request) -> web.Response:
        _check_unknown(request, ACCOUNT_PARAMS)
        limit = _int_param(request, "limit", 10, 1)  # "default 10" (Salesflare's spec)
        offset = _int_param(request, "offset", 0, 0)
        _bool_param(request, "details")  # accepted; every answer carries the details
        min_size = _int_param(request, "min_size", 0, 0)
        hotness = _int_param(request, "hotness", 0, 0)
        created_after = _date_param(request, "creation_after")
        tag_names = {t.casefold() for t in request.query.getall("tag.name", [])}
        accounts = list(state.accounts.values())
        if min_size:
            accounts = [a for a in accounts if (a.get("size") or 0) >= min_size]
        if hotness:
            accounts = [a for a in accounts if a.get("hotness") == hotness]
        if created_after is not None:
            accounts = [
                a
                for a in accounts
                if (moment := parse_date(a.get("creation_date"))) and moment > created_after
            ]
        if tag_names:
            accounts = [
                a
                for a in accounts
                if tag_names & {str(t.get("name", "")).casefold() for t in a.get("tags") or []}
            ]
        for key in ("name", "search"):
            wanted = request.query.get(key)
            if wanted:
                accounts = [
                    a for a in accounts if wanted.casefold() in (a["name"] or "").casefold()
                ]
        ids = {int(i) for i in request.query.getall("id", []) if i.isdigit()}
        if ids:
            accounts = [a for a in accounts if a["id"] in ids]
        accounts = state.sort(accounts, request.query.getall("order_by", []))
        page = accounts[offset : offset + limit]
        return web.json_response([state.render_account(a) for a in page])

    @routes.post("/accounts")
    async def create_account(request: web.Request) -> web.Response:
        payload = await _payload(request)
        if not isinstance(payload, dict):
            raise Invalid([], "must be of type object", "object.base", "type")
        name = payload.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Invalid(["name"], "is required", "any", "required")
        return web.json_response({"id": state.create_account(payload)})

    @routes.get("/accounts/{account_id}")
    async def get_account(request: web.Request) -> web.Response:
        account = state.accounts.get(_id(request, "account_id"))
        if account is None:
            raise NotFound("Not Found")
        return web.json_response(state.render_account(account))

    @routes.get("/customfields/contacts")
    async def custom_fields(request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"id": n, "name": f.name, "api_field": f.api_field, "type": {"name": f.type}}
                for n, f in enumerate(state.custom_fields.values(), start=1)
            ]
        )

    app.add_routes(routes)
    return app


def _id(request: web.Request, key: str) -> int:
    raw = request.match_info[key]
    if not raw.isdigit():
        raise Invalid([key], "must be a number", "number", "base", "params")
    return int(raw)


def _filter_contacts(
    state: SalesflareState, request: web.Request, include_archived: bool
) -> list[dict[str, Any]]:
    query = request.query
    records = [c for c in state.contacts.values() if include_archived or not c.get("archived")]
    ids = {int(i) for i in query.getall("id", []) if i.isdigit()}
    if ids:
        records = [c for c in records if c["id"] in ids]
    email = query.get("email")
    if email is not None:
        wanted = email.strip().lower()
        records = [c for c in records if c.get("email") == wanted]
    for key in ("name", "search"):
        text = query.get(key)
        if text:
            folded = text.casefold()
            records = [
                c
                for c in records
                if folded in (c.get("name") or "").casefold()
                or (key == "search" and folded in (c.get("email") or ""))
            ]
    accounts = {int(i) for i in query.getall("account", []) if i.isdigit()}
    if accounts:
        records = [c for c in records if c.get("account") in accounts]
    records = _documented_filters(state, query, records)
    for key, field_name, after in (
        ("modification_after", "modification_date", True),
        ("modification_before", "modification_date", False),
        ("creation_after", "creation_date", True),
        ("creation_before", "creation_date", False),
    ):
        bound = _date_param(request, key)
        if bound is not None:
            records = [
                c
                for c in records
                if (moment := parse_date(c.get(field_name))) is not None
                and (moment > bound if after else moment < bound)
            ]
    return records


def _folded(values: Any) -> set[str]:
    return {str(v).strip().casefold() for v in values if str(v).strip()}


def _digits(text: Any) -> str:
    return "".join(ch for ch in str(text or "") if ch.isdigit())


def _documented_filters(
    state: SalesflareState, query: Any, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The filters of Salesflare's spec beyond id/email/name/account/dates (vendors.md §2.3, §6).

    How each matches is not documented; emulated (and said in the README): ``phone_number`` by its
    digits, inside any of the contact's numbers; ``domain``, ``position.role`` and the address
    filters case-insensitively and exactly, any of the repeated values; ``tag`` by tag id and
    ``tag.name`` by name, any of the values; ``type=customer`` the contacts linked to an account,
    ``type=mycontacts`` the ones the current user owns."""
    phone = query.get("phone_number")
    if phone is not None:
        wanted = _digits(phone)
        if not wanted:
            raise Invalid(["phone_number"], "must contain a number", "string", "base", "query")

        def numbers(c: dict[str, Any]) -> list[str]:
            held = [c.get(k) for k in ("phone_number", "mobile_phone_number",
                                       "home_phone_number", "fax_number")]  # fmt: skip
            held += [p.get("number") for p in c.get("phone_numbers") or [] if not p.get("archived")]
            return [_digits(n) for n in held if n]

        records = [c for c in records if any(wanted in n for n in numbers(c))]
    domains = _folded(query.getall("domain", []))
    if domains:
        records = [c for c in records if str(c.get("domain") or "").casefold() in domains]
    tag_ids = set()
    for raw in query.getall("tag", []):
        if not raw.isdigit():
            raise Invalid(["tag"], "must be a number", "number", "base", "query")
        tag_ids.add(int(raw))
    if tag_ids:
        records = [c for c in records if tag_ids & {t.get("id") for t in c.get("tags") or []}]
    tag_names = _folded(query.getall("tag.name", []))
    if tag_names:
        records = [
            c
            for c in records
            if tag_names & {str(t.get("name", "")).casefold() for t in c.get("tags") or []}
        ]
    roles = _folded(query.getall("position.role", []))
    if roles:
        records = [
            c
            for c in records
            if roles
            & {str(p.get("role") or "").casefold() for p in c.get("positions") or []
               if not p.get("archived")}
        ]  # fmt: skip
    for key, part in (
        ("address.city", "city"),
        ("address.country", "country"),
        ("address.state_region", "state_region"),
    ):
        wanted_values = _folded(query.getall(key, []))
        if wanted_values:
            records = [
                c
                for c in records
                if wanted_values
                & {str(a.get(part) or "").casefold() for a in c.get("addresses") or []
                   if not a.get("archived")}
            ]  # fmt: skip
    kind = query.get("type")
    if kind is not None:
        if kind not in CONTACT_TYPES:
            raise Invalid(
                ["type"], f"must be one of [{', '.join(CONTACT_TYPES)}]", "any", "only", "query"
            )
        if kind == "customer":
            records = [c for c in records if c.get("account") in state.accounts]
        else:
            records = [c for c in records if c.get("owner") in (None, state.user["id"])]
    return records

"""An emulator of Salesfire's customer-list endpoint (``syncd sandbox salesfire``).

Salesfire's API part, as the help page describes it (vendors.md §4):

* ``POST /client/{site}/customers/{list}`` with one JSON customer, signed with ``X-Signature`` =
  HMAC-SHA256 of the raw body keyed by the list's secret. No way to read customers back: a GET on
  that path is 405, as on any POST-only route.
* The validation rules of the help page, answered with 422 and messages.

What the page leaves open is emulated as the most likely behaviour, and said so here (the plugin
README lists the same):

* The signature is checked over the raw bytes received, before anything else about the customer.
  Hex by default (``options["signature_encoding"]``: ``hex``, ``base64`` or ``any``). A missing or
  wrong signature is a 401 ``{"message": "Invalid signature."}``.
* Error bodies have Laravel's shape (``{"message": "The given data was invalid.", "errors":
  {"email": ["..."]}}``); success is 201 (created) or 200 (updated, or skipped) with a message.
* An array of customers is refused: only the one-customer body is documented.
* Attribute values longer than 255 characters are refused (a guess at a database column limit;
  the connector does not pre-check it, so this shows Salesfire's own reason reaching the user).
* ``update_existing``, by default as the help page words it: "update_existing setting this to
  true skips the existing profile" (and "If you choose to update existing profiles, the system
  will skip duplicates"): ``true`` skips a customer the list already has (found by email, else
  by mobile number); ``false`` or no flag updates it. The option ``update_existing_means``
  (``skip``, the default, or ``update``) gives the other reading, the flag's name: ``true``
  updates, ``false`` or no flag skips. An update replaces the given keys, keeps missing ones,
  merges attributes and clears a null attribute.
* ``mobile_number`` takes what the page's own example shows (``"123456789"``): digits, with an
  optional leading ``+`` and spaces, dots, dashes or brackets between them, 6 to 15 digits in all
  (the exact rule is not documented). A customer is found again by the digits of its number.
* ``error_rate`` faults: 500 and 503 in Laravel's JSON (``{"message": "Server Error"}``,
  ``{"message": "Service Unavailable"}``), 502 and 504 as the nginx page in front of it answers
  (HTML), in equal shares (inferred: Salesfire documents no error bodies).
* A fixed-window rate limit per site (``options["rate_limit"]`` requests per
  ``options["rate_window"]`` seconds, default 120 per 60; 0 turns it off), answered like Laravel's
  throttle: 429 ``{"message": "Too Many Attempts."}`` with ``Retry-After``, ``X-RateLimit-Limit``
  and ``X-RateLimit-Remaining``.

Sandbox-only endpoints, **not part of Salesfire's API** (Salesfire shows these in its dashboard's
Monitoring tab): ``GET /_sandbox/customers?list=LIST[&site=SITE]`` (what the list holds) and
``GET /_sandbox/requests`` (the last requests with their raw bodies and signatures), beside the
switches every sandbox has (``/_sandbox/switches``, ``/_sandbox/calls``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from syncd.sandbox import install_switches, option_list

DEFAULT_SITE = "demo-site"
DEFAULT_LISTS = ("newsletter", "customers")
DEFAULT_SECRET = "sandbox-secret"
SANDBOX_ONLY = "sandbox only: not part of Salesfire's API"

TYPES = ("MARKETING", "TRANSACTIONAL")
CHANNELS = ("EMAIL", "SMS")
LONGEST_ATTRIBUTE = 255

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")
_PHONE = re.compile(r"^\+?[0-9](?:[0-9 ().-]*[0-9])?$")
UPDATE_READINGS = ("skip", "update")
#: Laravel's own JSON for its 5xx, and nginx's page for the gateway errors in front of it
DEFAULT_ERROR_STATUSES = {"500": 1.0, "502": 1.0, "503": 1.0, "504": 1.0}
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_DATE_FORMATS = (
    # 04-09-1994, 04/09/1994, 04091994, 4-9-94, 4/9/94, 1994-09-04, 1994/09/04 (day first)
    (re.compile(r"^(?P<d>\d{2})(?P<s>[-/])(?P<m>\d{2})(?P=s)(?P<y>\d{4})$"), 0),
    (re.compile(r"^(?P<d>\d{2})(?P<m>\d{2})(?P<y>\d{4})$"), 0),
    (re.compile(r"^(?P<d>\d{1,2})(?P<s>[-/])(?P<m>\d{1,2})(?P=s)(?P<y>\d{2})$"), 2000),
    (re.compile(r"^(?P<y>\d{4})(?P<s>[-/])(?P<m>\d{2})(?P=s)(?P<d>\d{2})$"), 0),
)

STATE_KEY = web.AppKey("salesfire_state", object)


@dataclass
class Customer:
    id: int
    email: str | None
    mobile_number: str | None
    types: list[str]
    channels: list[str]
    attributes: dict[str, str | None]
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CustomerList:
    customers: dict[int, Customer] = field(default_factory=dict)
    by_email: dict[str, int] = field(default_factory=dict)
    by_mobile: dict[str, int] = field(default_factory=dict)

    def find(self, email: str | None, mobile: str | None) -> Customer | None:
        found = self.by_email.get(email.lower()) if email else None
        if found is None and mobile:
            found = self.by_mobile.get(phone_digits(mobile))
        return self.customers.get(found) if found is not None else None

    def index(self, customer: Customer) -> None:
        if customer.email:
            self.by_email[customer.email.lower()] = customer.id
        if customer.mobile_number:
            self.by_mobile[phone_digits(customer.mobile_number)] = customer.id


@dataclass
class SalesfireState:
    site: str
    secret: bytes
    signature_encoding: str
    rate_limit: int
    rate_window: float
    lists: dict[str, CustomerList]
    requests: deque[dict[str, Any]]
    #: how ``update_existing: true`` is read: ``skip`` (the help page's words) or ``update``
    update_existing_means: str = "skip"
    next_id: int = 1
    window_started: float = 0.0
    window_count: int = 0
    in_flight: int = 0
    most_in_flight: int = 0

    def new_id(self) -> int:
        value, self.next_id = self.next_id, self.next_id + 1
        return value


def state(app: web.Application) -> SalesfireState:
    value = app[STATE_KEY]
    assert isinstance(value, SalesfireState)
    return value


def create_app(seed: int | None = None, options: dict[str, Any] | None = None) -> web.Application:
    """The emulator. ``options``: ``site``, ``lists`` (comma-separated), ``secret``,
    ``signature_encoding`` (hex|base64|any), ``rate_limit``, ``rate_window`` (seconds), ``count``
    (customers seeded per list when ``seed`` is given, default 300), ``keep_requests``,
    ``update_existing_means`` (skip|update: what ``update_existing: true`` does)."""
    options = dict(options or {})
    names = option_list(options.get("lists") or DEFAULT_LISTS)
    sandbox = SalesfireState(
        site=str(options.get("site") or DEFAULT_SITE),
        secret=str(options.get("secret") or DEFAULT_SECRET).encode("utf-8"),
        signature_encoding=str(options.get("signature_encoding") or "hex").lower(),
        rate_limit=int(options.get("rate_limit", 120)),
        rate_window=float(options.get("rate_window", 60.0)),
        lists={name: CustomerList() for name in names if name},
        requests=deque(maxlen=int(options.get("keep_requests", 1000))),
        update_existing_means=str(options.get("update_existing_means") or "skip").lower(),
    )
    if sandbox.update_existing_means not in UPDATE_READINGS:
        raise ValueError("update_existing_means must be skip or update")
    if seed is not None:
        count = int(options.get("count", 300))
        for offset, customers in enumerate(sandbox.lists.values()):
            _seed(sandbox, customers, random.Random(seed + offset), count)

    app = web.Application(client_max_size=1024**2)
    app[STATE_KEY] = sandbox
    install_switches(app, too_many=too_many, fault=fault, error_statuses=DEFAULT_ERROR_STATUSES)
    app.router.add_post("/client/{site}/customers/{list}", push_customer)
    app.router.add_get("/_sandbox/customers", inspect_customers)
    app.router.add_get("/_sandbox/requests", inspect_requests)
    return app


# --- Salesfire's endpoint --------------------------------------------------------------------


def too_many(request: web.Request, retry_after: float) -> web.StreamResponse:
    """A 429 as Laravel's throttle middleware answers it (inferred: the shape is undocumented)."""
    limit = state(request.app).rate_limit
    seconds = str(int(retry_after)) if retry_after >= 1 else f"{retry_after:g}"
    return web.json_response(
        {"message": "Too Many Attempts."},
        status=429,
        headers={
            "Retry-After": seconds,
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
        },
    )


def fault(request: web.Request, status: int) -> web.StreamResponse:
    """An ``error_rate`` fault: Laravel's JSON for 500/503, nginx's page for 502/504."""
    if status in (502, 504):
        reason = "Bad Gateway" if status == 502 else "Gateway Time-out"
        page = _GATEWAY_PAGE.format(status=status, reason=reason)
        return web.Response(status=status, text=page, content_type="text/html")
    message = "Service Unavailable" if status == 503 else "Server Error"
    return web.json_response({"message": message}, status=status)


async def push_customer(request: web.Request) -> web.StreamResponse:
    sandbox = state(request.app)
    sandbox.in_flight += 1
    sandbox.most_in_flight = max(sandbox.most_in_flight, sandbox.in_flight)
    try:
        raw = await request.read()
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(),
            "path": request.path,
            "signature": request.headers.get("X-Signature"),
            "content_type": request.headers.get("Content-Type"),
            "body_base64": base64.b64encode(raw).decode("ascii"),
        }
        response = _answer(request, sandbox, raw)
        entry["status"] = response.status
        sandbox.requests.append(entry)
        return response
    finally:
        sandbox.in_flight -= 1


def _answer(request: web.Request, sandbox: SalesfireState, raw: bytes) -> web.StreamResponse:
    site, list_name = request.match_info["site"], request.match_info["list"]
    customers = sandbox.lists.get(list_name)
    if site != sandbox.site or customers is None:
        return web.json_response({"message": "Not Found."}, status=404)
    remaining = _take_rate(sandbox)
    if remaining is None:
        wait = sandbox.window_started + sandbox.rate_window - time.monotonic()
        return too_many(request, max(0.01, wait))
    headers = {}
    if sandbox.rate_limit:
        headers = {
            "X-RateLimit-Limit": str(sandbox.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
        }
    if not _signature_ok(sandbox, raw, request.headers.get("X-Signature")):
        return web.json_response({"message": "Invalid signature."}, status=401, headers=headers)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return web.json_response({"message": "Malformed JSON."}, status=400, headers=headers)
    errors = validate(body)
    if errors:
        return web.json_response(
            {"message": "The given data was invalid.", "errors": errors},
            status=422,
            headers=headers,
        )
    message, status = _upsert(sandbox, customers, body)
    return web.json_response({"success": True, "message": message}, status=status, headers=headers)


def _take_rate(sandbox: SalesfireState) -> int | None:
    """Count a request against the site's window; ``None`` when the window is spent."""
    if not sandbox.rate_limit:
        return 0
    now = time.monotonic()
    if now - sandbox.window_started >= sandbox.rate_window:
        sandbox.window_started, sandbox.window_count = now, 0
    if sandbox.window_count >= sandbox.rate_limit:
        return None
    sandbox.window_count += 1
    return sandbox.rate_limit - sandbox.window_count


def _signature_ok(sandbox: SalesfireState, raw: bytes, given: str | None) -> bool:
    if not given:
        return False
    digest = hmac.new(sandbox.secret, raw, hashlib.sha256).digest()
    given = given.strip()
    if sandbox.signature_encoding in ("hex", "any") and hmac.compare_digest(
        given.lower().encode(), digest.hex().encode()
    ):
        return True
    if sandbox.signature_encoding in ("base64", "any"):
        return hmac.compare_digest(given.encode(), base64.b64encode(digest))
    return False


def validate(body: Any) -> dict[str, list[str]]:
    """Salesfire's rules as the help page lists them, with Laravel-style messages."""
    if not isinstance(body, dict):
        return {"customer": ["The request body must be a single customer object."]}
    errors: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    email, mobile = body.get("email"), body.get("mobile_number")
    if email in (None, "") and mobile in (None, ""):
        add("email", "The email field is required when mobile number is not present.")
        add("mobile_number", "The mobile number field is required when email is not present.")
    if email not in (None, "") and not (isinstance(email, str) and _EMAIL.match(email)):
        add("email", "The email must be a valid email address.")
    if mobile not in (None, "") and not (isinstance(mobile, str) and _is_phone(mobile)):
        add("mobile_number", "The mobile number format is invalid.")
    for key, allowed in (("types", TYPES), ("channels", CHANNELS)):
        values = body.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            add(key, f"The {key} must be an array.")
            continue
        for index, value in enumerate(values):
            if not isinstance(value, str):
                add(f"{key}.{index}", f"The {key}.{index} must be a string.")
            elif value != value.upper():
                add(f"{key}.{index}", f"The {key}.{index} must be uppercase.")
            elif value not in allowed:
                add(f"{key}.{index}", f"The selected {key}.{index} is invalid.")
    if "update_existing" in body and not isinstance(body["update_existing"], bool):
        add("update_existing", "The update existing field must be true or false.")
    attributes = body.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        add("attributes", "The attributes must be an object.")
    elif attributes:
        for key, value in attributes.items():
            if not _ATTRIBUTE_KEY.match(key):
                add(
                    f"attributes.{key}",
                    f"The attribute key {key} must be lowercase snake_case starting with a letter.",
                )
            elif value is not None and not isinstance(value, str):
                add(f"attributes.{key}", f"The attributes.{key} must be a string or null.")
            elif value is not None and len(value) > LONGEST_ATTRIBUTE:
                add(
                    f"attributes.{key}",
                    f"The attributes.{key} may not be greater than {LONGEST_ATTRIBUTE} characters.",
                )
            elif key == "date_of_birth" and value is not None and not _is_date(value):
                add("attributes.date_of_birth", "The attributes.date of birth is not a valid date.")
    return errors


def _is_phone(text: str) -> bool:
    return bool(_PHONE.match(text.strip())) and 6 <= len(phone_digits(text)) <= 15


def phone_digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _is_date(text: str) -> bool:
    for pattern, century in _DATE_FORMATS:
        match = pattern.match(text)
        if match:
            try:
                date(int(match["y"]) + century, int(match["m"]), int(match["d"]))
            except ValueError:
                return False
            return True
    return False


def _upsert(
    sandbox: SalesfireState, customers: CustomerList, body: dict[str, Any]
) -> tuple[str, int]:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    email, mobile = body.get("email") or None, body.get("mobile_number") or None
    existing = customers.find(email, mobile)
    if existing is not None:
        flag = bool(body.get("update_existing", False))
        updates = flag if sandbox.update_existing_means == "update" else not flag
        if not updates:
            return "Customer already exists; skipped.", 200
        if email:
            existing.email = email
        if mobile:
            existing.mobile_number = mobile
        if "types" in body:
            existing.types = list(body["types"])
        if "channels" in body:
            existing.channels = list(body["channels"])
        existing.attributes.update(body.get("attributes") or {})
        existing.updated_at = now
        customers.index(existing)
        return "Customer updated.", 200
    customer = Customer(
        id=sandbox.new_id(),
        email=email,
        mobile_number=mobile,
        types=list(body.get("types") or []),
        channels=list(body.get("channels") or []),
        attributes=dict(body.get("attributes") or {}),
        created_at=now,
        updated_at=now,
    )
    customers.customers[customer.id] = customer
    customers.index(customer)
    return "Customer created.", 201


# --- sandbox-only inspection -----------------------------------------------------------------


async def inspect_customers(request: web.Request) -> web.Response:
    sandbox = state(request.app)
    list_name = request.query.get("list") or next(iter(sandbox.lists), "")
    customers = sandbox.lists.get(list_name)
    if request.query.get("site", sandbox.site) != sandbox.site or customers is None:
        return web.json_response(
            {"error": f"no list {list_name!r}", "note": SANDBOX_ONLY}, status=404
        )
    return web.json_response(
        {
            "note": SANDBOX_ONLY,
            "site": sandbox.site,
            "list": list_name,
            "count": len(customers.customers),
            "customers": [c.public() for c in customers.customers.values()],
        }
    )


async def inspect_requests(request: web.Request) -> web.Response:
    sandbox = state(request.app)
    return web.json_response(
        {
            "note": SANDBOX_ONLY,
            "most_in_flight": sandbox.most_in_flight,
            "requests": list(sandbox.requests),
        }
    )


# --- seeded data -----------------------------------------------------------------------------

_FIRST = (
    "Olivia", "Amelia", "Isla", "Zoë", "Siobhán", "Aoife", "Noah", "Oliver", "George", "Jürgen",
    "José", "Łukasz", "Mohammed", "Priya", "Chloé", "Björn", "Seán", "Anaïs", "Ngozi", "Mei",
)  # fmt: skip
_LAST = (
    "Smith", "Jones", "Taylor", "Brown", "O'Brien", "Nguyễn", "Müller", "García", "Kowalski",
    "Patel", "Ó Súilleabháin", "Williams", "Davies", "Evans", "Wilson", "Thomas", "Roberts",
)  # fmt: skip
_DOMAINS = ("example.com", "example.co.uk", "mail.example.org", "shop.example.net")


def _seed(sandbox: SalesfireState, customers: CustomerList, rng: random.Random, count: int) -> None:
    """Customers already in the list: some without email, repeated names, unicode, long values."""
    stamp = datetime(2026, 1, 5, 9, 30, tzinfo=UTC).isoformat()
    for number in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email: str | None = f"{_ascii(first)}.{_ascii(last)}{number}@{rng.choice(_DOMAINS)}"
        mobile: str | None = f"+4477009{number:05d}" if rng.random() < 0.5 else None
        if rng.random() < 0.1:
            email, mobile = None, mobile or f"+4477009{number:05d}"  # mobile-only customers
        attributes: dict[str, str | None] = {"name": f"{first} {last}"}
        if rng.random() < 0.3:
            attributes["date_of_birth"] = (
                f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            )
        if rng.random() < 0.05:
            attributes["notes"] = ("Prefers weekend deliveries; " * 9)[:LONGEST_ATTRIBUTE]
        channels = ["EMAIL"] if email else []
        if mobile:
            channels.append("SMS")
        customer = Customer(
            id=sandbox.new_id(),
            email=email,
            mobile_number=mobile,
            types=["MARKETING"] if rng.random() < 0.8 else ["MARKETING", "TRANSACTIONAL"],
            channels=channels,
            attributes=attributes,
            created_at=stamp,
            updated_at=stamp,
        )
        customers.customers[customer.id] = customer
        customers.index(customer)


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", plain.lower()) or "x"

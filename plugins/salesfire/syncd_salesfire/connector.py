"""The ``salesfire`` connector: push customers into one Salesfire list, signed, write-only.

Salesfire documents a single endpoint, ``{base}/client/{site}/customers/{list}``, which takes one
customer per request, signed with ``X-Signature`` (vendors.md §4). There is no documented way to
read customers back, list them or delete them, so the connector declares ``read=False`` and no
archive: the engine never lists it, and remembers in its links what it pushed.

Both ``create`` and ``update`` push: Salesfire upserts by email (or mobile number) unless its
``update_existing`` flag says to skip customers it already has. Which value says that is
ambiguous on Salesfire's own page, so the user chooses the outcome (``existing_customers``:
update or skip) and the reading (``update_existing_means``: skip, the page's words, or update, the
flag's name), and the connector sends the flag that gets that outcome.

One :class:`~syncd.connector.RecordWrite` is one signed POST; a batch is sent concurrently
within the account's shared rate budget (``concurrency`` and ``rate_limit`` settings). Retries
on 5xx, 429, timeouts and dropped connections are :class:`~syncd.http.HttpClient`'s.

Facts the public docs leave open, and what the connector does about them:

* HTTP method: POST (a JSON body implies it).
* Success status: any 2xx is success; the body is not relied on.
* Error shape: not documented. A 400/409/422 is that customer's refusal; the reason is taken from
  a ``message``/``error`` key and an ``errors`` object or list when present, else the raw text.
* Signature refusal: 401 or 403 (either may be what Salesfire answers) raises
  :class:`~syncd.connector.NeedsReauth` naming the ``secret`` setting. A wrong secret is a
  rejected credential, which is what ``needs_auth`` is for: the sync stops pushing and says what to
  fix, rather than failing every customer one by one or retrying in a loop. (A secret missing
  from the settings is a :class:`~syncd.connector.ConnectorConfigError` before anything is sent.)
* 404: the site or list is wrong: :class:`~syncd.connector.ConnectorConfigError`.
* Rate limits: none published. The default budget (100 requests a minute, 4 at a time) is a
  guess kept below the emulator's 120 a minute; ``Retry-After`` is honoured whatever the limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import aiohttp

from syncd.connector import (
    Capabilities,
    Connector,
    ConnectorConfigError,
    ConnectorContext,
    ConnectorError,
    FieldSpec,
    HttpClient,
    HttpResponse,
    NeedsReauth,
    RateBudget,
    RawValue,
    RecordWrite,
    RetryLater,
    Setting,
    SettingContext,
    SettingValidator,
    WriteResult,
    http_url,
    shared_budget,
)
from syncd_salesfire import __version__
from syncd_salesfire.payload import (
    CHANNELS,
    TYPES,
    Defaults,
    InvalidCustomer,
    build_customer,
    fields_from_key,
    natural_key,
    parse_choices,
)
from syncd_salesfire.pushed import Fields, PushedCustomers
from syncd_salesfire.signing import ENCODINGS, Encoding, Secret, encode_body
from syncd_salesfire.vendor_errors import refusal_reason

DEFAULT_BASE_URL = "https://api.salesfire.co.uk"
#: statuses that mean "this customer was refused" rather than "the request could not be made"
REFUSALS = frozenset({400, 409, 422})
_SECRET_FIX = (
    "set `secret` to the list's signing secret (Salesfire dashboard: Audiences → Segments & "
    "Lists → your list → API Instructions → X-Signature), and check `signature_encoding` "
    "(hex or base64)"
)


@dataclass(frozen=True)
class _Prepared:
    """One write ready to go: the fields to remember and the exact bytes to send."""

    write: RecordWrite
    fields: Fields
    #: the customer's id in syncd's links (and in the cache of pushed fields)
    record_id: str
    body: bytes


_LIST_URL = re.compile(r"^(https?://[^/]+)(/client/([^/]+)/customers/([^/?#]+))/?$")


def _site_or_url(value: object, context: SettingContext) -> str | None:
    if context.settings.get("url"):
        return None
    if value is None or not str(value).strip():
        return "required (or give the full `url`)"
    return None


def _list_url(value: object, context: SettingContext) -> str | None:
    if value is None or _LIST_URL.match(str(value).strip()):
        return None
    return "must look like https://api.salesfire.co.uk/client/SITE/customers/LIST"


def _one_of(allowed: tuple[str, ...]) -> SettingValidator:
    def check(value: object, context: SettingContext) -> str | None:
        if value is None:
            return None
        try:
            chosen = parse_choices(_raw(value), allowed, "")
        except InvalidCustomer:
            return f"must name some of {', '.join(allowed)}"
        return None if chosen else f"must name at least one of {', '.join(allowed)}"

    return check


EXISTING_CHOICES = ("update", "skip")
#: the two readings of Salesfire's flag: what ``update_existing: true`` does
UPDATE_READINGS = ("skip", "update")


class SalesfireConnector(Connector):
    name = "salesfire"
    title = "Salesfire customer list (write-only)"
    settings = (
        Setting(
            "site",
            "the site id, as in …/client/{site}/customers/{list}",
            public=True,
            validator=_site_or_url,
        ),
        Setting(
            "list",
            "the list id, as in …/client/{site}/customers/{list}",
            public=True,
            validator=_site_or_url,
        ),
        Setting(
            "url",
            "the full list URL shown under API Instructions (instead of site and list)",
            public=True,
            validator=_list_url,
        ),
        Setting(
            "base_url",
            "the API root (point it at `syncd sandbox salesfire`)",
            default=None,
            public=True,
            validator=http_url,
        ),
        Setting("secret", "the list's X-Signature signing secret", required=True, secret=True),
        Setting(
            "signature_encoding",
            "how the HMAC-SHA256 digest is written in X-Signature",
            default="hex",
            choices=ENCODINGS,
        ),
        Setting(
            "types",
            "message types when a contact's fields do not say",
            default="MARKETING",
            public=True,
            validator=_one_of(TYPES),
        ),
        Setting(
            "channels",
            "channels when a contact's fields do not say",
            default="EMAIL,SMS",
            public=True,
            validator=_one_of(CHANNELS),
        ),
        Setting(
            "existing_customers",
            "what happens to a customer the list already has: update (the default: your changes"
            " are applied) or skip (it stays as it is; later changes never reach Salesfire)",
            default=None,
            choices=EXISTING_CHOICES,
        ),
        Setting(
            "update_existing_means",
            "how your Salesfire account reads its update_existing flag: skip (true skips existing"
            " customers, as Salesfire's help page says) or update (true updates them, as the"
            " flag's name says); the connector sends whichever value gets you"
            " existing_customers. Check one push in Salesfire's Monitoring tab",
            default="skip",
            choices=UPDATE_READINGS,
        ),
        Setting(
            "update_existing",
            "older name of existing_customers: true = update, false = skip",
            type=bool,
            default=None,
        ),
        Setting(
            "concurrency", "pushes in flight at once", type=int, default=4, minimum=1, maximum=100
        ),
        Setting(
            "rate_limit",
            "pushes per minute at most",
            type=int,
            default=100,
            minimum=1,
            maximum=100_000,
        ),
        Setting(
            "batch_size",
            "customers per engine batch (each is its own request)",
            type=int,
            default=50,
            minimum=1,
            maximum=1000,
        ),
        Setting(
            "timeout",
            "seconds before a push is given up and retried",
            type=float,
            default=30.0,
            minimum=0.1,
            maximum=600.0,
        ),
    )
    capabilities = Capabilities(
        read=False,
        write=True,
        incremental=False,
        lookup_by_email=False,
        archive=None,
        create_batch_size=50,
        update_batch_size=50,
        # Salesfire upserts by email or mobile number, so sending a customer again (a retried or
        # re-run create) cannot make a second one: the natural key does what an idempotency key
        # does elsewhere, and a pending create can safely be sent again.
        idempotency_keys=True,
        custom_fields=True,
    )
    fields = (
        FieldSpec("email", "email"),
        FieldSpec("mobile_number", "mobile"),
        FieldSpec("name", "name"),
        FieldSpec("first_name", "first_name"),
        FieldSpec("last_name", "last_name"),
        FieldSpec("date_of_birth", "custom.date_of_birth"),
        FieldSpec("types", "custom.salesfire_types"),
        FieldSpec("channels", "custom.salesfire_channels"),
    )

    def __init__(self, settings: Mapping[str, Any], context: ConnectorContext) -> None:
        super().__init__(settings, context)
        self.url, self._url_key = self._list_url()
        # The secret lives only inside a Secret, which never prints itself: not in self.config,
        # which may end up in a repr or a log line.
        secret = self.config.pop("secret", None)
        if not isinstance(secret, str) or not secret.strip():
            raise ConnectorConfigError("the list's signing secret is missing", key="secret")
        self._secret = Secret(secret.strip())
        encoding = str(self.config.get("signature_encoding") or "hex").lower()
        if encoding not in ENCODINGS:
            raise ConnectorConfigError(
                "signature_encoding must be hex or base64", key="signature_encoding"
            )
        self.encoding: Encoding = "base64" if encoding == "base64" else "hex"
        self.existing_customers = self._existing_customers()
        reading = str(self.config.get("update_existing_means") or "skip").strip().lower()
        if reading not in UPDATE_READINGS:
            raise ConnectorConfigError(
                "update_existing_means must be skip or update", key="update_existing_means"
            )
        self.defaults = Defaults(
            types=self._choices("types", TYPES, "MARKETING"),
            channels=self._choices("channels", CHANNELS, "EMAIL,SMS"),
            update_existing=update_existing_flag(self.existing_customers, reading),
        )
        self.concurrency = self._positive_int("concurrency", 4)
        self.rate_limit = self._positive_int("rate_limit", 100)
        batch = self._positive_int("batch_size", 50)
        self.capabilities = replace(
            type(self).capabilities, create_batch_size=batch, update_batch_size=batch
        )
        self.timeout = float(self.config.get("timeout") or 30.0)
        self.client: HttpClient | None = None
        side = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{context.sync}-{context.side}")
        self.pushed = PushedCustomers(context.state_dir / "salesfire" / f"{side}.sqlite3")

    # --- settings ----------------------------------------------------------------------------

    def _list_url(self) -> tuple[str, str]:
        url = self.config.get("url")
        if url:
            url = str(url).strip()
            match = _LIST_URL.match(url)
            if not match:
                raise ConnectorConfigError(
                    "url must look like https://api.salesfire.co.uk/client/SITE/customers/LIST",
                    key="url",
                )
            return match.group(1) + match.group(2), f"{match.group(3)}/{match.group(4)}"
        site, list_id = self.config.get("site"), self.config.get("list")
        for key, value in (("site", site), ("list", list_id)):
            if not value or not str(value).strip():
                raise ConnectorConfigError(f"{key} is required (or give the full `url`)", key=key)
        base = str(self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        site_part, list_part = (quote(str(v).strip(), safe="") for v in (site, list_id))
        return f"{base}/client/{site_part}/customers/{list_part}", f"{site_part}/{list_part}"

    def _existing_customers(self) -> str:
        chosen = self.config.get("existing_customers")
        old = self.config.get("update_existing")
        if chosen is not None:
            chosen = str(chosen).strip().lower()
            if chosen not in EXISTING_CHOICES:
                raise ConnectorConfigError(
                    "existing_customers must be update or skip", key="existing_customers"
                )
        if old is not None:
            implied = "update" if _flag(old, "update_existing") else "skip"
            if chosen is not None and chosen != implied:
                raise ConnectorConfigError(
                    f"update_existing (older name of existing_customers) says {implied}, "
                    f"existing_customers says {chosen}: keep only existing_customers",
                    key="update_existing",
                )
            chosen = implied
        return chosen or "update"

    def _choices(self, key: str, allowed: tuple[str, ...], default: str) -> tuple[str, ...]:
        raw = self.config.get(key)
        value: RawValue = default if raw is None else _raw(raw)
        try:
            chosen = parse_choices(value, allowed, key)
        except InvalidCustomer as exc:
            raise ConnectorConfigError(str(exc), key=key) from None
        if not chosen:
            raise ConnectorConfigError(f"{key} must name at least one of {allowed}", key=key)
        return chosen

    def _positive_int(self, key: str, default: int) -> int:
        raw = self.config.get(key)
        try:
            value = default if raw is None else int(raw)
        except (TypeError, ValueError):
            raise ConnectorConfigError(f"{key} must be a whole number", key=key) from None
        if value < 1:
            raise ConnectorConfigError(f"{key} must be at least 1", key=key)
        return value

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        rate, concurrency = self.rate_limit, self.concurrency
        # The budget refills a sixth of the minute's allowance every ten seconds, so that no
        # 60-second window (fixed or sliding: the vendor's is unknown) sees much more than the
        # per-minute rate, which a bucket holding a whole minute's calls would allow twice over.
        budget = shared_budget(
            f"salesfire:{self._url_key}",
            lambda: RateBudget(calls=max(1.0, rate / 6), period=10.0, concurrency=concurrency),
        )
        self.client = HttpClient(
            base_url=self.url,
            budget=budget,
            headers={
                "Accept": "application/json",
                "User-Agent": f"syncd-salesfire/{__version__}",
            },
            classify=self._classify,
            timeout=aiohttp.ClientTimeout(
                total=self.timeout, connect=min(10.0, self.timeout), sock_read=self.timeout
            ),
        )
        await self.pushed.open()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        await self.pushed.close()

    async def check(self) -> str:
        """Send an empty customer: Salesfire verifies the signature, then refuses the customer
        for lacking an email and a mobile number, so nothing is stored either way."""
        response = await self._post(b"{}")
        if response.status in REFUSALS or 200 <= response.status < 300:
            return f"Salesfire list {self._url_key}: signature accepted"
        raise RetryLater(f"Salesfire answered HTTP {response.status} to a signed check")

    # --- writes ------------------------------------------------------------------------------

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        return await self._push_all(writes, {})

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        known = await self.pushed.load(w.id for w in writes if w.id)
        return await self._push_all(writes, known)

    async def _push_all(
        self, writes: Sequence[RecordWrite], known: Mapping[str, Fields]
    ) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        ready: list[_Prepared] = []
        for write in writes:
            prepared = self._prepare(write, known)
            if isinstance(prepared, WriteResult):
                results[write.key] = prepared
            else:
                ready.append(prepared)

        pushed: list[tuple[str, Fields]] = []

        async def push(item: _Prepared) -> None:
            reason = await self._push(item.body)
            if reason is None:
                results[item.write.key] = WriteResult(item.write.key, item.record_id)
                pushed.append((item.record_id, item.fields))
            else:
                results[item.write.key] = WriteResult(item.write.key, item.write.id, reason)

        try:
            # The budget caps requests in flight; a failure that concerns every customer
            # (refused signature, unavailable app) cancels the pushes still waiting.
            async with asyncio.TaskGroup() as group:
                for item in ready:
                    group.create_task(push(item))
        except BaseExceptionGroup as failures:
            raise _most_serious(failures) from None
        finally:
            await self.pushed.save(pushed)
        return [results[w.key] for w in writes]

    def _prepare(self, write: RecordWrite, known: Mapping[str, Fields]) -> _Prepared | WriteResult:
        fields: Fields = {}
        if write.id is None:
            # A new customer has nothing to clear: an empty field is left out rather than sent
            # as null, which would also blank what Salesfire may already hold for that email.
            fields.update((k, v) for k, v in write.data.items() if v is not None)
        else:
            fields.update(known.get(write.id) or fields_from_key(write.id))
            fields.update(write.data)  # a None here clears the attribute: sent as null
        try:
            customer = build_customer(fields, self.defaults, self.context.phone_region)
        except InvalidCustomer as exc:
            return WriteResult(write.key, write.id, f"not sent: {exc}")
        # once a clear has been sent, the cleared field need not be sent again
        remembered: Fields = {k: v for k, v in fields.items() if v is not None}
        # A customer keeps the id it was created under (its email or mobile number then), also
        # when its email changes later: the id only has to name the link, and the cache holds
        # the current email.
        record_id = write.id or natural_key(customer)
        return _Prepared(write, remembered, record_id, encode_body(customer))

    async def _push(self, body: bytes) -> str | None:
        """Send one customer; ``None`` when Salesfire took it, else its reason."""
        response = await self._post(body)
        if 200 <= response.status < 300:
            return None
        if response.status in REFUSALS:
            return refusal_reason(response)
        return f"Salesfire answered HTTP {response.status}: {refusal_reason(response)}"

    async def _post(self, body: bytes) -> HttpResponse:
        if self.client is None:
            raise RuntimeError("the connector is not open")
        # The signature is computed once over these bytes, and these bytes are what is sent
        # (also on each retry): nothing re-serialises the body after it is signed.
        headers = {
            "Content-Type": "application/json",
            "X-Signature": self._secret.sign(body, self.encoding),
        }
        return await self.client.request("POST", self.url, data=body, headers=headers)

    def _classify(self, response: HttpResponse) -> Exception | None:
        if response.status in (401, 403):
            return NeedsReauth(
                f"Salesfire refused the request signature for list {self._url_key} "
                f"(HTTP {response.status}: {refusal_reason(response)})",
                fix=_SECRET_FIX,
            )
        if response.status == 404:
            key = "url" if self.config.get("url") else "list"
            return ConnectorConfigError(
                f"Salesfire has no list at {self.url} (HTTP 404): check `site` and `list`",
                key=key,
            )
        return None


def _most_serious(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure to report when several concurrent pushes failed at once."""
    flat: list[BaseException] = []

    def walk(group: BaseExceptionGroup[BaseException]) -> None:
        for exc in group.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                walk(exc)
            else:
                flat.append(exc)

    walk(failures)
    for kind in (NeedsReauth, ConnectorConfigError, RetryLater, ConnectorError):
        for exc in flat:
            if isinstance(exc, kind):
                return exc
    return flat[0]


def _raw(value: Any) -> RawValue:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(v) for v in value)
    return str(value)


def update_existing_flag(existing_customers: str, reading: str) -> bool:
    """The ``update_existing`` value that gets ``existing_customers`` under ``reading``.

    Salesfire's help page says "update_existing setting this to true skips the existing profile"
    (reading ``skip``), the opposite of what the flag's name suggests (reading ``update``)."""
    wants_update = existing_customers == "update"
    return wants_update if reading == "update" else not wants_update


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConnectorConfigError(f"{key} must be true or false", key=key)

"""The ``xero`` connector: Xero Accounting Contacts over OAuth 2.0.

* Reading: ``GET /Contacts`` page by page (``page``/``pageSize``, ``includeArchived=true`` so
  archives are seen, ordered by ContactID so that edits during a listing cannot shift a record past
  a page boundary), and with ``If-Modified-Since`` for incremental runs.
* Writing: creates with ``PUT /Contacts`` and updates with ``POST /Contacts``, up to 50 a request,
  ``summarizeErrors=false`` so that one refused contact does not sink the batch, an
  ``Idempotency-Key`` on every write. A create whose Name is taken is linked to the existing contact
  when the emails match, and otherwise created under a derived Name ("Jane Smith (jane@x.com)").
* Auth: see :mod:`syncd_xero.oauth`; limits: see :mod:`syncd_xero.limits`.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import threading
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.connector import (
    AuthPrompt,
    Capabilities,
    Connector,
    ConnectorConfigError,
    ConnectorContext,
    ConnectorError,
    HttpClient,
    HttpResponse,
    NeedsReauth,
    RecordWrite,
    RemoteRecord,
    Setting,
    SettingContext,
    WebAuthorization,
    WebhookReply,
    WriteResult,
    http_url,
    shared_budget,
)
from syncd.paging import json_body, numbered_pages
from syncd_xero import mapping, webhooks, writes
from syncd_xero.limits import XeroBudget
from syncd_xero.oauth import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    FileStorage,
    OAuthClient,
    PendingAuthorization,
    TokenManager,
    TokenStorage,
    VaultStorage,
    code_from_redirect,
    exchange_code,
    is_loopback,
    start_authorization,
    token_error,
    wait_for_redirect,
)
from syncd_xero.tokens import TokenFile, TokenSet

log = logging.getLogger("syncd.xero")

API_URL = "https://api.xero.com"
IDENTITY_URL = "https://identity.xero.com"
LOGIN_URL = "https://login.xero.com"
ACCOUNTING_PATH = "/api.xro/2.0"
CONNECTIONS_PATH = "/Connections"
DEFAULT_SCOPES = "offline_access accounting.contacts"
DEFAULT_REDIRECT = "http://localhost:8977/callback"
#: the longest ``where`` filter sent: many servers refuse query strings past 2,048 bytes
WHERE_MAX = 1500
#: rounds of renaming/linking after a duplicate-Name refusal
NAME_ROUNDS = 3
LISTENER_TIMEOUT = 300.0

#: the access token the current request was sent with (to refresh only if it is still current)
_token_used: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "xero_token_used", default=None
)


def _grant_has_secret(value: object, context: SettingContext) -> str | None:
    """Custom Connections (client_credentials) authenticate with the client secret alone."""
    if value == CLIENT_CREDENTIALS and not context.settings.get("client_secret"):
        return "the client_credentials grant needs client_secret"
    return None


class _AccessTokenRejected(ConnectorError):
    """A 401: the access token expired early or was revoked; refresh once and retry."""


class XeroConnector(Connector):
    name = "xero"
    title = "Xero (Contacts)"
    settings = (
        # shown in the authorisation URL syncd auth prints: not a secret
        Setting("client_id", "the client id of your Xero app", required=True, public=True),
        Setting(
            "client_secret",
            "the client secret of your Xero app (leave out for a PKCE app without a secret)",
            secret=True,
        ),
        Setting(
            "tenant",
            "the organisation, by name or tenant id (optional when the grant has only one)",
        ),
        Setting(
            "grant",
            "authorization_code (syncd auth) or client_credentials (Xero Custom Connections)",
            default=AUTHORIZATION_CODE,
            choices=(AUTHORIZATION_CODE, CLIENT_CREDENTIALS),
            validator=_grant_has_secret,
        ),
        Setting("scopes", "OAuth scopes to ask for", default=DEFAULT_SCOPES, public=True),
        Setting(
            "redirect_uri",
            "a redirect URI registered in your Xero app, used by syncd auth",
            default=DEFAULT_REDIRECT,
            validator=http_url,
            public=True,
        ),
        Setting(
            "auth_listener",
            "syncd auth listens once on a localhost redirect_uri instead of asking for a paste",
            type=bool,
            default=False,
        ),
        Setting(
            "api_url",
            "base URL of the Xero API (change only for the sandbox)",
            default=API_URL,
            validator=http_url,
            public=True,
        ),
        Setting(
            "identity_url",
            "base URL of Xero's token endpoint",
            default=IDENTITY_URL,
            validator=http_url,
            public=True,
        ),
        Setting(
            "login_url",
            "base URL of Xero's authorisation page",
            default=LOGIN_URL,
            validator=http_url,
            public=True,
        ),
        Setting(
            "day_limit",
            "calls a day allowed for the organisation (5000; 1000 on the Starter tier)",
            type=int,
            default=5000,
            minimum=1,
            maximum=10**7,
        ),
        Setting(
            "minute_limit",
            "calls a minute for the organisation (Xero allows 60; change only for the sandbox)",
            type=int,
            default=60,
            minimum=1,
            maximum=10**6,
        ),
        Setting(
            "minute_window",
            "seconds of Xero's minute limit window (60; change only for the sandbox)",
            type=float,
            default=60.0,
            minimum=0.1,
            maximum=3600.0,
        ),
        Setting(
            "page_size",
            "contacts per page when listing (1-1000)",
            type=int,
            default=1000,
            minimum=1,
            maximum=1000,
        ),
        Setting(
            "batch_size",
            "contacts per create or update request (1-100)",
            type=int,
            default=50,
            minimum=1,
            maximum=100,
        ),
        Setting(
            "webhook_key",
            "the webhook key of your Xero app (developer portal, Webhooks): turns on "
            "POST /hooks/xero/<client_id>",
            secret=True,
        ),
    )
    capabilities = Capabilities(
        read=True,
        write=True,
        incremental=True,
        lookup_by_email=True,
        archive="archive",
        create_batch_size=50,
        update_batch_size=50,
        idempotency_keys=True,
        custom_fields=False,
        webhooks=True,
        read_by_ids=True,
    )
    fields = mapping.FIELDS
    needs_authorization = True

    @classmethod
    def keeps_tokens(cls, settings: Mapping[str, Any]) -> bool:
        # a Custom Connection asks for a new access token whenever it needs one: nothing kept
        return str(settings.get("grant") or AUTHORIZATION_CODE) != CLIENT_CREDENTIALS

    def __init__(self, settings: Mapping[str, Any], context: ConnectorContext) -> None:
        super().__init__(settings, context)
        self.client_id = str(self.config.get("client_id") or "").strip()
        if not self.client_id:
            raise ConnectorConfigError("client_id is required", key="client_id")
        secret = self.config.get("client_secret")
        self._client_secret = str(secret) if secret else None
        self.tenant = str(self.config.get("tenant") or "").strip() or None
        self.grant = str(self.config.get("grant") or AUTHORIZATION_CODE)
        if self.grant not in (AUTHORIZATION_CODE, CLIENT_CREDENTIALS):
            raise ConnectorConfigError(
                "grant must be authorization_code or client_credentials", key="grant"
            )
        if self.grant == CLIENT_CREDENTIALS and not self._client_secret:
            raise ConnectorConfigError(
                "the client_credentials grant needs client_secret", key="client_secret"
            )
        self.scopes = str(self.config.get("scopes") or DEFAULT_SCOPES)
        self.redirect_uri = str(self.config.get("redirect_uri") or DEFAULT_REDIRECT)
        self.auth_listener = _flag(self.config.get("auth_listener"))
        self.api_url = str(self.config.get("api_url") or API_URL).rstrip("/")
        self.identity_url = str(self.config.get("identity_url") or IDENTITY_URL).rstrip("/")
        self.login_url = str(self.config.get("login_url") or LOGIN_URL).rstrip("/")
        self.day_limit = _bounded_int(self.config, "day_limit", 5000, 1, 10**7)
        self.minute_limit = _bounded_int(self.config, "minute_limit", 60, 1, 10**6)
        self.minute_window = _bounded_float(self.config, "minute_window", 60.0, 0.1, 3600.0)
        self.page_size = _bounded_int(self.config, "page_size", 1000, 1, 1000)
        self.batch_size = _bounded_int(self.config, "batch_size", 50, 1, 100)
        key = self.config.get("webhook_key")
        self._webhook_key = str(key) if key else None
        self.capabilities = dataclasses.replace(
            type(self).capabilities,
            create_batch_size=self.batch_size,
            update_batch_size=self.batch_size,
        )
        self.fix = f"syncd auth {context.sync} {context.side}"
        self.token_file = TokenFile(
            Path(context.state_dir) / "oauth" / f"xero-{context.sync}-{context.side}.json"
        )
        vault = getattr(context, "tokens", None)
        #: a file in the state directory (SQLite), or the store, encrypted (PostgreSQL)
        self.token_storage: TokenStorage = (
            VaultStorage(vault, self.token_file.path.stem, context.sync, context.side)
            if vault is not None
            else FileStorage(self.token_file)
        )
        self._identity = HttpClient(
            self.identity_url, classify=lambda response: token_error(response, self.fix)
        )
        self._oauth = OAuthClient(self.client_id, self._client_secret, self._identity, self.fix)
        self.tokens = TokenManager(
            self._oauth,
            self.grant,
            self.token_storage if self.grant == AUTHORIZATION_CODE else None,
            scopes=self.scopes if self.grant == CLIENT_CREDENTIALS else "",
        )
        self.tenant_id: str | None = None
        self.tenant_name: str | None = None
        self.budget: XeroBudget | None = None
        self._api: HttpClient | None = None
        self._plain = HttpClient(self.api_url)
        #: Phones/Addresses of contacts as last listed, to send complete arrays on update
        self._listed: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"XeroConnector(client_id={self.client_id!r}, tenant={self.tenant!r})"

    # --- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._api is not None:
            return
        await self._resolve_tenant()
        key = f"xero:{self.tenant_id or self.client_id}"
        budget = shared_budget(
            key,
            lambda: XeroBudget(self.day_limit, self.minute_limit, period=self.minute_window),
            backend=getattr(self.context, "budgets", None),
        )
        self.budget = budget if isinstance(budget, XeroBudget) else None
        self._api = HttpClient(
            self.api_url + ACCOUNTING_PATH,
            budget=budget,
            headers={"Accept": "application/json"},
            auth=self._request_headers,
            classify=self._classify,
            on_response=self.budget.observe if self.budget else None,
        )

    async def close(self) -> None:
        for client in (self._api, self._plain, self._identity):
            if client is not None:
                await client.close()

    @property
    def api(self) -> HttpClient:
        if self._api is None:
            raise ConnectorError("the Xero connector was used before open()")
        return self._api

    async def check(self) -> str:
        await self.open()
        response = await self._call("GET", "/Contacts", params={"page": "1", "pageSize": "1"})
        if response.status != 200:
            raise ConnectorError(f"Xero answered HTTP {response.status} to GET /Contacts")
        left = self.budget.day_remaining if self.budget else None
        budget = f", {left} calls left today" if left is not None else ""
        organisation = self.tenant_name or self.tenant_id or "(custom connection)"
        return f"Xero organisation {organisation}{budget}"

    async def keep_alive(self) -> str:
        """Refresh the grant if it is due (or idle for a week); for a daemon's idle timer."""
        await self.tokens.refresh()
        tokens = self.tokens.tokens
        return (
            f"Xero tokens valid until {datetime.fromtimestamp(tokens.expires_at, UTC):%H:%M}Z"
            if tokens
            else "no tokens"
        )

    # --- webhooks ---------------------------------------------------------------------------

    @classmethod
    def daily_call_budget(cls, settings: Mapping[str, Any]) -> int | None:
        try:
            return int(settings.get("day_limit") or 5000)
        except (TypeError, ValueError):
            return 5000

    def webhook_account(self) -> str | None:
        """Xero posts the events of every organisation connected to an app to that app's one
        URL: the hook path is keyed by the client id (public: it is in every authorisation
        URL), and only when a webhook key is set."""
        return self.client_id if self._webhook_key else None

    async def webhook_tenant(self) -> str | None:
        await self.open()
        return self.tenant_id

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        return webhooks.verify(self._webhook_key or "", headers, body)

    async def read_records(self, ids: Sequence[str]) -> AsyncIterator[list[RemoteRecord]]:
        """One ``GET /Contacts?IDs=`` per 50 ids (paged, so that MergedToContactID and the
        contact persons come back; archived ones included)."""
        for chunk in webhooks.id_chunks(ids):
            params = {
                "IDs": ",".join(chunk),
                "includeArchived": "true",
                "pageSize": str(max(self.page_size, webhooks.IDS_PER_CALL)),
            }
            async for contacts in self._pages(params):
                yield [self._record(contact) for contact in contacts]

    # --- auth -------------------------------------------------------------------------------

    async def authorize(self, prompt: AuthPrompt) -> str:
        if self.grant == CLIENT_CREDENTIALS:
            await self.open()
            return (
                "client_credentials needs no authorisation; connected to "
                f"{self.tenant_name or 'the custom connection organisation'}"
            )
        pending = start_authorization(
            self.login_url, self.client_id, self.redirect_uri, self.scopes
        )
        prompt.show(
            "Open this address in a browser, sign in to Xero and allow access:\n\n"
            f"  {pending.url}\n"
        )
        if self.auth_listener and is_loopback(self.redirect_uri):
            prompt.show(f"Waiting for the browser to come back to {self.redirect_uri} ...")
            pasted = await wait_for_redirect(self.redirect_uri, LISTENER_TIMEOUT)
        else:
            prompt.show(
                f"Xero then sends the browser to {self.redirect_uri}; that page may fail to "
                "load, which is fine: copy the whole address from the address bar."
            )
            pasted = await _ask(prompt, "Paste the address here: ")
        code = code_from_redirect(pasted, pending)
        tokens = await exchange_code(self._oauth, code, pending)
        return await self._save_grant(tokens)

    # the console's "Connect to Xero" (syncd/console/oauth_pages.py): the same flow, with Xero
    # sending the browser back to the daemon's /oauth/callback (add that address to the app's
    # redirect URIs at developer.xero.com)
    web_authorization = True

    async def begin_web_authorization(self, redirect_uri: str) -> WebAuthorization:
        if self.grant == CLIENT_CREDENTIALS:
            raise ConnectorConfigError(
                "a Custom Connection (grant = client_credentials) is not authorised in a "
                "browser: check client_id and client_secret",
                key="grant",
            )
        pending = start_authorization(self.login_url, self.client_id, redirect_uri, self.scopes)
        return WebAuthorization(
            pending.url, pending.state, redirect_uri, {"verifier": pending.verifier}
        )

    async def finish_web_authorization(
        self, pending: WebAuthorization, query: Mapping[str, str]
    ) -> str:
        flow = PendingAuthorization(
            pending.url, pending.state, pending.data["verifier"], pending.redirect_uri
        )
        code = code_from_redirect("?" + urllib.parse.urlencode(dict(query)), flow)
        tokens = await exchange_code(self._oauth, code, flow)
        return await self._save_grant(tokens)

    @classmethod
    def account_label(cls, settings: Mapping[str, Any]) -> str | None:
        tenant = settings.get("tenant")
        if tenant:
            return str(tenant)
        if settings.get("grant") == CLIENT_CREDENTIALS:
            return "Custom Connection"
        api = str(settings.get("api_url") or API_URL)
        host = urllib.parse.urlsplit(api).netloc
        return host if api.rstrip("/") != API_URL else None

    async def _save_grant(self, tokens: TokenSet) -> str:
        """Choose the organisation, then save the tokens durably (both ways of authorising)."""
        connections = await self._connections(tokens.access_token)
        chosen = self._choose_tenant(connections)
        tokens.tenant_id = str(chosen.get("tenantId"))
        tokens.tenant_name = str(chosen.get("tenantName") or "")
        await self.tokens.store(tokens)
        return (
            f"Authorised Xero organisation {tokens.tenant_name!r}; tokens saved in "
            f"{self.token_storage.where}"
        )

    async def _connections(self, access_token: str) -> list[dict[str, Any]]:
        response = await self._plain.request(
            "GET",
            CONNECTIONS_PATH,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        body = response.json() if response.status == 200 else None
        if not isinstance(body, list):
            raise ConnectorError(f"Xero answered HTTP {response.status} to GET /Connections")
        return [item for item in body if isinstance(item, dict)]

    def _choose_tenant(self, connections: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        names = ", ".join(repr(str(c.get("tenantName"))) for c in connections) or "none"
        if self.tenant is None:
            if len(connections) == 1:
                return connections[0]
            raise ConnectorConfigError(
                f"set tenant to one of the organisations this grant reaches: {names}",
                key="tenant",
            )
        wanted = self.tenant.casefold()
        for connection in connections:
            if wanted in (
                str(connection.get("tenantId") or "").casefold(),
                str(connection.get("tenantName") or "").casefold(),
            ):
                return connection
        raise ConnectorConfigError(
            f"this grant does not reach the organisation {self.tenant!r}; it reaches: {names}",
            key="tenant",
        )

    async def _resolve_tenant(self) -> None:
        """Which organisation to send in ``xero-tenant-id``, without a call when we know it."""
        if self.grant == AUTHORIZATION_CODE:
            stored = await self.tokens.load()
            if stored is None:
                raise NeedsReauth("Xero has not been authorised for this sync yet", fix=self.fix)
            if stored.tenant_id and self._matches(stored):
                self.tenant_id, self.tenant_name = stored.tenant_id, stored.tenant_name
                return
        token = await self.tokens.access_token()
        try:
            connections = await self._connections(token)
        except ConnectorError:
            if self.grant == CLIENT_CREDENTIALS:
                # a custom connection needs no tenant header (vendors.md §1.2)
                return
            raise
        if self.grant == CLIENT_CREDENTIALS and not connections:
            return
        chosen = self._choose_tenant(connections)
        self.tenant_id = str(chosen.get("tenantId"))
        self.tenant_name = str(chosen.get("tenantName") or "")
        tokens = self.tokens.tokens
        # a dry run changes no file; the tenant is simply resolved again next time
        dry_run = bool(getattr(self.context, "dry_run", False))
        if self.grant == AUTHORIZATION_CODE and tokens is not None and not dry_run:
            await self.tokens.store(
                dataclasses.replace(tokens, tenant_id=self.tenant_id, tenant_name=self.tenant_name)
            )

    def _matches(self, stored: TokenSet) -> bool:
        if self.tenant is None:
            return True
        wanted = self.tenant.casefold()
        return wanted in (
            (stored.tenant_id or "").casefold(),
            (stored.tenant_name or "").casefold(),
        )

    # --- requests ---------------------------------------------------------------------------

    async def _request_headers(self) -> dict[str, str]:
        if self.budget is not None:
            self.budget.take_day_call()
        token = await self.tokens.access_token()
        _token_used.set(token)
        headers = {"Authorization": f"Bearer {token}"}
        if self.tenant_id:
            headers["xero-tenant-id"] = self.tenant_id
        return headers

    def _classify(self, response: HttpResponse) -> Exception | None:
        if self.budget is not None:
            exhausted = self.budget.day_exhausted(response)
            if exhausted is not None:
                return exhausted
        if response.status == 401:
            return _AccessTokenRejected("Xero refused the access token")
        if response.status == 403:
            return NeedsReauth(
                "Xero refused access to the organisation (HTTP 403): it was disconnected from "
                "the app, or the grant lacks the accounting.contacts scope",
                fix=self.fix,
            )
        return None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        for attempt in range(2):
            try:
                return await self.api.request(
                    method, path, params=params, json_body=json_body, headers=headers
                )
            except _AccessTokenRejected:
                if attempt:
                    raise NeedsReauth(
                        "Xero refused a freshly refreshed access token", fix=self.fix
                    ) from None
                await self.tokens.refresh(rejected=_token_used.get())
        raise AssertionError("unreachable")

    # --- reading ----------------------------------------------------------------------------

    def make_cursor(self, watermark: datetime) -> str:
        """The If-Modified-Since value for the engine's watermark (which already overlaps a
        little; a naive watermark is UTC)."""
        moment = watermark if watermark.tzinfo else watermark.replace(tzinfo=UTC)
        return if_modified_since(moment)

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        headers = {"If-Modified-Since": cursor} if cursor else None
        async for contacts in self._pages({"includeArchived": "true"}, headers):
            yield [self._record(contact) for contact in contacts]

    async def _pages(
        self, params: Mapping[str, str], headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The contacts of ``GET /Contacts`` page by page, in order. Once page 1 told how many
        pages there are, the next ones are fetched while the caller maps this one, as many at
        once as the organisation's budget lets calls run concurrently (Xero: 5, vendors.md
        §1.7); each request still waits for the budget's rate and concurrency."""
        await self.open()
        size = params.get("pageSize") or str(self.page_size)

        async def fetch(page: int) -> tuple[list[dict[str, Any]], int | None]:
            query = {**params, "order": "ContactID ASC", "page": str(page), "pageSize": size}
            response = await self._call("GET", "/Contacts", params=query, headers=headers)
            if response.status == 304:  # Not Modified: nothing changed since the cursor
                return [], page
            if response.status != 200:
                raise ConnectorError(f"Xero answered HTTP {response.status} to GET /Contacts")
            body = json_body(response.body)
            contacts = [c for c in (body or {}).get("Contacts") or () if isinstance(c, dict)]
            pagination = (body or {}).get("pagination")
            page_count = pagination.get("pageCount") if isinstance(pagination, dict) else None
            if isinstance(page_count, int):
                return contacts, page_count
            # No pagination object: keep going until an empty page rather than stopping at a
            # short one, in case Xero caps pageSize below what we asked for.
            return contacts, None if contacts else page

        window = self.budget.concurrency if self.budget is not None else 1
        pages = numbered_pages(fetch, lambda _, answer: answer[1], window=window)
        async with aclosing(pages):
            async for _, (contacts, _count) in pages:
                if contacts:
                    yield contacts

    def _record(self, contact: dict[str, Any]) -> RemoteRecord:
        contact_id = str(contact.get("ContactID") or "")
        get = contact.get
        self._listed[contact_id] = {  # PERSON_KEYS, spelled out: once per listed contact
            "Name": get("Name"),
            "FirstName": get("FirstName"),
            "LastName": get("LastName"),
            "EmailAddress": get("EmailAddress"),
            "Phones": get("Phones") or [],
            "Addresses": get("Addresses") or [],
        }
        return RemoteRecord(
            id=contact_id,
            data=mapping.contact_to_data(contact),
            updated_at=mapping.parse_msdate(contact.get("UpdatedDateUTC")),
            archived=mapping.is_archived(contact),
            error=None if contact_id else "Xero listed a contact without a ContactID",
            merged_into=webhooks.merged_into(contact),
        )

    async def lookup_by_email(self, emails: Sequence[str]) -> list[RemoteRecord]:
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        found: list[RemoteRecord] = []
        for chunk in writes.where_chunks("EmailAddress", wanted, WHERE_MAX):
            where = writes.where_any("EmailAddress", chunk)
            async for contacts in self._pages({"where": where, "includeArchived": "true"}):
                for contact in contacts:
                    # Xero's filter may or may not ignore case: compare again here
                    email = str(contact.get("EmailAddress") or "").strip().lower()
                    if email in chunk:
                        found.append(self._record(contact))
        return found

    async def _active_by_name(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Active contacts holding any of ``names`` (case-folded), for the duplicate-Name rule."""
        unique = sorted(set(names))
        found: dict[str, dict[str, Any]] = {}
        for chunk in writes.where_chunks("Name", unique, WHERE_MAX):
            async for contacts in self._pages({"where": writes.where_any("Name", chunk)}):
                for contact in contacts:
                    if not mapping.is_archived(contact):
                        found[str(contact.get("Name") or "").strip().casefold()] = contact
        return found

    # --- writing ----------------------------------------------------------------------------

    async def create(self, batch: Sequence[RecordWrite]) -> list[WriteResult]:
        await self.open()
        results: dict[str, WriteResult] = {}
        sending: list[tuple[RecordWrite, dict[str, Any]]] = []
        for write in batch:
            payload = self._create_payload(write)
            problem = mapping.too_long(payload)
            if problem:
                results[write.key] = WriteResult(write.key, None, problem)
            else:
                sending.append((write, payload))
        if not sending:
            return [results[write.key] for write in batch]
        payloads = [payload for _, payload in sending]
        outcomes = await self._send("PUT", payloads, "create", [w.key for w, _ in sending])
        collided: list[tuple[RecordWrite, dict[str, Any]]] = []
        for (write, payload), outcome in zip(sending, outcomes, strict=True):
            if outcome.duplicate_name:
                collided.append((write, payload))
            else:
                results[write.key] = self._result(
                    write.key, outcome, written=write.data, create=True
                )
        if collided:
            await self._resolve_names(collided, results)
        return [results[write.key] for write in batch]

    def _create_payload(self, write: RecordWrite) -> dict[str, Any]:
        contact = mapping.data_to_contact(write.data)
        if not str(contact.get("Name") or "").strip():
            # Xero requires a Name; the engine may map none (a person-only app on the other side)
            contact["Name"] = mapping.derive_name(write.data, f"Contact {write.key[:8]}")
        return contact

    async def _resolve_names(
        self,
        collided: list[tuple[RecordWrite, dict[str, Any]]],
        results: dict[str, WriteResult],
    ) -> None:
        """Creates refused for a taken Name: link to the holder when its email matches, else
        create under a derived Name. ``POST /Contacts`` does both in one request (it updates
        elements with a ContactID and creates the others)."""
        original = {write.key: str(payload["Name"]) for write, payload in collided}
        for attempt in range(NAME_ROUNDS):
            holders = await self._active_by_name(
                [str(payload["Name"]).strip().casefold() for _, payload in collided]
            )
            retry: list[tuple[RecordWrite, dict[str, Any]]] = []
            for write, payload in collided:
                name = str(payload["Name"])
                holder = holders.get(name.strip().casefold())
                email = str(payload.get("EmailAddress") or "").strip()
                holder_email = str((holder or {}).get("EmailAddress") or "").strip()
                if holder is not None and email and holder_email.casefold() == email.casefold():
                    log.info(
                        "xero: a contact named %r with the same email exists; linked to it",
                        name,
                    )
                    retry.append((write, {**payload, "ContactID": holder["ContactID"]}))
                else:
                    derived = writes.distinct_name(
                        original[write.key], email or None, write.key, attempt
                    )
                    log.info(
                        "xero: the contact name %r is taken by another contact; creating %r",
                        name,
                        derived,
                    )
                    retry.append((write, {**payload, "Name": derived}))
            keys = [
                f"{write.key}:{payload.get('ContactID') or payload['Name']}"
                for write, payload in retry
            ]
            outcomes = await self._send("POST", [payload for _, payload in retry], "names", keys)
            collided = []
            for (write, payload), outcome in zip(retry, outcomes, strict=True):
                if outcome.duplicate_name and attempt + 1 < NAME_ROUNDS:
                    collided.append((write, payload))
                else:
                    results[write.key] = self._result(
                        write.key, outcome, written=write.data, create=True
                    )
            if not collided:
                return

    async def update(self, batch: Sequence[RecordWrite]) -> list[WriteResult]:
        await self.open()
        results: dict[str, WriteResult] = {}
        sending: list[tuple[RecordWrite, dict[str, Any]]] = []
        for write in batch:
            if not write.id:
                results[write.key] = WriteResult(write.key, None, "an update needs a ContactID")
                continue
            listed = self._listed.get(write.id)
            payload = mapping.data_to_contact(write.data, listed)
            if "Name" in payload and not str(payload["Name"]).strip():
                person = mapping.derive_name({**_person(listed), **write.data}, "")
                if mapping.ORGANISATION in write.data and "Name" not in write.data and person:
                    # the organisation is cleared: the contact is named after its person again
                    payload["Name"] = person
                else:
                    # Xero cannot hold a contact without a Name: keep the one it has
                    del payload["Name"]
            if not payload:
                stored = _stored(write.data, _person(listed)) if listed else None
                results[write.key] = WriteResult(write.key, write.id, stored=stored)
                continue
            problem = mapping.too_long(payload)
            if problem:
                results[write.key] = WriteResult(write.key, write.id, problem)
                continue
            sending.append((write, {"ContactID": write.id, **payload}))
        if sending:
            keys = [write.key for write, _ in sending]
            outcomes = await self._send("POST", [payload for _, payload in sending], "update", keys)
            for (write, _), outcome in zip(sending, outcomes, strict=True):
                results[write.key] = self._result(write.key, outcome, write.id, write.data)
        return [results[write.key] for write in batch]

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        await self.open()
        results: list[WriteResult] = []
        for start in range(0, len(ids), self.batch_size):
            chunk = list(ids[start : start + self.batch_size])
            payloads = [{"ContactID": i, "ContactStatus": "ARCHIVED"} for i in chunk]
            outcomes = await self._send("POST", payloads, "archive", chunk)
            results += [
                self._result(i, outcome, i) for i, outcome in zip(chunk, outcomes, strict=True)
            ]
        return results

    async def _send(
        self, method: str, payloads: list[dict[str, Any]], operation: str, keys: Sequence[str]
    ) -> list[writes.Outcome]:
        """Send one batch; one outcome per payload. Elements Xero did not report on are sent
        once more (see :func:`syncd_xero.writes.outcomes`)."""
        final: list[writes.Outcome | None] = [None] * len(payloads)
        pending = list(range(len(payloads)))
        for attempt in range(2):
            response = await self._call(
                method,
                "/Contacts",
                params={"summarizeErrors": "false"},
                json_body={"Contacts": [payloads[i] for i in pending]},
                headers={
                    "Idempotency-Key": writes.idempotency_key(
                        operation if attempt == 0 else f"{operation}-again",
                        [keys[i] for i in pending],
                    )
                },
            )
            answered = writes.outcomes(response, [payloads[i] for i in pending])
            if isinstance(answered, str):
                for i in pending:
                    final[i] = writes.Outcome({}, answered)
                pending = []
                break
            unknown = []
            for i, outcome in zip(pending, answered, strict=True):
                if outcome is None:
                    unknown.append(i)
                else:
                    final[i] = outcome
            pending = unknown
            if not pending:
                break
        results = [
            outcome or writes.Outcome({}, "Xero did not report on this contact")
            for outcome in final
        ]
        for outcome in results:
            if outcome.error is None and outcome.contact_id:
                self._listed[outcome.contact_id] = {
                    **{key: outcome.contact.get(key) for key in PERSON_KEYS},
                    "Phones": outcome.contact.get("Phones") or [],
                    "Addresses": outcome.contact.get("Addresses") or [],
                }
        return results

    @staticmethod
    def _result(
        key: str,
        outcome: writes.Outcome,
        fallback_id: str | None = None,
        written: Mapping[str, Any] | None = None,
        create: bool = False,
    ) -> WriteResult:
        if outcome.error is not None:
            return WriteResult(key, fallback_id, outcome.error)
        if not outcome.contact_id and not fallback_id:
            return WriteResult(key, None, "Xero answered without a ContactID")
        stored = None
        if written is not None and outcome.contact.get("Name"):
            stored = _stored(written, _person(outcome.contact), create)
        return WriteResult(key, outcome.contact_id or fallback_id, stored=stored)


# --- helpers --------------------------------------------------------------------------------


#: what the connector keeps of a listed contact to tell its Name and Organisation
PERSON_KEYS = ("Name", "FirstName", "LastName", "EmailAddress")  # also in _record


def _person(contact: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: (contact or {}).get(key) for key in PERSON_KEYS}


def _stored(
    written: Mapping[str, Any], contact: Mapping[str, Any], create: bool = False
) -> dict[str, Any] | None:
    """``WriteResult.stored``: the Name (and the Organisation it holds) when Xero holds other
    than was written: a Name the connector derived (Xero requires one; "Jane Smith" from the
    person's name), made distinct ("Jane Smith (jane@x.com)") or kept (Xero cannot clear a
    Name). That value is Xero's own, not a person's edit, and must not travel back."""
    now = {**contact, mapping.ORGANISATION: mapping.organisation(contact)}
    stored = {}
    for field in ("Name", mapping.ORGANISATION):
        if field not in written and not create:
            continue  # an update that left the field alone says nothing about it
        if mapping.fold(written.get(field)) != mapping.fold(now.get(field)):
            stored[field] = now.get(field)
    return stored or None


def if_modified_since(moment: datetime) -> str:
    """The ``If-Modified-Since`` value: ISO 8601 in UTC with milliseconds and ``Z``.

    The spec types it ``date-time`` (example ``2020-02-06T12:17:43.202-08:00``); the legacy docs
    describe a UTC ``yyyy-mm-ddThh:mm:ss``. A UTC RFC 3339 value satisfies both readings.
    """
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _bounded_int(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = config.get(key)
    try:
        value = default if raw is None or raw == "" else int(raw)
    except (TypeError, ValueError):
        raise ConnectorConfigError(f"{key} must be a whole number", key=key) from None
    if not low <= value <= high:
        raise ConnectorConfigError(f"{key} must be between {low} and {high}", key=key)
    return value


def _bounded_float(
    config: Mapping[str, Any], key: str, default: float, low: float, high: float
) -> float:
    raw = config.get(key)
    try:
        value = default if raw is None or raw == "" else float(raw)
    except (TypeError, ValueError):
        raise ConnectorConfigError(f"{key} must be a number", key=key) from None
    if not low <= value <= high:
        raise ConnectorConfigError(f"{key} must be between {low:g} and {high:g}", key=key)
    return value


async def _ask(prompt: AuthPrompt, question: str) -> str:
    """Ask on a daemon thread, so the event loop keeps serving (a loopback sandbox, say) and an
    interrupted prompt never keeps the process alive."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def run() -> None:
        try:
            text = prompt.ask(question)
        except BaseException as exc:  # EOF, KeyboardInterrupt: hand it to the loop
            loop.call_soon_threadsafe(_settle, answer, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, answer, text, None)

    threading.Thread(target=run, name="xero-auth-prompt", daemon=True).start()
    return await answer


def _settle(future: asyncio.Future[str], value: str | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value or "")


__all__ = ["XeroConnector", "if_modified_since"]

"""``syncd sandbox xero``: an emulator of the parts of Xero the connector uses.

One aiohttp application serves what Xero spreads over three hosts, so the connector's
``api_url``, ``identity_url`` and ``login_url`` settings all point at the same address:

* login: ``GET /identity/connect/authorize`` (consents at once and redirects back; with the
  option ``consent_page=true`` it shows a consent page with "Allow access" first);
* identity: ``POST /connect/token``, ``POST /connect/revocation``, ``GET``/``DELETE /Connections``;
* accounting: ``GET``/``PUT``/``POST /api.xro/2.0/Contacts`` and every other Contacts and
  ContactGroups operation of the spec (``sandbox_contacts``); unknown routes and methods answer
  in Xero's problem-details shape (``sandbox_errors``), as do the ``error_rate`` faults.

Registered clients (override with options ``client_id``/``client_secret``):

* ``sandbox-client`` / ``sandbox-secret``: a web app (authorization code, PKCE optional);
* ``sandbox-pkce-client``: a PKCE app without a secret;
* ``sandbox-custom-client`` / ``sandbox-custom-secret``: a Custom Connection (client_credentials)
  to the first organisation.

Options: ``count`` (contacts seeded when ``seed`` is given, default 300), ``tenants`` (names of the
organisations, default "Demo Company (UK)" and "Demo Company (NZ)"; only the first is seeded),
``rate_limits`` (default on), ``minute_limit``, ``day_limit``, ``concurrent_limit``,
``minute_window``, ``msdate_offset`` (``/Date(ms+0000)/`` or ``/Date(ms)/``), ``partial_400``,
``website_quirk``, ``idempotency_ttl``, ``refresh_grace`` (seconds a rotated refresh token is
still honoured; Xero's 30 minutes by default), ``webhook_url`` and ``webhook_key`` (webhooks: see
:mod:`syncd_xero.sandbox_webhooks`, also for ``/_sandbox/xero/webhooks``).

Sandbox-only controls (**not Xero's API**), besides the shared ``/_sandbox/switches``:

* ``GET  /_sandbox/xero/state``: organisations, grants, token counts, replays, 429s, the most
  Accounting requests in flight at once (``most_in_flight``);
* ``GET  /_sandbox/xero/contacts?tenant=``: every contact, archived included;
* ``POST /_sandbox/xero/contacts``: ``{"tenant"?, "Contacts": [...]}`` stored as a person using
  Xero would (no API validation; ``ContactID`` to edit one);
* ``POST /_sandbox/xero/tokens/expire``: every access token expires now;
* ``POST /_sandbox/xero/grants/revoke``: ``{"grant_id"?}``, revoke grants (refresh → invalid_grant);
* ``POST /_sandbox/xero/clock``: ``{"advance": seconds}`` moves the identity clock forward;
* ``POST /_sandbox/xero/limits``: ``{"enabled", "minute_limit", "day_limit", ...}`` and resets
  the windows.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Any

from aiohttp import web

from syncd.sandbox import install_switches, option_list
from syncd_xero.sandbox_accounting import (
    Accounting,
    Limits,
    in_flight_counter,
    middleware,
    switch_too_many,
)
from syncd_xero.sandbox_accounting import (
    routes as accounting_routes,
)
from syncd_xero.sandbox_contacts import routes as contact_routes
from syncd_xero.sandbox_data import Clock, Org, render, seed_org
from syncd_xero.sandbox_errors import DEFAULT_ERROR_STATUSES, fault, http_errors
from syncd_xero.sandbox_identity import Client, Identity
from syncd_xero.sandbox_identity import routes as identity_routes
from syncd_xero.sandbox_oidc import routes as oidc_routes
from syncd_xero.sandbox_webhooks import install as install_webhooks

DEFAULT_TENANTS = ("Demo Company (UK)", "Demo Company (NZ)")
DEFAULT_COUNT = 300
STATE_KEY = web.AppKey("xero_state", Accounting)


def _tenant_id(name: str, index: int) -> str:
    digest = hashlib.sha256(f"xero-sandbox:{index}:{name}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _flag(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def make_app(seed: int | None = None, options: dict[str, Any] | None = None) -> web.Application:
    """The sandbox application (the factory registered as ``xero``)."""
    options = dict(options or {})
    clock = Clock()
    names = option_list(options.get("tenants")) or list(DEFAULT_TENANTS)
    orgs: dict[str, Org] = {}
    for index, name in enumerate(names):
        org = Org(_tenant_id(str(name), index), str(name), clock)
        org.website_quirk = _flag(options.get("website_quirk"), False)
        orgs[org.tenant_id] = org
    first = next(iter(orgs.values()))
    if seed is not None:
        seed_org(
            first, random.Random(seed), int(options.get("count", DEFAULT_COUNT)), shared_seed=seed
        )

    identity = Identity(clock, orgs, consent_page=_flag(options.get("consent_page"), False))
    if "refresh_grace" in options:
        identity.grace = float(options["refresh_grace"])
    web_client = Client(
        str(options.get("client_id", "sandbox-client")),
        str(options.get("client_secret", "sandbox-secret")),
    )
    identity.clients[web_client.client_id] = web_client
    identity.clients["sandbox-pkce-client"] = Client("sandbox-pkce-client", None, "pkce")
    identity.clients["sandbox-custom-client"] = Client(
        "sandbox-custom-client", "sandbox-custom-secret", "custom", first.tenant_id
    )

    limits = Limits(enabled=_flag(options.get("rate_limits"), True))
    limits.configure(
        {
            key: options[key]
            for key in (
                "minute_limit",
                "day_limit",
                "concurrent_limit",
                "app_minute_limit",
                "minute_window",
                "day_window",
            )
            if key in options
        }
    )
    accounting = Accounting(
        identity,
        limits,
        msdate_offset=_flag(options.get("msdate_offset"), True),
        partial_400=_flag(options.get("partial_400"), False),
        idempotency_ttl=float(options.get("idempotency_ttl", 360.0)),
    )

    app = web.Application()
    app[STATE_KEY] = accounting
    # the switches go first (outermost) so that /_sandbox/calls counts every request, also the
    # ones Xero's own rules refuse
    install_switches(
        app, too_many=switch_too_many, fault=fault, error_statuses=DEFAULT_ERROR_STATUSES
    )
    app.middlewares.insert(0, in_flight_counter(accounting))
    app.middlewares.append(http_errors())
    app.middlewares.append(middleware(accounting))
    app.add_routes(identity_routes(identity))
    app.add_routes(oidc_routes(identity.signer))
    app.add_routes(accounting_routes(accounting))
    app.add_routes(contact_routes(accounting))
    app.add_routes(_control_routes(accounting))
    install_webhooks(app, accounting, options)
    return app


def _org(accounting: Accounting, tenant: str | None) -> Org:
    orgs = accounting.orgs
    if tenant:
        for org in orgs.values():
            if tenant in (org.tenant_id, org.name):
                return org
        raise web.HTTPNotFound(text=f"no organisation {tenant!r}")
    return next(iter(orgs.values()))


def _control_routes(accounting: Accounting) -> web.RouteTableDef:
    table = web.RouteTableDef()
    identity = accounting.identity

    @table.get("/_sandbox/xero/state")
    async def state(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "organisations": [
                    {
                        "tenantId": org.tenant_id,
                        "tenantName": org.name,
                        "contacts": len(org.contacts),
                        "read_only_fields_received": org.read_only_received,
                    }
                    for org in accounting.orgs.values()
                ],
                "clients": sorted(identity.clients),
                "grants": [
                    {"grant_id": g.grant_id, "client_id": g.client_id, "revoked": g.revoked}
                    for g in identity.grants.values()
                ],
                "tokens_issued": identity.issued,
                "refresh_reuses": identity.refresh_reuses,
                "idempotent_replays": accounting.replays,
                "rate_limited": accounting.limits.refused,
                "most_in_flight": accounting.most_in_flight,
                "writes": accounting.requests_seen[-50:],
            }
        )

    @table.get("/_sandbox/xero/contacts")
    async def contacts(request: web.Request) -> web.Response:
        org = _org(accounting, request.query.get("tenant"))
        shown = [render(c, True, accounting.msdate_offset) for c in org.contacts.values()]
        return web.json_response({"Contacts": shown})

    @table.post("/_sandbox/xero/contacts")
    async def put_contacts(request: web.Request) -> web.Response:
        body = await request.json()
        org = _org(accounting, body.get("tenant"))
        ids = [org.put_raw(item) for item in body.get("Contacts") or []]
        shown = [render(org.contacts[i], True, accounting.msdate_offset) for i in ids]
        return web.json_response({"Contacts": shown})

    @table.post("/_sandbox/xero/tokens/expire")
    async def expire(request: web.Request) -> web.Response:
        return web.json_response({"expired": identity.expire_access_tokens()})

    @table.post("/_sandbox/xero/grants/revoke")
    async def revoke(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        return web.json_response({"revoked": identity.revoke(body.get("grant_id"))})

    @table.post("/_sandbox/xero/clock")
    async def clock(request: web.Request) -> web.Response:
        body = await request.json()
        identity.clock.advance(float(body.get("advance", 0)))
        return web.json_response({"offset": identity.clock.offset})

    @table.post("/_sandbox/xero/limits")
    async def limits(request: web.Request) -> web.Response:
        try:
            accounting.limits.configure(await request.json())
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad limit: {exc}"}, status=400)
        return web.json_response({"enabled": accounting.limits.enabled})

    return table

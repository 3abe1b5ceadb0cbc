"""The sandbox's Xero identity service: authorise, token (with rotation and grace), revocation,
connections.

Emulated from vendors.md §1.2 and the identity spec: access tokens live 30 minutes; a refresh
rotates the refresh token; the old one still works for a 30-minute grace period, and using it
then returns the successor refresh token again (what Xero returns in that case is not documented:
returning the same successor is the most likely reading, and the connector copes with either); an
unused refresh token dies after 60 days; a dead or revoked one answers ``400 invalid_grant``.
PKCE (S256) is checked when the authorisation carried a ``code_challenge`` and required for a
client without a secret. Custom-connection clients use ``client_credentials``: no refresh token,
one organisation, and no ``xero-tenant-id`` header needed.

The authorise page consents at once (there is no person to click) and redirects with ``code`` and
``state``. Sandbox-only controls (not Xero's) live under ``/_sandbox/xero/``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from syncd_xero.sandbox_data import Clock, Org
from syncd_xero.sandbox_oidc import Signer, issuer_of

ACCESS_LIFETIME = 1800.0
REFRESH_IDLE = 60 * 24 * 3600.0
GRACE = 1800.0
CODE_LIFETIME = 300.0


@dataclass
class Client:
    client_id: str
    secret: str | None
    #: ``custom``: a Custom Connection (client_credentials) tied to ``tenant_id``
    kind: str = "web"
    tenant_id: str | None = None


@dataclass
class Grant:
    grant_id: str
    client_id: str
    tenant_ids: list[str]
    scope: str
    auth_event_id: str
    created: float
    revoked: bool = False


@dataclass
class RefreshToken:
    grant_id: str
    last_used: float
    successor: str | None = None
    rotated_at: float | None = None


@dataclass
class AccessToken:
    client_id: str
    tenant_ids: list[str]
    expires_at: float
    grant_id: str | None = None
    #: issued by client_credentials (no tenant header needed)
    custom: bool = False


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    method: str
    expires_at: float
    used: bool = False
    nonce: str | None = None


@dataclass
class Identity:
    """Clients, grants and tokens of the sandbox."""

    clock: Clock
    orgs: dict[str, Org]
    clients: dict[str, Client] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    #: tokens issued by the token endpoint, by grant type (for tests)
    issued: dict[str, int] = field(default_factory=dict)
    #: signs the id_token of an ``openid`` grant (sandbox_oidc)
    signer: Signer = field(default_factory=Signer)
    #: show a consent page ("Allow access") instead of consenting at once (option consent_page)
    consent_page: bool = False
    #: how long a rotated refresh token is still honoured (option ``refresh_grace``; Xero: 30 min)
    grace: float = GRACE
    #: refreshes that sent a refresh token already rotated (honoured or not), for tests: a
    #: client that keeps its tokens right sends each refresh token once
    refresh_reuses: int = 0

    # --- tokens ----------------------------------------------------------------------------

    def _issue(self, grant: Grant | None, client: Client, with_refresh: bool) -> dict[str, Any]:
        now = self.clock.now()
        access = "sbx-at-" + secrets.token_urlsafe(24)
        tenants = list(grant.tenant_ids) if grant else [client.tenant_id or ""]
        self.access_tokens[access] = AccessToken(
            client.client_id,
            tenants,
            now + ACCESS_LIFETIME,
            grant.grant_id if grant else None,
            custom=grant is None,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": int(ACCESS_LIFETIME),
            "token_type": "Bearer",
            "scope": grant.scope if grant else "accounting.contacts",
        }
        if with_refresh and grant is not None:
            refresh = "sbx-rt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = RefreshToken(grant.grant_id, now)
            body["refresh_token"] = refresh
        return body

    def access(self, header: str | None) -> AccessToken | str:
        """The access token of an ``Authorization: Bearer`` header, or why it is refused."""
        if not header or not header.startswith("Bearer "):
            return "AuthenticationUnsuccessful"
        token = self.access_tokens.get(header[7:].strip())
        if token is None:
            return "AuthenticationUnsuccessful"
        if token.expires_at <= self.clock.now():
            moment = datetime.fromtimestamp(token.expires_at, UTC)
            return f"TokenExpired: token expired at {moment:%m/%d/%Y %H:%M:%S}"
        if token.grant_id is not None and self.grants[token.grant_id].revoked:
            return "AuthenticationUnsuccessful"
        return token

    def expire_access_tokens(self) -> int:
        now = self.clock.now()
        for token in self.access_tokens.values():
            token.expires_at = min(token.expires_at, now)
        return len(self.access_tokens)

    def revoke(self, grant_id: str | None = None) -> int:
        count = 0
        for grant in self.grants.values():
            if grant_id in (None, grant.grant_id) and not grant.revoked:
                grant.revoked = True
                count += 1
        return count

    def connections(self, token: AccessToken) -> list[dict[str, Any]]:
        grant = self.grants.get(token.grant_id or "")
        created = datetime.fromtimestamp(grant.created if grant else 0, UTC)
        stamp = created.strftime("%Y-%m-%dT%H:%M:%S.%f0")
        result = []
        for tenant_id in token.tenant_ids:
            org = self.orgs.get(tenant_id)
            if org is None or (grant is not None and tenant_id not in grant.tenant_ids):
                continue
            result.append(
                {
                    "id": _connection_id(grant.grant_id if grant else token.client_id, tenant_id),
                    "authEventId": grant.auth_event_id
                    if grant
                    else _connection_id("event", tenant_id),
                    "tenantId": tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": org.name,
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
            )
        return result


def _connection_id(grant_id: str, tenant_id: str) -> str:
    digest = hashlib.sha256(f"{grant_id}:{tenant_id}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def _oauth_error(error: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error}, status=status)


def _client_auth(
    identity: Identity, request: web.Request, form: Mapping[str, str]
) -> Client | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    client = identity.clients.get(client_id)
    if client is None:
        return None
    if client.secret is not None and not secrets.compare_digest(secret or "", client.secret):
        return None
    return client


def routes(identity: Identity) -> web.RouteTableDef:
    table = web.RouteTableDef()

    @table.get("/identity/connect/authorize")
    async def authorize(request: web.Request) -> web.StreamResponse:
        query = request.query
        client = identity.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or client.kind == "custom":
            return web.Response(status=400, text="Error: unauthorized_client")
        if not redirect_uri:
            return web.Response(status=400, text="Error: invalid redirect_uri")
        if query.get("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type"}, query)
        challenge = query.get("code_challenge")
        if client.secret is None and not challenge:
            return _redirect(redirect_uri, {"error": "invalid_request"}, query)
        if identity.consent_page:
            answer = query.get("consent")
            if answer is None:
                return _consent_page(identity, query)
            if answer != "allow":
                return _redirect(redirect_uri, {"error": "access_denied"}, query)
        code = secrets.token_urlsafe(24)
        identity.codes[code] = AuthCode(
            client.client_id,
            redirect_uri,
            query.get("scope", ""),
            challenge,
            query.get("code_challenge_method", "plain"),
            identity.clock.now() + CODE_LIFETIME,
            nonce=query.get("nonce") or None,
        )
        return _redirect(redirect_uri, {"code": code, "scope": query.get("scope", "")}, query)

    @table.post("/connect/token")
    async def token(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        client = _client_auth(identity, request, form)
        if client is None:
            return _oauth_error("invalid_client")
        grant_type = form.get("grant_type", "")
        identity.issued[grant_type] = identity.issued.get(grant_type, 0) + 1
        if grant_type == "authorization_code":
            return _exchange_code(identity, client, form, issuer_of(request))
        if grant_type == "refresh_token":
            return _with_id_token(
                identity,
                client,
                _refresh(identity, client, form.get("refresh_token", "")),
                issuer_of(request),
            )
        if grant_type == "client_credentials":
            if client.kind != "custom":
                return _oauth_error("unauthorized_client")
            return web.json_response(identity._issue(None, client, with_refresh=False))
        return _oauth_error("unsupported_grant_type")

    @table.post("/connect/revocation")
    async def revocation(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if _client_auth(identity, request, form) is None:
            return _oauth_error("invalid_client")
        record = identity.refresh_tokens.get(form.get("token", ""))
        if record is not None:
            identity.revoke(record.grant_id)
        return web.Response(status=200)

    async def list_connections(request: web.Request) -> web.Response:
        token = identity.access(request.headers.get("Authorization"))
        if isinstance(token, str):
            return unauthorized(token)
        return web.json_response(identity.connections(token))

    async def delete_connection(request: web.Request) -> web.Response:
        token = identity.access(request.headers.get("Authorization"))
        if isinstance(token, str):
            return unauthorized(token)
        wanted = request.match_info["id"]
        for connection in identity.connections(token):
            if connection["id"] == wanted:
                grant = identity.grants.get(token.grant_id or "")
                if grant is not None:
                    grant.tenant_ids.remove(connection["tenantId"])
                for other in identity.access_tokens.values():
                    if (
                        other.grant_id == token.grant_id
                        and connection["tenantId"] in other.tenant_ids
                    ):
                        other.tenant_ids.remove(connection["tenantId"])
                return web.Response(status=204)
        return web.Response(status=404)

    # Xero's docs write both /Connections and /connections
    for path in ("/Connections", "/connections"):
        table.get(path)(list_connections)
        table.delete(path + "/{id}")(delete_connection)
    return table


def _consent_page(identity: Identity, query: Mapping[str, str]) -> web.Response:
    """Xero's consent screen, reduced: which organisations, and Allow / Cancel."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in query.items()
        if k != "consent"
    )
    orgs = "".join(f"<li>{html.escape(org.name)}</li>" for org in identity.orgs.values())
    scopes = html.escape(query.get("scope", ""))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Xero sandbox: allow access</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Xero sandbox</h1>
<p>An app wants access to your organisations ({scopes}):</p><ul>{orgs}</ul>
<form method="get" action="/identity/connect/authorize">{hidden}
<button type="submit" name="consent" value="allow">Allow access</button>
<button type="submit" name="consent" value="deny">Cancel</button>
</form></main></body></html>"""
    return web.Response(text=body, content_type="text/html")


def _redirect(redirect_uri: str, params: dict[str, str], query: Mapping[str, str]) -> web.Response:
    if "state" in query:
        params["state"] = query["state"]
    separator = "&" if "?" in redirect_uri else "?"
    location = redirect_uri + separator + urllib.parse.urlencode(params)
    return web.Response(status=302, headers={"Location": location})


def _exchange_code(
    identity: Identity, client: Client, form: Mapping[str, str], issuer: str
) -> web.Response:
    code = identity.codes.get(form.get("code", ""))
    now = identity.clock.now()
    if (
        code is None
        or code.used
        or code.expires_at < now
        or code.client_id != client.client_id
        or code.redirect_uri != form.get("redirect_uri", "")
    ):
        return _oauth_error("invalid_grant")
    if code.challenge is not None:
        verifier = form.get("code_verifier", "")
        if code.method == "S256":
            digest = hashlib.sha256(verifier.encode()).digest()
            computed = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        else:
            computed = verifier
        if not verifier or not secrets.compare_digest(computed, code.challenge):
            return _oauth_error("invalid_grant")
    code.used = True
    grant = Grant(
        grant_id=secrets.token_hex(8),
        client_id=client.client_id,
        # no organisation picker to click: the grant reaches every organisation of the sandbox
        tenant_ids=list(identity.orgs),
        scope=code.scope,
        auth_event_id=str(_connection_id("event", secrets.token_hex(8))),
        created=now,
    )
    identity.grants[grant.grant_id] = grant
    with_refresh = "offline_access" in code.scope.split()
    body = identity._issue(grant, client, with_refresh)
    if "openid" in code.scope.split():
        body["id_token"] = identity.signer.id_token(
            issuer, client.client_id, code.scope, str(body["access_token"]), code.nonce
        )
    return web.json_response(body)


def _with_id_token(
    identity: Identity, client: Client, response: web.Response, issuer: str
) -> web.Response:
    """A refresh of an ``openid`` grant brings a fresh id_token too (without a nonce)."""
    if response.status != 200 or not isinstance(response.body, bytes):
        return response
    body = json.loads(response.body)
    if "openid" not in str(body.get("scope", "")).split():
        return response
    body["id_token"] = identity.signer.id_token(
        issuer, client.client_id, str(body["scope"]), str(body["access_token"]), None
    )
    return web.json_response(body)


def _refresh(identity: Identity, client: Client, token: str) -> web.Response:
    now = identity.clock.now()
    record = identity.refresh_tokens.get(token)
    if record is None:
        return _oauth_error("invalid_grant")
    grant = identity.grants[record.grant_id]
    if grant.revoked or grant.client_id != client.client_id:
        return _oauth_error("invalid_grant")
    if now - record.last_used > REFRESH_IDLE:
        return _oauth_error("invalid_grant")
    if record.successor is not None:
        # already rotated: the old token is honoured for the grace period (a lost response)
        identity.refresh_reuses += 1
        if record.rotated_at is None or now - record.rotated_at > identity.grace:
            return _oauth_error("invalid_grant")
        body = identity._issue(grant, client, with_refresh=False)
        body["refresh_token"] = record.successor
        identity.refresh_tokens[record.successor].last_used = now
        return web.json_response(body)
    body = identity._issue(grant, client, with_refresh=True)
    record.successor = str(body["refresh_token"])
    record.rotated_at = now
    return web.json_response(body)


def unauthorized(detail: str) -> web.Response:
    """Xero's 401 (a problem-details body and a Bearer challenge)."""
    return web.json_response(
        {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": detail},
        status=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def forbidden(detail: str = "AuthorizationUnsuccessful") -> web.Response:
    return web.json_response(
        {"Type": None, "Title": "Forbidden", "Status": 403, "Detail": detail}, status=403
    )

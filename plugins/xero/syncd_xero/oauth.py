"""Xero OAuth 2.0: the authorization-code flow with PKCE, token refresh with rotation, and the
client-credentials grant of Xero Custom Connections.

Facts this follows (vendors.md §1.2, all primary unless noted): access tokens live 30 minutes;
every refresh returns a new refresh token and the old one stays usable for a 30-minute grace
period (so a refresh whose response was lost is simply retried with the old token); an unused
refresh token expires after 60 days; a dead grant answers ``400 {"error": "invalid_grant"}``
(secondary, and what the xero-python SDK maps to ``OAuth2InvalidGrantError``).

:class:`TokenManager` owns one token set. A refresh happens at most once at a time per token set:
an asyncio lock in the process and, across processes, an ``fcntl`` lock on the token file (the
daemon and a manual ``syncd sync``; :class:`FileStorage`) or, with a PostgreSQL store shared by
several daemons, the token row's lock and the sync's claim (:class:`VaultStorage`, see
:mod:`syncd.store.tokens`: only the claim holder refreshes, and writes the new tokens in the
same transaction as its claim check). Under the lock it first re-reads the stored tokens,
because another process may have refreshed already; then it refreshes, saves durably, and only
then uses the new access token. Tokens are refreshed five minutes ahead of expiry, and whenever
the refresh token is older than a week, which keeps an idle grant far from its 60-day expiry.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from syncd.connector import (
    ConnectorConfigError,
    ConnectorError,
    HttpClient,
    HttpResponse,
    NeedsReauth,
    RetryLater,
)
from syncd_xero.tokens import TokenFile, TokenSet

AUTHORIZE_PATH = "/identity/connect/authorize"
TOKEN_PATH = "/connect/token"
#: refresh this long before the access token expires (it lives 30 minutes)
REFRESH_AHEAD = 5 * 60.0
#: refresh at least this often, even when idle (the refresh token dies after 60 unused days)
IDLE_REFRESH = 7 * 24 * 3600.0
#: a process not holding the sync's claim uses stored tokens valid for at least this long
HELD_MARGIN = 30.0

AUTHORIZATION_CODE = "authorization_code"
CLIENT_CREDENTIALS = "client_credentials"


class AuthorizationFailed(ConnectorError):
    """The interactive authorisation did not complete (denied, wrong state, bad paste)."""


def token_error(response: HttpResponse, fix: str) -> Exception | None:
    """The token endpoint's error shapes as typed failures (``classify`` for its client)."""
    if response.status < 400 or response.status >= 500 or response.status == 429:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    if error == "invalid_grant":
        return NeedsReauth(
            "Xero refused the refresh token or code (invalid_grant): the grant was revoked, "
            "expired after 60 idle days, or its refresh token was rotated elsewhere",
            fix=fix,
        )
    if error in ("invalid_client", "unauthorized_client") or response.status in (401, 403):
        return NeedsReauth(
            f"Xero refused the client credentials ({error or f'HTTP {response.status}'})",
            fix=f"check client_id and client_secret, then run: {fix}",
        )
    return ConnectorConfigError(
        f"Xero's token endpoint refused the request (HTTP {response.status}"
        f"{': ' + error if error else ''})"
    )


@dataclass
class OAuthClient:
    """Talks to Xero's token endpoint for one app registration."""

    client_id: str
    client_secret: str | None
    identity: HttpClient
    #: the command that fixes a dead grant, for NeedsReauth
    fix: str

    def __repr__(self) -> str:
        secret = "***" if self.client_secret else None
        return f"OAuthClient(client_id={self.client_id!r}, secret={secret})"

    async def token_request(self, form: Mapping[str, str]) -> dict[str, Any]:
        fields = dict(form)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if self.client_secret:
            pair = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            # a PKCE client has no secret and names itself in the form instead
            fields["client_id"] = self.client_id
        response = await self.identity.request(
            "POST", TOKEN_PATH, data=urllib.parse.urlencode(fields).encode(), headers=headers
        )
        problem = token_error(response, self.fix)
        if problem is not None:
            raise problem
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status != 200 or not isinstance(body, dict):
            raise ConnectorError(f"Xero's token endpoint answered HTTP {response.status}")
        return body


class TokenStorage(Protocol):
    """Where a token set is kept: a file (SQLite installations) or the store (PostgreSQL)."""

    #: where the tokens are, for messages (a path or "the store"; never a token)
    where: str

    async def load(self) -> TokenSet | None: ...

    async def save(self, tokens: TokenSet) -> None: ...

    async def refresh(self, renew: Renew) -> tuple[TokenSet | None, bool]:
        """Under the cross-process refresh lock: read what is stored, call ``renew`` with it
        and save what it returns. Returns what is stored after, and whether it was renewed."""
        ...


#: ``renew(stored, held_by)``: the new token set, or ``None`` to keep the stored one.
#: ``held_by`` names another process that holds the sync's claim (and so refreshes).
Renew = Callable[[TokenSet | None, str | None], Awaitable[TokenSet | None]]


class FileStorage:
    """A token file in the state directory, refreshed under its ``flock``."""

    def __init__(self, file: TokenFile) -> None:
        self.file = file
        self.where = str(file.path)

    async def load(self) -> TokenSet | None:
        return await asyncio.to_thread(self.file.load)

    async def save(self, tokens: TokenSet) -> None:
        lock = await _acquire(self.file)
        try:
            await asyncio.to_thread(self.file.save, tokens)
        finally:
            TokenFile.release(lock)

    async def refresh(self, renew: Renew) -> tuple[TokenSet | None, bool]:
        lock = await _acquire(self.file)
        try:
            stored = await asyncio.to_thread(self.file.load)
            fresh = await renew(stored, None)
            if fresh is None:
                return stored, False
            await asyncio.to_thread(self.file.save, fresh)
            return fresh, True
        finally:
            TokenFile.release(lock)


class VaultStorage:
    """A token set in a PostgreSQL store (``context.tokens``: :mod:`syncd.store.tokens`),
    encrypted; refreshed under its row lock by the process holding the sync's claim."""

    def __init__(self, vault: Any, name: str, sync: str, side: str) -> None:
        self.vault = vault
        self.name, self.sync, self.side = name, sync, side
        self.where = str(vault.where)

    async def load(self) -> TokenSet | None:
        return _token_set(await self.vault.load(self.name))

    async def save(self, tokens: TokenSet) -> None:
        await self.vault.save(self.name, self.sync, self.side, dataclasses.asdict(tokens))

    async def refresh(self, renew: Renew) -> tuple[TokenSet | None, bool]:
        renewed = False

        async def step(stored: Any) -> dict[str, Any] | None:
            nonlocal renewed
            fresh = await renew(_token_set(stored.data), stored.held_by)
            renewed = fresh is not None
            return None if fresh is None else dataclasses.asdict(fresh)

        after = await self.vault.refresh(self.name, self.sync, self.side, step)
        return _token_set(after.data), renewed


def _token_set(data: Mapping[str, Any] | None) -> TokenSet | None:
    if data is None:
        return None
    known = {f.name for f in dataclasses.fields(TokenSet)}
    try:
        return TokenSet(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return None


class TokenManager:
    """The access token for requests; refreshes it (once at a time) when it is due."""

    def __init__(
        self,
        oauth: OAuthClient,
        grant: str,
        file: TokenFile | TokenStorage | None,
        scopes: str = "",
    ) -> None:
        self.oauth = oauth
        self.grant = grant
        self.storage: TokenStorage | None = (
            FileStorage(file) if isinstance(file, TokenFile) else file
        )
        self.scopes = scopes
        self.tokens: TokenSet | None = None
        self.refreshes = 0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenManager(grant={self.grant!r}, tokens={self.tokens!r})"

    async def load(self) -> TokenSet | None:
        """Read the stored token set (authorization-code grant); ``None`` when there is none."""
        if self.storage is not None:
            self.tokens = await self.storage.load()
        return self.tokens

    def _due(self, tokens: TokenSet | None, rejected: str | None) -> bool:
        if tokens is None:
            return True
        if rejected is not None and tokens.access_token == rejected:
            return True
        if tokens.expires_within(REFRESH_AHEAD):
            return True
        return bool(tokens.refresh_token) and time.time() - tokens.refreshed_at > IDLE_REFRESH

    async def access_token(self) -> str:
        if self._due(self.tokens, None):
            await self.refresh()
        assert self.tokens is not None
        return self.tokens.access_token

    async def refresh(self, rejected: str | None = None) -> None:
        """Get a new access token if one is due (or ``rejected`` was refused by the API)."""
        async with self._lock:
            if not self._due(self.tokens, rejected):
                return
            # Shielded: once a refresh has started, cancelling the caller must not lose the new
            # refresh token between the response and the durable save.
            await asyncio.shield(asyncio.ensure_future(self._refresh_now(rejected)))

    async def _refresh_now(self, rejected: str | None) -> None:
        if self.grant == CLIENT_CREDENTIALS:
            form = {"grant_type": CLIENT_CREDENTIALS}
            if self.scopes:
                form["scope"] = self.scopes
            body = await self.oauth.token_request(form)
            self.tokens = TokenSet.from_response(body, previous=self.tokens)
            self.refreshes += 1
            return
        assert self.storage is not None

        async def renew(stored: TokenSet | None, held_by: str | None) -> TokenSet | None:
            if stored is None or not stored.refresh_token:
                raise NeedsReauth("Xero has not been authorised for this sync", fix=self.oauth.fix)
            if not self._due(stored, rejected):
                # another process (or connector) refreshed while we waited for the lock
                return None
            if held_by is not None:
                # another daemon runs this sync and refreshes its grant (a rotating refresh
                # token must be sent once): use what is stored while it is valid
                if stored.expires_within(HELD_MARGIN) or stored.access_token == rejected:
                    raise RetryLater(
                        f"the Xero tokens are due and {held_by}, which runs this sync, "
                        "refreshes them",
                        delay=5.0,
                    )
                return None
            body = await self.oauth.token_request(
                {"grant_type": "refresh_token", "refresh_token": stored.refresh_token}
            )
            return TokenSet.from_response(body, previous=stored)

        tokens, renewed = await self.storage.refresh(renew)
        self.tokens = tokens
        if renewed:
            self.refreshes += 1

    async def store(self, tokens: TokenSet) -> None:
        """Save a token set durably (under the refresh lock) and start using it."""
        if self.storage is not None:
            await self.storage.save(tokens)
        self.tokens = tokens


async def _acquire(file: TokenFile) -> int:
    """Take the file lock from a worker thread without leaking it if we are cancelled."""
    future = asyncio.ensure_future(asyncio.to_thread(file.acquire))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(
            lambda done: (
                TokenFile.release(done.result())
                if not done.cancelled() and done.exception() is None
                else None
            )
        )
        raise


# --- the authorization-code flow ------------------------------------------------------------


@dataclass(frozen=True)
class PendingAuthorization:
    """One authorisation in progress: the URL to open and what must come back."""

    url: str
    state: str
    verifier: str
    redirect_uri: str

    def __repr__(self) -> str:
        return f"PendingAuthorization(redirect_uri={self.redirect_uri!r})"


def start_authorization(
    login_url: str, client_id: str, redirect_uri: str, scopes: str
) -> PendingAuthorization:
    """The authorize URL with PKCE (S256) and a random ``state``."""
    verifier = secrets.token_urlsafe(64)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    state = secrets.token_urlsafe(24)
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scopes,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        quote_via=urllib.parse.quote,
    )
    url = f"{login_url.rstrip('/')}{AUTHORIZE_PATH}?{query}"
    return PendingAuthorization(url, state, verifier, redirect_uri)


def code_from_redirect(pasted: str, pending: PendingAuthorization) -> str:
    """The ``code`` from the URL the browser was sent back to, after checking ``state``."""
    text = pasted.strip()
    if not text:
        raise AuthorizationFailed("nothing was pasted")
    parsed = urllib.parse.urlsplit(text)
    query = urllib.parse.parse_qs(parsed.query or (text if "=" in text else ""))
    if "error" in query:
        raise AuthorizationFailed(f"Xero refused the authorisation: {query['error'][0]}")
    state = query.get("state", [""])[0]
    if not secrets.compare_digest(state, pending.state):
        raise AuthorizationFailed(
            "the pasted URL does not belong to this authorisation (its state does not match)"
        )
    code = query.get("code", [""])[0]
    if not code:
        raise AuthorizationFailed("the pasted URL has no authorisation code")
    return code


async def exchange_code(oauth: OAuthClient, code: str, pending: PendingAuthorization) -> TokenSet:
    body = await oauth.token_request(
        {
            "grant_type": AUTHORIZATION_CODE,
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.verifier,
        }
    )
    tokens = TokenSet.from_response(body)
    if not tokens.refresh_token:
        raise AuthorizationFailed(
            "Xero returned no refresh token: add the offline_access scope to the scopes setting"
        )
    return tokens


def is_loopback(redirect_uri: str) -> bool:
    host = urllib.parse.urlsplit(redirect_uri).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1")


async def wait_for_redirect(redirect_uri: str, within: float) -> str:
    """Listen once on the loopback ``redirect_uri`` and return the URL the browser came back to."""
    parts = urllib.parse.urlsplit(redirect_uri)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def callback(request: web.Request) -> web.Response:
        if not arrived.done():
            arrived.set_result(f"{redirect_uri.split('?')[0]}?{request.query_string}")
        return web.Response(
            text="syncd received the authorisation. You can close this window.",
            content_type="text/plain",
        )

    app = web.Application()
    app.router.add_get(path, callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        return await asyncio.wait_for(arrived, within)
    except TimeoutError:
        raise AuthorizationFailed(
            f"no browser came back to {redirect_uri} within {within:.0f}s"
        ) from None
    finally:
        await runner.cleanup()

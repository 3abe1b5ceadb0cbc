"""OpenID Connect in the sandbox's identity service: an ``id_token`` beside the access token when
``openid`` is among the granted scopes, and the discovery document and keys to check it.

Xero's identity service is an OpenID Connect provider (its identity spec and the ``openid
profile email`` scopes, vendors.md §1.2): the token response then carries an ``id_token``, an
RS256 JWT whose keys are published at ``/.well-known/openid-configuration/jwks``. Claims: ``iss``
(the sandbox's own address, as discovery says), ``aud`` (the client id), ``sub`` and
``xero_userid`` (the sandbox user), ``iat``/``nbf``/``exp`` (5 minutes), ``auth_time``,
``at_hash``, ``sid``, ``global_session_id``, ``nonce`` when the authorisation sent one, and the
``profile``/``email`` claims when those scopes were granted. The key pair is made when the
sandbox first signs (it is not Xero's key: a client must fetch the JWKS, not pin a key).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ID_TOKEN_LIFETIME = 300
USER = {
    "sub": "a3a4dbafh3495a808ed7a7b964388f53",
    "xero_userid": "1945393b-6eb7-4143-b083-7ab26cd7690b",
    "preferred_username": "sandbox.user@example.com",
    "email": "sandbox.user@example.com",
    "given_name": "Sandbox",
    "family_name": "User",
    "name": "Sandbox User",
}


@functools.cache
def _process_key() -> rsa.RSAPrivateKey:
    # made on first use, once per process (a 2048-bit key takes a noticeable moment to make)
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Signer:
    kid: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return _process_key()

    def jwks(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def id_token(
        self,
        issuer: str,
        client_id: str,
        scope: str,
        access_token: str,
        nonce: str | None,
        now: float | None = None,
    ) -> str:
        moment = int(now if now is not None else time.time())
        digest = hashlib.sha256(access_token.encode()).digest()
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": client_id,
            "sub": USER["sub"],
            "xero_userid": USER["xero_userid"],
            "iat": moment,
            "nbf": moment,
            "exp": moment + ID_TOKEN_LIFETIME,
            "auth_time": moment,
            "at_hash": base64.urlsafe_b64encode(digest[:16]).decode().rstrip("="),
            "sid": secrets.token_hex(16),
            "global_session_id": secrets.token_hex(16),
            "amr": ["pwd"],
        }
        scopes = scope.split()
        if "profile" in scopes:
            for key in ("preferred_username", "given_name", "family_name", "name"):
                claims[key] = USER[key]
        if "email" in scopes:
            claims["email"] = USER["email"]
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


def issuer_of(request: web.Request) -> str:
    return str(request.url.origin())


def routes(signer: Signer) -> web.RouteTableDef:
    table = web.RouteTableDef()

    @table.get("/.well-known/openid-configuration")
    async def discovery(request: web.Request) -> web.Response:
        base = issuer_of(request)
        return web.json_response(
            {
                "issuer": base,
                "authorization_endpoint": base + "/identity/connect/authorize",
                "token_endpoint": base + "/connect/token",
                "revocation_endpoint": base + "/connect/revocation",
                "jwks_uri": base + "/.well-known/openid-configuration/jwks",
                "response_types_supported": ["code"],
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                ],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    @table.get("/.well-known/openid-configuration/jwks")
    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(signer.jwks())

    return table

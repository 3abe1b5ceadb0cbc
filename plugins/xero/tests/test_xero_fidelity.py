"""The emulator as a client written from Xero's spec sees it (not only the connector's paths).

Every answer here is also validated against the spec by the ``xero`` fixture (conftest.py), and
every request that does not carry the raw marker is validated as a request.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import yaml

SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs" / "xero"
#: conftest's marker of a deliberately raw request: its answer is checked, the request is not
RAW_HEADER = "X-Test-Raw"
METHODS = ("get", "put", "post", "delete", "patch")
CUSTOM = base64.b64encode(b"sandbox-custom-client:sandbox-custom-secret").decode()
WEB = base64.b64encode(b"sandbox-client:sandbox-secret").decode()


async def token_for(env: Any) -> dict[str, str]:
    """Headers of a custom-connection token (no browser needed)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            env.url + "/connect/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {CUSTOM}"},
        ) as response,
    ):
        body = await response.json()
    tenant = next(iter(env.accounting.orgs))
    return {"Authorization": f"Bearer {body['access_token']}", "xero-tenant-id": tenant}


@cache
def spec_contacts_operations() -> frozenset[tuple[str, str]]:
    """``(METHOD, path)`` of every Contacts and ContactGroups operation in the spec."""
    with (SPECS / "xero_accounting.yaml").open("rb") as handle:
        spec = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return frozenset(
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith(("/Contacts", "/ContactGroups"))
        for method in operations
        if method in METHODS
    )


class Client:
    def __init__(self, env: Any, headers: dict[str, str]) -> None:
        self.env = env
        self.headers = headers

    async def __call__(
        self, method: str, path: str, *, raw: bool = False, **kwargs: Any
    ) -> tuple[int, Any, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if raw:
            headers[RAW_HEADER] = "1"
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, self.env.url + "/api.xro/2.0" + path, headers=headers, **kwargs
            ) as response,
        ):
            data = await response.read()
            body: Any = data
            if response.content_type == "application/json" and data:
                body = await response.json()
            return response.status, body, response.headers


async def test_every_contacts_operation_of_the_spec_is_served(xero: Any) -> None:
    env = await xero(seed=3, count=20)
    client = Client(env, await token_for(env))
    number_holder = await env.add({"Name": "Numbered Person", "ContactNumber": "CN-42"})
    numbered = number_holder[0]["ContactID"]
    status, body, _ = await client("GET", "/Contacts", params={"page": "1"})
    assert status == 200
    someone = body["Contacts"][0]["ContactID"]
    state: dict[str, str] = {}

    async def get_contact() -> int:
        status, body, _ = await client("GET", f"/Contacts/{someone}")
        assert body["Contacts"][0]["ContactID"] == someone
        return status

    async def get_by_number() -> int:
        status, body, _ = await client("GET", "/Contacts/CN-42")
        assert body["Contacts"][0]["ContactID"] == numbered
        return status

    async def update_contact() -> int:
        status, body, _ = await client(
            "POST", f"/Contacts/{someone}", json={"Contacts": [{"FirstName": "Renamed"}]}
        )
        assert body["Contacts"][0]["FirstName"] == "Renamed"
        assert body["Contacts"][0]["ContactID"] == someone
        return status

    async def put_attachment() -> int:
        status, body, _ = await client(
            "PUT",
            f"/Contacts/{someone}/Attachments/card.txt",
            data=b"hello",
            headers={"Content-Type": "application/octet-stream"},
            raw=True,  # openapi-core cannot check a "format: byte" octet stream
        )
        state["attachment"] = body["Attachments"][0]["AttachmentID"]
        return status

    async def post_attachment() -> int:
        status, body, _ = await client(
            "POST",
            f"/Contacts/{someone}/Attachments/card.txt",
            data=b"hello again",
            headers={"Content-Type": "application/octet-stream"},
            raw=True,
        )
        assert body["Attachments"][0]["ContentLength"] == len(b"hello again")
        state["attachment"] = body["Attachments"][0]["AttachmentID"]
        return status

    async def list_attachments() -> int:
        status, body, _ = await client("GET", f"/Contacts/{someone}/Attachments")
        assert [a["FileName"] for a in body["Attachments"]] == ["card.txt"]
        return status

    download = {"contentType": "application/octet-stream"}

    async def attachment_by_id() -> int:
        status, body, _ = await client(
            "GET", f"/Contacts/{someone}/Attachments/{state['attachment']}", headers=download
        )
        assert body == b"hello again"
        return status

    async def attachment_by_name() -> int:
        # the spec's {AttachmentID} and {FileName} templates overlap: openapi-core takes this path
        # for the first and refuses "card.txt" as a uuid, so the request is sent unchecked
        status, body, _ = await client(
            "GET", f"/Contacts/{someone}/Attachments/card.txt", headers=download, raw=True
        )
        assert body == b"hello again"
        return status

    async def cis_settings() -> int:
        status, body, _ = await client("GET", f"/Contacts/{someone}/CISSettings")
        assert body == {"CISSettings": [{"CISEnabled": False}]}
        return status

    async def put_history() -> int:
        status, _, _ = await client(
            "PUT",
            f"/Contacts/{someone}/History",
            json={"HistoryRecords": [{"Details": "Called about the renewal"}]},
        )
        return status

    async def get_history() -> int:
        status, body, _ = await client("GET", f"/Contacts/{someone}/History")
        assert [r["Details"] for r in body["HistoryRecords"]] == ["Called about the renewal"]
        return status

    async def create_group() -> int:
        status, body, _ = await client(
            "PUT", "/ContactGroups", json={"ContactGroups": [{"Name": "VIP"}]}
        )
        state["group"] = body["ContactGroups"][0]["ContactGroupID"]
        return status

    async def list_groups() -> int:
        status, body, _ = await client("GET", "/ContactGroups")
        assert [g["Name"] for g in body["ContactGroups"]] == ["VIP"]
        return status

    async def add_members() -> int:
        status, _, _ = await client(
            "PUT",
            f"/ContactGroups/{state['group']}/Contacts",
            json={"Contacts": [{"ContactID": someone}, {"ContactID": numbered}]},
        )
        return status

    async def get_group() -> int:
        status, body, _ = await client("GET", f"/ContactGroups/{state['group']}")
        members = {c["ContactID"] for c in body["ContactGroups"][0]["Contacts"]}
        assert members == {someone, numbered}
        return status

    async def update_group() -> int:
        status, body, _ = await client(
            "POST",
            f"/ContactGroups/{state['group']}",
            json={"ContactGroups": [{"Name": "Very Important"}]},
        )
        assert body["ContactGroups"][0]["Name"] == "Very Important"
        return status

    async def remove_member() -> int:
        status, _, _ = await client(
            "DELETE", f"/ContactGroups/{state['group']}/Contacts/{numbered}"
        )
        return status

    async def remove_all() -> int:
        status, _, _ = await client("DELETE", f"/ContactGroups/{state['group']}/Contacts")
        return status

    async def list_contacts() -> int:
        status, _, _ = await client("GET", "/Contacts")
        return status

    async def put_contacts() -> int:
        status, _, _ = await client("PUT", "/Contacts", json={"Contacts": [{"Name": "Brand New"}]})
        return status

    async def post_contacts() -> int:
        status, _, _ = await client(
            "POST", "/Contacts", json={"Contacts": [{"Name": "Renumbered", "ContactID": numbered}]}
        )
        return status

    # in an order where each step has what it needs
    steps: list[tuple[tuple[str, str], Callable[[], Awaitable[int]], int]] = [
        (("GET", "/Contacts"), list_contacts, 200),
        (("PUT", "/Contacts"), put_contacts, 200),
        (("POST", "/Contacts"), post_contacts, 200),
        (("GET", "/Contacts/{ContactID}"), get_contact, 200),
        (("GET", "/Contacts/{ContactNumber}"), get_by_number, 200),
        (("POST", "/Contacts/{ContactID}"), update_contact, 200),
        (("PUT", "/Contacts/{ContactID}/Attachments/{FileName}"), put_attachment, 200),
        (("POST", "/Contacts/{ContactID}/Attachments/{FileName}"), post_attachment, 200),
        (("GET", "/Contacts/{ContactID}/Attachments"), list_attachments, 200),
        (("GET", "/Contacts/{ContactID}/Attachments/{AttachmentID}"), attachment_by_id, 200),
        (("GET", "/Contacts/{ContactID}/Attachments/{FileName}"), attachment_by_name, 200),
        (("GET", "/Contacts/{ContactID}/CISSettings"), cis_settings, 200),
        (("PUT", "/Contacts/{ContactID}/History"), put_history, 200),
        (("GET", "/Contacts/{ContactID}/History"), get_history, 200),
        (("PUT", "/ContactGroups"), create_group, 200),
        (("GET", "/ContactGroups"), list_groups, 200),
        (("PUT", "/ContactGroups/{ContactGroupID}/Contacts"), add_members, 200),
        (("GET", "/ContactGroups/{ContactGroupID}"), get_group, 200),
        (("POST", "/ContactGroups/{ContactGroupID}"), update_group, 200),
        (("DELETE", "/ContactGroups/{ContactGroupID}/Contacts/{ContactID}"), remove_member, 204),
        (("DELETE", "/ContactGroups/{ContactGroupID}/Contacts"), remove_all, 204),
    ]
    walked = {operation for operation, _, _ in steps}
    assert walked == spec_contacts_operations(), "operations of the spec not walked here"
    answers = {operation: await step() for operation, step, _ in steps}
    assert answers == {operation: status for operation, _, status in steps}


async def test_unknown_routes_and_methods_answer_in_xeros_shape(xero: Any) -> None:
    env = await xero(seed=1, count=3)
    client = Client(env, await token_for(env))
    missing = "11111111-2222-4333-8444-555555555555"
    unknown_operations = {("GET", "/api.xro/2.0/Nothing/Here"), ("DELETE", "/api.xro/2.0/Contacts")}
    for method, path, status in (
        ("GET", "/Nothing/Here", 404),
        ("GET", f"/Contacts/{missing}", 404),
        ("POST", f"/Contacts/{missing}", 404),
        ("GET", f"/Contacts/{missing}/History", 404),
        ("DELETE", "/Contacts", 405),
    ):
        answer, body, headers = await client(method, path, raw=True, json={"Contacts": []})
        assert answer == status, (method, path)
        assert headers["Content-Type"].startswith("application/json")
        assert body["Status"] == status and body["Title"] and body["Detail"], (method, path)
    # the spec has no operation to hold these two answers to (they are not Xero's routes)
    env.exchanges[:] = [e for e in env.exchanges if (e.method, e.path) not in unknown_operations]
    async with aiohttp.ClientSession() as session, session.get(env.url + "/elsewhere") as response:
        assert response.status == 404
        assert (await response.json())["Title"] == "Not Found"


async def test_summary_only_leaves_out_the_heavy_fields(xero: Any) -> None:
    env = await xero(seed=1, count=3)
    client = Client(env, await token_for(env))
    await env.add(
        {
            "Name": "Heavy Person",
            "Balances": {"AccountsReceivable": {"Outstanding": 10.0, "Overdue": 0.0}},
            "PaymentTerms": {"Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}},
            "ContactPersons": [{"FirstName": "Pat", "EmailAddress": "pat@example.com"}],
        }
    )
    query = {"where": 'Name=="Heavy Person"', "page": "1"}
    _, full, _ = await client("GET", "/Contacts", params=query)
    _, summary, _ = await client("GET", "/Contacts", params={**query, "summaryOnly": "true"})
    [whole], [light] = full["Contacts"], summary["Contacts"]
    assert {"Balances", "PaymentTerms", "ContactPersons"} <= set(whole)
    assert not {"Balances", "PaymentTerms", "ContactPersons"} & set(light)
    assert light["Name"] == "Heavy Person"
    # unpaged: summaryOnly also brings the fields the spec says come "with summaryOnly or paging"
    _, unpaged, _ = await client(
        "GET", "/Contacts", params={"where": query["where"], "summaryOnly": "true"}
    )
    assert unpaged["Contacts"][0]["SalesDefaultLineAmountType"] == "INCLUSIVE"


async def test_retry_after_is_whole_seconds_even_for_sub_second_windows(xero: Any) -> None:
    env = await xero(seed=1, count=3, rate_limits=True, minute_limit=1, minute_window=0.5)
    client = Client(env, await token_for(env))
    assert (await client("GET", "/Contacts"))[0] == 200
    status, _, headers = await client("GET", "/Contacts")
    assert status == 429
    assert headers["X-Rate-Limit-Problem"] == "minute"
    assert headers["Retry-After"] == "1"


async def authorise(env: Any, scope: str, nonce: str | None = None) -> dict[str, Any]:
    """The authorization-code flow with PKCE, as a browser and a web app would run it."""
    verifier = "v" * 64
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    params = {
        "response_type": "code",
        "client_id": "sandbox-client",
        "redirect_uri": "http://127.0.0.1/callback",
        "scope": scope,
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if nonce:
        params["nonce"] = nonce
    async with aiohttp.ClientSession() as session:
        async with session.get(
            env.url + "/identity/connect/authorize", params=params, allow_redirects=False
        ) as response:
            location = response.headers["Location"]
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
        async with session.post(
            env.url + "/connect/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": params["redirect_uri"],
                "code_verifier": verifier,
            },
            headers={"Authorization": f"Basic {WEB}"},
        ) as response:
            assert response.status == 200
            return dict(await response.json())


async def test_openid_scope_brings_a_signed_id_token(xero: Any) -> None:
    env = await xero()
    tokens = await authorise(
        env, "openid profile email accounting.contacts offline_access", nonce="n-123"
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(env.url + "/.well-known/openid-configuration") as response:
            discovery = await response.json()
        async with session.get(discovery["jwks_uri"]) as response:
            keys = await response.json()
    header = jwt.get_unverified_header(tokens["id_token"])
    [key] = [k for k in keys["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(
        tokens["id_token"],
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="sandbox-client",
        issuer=discovery["issuer"],
    )
    assert claims["nonce"] == "n-123"
    assert claims["email"] == "sandbox.user@example.com" and claims["given_name"]
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
    assert "refresh_token" in tokens
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            env.url + "/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers={"Authorization": f"Basic {WEB}"},
        ) as response,
    ):
        refreshed = await response.json()
    again = jwt.decode(
        refreshed["id_token"], jwt.PyJWK(key).key, algorithms=["RS256"], audience="sandbox-client"
    )
    assert again["sub"] == claims["sub"] and "nonce" not in again

    without = await authorise(env, "accounting.contacts offline_access")
    assert "id_token" not in without


async def test_faults_answer_in_xeros_shape_and_status_mix(xero: Any) -> None:
    env = await xero(seed=1, count=3)
    client = Client(env, await token_for(env))
    await env.switches(error_rate=1.0, seed=2)
    seen = set()
    for _ in range(40):
        status, body, _ = await client("GET", "/Contacts")
        assert body["Status"] == status and body["Title"] and body["Detail"]
        seen.add(status)
    assert seen == {500, 503}  # the two server errors Xero documents
    await env.switches(error_statuses={"502": 1, "504": 1})
    for _ in range(20):
        status, body, _ = await client("GET", "/Contacts")
        seen.add(status)
        assert body["Status"] == status
    assert {502, 504} <= seen

"""The emulator as a client written from Salesflare's own spec sees it: documented filters,
account listing defaults and parameters, ``/me/contacts``, Hapi's validation sources, Joi's
email rule, and faults in Boom's shape."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from syncd_salesflare.sandbox_email import email_problem

AUTH = {"Authorization": "Bearer sandbox-api-key"}


async def call(sandbox: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    kwargs.setdefault("headers", AUTH)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, sandbox.url + path, **kwargs) as response,
    ):
        return response.status, await response.json()


async def create(sandbox: Any, **contact: Any) -> int:
    status, body = await call(sandbox, "POST", "/contacts", json=[contact])
    assert status == 200, body
    return int(body["id"])


async def names(sandbox: Any, path: str, params: Any) -> set[str]:
    status, body = await call(sandbox, "GET", path, params=params)
    assert status == 200, body
    return {c["name"] for c in body}


async def test_documented_contact_filters_are_applied(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    _, account = await call(sandbox, "POST", "/accounts", json={"name": "Acme"})
    await create(
        sandbox,
        name="Ann",
        email="ann@acme.example",
        phone_number="+32 (0)9 123 45 67",
        tags=["vip", "beta"],
        position={"organisation": "Acme", "role": "CEO"},
        address={"city": "Ghent", "country": "Belgium", "state_region": "East Flanders"},
        account=account["id"],
    )
    await create(
        sandbox,
        name="Bob",
        email="bob@other.example",
        phone_numbers=[{"number": "020 7946 0000", "type": "work"}],
        tags=["beta"],
        position={"organisation": "Other", "role": "CTO"},
        address={"city": "London", "country": "United Kingdom"},
    )
    vip = next(t["id"] for t in sandbox.state.tags.values() if t["name"] == "vip")
    cases: list[tuple[Any, set[str]]] = [
        ({"phone_number": "1234567"}, {"Ann"}),
        ({"phone_number": "02079460000"}, {"Bob"}),
        ({"domain": "ACME.example"}, {"Ann"}),
        ({"tag": str(vip)}, {"Ann"}),
        ([("tag.name", "beta")], {"Ann", "Bob"}),
        ([("tag.name", "VIP"), ("tag.name", "nothing")], {"Ann"}),
        ({"position.role": "cto"}, {"Bob"}),
        ({"address.city": "ghent"}, {"Ann"}),
        ([("address.city", "Ghent"), ("address.city", "London")], {"Ann", "Bob"}),
        ({"address.country": "United Kingdom"}, {"Bob"}),
        ({"address.state_region": "East Flanders"}, {"Ann"}),
        ({"type": "customer"}, {"Ann"}),
        ({"type": "mycontacts"}, {"Ann", "Bob"}),
        ({"tag.name": "beta", "address.country": "Belgium"}, {"Ann"}),
        ({"domain": "nowhere.example"}, set()),
    ]
    for params, expected in cases:
        assert await names(sandbox, "/contacts", params) == expected, params


async def test_a_bad_filter_value_names_the_query_as_its_source(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    for params, label in (({"type": "everyone"}, "type"), ({"tag": "vip"}, "tag")):
        status, body = await call(sandbox, "GET", "/contacts", params=params)
        assert status == 400
        assert body["validation"]["source"] == "query"
        assert body["validation"]["errors"][0]["label"] == label
    status, body = await call(sandbox, "GET", "/contacts", params={"order_by": "hotness"})
    assert status == 400 and body["validation"]["source"] == "query"
    status, body = await call(sandbox, "GET", "/contacts/abc")
    assert status == 400
    assert body["validation"]["source"] == "params"
    assert body["message"] == '"contact_id" must be a number'
    status, body = await call(sandbox, "POST", "/contacts", json=[{"nickname": "x"}])
    assert status == 400 and body["validation"]["source"] == "payload"


async def test_accounts_default_to_ten_a_page_and_take_the_documented_parameters(
    start_sandbox: Any,
) -> None:
    sandbox = await start_sandbox()
    for n in range(25):
        await call(sandbox, "POST", "/accounts", json={"name": f"Account {n:02d}", "size": n})
    status, page = await call(sandbox, "GET", "/accounts")
    assert status == 200 and len(page) == 10
    sandbox.state.accounts[next(iter(sandbox.state.accounts))]["tags"] = [{"id": 1, "name": "Key"}]
    params = [
        ("details", "false"),
        ("min_size", "20"),
        ("hotness", "0"),
        ("creation_after", "2000-01-01T00:00:00Z"),
        ("limit", "100"),
    ]
    status, big = await call(sandbox, "GET", "/accounts", params=params)
    assert status == 200
    assert sorted(a["size"] for a in big) == [20, 21, 22, 23, 24]
    status, tagged = await call(sandbox, "GET", "/accounts", params={"tag.name": "key"})
    assert status == 200 and [a["name"] for a in tagged] == ["Account 00"]
    status, none = await call(
        sandbox, "GET", "/accounts", params={"creation_after": "2999-01-01T00:00:00Z"}
    )
    assert status == 200 and none == []


async def test_me_contacts_lists_the_current_users_contacts(start_sandbox: Any) -> None:
    sandbox = await start_sandbox(seed=4, count=12)
    mine = await create(sandbox, name="Mine", email="mine@example.com")
    theirs = await create(sandbox, name="Theirs", email="theirs@example.com", owner=99)
    status, listed = await call(sandbox, "GET", "/me/contacts", params={"limit": "100"})
    assert status == 200
    ids = {c["id"] for c in listed}
    assert mine in ids and theirs not in ids
    unarchived = [c for c in sandbox.state.contacts.values() if not c["archived"]]
    assert len(listed) == len(unarchived) - 1
    status, filtered = await call(sandbox, "GET", "/me/contacts", params={"name": "Mine"})
    assert [c["id"] for c in filtered] == [mine]


@pytest.mark.parametrize(
    "email",
    ["jörg@exämple.com", "x@xn--p1ai.xn--p1ai", "tag+box@sub.example.c0m", "o'brien@example.ie"],
)
async def test_emails_joi_accepts_are_accepted(start_sandbox: Any, email: str) -> None:
    sandbox = await start_sandbox()
    await create(sandbox, email=email)


@pytest.mark.parametrize(
    "email",
    ["a..b@example.com", ".a@example.com", "a@example", "a@example.1com", "a" * 65 + "@x.com"],
)
async def test_emails_joi_refuses_are_refused_as_joi_does(start_sandbox: Any, email: str) -> None:
    sandbox = await start_sandbox()
    status, body = await call(sandbox, "POST", "/contacts", json=[{"email": email}])
    assert status == 400
    assert body["message"] == '"[0].email" must be a valid email'


_ATEXT = st.text(st.sampled_from("abcxyzABC019!#$%&'*+-/=?^_`{|}~é"), min_size=1, max_size=10)


@given(
    st.lists(_ATEXT, min_size=1, max_size=3),
    st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True), min_size=1),
    st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True),
)
def test_any_address_of_joi_shape_passes(local: list[str], labels: list[str], tld: str) -> None:
    assert email_problem(".".join(local) + "@" + ".".join([*labels, tld])) is None


async def test_faults_answer_in_booms_shape(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    async with aiohttp.ClientSession() as session:
        await session.post(sandbox.url + "/_sandbox/switches", json={"error_rate": 1.0})
        status, body = await call(sandbox, "GET", "/contacts")
        assert (status, body) == (
            500,
            {
                "statusCode": 500,
                "error": "Internal Server Error",
                "message": "An internal server error occurred",
            },
        )
        await session.post(sandbox.url + "/_sandbox/switches", json={"error_statuses": {"503": 1}})
        status, body = await call(sandbox, "GET", "/contacts")
        assert status == 503 and body["statusCode"] == 503 and body["error"]


async def test_unknown_routes_and_methods_answer_booms_404(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    for method, path in (("GET", "/nothing"), ("PATCH", "/contacts"), ("POST", "/me")):
        assert await call(sandbox, method, path) == (
            404,
            {"statusCode": 404, "error": "Not Found", "message": "Not Found"},
        ), (method, path)

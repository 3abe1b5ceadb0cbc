"""The flagship, end to end: ``syncd sync`` between the Xero and Salesflare sandboxes.

Each initial mode (``new-only``, ``merge``, ``a-into-b``, ``b-into-a``) runs the same story:

1. the first run, checked against the exact end state of both apps;
2. edits on both sides (the same field on both: a conflict, won by ``winner``), a second run,
   checked again;
3. a third run, which must write nothing.

The sync maps Xero's ``Name`` (the organisation) to the Salesflare contact's account, sends
``AccountNumber`` one way into a Salesflare custom field, and has an IF/THEN rule per direction:
Xero contacts with an account number get the title "Xero customer" in Salesflare, and Salesflare
contacts tagged ``customer`` travel to Xero with the company number "SF-CUSTOMER".

People: Jane and Dora are only in Xero, Bob is in both (with a different city), Erin and Fred are
only in Salesflare (Fred without the ``customer`` tag, until step 2), and each app holds one
contact without an email, which is never copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from syncd_xero.sandbox import make_app as make_xero

from syncd.sandbox import SandboxServer

SYNC = """
direction = "two-way"
initial = "{initial}"
winner = "{winner}"

[a]
connector = "xero"
grant = "client_credentials"
client_id = "sandbox-custom-client"
client_secret = "sandbox-custom-secret"
api_url = "{xero}"
identity_url = "{xero}"
login_url = "{xero}"

[b]
connector = "salesflare"
api_key = "sandbox-api-key"
base_url = "{salesflare}"
calls_per_minute = 60000

[[fields]]
a = "Name"
b = "account.name"

[[fields]]
a = "AccountNumber"
b = "custom.xero_account_number"
direction = "a-to-b"

[[rules.a-to-b]]
if = [ {{ field = "email", op = "is_set" }},
       {{ field = "custom.xero_account_number", op = "is_set" }} ]
then = [ {{ set = "title", value = "Xero customer" }} ]

[[rules.b-to-a]]
if = [ {{ field = "tags", op = "contains", value = "customer" }} ]
then = [ {{ set = "custom.xero_company_number", value = "SF-CUSTOMER" }} ]
"""

XERO_PEOPLE = [
    {"Name": "Acme Ltd", "FirstName": "Jane", "LastName": "Doe", "EmailAddress": "jane@acme.test",
     "AccountNumber": "ACC-1",
     "Phones": [{"PhoneType": "DEFAULT", "PhoneCountryCode": "44", "PhoneAreaCode": "20",
                 "PhoneNumber": "7946 0001"}]},
    {"Name": "Beta BV", "FirstName": "Bob", "LastName": "Beta", "EmailAddress": "Bob@Beta.test",
     "AccountNumber": "ACC-2", "Addresses": [{"AddressType": "STREET", "City": "Utrecht"}]},
    {"Name": "Gamma GmbH", "FirstName": "Gus", "LastName": "Gamma"},
    {"Name": "Delta AS", "FirstName": "Dora", "LastName": "Delta",
     "EmailAddress": "dora@delta.test", "AccountNumber": "ACC-4"},
]  # fmt: skip
SALESFLARE_PEOPLE = [
    {"firstname": "Bob", "lastname": "Beta", "email": "bob@beta.test", "account": "Beta BV",
     "address": {"city": "Amsterdam"}, "tags": ["customer"], "position": {"role": "CFO"}},
    {"firstname": "Erin", "lastname": "Echo", "email": "erin@echo.test", "account": "Echo Inc",
     "address": {"city": "Oslo"}, "tags": ["customer"]},
    {"firstname": "Fred", "lastname": "Fox", "email": "fred@fox.test"},
    {"firstname": "Nomail"},
]  # fmt: skip


class Flagship:
    def __init__(self, xero: SandboxServer, salesflare: Any, syncd: Any) -> None:
        self.xero = xero
        self.salesflare = salesflare
        self.syncd = syncd

    async def xero_call(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.xero.url + path, json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json()

    async def xero_contacts(self) -> dict[str, dict[str, Any]]:
        return {
            (c.get("EmailAddress") or f"({c['Name']})").lower(): c
            for c in (await self.xero_call("GET", "/_sandbox/xero/contacts"))["Contacts"]
        }

    async def xero_view(self) -> dict[str, dict[str, Any]]:
        view = {}
        for key, contact in (await self.xero_contacts()).items():
            phone = next(
                (p for p in contact.get("Phones", []) if p.get("PhoneType") == "DEFAULT"), {}
            )
            street = next(
                (a for a in contact.get("Addresses", []) if a.get("AddressType") == "STREET"), {}
            )
            number = " ".join(
                p for p in (phone.get(k) for k in ("PhoneCountryCode", "PhoneAreaCode",
                                                   "PhoneNumber")) if p
            )  # fmt: skip
            row = {
                "Name": contact.get("Name"),
                "FirstName": contact.get("FirstName"),
                "LastName": contact.get("LastName"),
                "EmailAddress": contact.get("EmailAddress"),
                "AccountNumber": contact.get("AccountNumber"),
                "CompanyNumber": contact.get("CompanyNumber"),
                "City": street.get("City"),
                "Phone": number,
            }
            assert contact.get("ContactStatus") == "ACTIVE"
            view[key] = {k: v for k, v in row.items() if v}
        return view

    def salesflare_view(self) -> dict[str, dict[str, Any]]:
        state = self.salesflare.state
        view: dict[str, dict[str, Any]] = {}
        for contact in state.contacts.values():
            shown = state.render_contact(contact)
            key = shown["email"] or f"({shown['firstname']})"
            assert key not in view, f"two Salesflare contacts for {key}"
            row = {
                "first": shown["firstname"],
                "last": shown["lastname"],
                "company": (shown["account"] or {}).get("name"),
                "title": shown["role"],
                "city": shown["addresses"][0]["city"] if shown["addresses"] else None,
                "phone": shown["phone_number"],
                "tags": sorted(t["name"] for t in shown["tags"]),
                "custom": shown["custom"],
            }
            view[key] = {k: v for k, v in row.items() if v}
        return view

    async def writes(self) -> int:
        xero_calls = (await self.xero_call("GET", "/_sandbox/calls"))["by_route"]
        to_xero = sum(
            count
            for route, count in xero_calls.items()
            if route in ("PUT /api.xro/2.0/Contacts", "POST /api.xro/2.0/Contacts")
        )
        to_salesflare = sum(
            1
            for method, path, _, _ in self.salesflare.requests
            if method != "GET" and path.startswith(("/contacts", "/accounts"))
        )
        return int(to_xero) + to_salesflare

    async def edit(self) -> None:
        """Step 2: Dora renamed and Bob's last name changed in Xero; Fred tagged and Bob's
        last name changed (differently) in Salesflare."""
        xero = await self.xero_contacts()
        await self.xero_call(
            "POST",
            "/_sandbox/xero/contacts",
            {
                "Contacts": [
                    {"ContactID": xero["dora@delta.test"]["ContactID"], "LastName": "Dahl"},
                    {"ContactID": xero["bob@beta.test"]["ContactID"], "LastName": "Beta-Jones"},
                ]
            },
        )
        state = self.salesflare.state
        for contact_id, contact in state.contacts.items():
            if contact["email"] == "fred@fox.test":
                state.update_contact(contact_id, {"tags": ["customer"]})
            if contact["email"] == "bob@beta.test":
                state.update_contact(contact_id, {"lastname": "Beta-Smith"})


def expected(initial: str, winner: str, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The exact end state of Xero and Salesflare after ``step`` (1 or 2)."""
    first = {"merge": winner, "a-into-b": "a", "b-into-a": "b", "new-only": None}[initial]
    xero_to_salesflare = initial in ("merge", "a-into-b")  # Xero-only people copied at once
    salesflare_to_xero = initial in ("merge", "b-into-a")
    jane_sf = {"first": "Jane", "last": "Doe", "company": "Acme Ltd", "title": "Xero customer",
               "phone": "+442079460001", "custom": {"xero_account_number": "ACC-1"}}  # fmt: skip
    dora_sf = {"first": "Dora", "last": "Delta", "company": "Delta AS", "title": "Xero customer",
               "custom": {"xero_account_number": "ACC-4"}}  # fmt: skip
    erin_xero = {"Name": "Echo Inc", "FirstName": "Erin", "LastName": "Echo",
                 "EmailAddress": "erin@echo.test", "CompanyNumber": "SF-CUSTOMER",
                 "City": "Oslo"}  # fmt: skip
    # Bob, matched by email: without a base, the conflicting city goes to the first run's
    # winner; the account number fills Salesflare's empty field if Xero's values travelled
    bob_city_xero = "Amsterdam" if first == "b" else "Utrecht"
    bob_city_sf = "Utrecht" if first == "a" else "Amsterdam"
    xero = {
        "jane@acme.test": {"Name": "Acme Ltd", "FirstName": "Jane", "LastName": "Doe",
                           "EmailAddress": "jane@acme.test", "AccountNumber": "ACC-1",
                           "Phone": "44 20 7946 0001"},
        "bob@beta.test": {"Name": "Beta BV", "FirstName": "Bob", "LastName": "Beta",
                          "EmailAddress": "Bob@Beta.test", "AccountNumber": "ACC-2",
                          "City": bob_city_xero},
        "(gamma gmbh)": {"Name": "Gamma GmbH", "FirstName": "Gus", "LastName": "Gamma"},
        "dora@delta.test": {"Name": "Delta AS", "FirstName": "Dora", "LastName": "Delta",
                            "EmailAddress": "dora@delta.test", "AccountNumber": "ACC-4"},
    }  # fmt: skip
    salesflare = {
        "bob@beta.test": {"first": "Bob", "last": "Beta", "company": "Beta BV", "title": "CFO",
                          "city": bob_city_sf, "tags": ["customer"]},
        "erin@echo.test": {"first": "Erin", "last": "Echo", "company": "Echo Inc",
                           "city": "Oslo", "tags": ["customer"]},
        "fred@fox.test": {"first": "Fred", "last": "Fox"},
        "(Nomail)": {"first": "Nomail"},
    }  # fmt: skip
    if xero_to_salesflare:
        salesflare["jane@acme.test"] = dict(jane_sf)
        salesflare["dora@delta.test"] = dict(dora_sf)
        salesflare["bob@beta.test"]["custom"] = {"xero_account_number": "ACC-2"}
        # the a-to-b rule's action applies on the first merge too
        salesflare["bob@beta.test"]["title"] = "Xero customer"
    if salesflare_to_xero:
        xero["erin@echo.test"] = dict(erin_xero)  # tagged customer: the rule lets it travel
    if step == 1:
        return xero, salesflare

    # Step 2. Dora's edit travels (and in new-only/b-into-a, where she stayed behind, she is
    # now created); Fred, now a customer, is created in Xero (named after himself: he has no
    # account); Bob's last name is a conflict for the sync's winner. Bob travels from Xero, so
    # the rule's title is set (if the first run did not set it already).
    xero["dora@delta.test"]["LastName"] = "Dahl"
    salesflare["dora@delta.test"] = {**dora_sf, "last": "Dahl"}
    xero["fred@fox.test"] = {"Name": "Fred Fox", "FirstName": "Fred", "LastName": "Fox",
                             "EmailAddress": "fred@fox.test",
                             "CompanyNumber": "SF-CUSTOMER"}  # fmt: skip
    salesflare["fred@fox.test"]["tags"] = ["customer"]
    bob_last = "Beta-Jones" if winner == "a" else "Beta-Smith"
    xero["bob@beta.test"]["LastName"] = bob_last
    salesflare["bob@beta.test"]["last"] = bob_last
    salesflare["bob@beta.test"]["title"] = "Xero customer"
    return xero, salesflare


@pytest.mark.parametrize(
    ("initial", "winner"),
    [("merge", "a"), ("merge", "b"), ("new-only", "a"), ("a-into-b", "b"), ("b-into-a", "a")],
)
async def test_xero_salesflare_flagship(
    start_sandbox: Any, syncd: Any, initial: str, winner: str
) -> None:
    salesflare = await start_sandbox()
    state = salesflare.state
    accounts: dict[str, int] = {}
    for person in SALESFLARE_PEOPLE:
        values = dict(person)
        if "account" in values:
            name = values["account"]
            values["account"] = accounts.setdefault(name, state.create_account({"name": name}))
        state.create_contact(state.validate_contact(values, [], creating=True), force=True)
    async with SandboxServer(make_xero(None, {"rate_limits": False})) as xero:
        flagship = Flagship(xero, salesflare, syncd)
        await flagship.xero_call("POST", "/_sandbox/xero/contacts", {"Contacts": XERO_PEOPLE})
        syncd.write_sync(
            "flagship",
            SYNC.format(initial=initial, winner=winner, xero=xero.url, salesflare=salesflare.url),
        )

        first = (await syncd.sync("flagship")).counts
        assert first["excluded"] == 2  # Gus and Nomail have no email
        xero_state, salesflare_state = expected(initial, winner, 1)
        assert await flagship.xero_view() == xero_state
        assert flagship.salesflare_view() == salesflare_state

        await flagship.edit()
        second = (await syncd.sync("flagship")).counts
        assert second["conflicts"] >= 1  # Bob's last name
        xero_state, salesflare_state = expected(initial, winner, 2)
        assert await flagship.xero_view() == xero_state
        assert flagship.salesflare_view() == salesflare_state

        writes = await flagship.writes()
        third = (await syncd.sync("flagship")).counts
        assert not any(third[k] for k in ("created_a", "created_b", "updated_a", "updated_b"))
        assert await flagship.writes() == writes, "a run without edits wrote"


async def test_an_add_tag_rule_from_xero_keeps_salesflares_own_tags(
    start_sandbox: Any, syncd: Any
) -> None:
    # design.md's own example rule: [[rules.a-to-b]] ... then = [ { add_tag = "from-xero" } ]
    salesflare = await start_sandbox()
    state = salesflare.state
    account = state.create_account({"name": "Beta BV"})
    bob = dict(SALESFLARE_PEOPLE[0], account=account)
    state.create_contact(state.validate_contact(bob, [], creating=True), force=True)
    sync = SYNC.replace(
        '{{ set = "title", value = "Xero customer" }}', '{{ add_tag = "from-xero" }}'
    )
    async with SandboxServer(make_xero(None, {"rate_limits": False})) as xero:
        flagship = Flagship(xero, salesflare, syncd)
        await flagship.xero_call("POST", "/_sandbox/xero/contacts", {"Contacts": XERO_PEOPLE})
        syncd.write_sync(
            "flagship",
            sync.format(initial="merge", winner="a", xero=xero.url, salesflare=salesflare.url),
        )
        await syncd.sync("flagship")
        await flagship.edit()  # Bob changes in Xero, so he travels to Salesflare again
        await syncd.sync("flagship")
        assert "customer" in flagship.salesflare_view()["bob@beta.test"]["tags"]


EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "examples" / "xero-salesflare.toml"


async def test_the_shipped_example_runs_against_both_emulators(
    start_sandbox: Any, syncd: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("XERO_CLIENT_SECRET", "sandbox-custom-secret")
    monkeypatch.setenv("SALESFLARE_API_KEY", "sandbox-api-key")
    salesflare = await start_sandbox(seed=1, count=60)
    async with SandboxServer(make_xero(1, {"rate_limits": False, "count": 60})) as xero:
        text = EXAMPLE.read_text(encoding="utf-8")
        text = text.replace("http://127.0.0.1:8800", xero.url)
        text = text.replace("http://127.0.0.1:8790", salesflare.url)
        text = text.replace("calls_per_minute = 60 ", "calls_per_minute = 60000 ")
        syncd.write_sync("xero-salesflare", text)
        flagship = Flagship(xero, salesflare, syncd)

        first = (await syncd.sync("xero-salesflare")).counts
        assert first["created_a"] > 0 and first["created_b"] > 0 and first["failed"] == 0
        assert first["linked"] >= 10  # seeded alike, the two apps share people: a real merge
        state = salesflare.state
        shown = [state.render_contact(c) for c in state.contacts.values()]
        tagged = [c for c in shown if "from-xero" in {t["name"] for t in c["tags"]}]
        assert tagged and all(c["custom"]["xero_account_number"] for c in tagged)
        # Xero's organisations became accounts; a Xero person's own name never did
        assert any(c["account"] for c in tagged)
        for c in tagged:
            person = f"{c['firstname'] or ''} {c['lastname'] or ''}".strip()
            account = c["account"]["name"] if c["account"] else None
            assert not person or account != person, c
        xero_emails = set(await flagship.xero_contacts())
        customers = {
            c["email"]
            for c in shown
            if c["email"] and not c["archived"] and "customer" in {t["name"] for t in c["tags"]}
        }
        emails = [c["email"] for c in shown if c["email"]]
        # every Salesflare customer reached Xero, but not those whose email is held twice there
        assert {e for e in customers if emails.count(e) == 1} <= xero_emails

        writes = await flagship.writes()
        again = (await syncd.sync("xero-salesflare")).counts
        assert not any(again[k] for k in ("created_a", "created_b", "updated_a", "updated_b"))
        assert await flagship.writes() == writes


# --- a value the app derives never travels back as data a person entered (rule 2) -----------
#
# The demo maps Xero's Name to the Salesflare contact's account. Xero requires a Name, so a
# contact created in Xero from a Salesflare person without an account gets one the connector
# derives ("Ann Lee"), or a distinct one when that Name is taken ("Ann Lee (ann2@lee.test)"); an
# account cleared in Salesflare cannot clear Xero's Name, which keeps its value. Each is Xero's
# own value: the next run must write nothing, and Salesflare must not gain a company named after
# a person.

DERIVED_SYNC = """
direction = "two-way"
initial = "merge"
winner = "a"

[a]
connector = "xero"
grant = "client_credentials"
client_id = "sandbox-custom-client"
client_secret = "sandbox-custom-secret"
api_url = "{xero}"
identity_url = "{xero}"
login_url = "{xero}"

[b]
connector = "salesflare"
api_key = "sandbox-api-key"
base_url = "{salesflare}"
calls_per_minute = 60000

[[fields]]
a = "Name"
b = "account.name"
"""

NAMELESS_PEOPLE = [
    {"firstname": "Ann", "lastname": "Lee", "email": "ann@lee.test"},
    # the same person's name: Xero's unique-Name rule makes the connector derive another
    {"firstname": "Ann", "lastname": "Lee", "email": "ann2@lee.test"},
    {"email": "solo@nameless.test"},  # no name at all: the Name is derived from the email
    {"firstname": "Cat", "lastname": "Cho", "email": "cat@cho.test", "account": "Cho Ltd"},
]
WRITE_COUNTS = ("created_a", "created_b", "updated_a", "updated_b", "archived_a", "archived_b")


async def test_a_name_xero_derived_does_not_come_back_as_a_company(
    start_sandbox: Any, syncd: Any
) -> None:
    salesflare = await start_sandbox()
    state = salesflare.state
    for person in NAMELESS_PEOPLE:
        values = dict(person)
        if "account" in values:
            values["account"] = state.create_account({"name": values["account"]})
        state.create_contact(state.validate_contact(values, [], creating=True), force=True)
    async with SandboxServer(make_xero(None, {"rate_limits": False})) as xero:
        flagship = Flagship(xero, salesflare, syncd)
        syncd.write_sync("demo", DERIVED_SYNC.format(xero=xero.url, salesflare=salesflare.url))

        first = (await syncd.sync("demo")).counts
        assert first["created_a"] == 4 and first["failed"] == 0
        names = {email: c["Name"] for email, c in (await flagship.xero_contacts()).items()}
        assert names == {
            "ann@lee.test": "Ann Lee",
            "ann2@lee.test": "Ann Lee (ann2@lee.test)",
            "solo@nameless.test": "solo@nameless.test",
            "cat@cho.test": "Cho Ltd",
        }

        writes = await flagship.writes()
        second = (await syncd.sync("demo")).counts
        assert {k: second[k] for k in WRITE_COUNTS} == dict.fromkeys(WRITE_COUNTS, 0)
        assert await flagship.writes() == writes, "a run without edits wrote"
        assert sorted(a["name"] for a in state.accounts.values()) == ["Cho Ltd"]
        companies = {
            c["email"]: (state.render_contact(c)["account"] or {}).get("name")
            for c in state.contacts.values()
        }
        assert companies == {
            "ann@lee.test": None,
            "ann2@lee.test": None,
            "solo@nameless.test": None,
            "cat@cho.test": "Cho Ltd",
        }

        # Cat's account is cleared in Salesflare: Xero cannot clear a Name, and keeps it
        cat = next(i for i, c in state.contacts.items() if c["email"] == "cat@cho.test")
        state.update_contact(cat, {"account": None})
        await syncd.sync("demo")
        writes = await flagship.writes()
        again = (await syncd.sync("demo")).counts
        assert {k: again[k] for k in WRITE_COUNTS} == dict.fromkeys(WRITE_COUNTS, 0)
        assert await flagship.writes() == writes
        assert state.render_contact(state.contacts[cat])["account"] is None


ORGANISATION_SYNC = DERIVED_SYNC.replace('a = "Name"', 'a = "Organisation"')


async def test_a_xero_contact_named_after_its_person_is_no_company(
    start_sandbox: Any, syncd: Any
) -> None:
    # The demo's mapping: Xero's Organisation (its Name, unless that is only the person's own
    # name) ⇄ the Salesflare account. A person is never made a company on either side.
    salesflare = await start_sandbox()
    state = salesflare.state
    cho = state.create_account({"name": "Cho Ltd"})
    for values in (
        {"firstname": "Jane", "lastname": "Smith", "email": "jane@smith.test"},
        {"firstname": "Bob", "lastname": "Brown", "email": "bob@brown.test"},
        {"firstname": "Cat", "lastname": "Cho", "email": "cat@cho.test", "account": cho},
    ):
        state.create_contact(state.validate_contact(values, [], creating=True), force=True)
    async with SandboxServer(make_xero(None, {"rate_limits": False})) as xero:
        flagship = Flagship(xero, salesflare, syncd)
        await flagship.xero_call(
            "POST",
            "/_sandbox/xero/contacts",
            {
                "Contacts": [
                    {"Name": "Jane Smith", "FirstName": "Jane", "LastName": "Smith",
                     "EmailAddress": "jane@smith.test"},
                    {"Name": "Dan Dee", "FirstName": "Dan", "LastName": "Dee",
                     "EmailAddress": "dan@dee.test"},
                    {"Name": "Acme Ltd", "FirstName": "Ann", "LastName": "Ash",
                     "EmailAddress": "ann@acme.test"},
                ]
            },
        )  # fmt: skip
        syncd.write_sync("demo", ORGANISATION_SYNC.format(xero=xero.url, salesflare=salesflare.url))

        first = (await syncd.sync("demo")).counts
        assert first["failed"] == 0 and first["linked"] == 1
        names = {email: c["Name"] for email, c in (await flagship.xero_contacts()).items()}
        assert names == {
            "jane@smith.test": "Jane Smith",
            "dan@dee.test": "Dan Dee",
            "ann@acme.test": "Acme Ltd",
            "bob@brown.test": "Bob Brown",  # named after the person: Xero requires a Name
            "cat@cho.test": "Cho Ltd",
        }

        def companies() -> dict[str, str | None]:
            return {
                c["email"]: (state.render_contact(c)["account"] or {}).get("name")
                for c in state.contacts.values()
            }

        assert companies() == {
            "jane@smith.test": None,
            "bob@brown.test": None,
            "cat@cho.test": "Cho Ltd",
            "dan@dee.test": None,
            "ann@acme.test": "Acme Ltd",
        }
        assert sorted(a["name"] for a in state.accounts.values()) == ["Acme Ltd", "Cho Ltd"]

        writes = await flagship.writes()
        second = (await syncd.sync("demo")).counts
        assert {k: second[k] for k in WRITE_COUNTS} == dict.fromkeys(WRITE_COUNTS, 0)
        assert await flagship.writes() == writes

        # Cat leaves Cho Ltd in Salesflare: in Xero she is named after herself again
        cat = next(i for i, c in state.contacts.items() if c["email"] == "cat@cho.test")
        state.update_contact(cat, {"account": None})
        await syncd.sync("demo")
        assert (await flagship.xero_contacts())["cat@cho.test"]["Name"] == "Cat Cho"
        writes = await flagship.writes()
        again = (await syncd.sync("demo")).counts
        assert {k: again[k] for k in WRITE_COUNTS} == dict.fromkeys(WRITE_COUNTS, 0)
        assert await flagship.writes() == writes
        assert companies()["cat@cho.test"] is None

"""Issue 8's end-to-end case: a one-way sync from the Xero emulator into the Salesfire emulator,
with rules that set the message types and channels, and a second run that pushes nothing."""

from __future__ import annotations

from pathlib import Path

from aiohttp import ClientSession
from syncd_salesfire.sandbox import create_app as salesfire_app
from syncd_salesfire.sandbox import state
from syncd_xero import sandbox as xero_sandbox

from syncd.sandbox import SandboxServer
from syncd.testing.runner import Syncd

SECRET = "xero-to-salesfire-secret"

PEOPLE = [
    {"Name": "Acme Ltd", "FirstName": "Ada", "LastName": "Lovelace",
     "EmailAddress": "ada@acme.example", "AccountNumber": "ACC-1",
     "Phones": [{"PhoneType": "MOBILE", "PhoneCountryCode": "44",
                 "PhoneNumber": "7700 900123"}]},
    {"Name": "Grace Hopper", "FirstName": "Grace", "LastName": "Hopper",
     "EmailAddress": "grace@navy.example"},
    {"Name": "Walk-in Ltd", "FirstName": "Walk", "LastName": "In"},
]  # fmt: skip

SYNC = """
direction = "a-to-b"
initial = "a-into-b"

[a]
connector = "xero"
grant = "client_credentials"
client_id = "sandbox-custom-client"
client_secret = "${{env:XERO_SECRET}}"
api_url = "{xero}"
identity_url = "{xero}"
login_url = "{xero}"

[b]
connector = "salesfire"
base_url = "{salesfire}"
site = "demo-site"
list = "newsletter"
secret = "${{env:SALESFIRE_SECRET}}"
types = "TRANSACTIONAL"
channels = "EMAIL,SMS"

[[rules.a-to-b]]                 # everyone with an email: transactional mail
if = [ {{ field = "email", op = "is_set" }} ]
then = [ {{ set = "custom.salesfire_types", value = "TRANSACTIONAL" }} ]

[[rules.a-to-b]]                 # Xero customers (an account number): marketing too
if = [ {{ field = "custom.xero_account_number", op = "is_set" }} ]
then = [ {{ set = "custom.salesfire_types", value = "MARKETING,TRANSACTIONAL" }} ]
"""


async def test_xero_into_salesfire_with_rules_then_nothing_to_push(tmp_path: Path) -> None:
    xero = xero_sandbox.make_app(None, {"rate_limits": "false"})
    salesfire = salesfire_app(None, {"secret": SECRET, "rate_limit": 0})
    async with SandboxServer(xero) as xero_server, SandboxServer(salesfire) as sf_server:
        async with (
            ClientSession() as session,
            session.post(
                f"{xero_server.url}/_sandbox/xero/contacts", json={"Contacts": PEOPLE}
            ) as answer,
        ):
            assert answer.status < 300, await answer.text()
        syncd = Syncd(
            tmp_path,
            plugins=["syncd-xero", "syncd-salesfire"],
            env={"XERO_SECRET": "sandbox-custom-secret", "SALESFIRE_SECRET": SECRET},
        )
        syncd.write_sync(
            "xero-salesfire", SYNC.format(xero=xero_server.url, salesfire=sf_server.url)
        )

        first = (await syncd.sync("xero-salesfire")).json
        assert first["counts"]["created_b"] == 2
        assert first["counts"]["excluded"] == 1  # the walk-in has no email
        customers = {c.email: c for c in state(salesfire).lists["newsletter"].customers.values()}
        assert set(customers) == {"ada@acme.example", "grace@navy.example"}
        ada, grace = customers["ada@acme.example"], customers["grace@navy.example"]
        assert ada.types == ["MARKETING", "TRANSACTIONAL"] and ada.channels == ["EMAIL", "SMS"]
        assert ada.mobile_number == "+447700900123"
        assert grace.types == ["TRANSACTIONAL"] and grace.channels == ["EMAIL"]  # no mobile
        pushed = len(state(salesfire).requests)

        second = (await syncd.sync("xero-salesfire")).json
        assert second["counts"]["created_b"] + second["counts"]["updated_b"] == 0
        assert len(state(salesfire).requests) == pushed, "the second run pushed again"

"""The PieSync example end to end: ``config/examples/csv-woodpecker.toml`` as shipped, run with
``syncd sync`` against the Woodpecker emulator, asserting the exact state of both sides after
each run and that a run with nothing new writes nothing.

The example: CRM → Woodpecker only for contacts tagged "lead" (no deal yet), which arrive tagged
"New"; Woodpecker → CRM only for prospects who replied; the CRM wins conflicts; Woodpecker's
status is read into the CRM's ``woodpecker_status`` column (the custom mapping) and never written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from syncd_woodpecker.sandbox import DEFAULT_API_KEY

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "examples" / "csv-woodpecker.toml"


def install_example(syncd: Any, sandbox: Any) -> None:
    """Copy the example into the config directory, changing only the emulator's port."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text, replaced = re.subn(
        r'^base_url = "http://127\.0\.0\.1:8901/rest"$',
        f'base_url = "{sandbox.base_url}"',
        text,
        flags=re.MULTILINE,
    )
    assert replaced == 1
    (syncd.config / "syncs" / "csv-woodpecker.toml").write_text(text, encoding="utf-8")
    syncd.env["WOODPECKER_API_KEY"] = DEFAULT_API_KEY  # the example reads it from ${env:...}


def crm_state(crm: Any) -> dict[str, dict[str, str]]:
    """Every CSV row by email: its non-empty cells, ids left out."""
    state: dict[str, dict[str, str]] = {}
    for row in crm.rows():
        key = row.get("email") or "(no email)"
        assert key not in state, f"duplicate row {key}"
        state[key] = {k: v for k, v in row.items() if v and k != "id"}
    return state


def woodpecker_state(store: Any) -> dict[str, tuple[str, dict[str, str]]]:
    """Every prospect by email: its status and non-empty fields."""
    state: dict[str, tuple[str, dict[str, str]]] = {}
    for prospect in store.ordered():
        assert prospect.email not in state, f"duplicate prospect {prospect.email}"
        fields = {k: v for k, v in prospect.fields.items() if v}
        state[prospect.email] = (prospect.status, fields)
    return state


async def test_woodpecker_piesync_example_end_to_end(
    start_sandbox: Any, syncd: Any, csv_file: Any
) -> None:
    sandbox = await start_sandbox()
    store = sandbox.store
    store.add(
        email="carol@example.com", first_name="Carol", last_name="King",
        company="King and Company", title="Owner", tags="#VC",
    )  # fmt: skip
    dan = store.add(
        status="REPLIED", email="dan@example.com", first_name="Dan", last_name="Ray",
        company="Ray Ltd", title="Buyer",
    )  # fmt: skip
    store.add(status="REPLIED", email="erin@example.com", first_name="Erin", company="Initech",
              tags="#VC")  # fmt: skip
    frank = store.add(email="frank@example.com", first_name="Frank")
    store.add(status="BLACKLIST", email="gina@example.com", first_name="Gina")
    crm = csv_file("config/crm.csv")  # the example's relative path: in the config directory
    assert crm.path.parent == syncd.config
    crm.write(
        "email,first_name,last_name,company,title,tags",
        "ann@example.com,Ann,Lee,Acme,CTO,lead",
        "bob@example.com,Bob,Stone,Stone Ltd,,customer;vip",
        "carol@example.com,Carol,King,King & Co,,lead",
        "dan@example.com,Dan,Ray,,,customer",
        ",No,Email,,,lead",
        "gina@example.com,Gina,Moss,,,lead",
    )
    install_example(syncd, sandbox)

    # --- the first run ----------------------------------------------------------------------
    first = await syncd.sync("csv-woodpecker")

    counts = first.counts
    assert (counts["created_a"], counts["created_b"]) == (1, 1)  # erin → CRM, ann → Woodpecker
    assert (counts["updated_a"], counts["updated_b"]) == (1, 2)  # dan; carol and gina
    assert (counts["linked"], counts["conflicts"], counts["excluded"]) == (3, 2, 1)
    assert woodpecker_state(store) == {
        # a lead: created, tagged New
        "ann@example.com": (
            "ACTIVE",
            {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
             "company": "Acme", "title": "CTO", "tags": "#New #lead"},
        ),
        # a lead on both sides: the CRM wins company and tags; Woodpecker's title stays
        "carol@example.com": (
            "ACTIVE",
            {"email": "carol@example.com", "first_name": "Carol", "last_name": "King",
             "company": "King & Co", "title": "Owner", "tags": "#New #lead"},
        ),
        # a customer in the CRM: nothing goes to Woodpecker
        "dan@example.com": (
            "REPLIED",
            {"email": "dan@example.com", "first_name": "Dan", "last_name": "Ray",
             "company": "Ray Ltd", "title": "Buyer"},
        ),
        "erin@example.com": (
            "REPLIED",
            {"email": "erin@example.com", "first_name": "Erin", "company": "Initech",
             "tags": "#VC"},
        ),
        "frank@example.com": ("ACTIVE", {"email": "frank@example.com", "first_name": "Frank"}),
        # a lead, updated, but still blacklisted: the sync never writes a status
        "gina@example.com": (
            "BLACKLIST",
            {"email": "gina@example.com", "first_name": "Gina", "last_name": "Moss",
             "tags": "#New #lead"},
        ),
    }  # fmt: skip
    assert crm_state(crm) == {
        "ann@example.com": {
            "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
            "company": "Acme", "title": "CTO", "tags": "lead",
        },
        "bob@example.com": {
            "email": "bob@example.com", "first_name": "Bob", "last_name": "Stone",
            "company": "Stone Ltd", "tags": "customer;vip",
        },
        # Woodpecker's side of carol (ACTIVE, not replied) does not come back
        "carol@example.com": {
            "email": "carol@example.com", "first_name": "Carol", "last_name": "King",
            "company": "King & Co", "tags": "lead",
        },
        # replied: Woodpecker's company, title and status come back
        "dan@example.com": {
            "email": "dan@example.com", "first_name": "Dan", "last_name": "Ray",
            "company": "Ray Ltd", "title": "Buyer", "tags": "customer",
            "woodpecker_status": "REPLIED",
        },
        "(no email)": {"first_name": "No", "last_name": "Email", "tags": "lead"},
        "gina@example.com": {
            "email": "gina@example.com", "first_name": "Gina", "last_name": "Moss",
            "tags": "lead",
        },
        "erin@example.com": {
            "email": "erin@example.com", "first_name": "Erin", "company": "Initech",
            "tags": "VC", "woodpecker_status": "REPLIED",
        },
    }  # fmt: skip
    errors = await syncd.run("errors", "csv-woodpecker", "--json")
    assert errors.status == 0 and "no email" in errors.stdout.lower()

    # --- nothing changed: nothing is written ------------------------------------------------
    await no_writes(syncd, sandbox, crm)

    # --- edits: a prospect replies, the CRM edits a lead, both change one field --------------
    ann = store.by_email("ann@example.com")
    assert ann is not None
    store.edit(frank.id, status="REPLIED", title="Founder")
    store.edit(dan.id, company="Ray Group")
    store.edit(ann.id, last_name="Leigh")
    crm.edit("ann@example.com", title="CEO", last_name="Lee-Smith")
    crm.edit("carol@example.com", tags="customer")  # a deal: no longer sent to Woodpecker
    crm.edit("carol@example.com", company="King & Sons")

    third = await syncd.sync("csv-woodpecker")

    counts = third.counts
    assert (counts["created_a"], counts["created_b"]) == (1, 0)  # frank replied
    assert (counts["updated_a"], counts["updated_b"]) == (1, 1)  # dan; ann
    assert counts["conflicts"] == 1  # ann's last name: the CRM wins
    wp = woodpecker_state(store)
    assert wp["ann@example.com"] == (
        "ACTIVE",
        {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee-Smith",
         "company": "Acme", "title": "CEO", "tags": "#New #lead"},
    )  # fmt: skip
    assert wp["carol@example.com"][1]["company"] == "King & Co"  # filtered out now
    assert wp["frank@example.com"] == (
        "REPLIED",
        {"email": "frank@example.com", "first_name": "Frank", "title": "Founder"},
    )
    rows = crm_state(crm)
    assert rows["frank@example.com"] == {
        "email": "frank@example.com", "first_name": "Frank", "title": "Founder",
        "woodpecker_status": "REPLIED",
    }  # fmt: skip
    assert rows["dan@example.com"]["company"] == "Ray Group"
    assert rows["ann@example.com"]["last_name"] == "Lee-Smith"
    assert len(rows) == 8 and len(wp) == 6

    await no_writes(syncd, sandbox, crm)
    assert all(store.add_requests)  # every write was an upsert with "update": true


async def no_writes(syncd: Any, sandbox: Any, crm: Any) -> None:
    """Run the sync again and check that it wrote nothing on either side."""
    before = crm.path.read_bytes()
    requests = len(sandbox.store.add_requests)
    result = await syncd.sync("csv-woodpecker")
    assert sum(v for k, v in result.counts.items() if k.startswith(("created", "updated"))) == 0
    calls = await sandbox.calls()
    assert len(sandbox.store.add_requests) == requests
    assert calls.get("DELETE /rest/v1/prospects", 0) == 0
    assert crm.path.read_bytes() == before

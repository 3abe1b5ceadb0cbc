"""``syncd sync`` between a CSV file and the Woodpecker emulator: a two-way merge, edits on both
sides, conflicts, the no-duplicate rule, status protection and write-free repeat runs.

``syncd`` runs in a subprocess exactly as a user runs it; the emulator is served by the test's
own event loop, so the test can edit "the app" directly between runs and read what was written.
"""

from __future__ import annotations

from typing import Any

from syncd_woodpecker.sandbox import DEFAULT_API_KEY


def two_way_sync(syncd: Any, csv_path: Any, sandbox: Any, winner: str = "a") -> None:
    syncd.write_sync(
        "crm",
        f"""
        direction = "two-way"
        initial = "merge"
        winner = "{winner}"
        deletions = "ignore"

        [a]
        connector = "csv"
        path = "{csv_path}"

        [b]
        connector = "woodpecker"
        api_key = "{DEFAULT_API_KEY}"
        base_url = "{sandbox.base_url}"
        """,
    )


async def writes_to_woodpecker(sandbox: Any) -> int:
    calls = await sandbox.calls()
    return int(
        calls.get("POST /rest/v1/add_prospects_list", 0) + calls.get("DELETE /rest/v1/prospects", 0)
    )


def prospects_by_email(sandbox: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for prospect in sandbox.store.ordered():
        email = prospect.email.lower()
        assert email not in found, f"duplicate prospect {email}"
        found[email] = prospect
    return found


async def test_woodpecker_two_way_merge_then_edits_on_both_sides(
    start_sandbox: Any, syncd: Any, csv_file: Any
) -> None:
    sandbox = await start_sandbox()
    store = sandbox.store
    bob = store.add(
        email="bob@example.com",
        first_name="Bob",
        last_name="Stone",
        company="Stone Limited",
        title="CTO",
        tags="#partner",
    )
    carol = store.add(
        status="BLACKLIST", email="carol@example.com", first_name="Carol", last_name="King"
    )
    store.add(
        email="dave@example.com", first_name="Dave", last_name="Ray", company="Ray & Co",
        tags="#VC #NEW",
    )  # fmt: skip
    crm = csv_file("crm.csv")
    crm.write(
        "email,first_name,last_name,company,tags,industry",
        "ann@example.com,Ann,Lee,Acme,vip;customer,Retail",
        "Bob@Example.com,Bob,Stone,Stone Ltd,lead,",
        ",Nomail,Person,Nowhere,,",
        "carol@example.com,Carol,King,,,",
    )
    two_way_sync(syncd, crm.path, sandbox)

    # --- the first run merges both lists ---------------------------------------------------
    first = await syncd.sync("crm")

    counts = first.counts
    assert (counts["created_a"], counts["created_b"]) == (1, 1)  # dave → CSV, ann → Woodpecker
    assert (counts["updated_a"], counts["updated_b"]) == (1, 1)  # bob, both ways
    assert counts["linked"] == 2  # bob and carol, matched by email (case-insensitively)
    assert counts["conflicts"] == 2  # bob's company and tags: the CSV (winner a) wins
    assert counts["excluded"] == 1  # the row without an email
    prospects = prospects_by_email(sandbox)
    assert sorted(prospects) == [
        "ann@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    ann = prospects["ann@example.com"]
    assert ann.fields == {
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "Acme",
        "tags": "#customer #vip",
        "industry": "Retail",
    }
    assert bob.fields["company"] == "Stone Ltd"  # the winner's value
    assert bob.fields["tags"] == "#lead"
    assert bob.fields["title"] == "CTO"  # only Woodpecker had it: kept
    assert bob.fields["email"] == "bob@example.com"  # a re-cased email is not an edit
    assert carol.status == "BLACKLIST"
    rows = crm.by_email()
    assert sorted(rows) == [
        "ann@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert rows["bob@example.com"]["title"] == "CTO"
    assert rows["bob@example.com"]["company"] == "Stone Ltd"
    dave = rows["dave@example.com"]
    assert (dave["first_name"], dave["last_name"], dave["company"]) == ("Dave", "Ray", "Ray & Co")
    assert sorted(dave["tags"].split(";")) == ["NEW", "VC"]
    assert any(row["first_name"] == "Nomail" for row in crm.rows())  # left alone
    assert store.add_requests and all(store.add_requests)  # always "update": true

    # --- nothing changed: nothing is written -----------------------------------------------
    before = crm.path.read_bytes()
    posts_before = await writes_to_woodpecker(sandbox)
    second = await syncd.sync("crm")
    assert {k: v for k, v in second.counts.items() if k.startswith(("created", "updated"))} == {
        "created_a": 0,
        "created_b": 0,
        "updated_a": 0,
        "updated_b": 0,
    }
    assert await writes_to_woodpecker(sandbox) == posts_before
    assert crm.path.read_bytes() == before

    # --- edits on both sides ----------------------------------------------------------------
    crm.edit("bob@example.com", company="Stone Group")
    crm.edit("carol@example.com", first_name="Caroline")
    crm.edit("ann@example.com", last_name="Lee-Smith")
    crm.add(email="Erin@Example.com", first_name="Erin", company="Initech")
    store.edit(bob.id, title="CEO")
    store.edit(ann.id, last_name="Leigh")  # the same field as the CSV: a conflict
    erin = store.add(email="erin@example.com", first_name="Erin", title="Buyer")
    frank = store.add(email="frank@example.com", first_name="Frank", last_name="Ó Briain")

    third = await syncd.sync("crm")

    counts = third.counts
    assert counts["conflicts"] == 1  # ann's last name: the CSV wins
    assert counts["created_a"] == 1  # frank
    assert counts["created_b"] == 0  # erin exists in Woodpecker already: linked, not created
    prospects = prospects_by_email(sandbox)
    assert len(prospects) == 6
    assert bob.fields["company"] == "Stone Group" and bob.fields["title"] == "CEO"
    assert ann.fields["last_name"] == "Lee-Smith"
    assert carol.fields["first_name"] == "Caroline"
    assert carol.status == "BLACKLIST"  # a sync never reactivates a blacklisted prospect
    assert erin.fields["company"] == "Initech" and erin.fields["title"] == "Buyer"
    rows = crm.by_email()
    assert sorted(rows) == sorted(prospects)
    assert rows["bob@example.com"]["title"] == "CEO"
    assert rows["bob@example.com"]["company"] == "Stone Group"
    assert rows["ann@example.com"]["last_name"] == "Lee-Smith"
    assert rows["erin@example.com"]["title"] == "Buyer"
    assert rows["frank@example.com"]["last_name"] == "Ó Briain"
    assert frank.fields["last_name"] == "Ó Briain"

    # --- and again nothing to do ------------------------------------------------------------
    before = crm.path.read_bytes()
    posts_before = await writes_to_woodpecker(sandbox)
    fourth = await syncd.sync("crm")
    assert sum(v for k, v in fourth.counts.items() if k.startswith(("created", "updated"))) == 0
    assert await writes_to_woodpecker(sandbox) == posts_before
    assert crm.path.read_bytes() == before
    assert all(store.add_requests)


async def test_woodpecker_newest_wins_and_ambiguous_emails_are_not_guessed(
    start_sandbox: Any, syncd: Any, csv_file: Any
) -> None:
    sandbox = await start_sandbox()
    store = sandbox.store
    ann = store.add(email="ann@example.com", first_name="Ann", title="Analyst")
    bob = store.add(email="bob@example.com", first_name="Bob", title="Buyer")
    crm = csv_file("crm.csv")
    crm.write(
        "email,first_name,title,updated_at",
        "ann@example.com,Ann,Analyst,2020-01-01T00:00:00+00:00",
        "bob@example.com,Bob,Buyer,2020-01-01T00:00:00+00:00",
        # one email on two rows: which one is the prospect? syncd does not guess
        "gus@example.com,Gus,,2020-01-01T00:00:00+00:00",
        "GUS@example.com,Gustav,,2020-01-01T00:00:00+00:00",
    )
    two_way_sync(syncd, crm.path, sandbox, winner="newest")

    first = await syncd.sync("crm")

    assert first.counts["linked"] == 2
    assert first.counts["ambiguous"] == 2
    assert store.by_email("gus@example.com") is None
    errors = await syncd.run("errors", "crm", "--json")
    assert errors.status == 0 and "gus@example.com" in errors.stdout.lower()

    # the same field changed on both sides: each app's own timestamp decides
    crm.edit("ann@example.com", title="Head of Analysis", updated_at="2099-01-01T00:00:00+00:00")
    crm.edit("bob@example.com", title="Chief Buyer", updated_at="2000-01-01T00:00:00+00:00")
    store.edit(ann.id, title="Senior Analyst")  # older than the CSV's 2099
    store.edit(bob.id, title="Lead Buyer")  # newer than the CSV's 2000

    second = await syncd.sync("crm")

    assert second.counts["conflicts"] == 2
    rows = crm.rows()  # (not by_email: the two gus rows are still there)
    titles = {row["email"].lower(): row["title"] for row in rows if row["email"]}
    assert titles["ann@example.com"] == "Head of Analysis" == ann.fields["title"]
    assert titles["bob@example.com"] == "Lead Buyer" == bob.fields["title"]
    assert len(store.prospects) == 2

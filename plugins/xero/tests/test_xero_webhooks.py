"""Xero webhooks end to end: the Xero sandbox posts signed events to a real ``syncd run``, which
carries the change to the Salesflare sandbox in seconds.

Every test waits on a state (a record visible, a run recorded, a delivery counted), never on a
fixed sleep; the debounce is the daemon's own timer.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from syncd_xero import webhooks

from syncd.testing.daemon import wait_until
from syncd.testing.webhooks import CLIENT_ID, SYNC, WEBHOOK_KEY, WebhookWorld, post_raw

TENANT = "00000000-1111-4222-8333-444444444444"


def payload(*ids: str, tenant: str = TENANT, kind: str = "UPDATE") -> bytes:
    events = [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{rid}",
            "resourceId": rid,
            "eventDateUtc": "2026-12-02T00:44:09.923",
            "eventType": kind,
            "eventCategory": "CONTACT",
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }
        for rid in ids
    ]
    body = {"events": events, "firstEventSequence": 1, "lastEventSequence": len(ids) or 1}
    return json.dumps({**body, "entropy": "ABCDEFGHIJKLMNOPQRST"}, separators=(",", ":")).encode()


def signed(body: bytes, key: str = WEBHOOK_KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return {
        "x-xero-signature": base64.b64encode(digest).decode(),
        "Content-Type": "application/json",
    }


# --- the signature and the payload, without a daemon -------------------------------------------


def test_the_signature_is_checked_over_the_exact_bytes() -> None:
    body = payload("c1", "c2")
    good = webhooks.verify(WEBHOOK_KEY, signed(body), body)
    assert good.status == 200 and good.body == b""
    assert [(c.record_id, c.tenant, c.event) for c in good.changes] == [
        ("c1", TENANT, "update"),
        ("c2", TENANT, "update"),
    ]
    assert webhooks.verify(WEBHOOK_KEY, signed(body, "another-key"), body).status == 401
    assert webhooks.verify(WEBHOOK_KEY, {}, body).status == 401
    assert webhooks.verify(WEBHOOK_KEY, {"x-xero-signature": "not base64 é"}, body).status == 401
    # the same JSON serialised again (spacing, key order) is not what was signed
    again = json.dumps(json.loads(body), indent=1, sort_keys=True).encode()
    assert json.loads(again) == json.loads(body)
    assert webhooks.verify(WEBHOOK_KEY, signed(body), again).status == 401
    # the header's name is case-insensitive
    upper = {"X-Xero-Signature": signed(body)["x-xero-signature"]}
    assert webhooks.verify(WEBHOOK_KEY, upper, body).status == 200


def test_only_contact_creates_and_updates_count_whatever_their_case() -> None:
    events = [
        {"resourceId": "a", "eventCategory": "CONTACT", "eventType": "Update", "tenantId": "t"},
        {"resourceId": "b", "eventCategory": "contact", "eventType": "CREATE", "tenantId": "t"},
        {"resourceId": "c", "eventCategory": "INVOICE", "eventType": "UPDATE", "tenantId": "t"},
        {"resourceId": "", "eventCategory": "CONTACT", "eventType": "UPDATE", "tenantId": "t"},
        {"resourceId": "d", "eventCategory": "CONTACT", "eventType": "DELETE", "tenantId": "t"},
        "not an event",
    ]
    body = json.dumps({"events": events}).encode()
    assert [(c.record_id, c.event) for c in webhooks.changes(body)] == [
        ("a", "update"),
        ("b", "create"),
    ]
    assert list(webhooks.changes(b"\xff not json")) == []


def test_ids_are_read_fifty_to_a_call_and_never_past_the_query_limit() -> None:
    guids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(120)]
    chunks = list(webhooks.id_chunks(guids + guids[:5]))
    assert [len(c) for c in chunks] == [50, 50, 20]
    assert all(len(",".join(c)) <= webhooks.IDS_QUERY_MAX for c in chunks)
    long_ids = ["x" * 400 for _ in range(10)]
    assert all(len(",".join(c)) <= webhooks.IDS_QUERY_MAX for c in webhooks.id_chunks(long_ids))


# --- a real daemon ------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebhookWorld]:
    with WebhookWorld(tmp_path) as started:
        started.wait_first_run()
        yield started


def person(first: str, email: str, **more: object) -> dict[str, object]:
    return {"Name": f"{first} Ltd", "FirstName": first, "LastName": "Hook", "EmailAddress": email,
            **more}  # fmt: skip


def test_intent_to_receive_passes_and_an_edit_arrives_in_seconds(world: WebhookWorld) -> None:
    itr = world.webhooks()["intent_to_receive"]
    assert {(c["signed_correctly"], c["status"]) for c in itr} == {(True, 200), (False, 401)}
    calls_before = world.xero_calls_by_route().get("GET /api.xro/2.0/Contacts", 0)
    world.xero_put(person("Hana", "hana@hook.test"))
    found = wait_until(lambda: world.salesflare_contact("hana@hook.test"), 60, "Hana in Salesflare")
    assert found["firstname"] == "Hana"
    world.wait_idle()  # Hana is written before her run is recorded as finished
    runs = world.finished_runs("webhook")
    assert len(runs) == 1 and runs[0]["outcome"] == "success", runs
    assert runs[0]["counts"]["read_a"] == 1 and runs[0]["counts"]["created_b"] == 1
    # one GET /Contacts?IDs= for the webhook-driven run, nothing listed
    gets = world.xero_calls_by_route().get("GET /api.xro/2.0/Contacts", 0) - calls_before
    assert gets == 1
    hooks = world.sync()["webhooks"]
    assert hooks["active"] and hooks["paths"] == [f"/hooks/xero/{CLIENT_ID}"]
    assert hooks["events_received"] == 1 and hooks["last_event_at"] and hooks["runs"] == 1
    assert world.daemon is not None
    status = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(world.root / "config"), "status"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "webhooks: active, last event" in status and "0 waiting" in status
    # and the console's sync page, signed in through a one-time link as `syncd console` gives
    browser = requests.Session()
    base = f"http://127.0.0.1:{world.api_port}"
    browser.get(base + world.daemon.post("/api/v1/console/codes")["path"], timeout=60)
    page = browser.get(f"{base}/syncs/{SYNC}", timeout=60)
    assert page.status_code == 200, page.text
    line = re.search(r'<p class="webhooks"[^>]*>(.*?)</p>', page.text, re.S)
    assert line and "Webhooks: active" in line.group(1) and "0 waiting" in line.group(1), page.text


def test_signatures_unknown_accounts_and_the_bearer_api(world: WebhookWorld) -> None:
    body = payload("no-such-contact")
    url = world.hook_url
    status, answer, _ = post_raw(url, body, signed(body))
    assert (status, answer) == (200, b"")
    assert post_raw(url, body, signed(body, "wrong-key"))[:2] == (401, b"")
    assert post_raw(url, body, {"Content-Type": "application/json"})[:2] == (401, b"")
    again = json.dumps(json.loads(body), indent=2).encode()
    assert post_raw(url, again, signed(body))[0] == 401
    # Intent to Receive, by hand: no events, signed → 200 without a body
    empty = payload()
    assert post_raw(url, empty, signed(empty))[:2] == (200, b"")
    # an unknown account answers exactly as an unknown connector does: it tells nothing
    base = url.rsplit("/", 1)[0]
    unknown = post_raw(base + "/not-an-app", body, signed(body))
    nowhere = post_raw(base.replace("/hooks/xero", "/hooks/nope") + "/x", body, signed(body))
    assert unknown[0] == nowhere[0] == 404 and unknown[1] == nowhere[1]
    assert b"sandbox" not in unknown[1] and b"xero-salesflare" not in unknown[1]
    # bodies past the limit are refused
    assert post_raw(url, b"x" * (1024 * 1024 + 1), signed(b"x"))[0] == 413
    # the signature never opens the bearer-protected API, nor does a path through the hook
    root = url.split("/hooks/")[0]
    for path in (
        "/api/v1/status",
        "/api/v1/reload",
        f"/hooks/xero/{CLIENT_ID}/../../api/v1/reload",
    ):
        status, _, headers = post_raw(root + path, body, signed(body))
        # refused, or (a path that is nobody's) sent to the console's sign-in page
        assert status in (401, 404, 405) or (
            status == 303 and headers["Location"].endswith("/signin")
        ), path
    # events of an organisation the sync does not use are ignored
    waiting_before = world.sync()["webhooks"]
    other = payload("c-9", tenant="99999999-9999-4999-8999-999999999999")
    assert post_raw(url, other, signed(other))[0] == 200
    after = world.sync()["webhooks"]
    assert after["events_received"] == waiting_before["events_received"]
    assert after["events_waiting"] == 0


def test_a_burst_of_100_edits_is_one_or_two_runs(tmp_path: Path) -> None:
    # a debounce longer than the burst takes to send even on a loaded machine
    with WebhookWorld(tmp_path, debounce="5s") as world:
        world.wait_first_run()
        people = world.xero_put(*[person(f"P{i:03d}", f"p{i:03d}@burst.test") for i in range(100)])
        wait_until(
            lambda: len([c for c in world.salesflare_contacts() if "@burst" in c["email"]]) == 100,
            120,
            "the 100 contacts in Salesflare",
        )
        world.wait_idle()
        runs_before = len(world.finished_runs("webhook"))
        gets_before = world.xero_calls_by_route()["GET /api.xro/2.0/Contacts"]
        for index in range(0, 100, 10):  # 100 edits, in ten requests
            world.xero_put(
                *[
                    {"ContactID": c["ContactID"], "LastName": "Burst"}
                    for c in people[index : index + 10]
                ]
            )

        def all_edited() -> bool:
            contacts = [c for c in world.salesflare_contacts() if "@burst" in c["email"]]
            return sum(1 for c in contacts if c["lastname"] == "Burst") == 100

        wait_until(all_edited, 120, "the 100 edits in Salesflare")
        world.wait_idle()
        runs = world.finished_runs("webhook")[: len(world.finished_runs("webhook")) - runs_before]
        assert 1 <= len(runs) <= 2, [r["counts"] for r in runs]
        assert sum(r["counts"]["updated_b"] for r in runs) == 100
        gets = world.xero_calls_by_route()["GET /api.xro/2.0/Contacts"] - gets_before
        assert gets <= 2 * len(runs)  # one GET /Contacts?IDs= per 50 changed ids


def test_a_duplicate_delivery_writes_nothing_twice(world: WebhookWorld) -> None:
    created = world.xero_put(person("Dana", "dana@dup.test"))[0]
    wait_until(lambda: world.salesflare_contact("dana@dup.test"), 60, "Dana in Salesflare")
    world.wait_idle()
    before = world.salesflare_calls()
    world.webhooks(duplicate=1)
    world.xero_put({"ContactID": created["ContactID"], "LastName": "Twice"})
    wait_until(
        lambda: (world.salesflare_contact("dana@dup.test") or {}).get("lastname") == "Twice",
        60,
        "the edit in Salesflare",
    )
    # both copies answered (an attempt is counted as it is sent, before the daemon has it):
    # the copy is then known to the daemon, and the idle sync proves it made no run of it
    wait_until(lambda: world.deliveries_answered() >= 3, 60, "both copies answered")
    world.wait_idle()
    after = world.salesflare_calls()
    writes = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("GET")}
    assert sum(writes.values()) == 1, writes
    assert len([c for c in world.salesflare_contacts() if c["email"] == "dana@dup.test"]) == 1


def test_an_archived_contact_is_an_archive_and_a_merge_repoints_the_link(tmp_path: Path) -> None:
    with WebhookWorld(tmp_path, extra_sync='deletions = "archive"') as world:
        world.wait_first_run()
        gone, kept = world.xero_put(person("Gone", "gone@m.test"), person("Kept", "kept@m.test"))
        wait_until(lambda: world.salesflare_contact("kept@m.test"), 60, "Kept in Salesflare")
        wait_until(lambda: world.salesflare_contact("gone@m.test"), 60, "Gone in Salesflare")
        received = world.wait_idle()["webhooks"]["events_received"]
        survivor = world.xero_put({"Name": "Kept Holdings", "FirstName": "Kim"})[0]
        # its event reaches the daemon a moment later: idle before then proves nothing
        world.wait_received(received + 1)
        world.wait_idle()
        sf_kept = world.salesflare_contact("kept@m.test")
        assert sf_kept is not None
        # Gone is archived; Kept is merged into the (unlinked) survivor, which takes its email
        world.xero_put(
            {"ContactID": gone["ContactID"], "ContactStatus": "ARCHIVED"},
            {"ContactID": survivor["ContactID"], "EmailAddress": "kept@m.test",
             "LastName": "Merged"},
            {"ContactID": kept["ContactID"], "ContactStatus": "ARCHIVED",
             "MergedToContactID": survivor["ContactID"]},
        )  # fmt: skip
        wait_until(
            lambda: (world.salesflare_contact("gone@m.test") or {}).get("archived"),
            60,
            "Gone archived in Salesflare",
        )
        wait_until(
            lambda: (world.salesflare_contact("kept@m.test") or {}).get("lastname") == "Merged",
            60,
            "the survivor's edit in Salesflare",
        )
        world.wait_idle()
        now = world.salesflare_contact("kept@m.test")
        assert now is not None and now["id"] == sf_kept["id"] and not now.get("archived")
        assert len([c for c in world.salesflare_contacts() if c["email"] == "kept@m.test"]) == 1


def test_a_lost_webhook_is_still_synced_by_the_interval(tmp_path: Path) -> None:
    with WebhookWorld(tmp_path, interval="10s", extra_a="day_limit = 1000000") as world:
        world.wait_first_run()
        world.webhooks(drop=1)
        world.xero_put(person("Lola", "lola@lost.test"))
        wait_until(lambda: world.webhooks()["dropped"] == 1, 30, "the delivery to be dropped")
        wait_until(lambda: world.salesflare_contact("lola@lost.test"), 120, "Lola in Salesflare")
        assert world.finished_runs("webhook") == []
        assert world.sync()["webhooks"]["events_received"] == 0


def saved_queue(state: Path) -> str:
    """The daemon's saved queue of waiting webhook ids (``hooks.pending``), read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'syncd.db'}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT value FROM key_value WHERE key = 'hooks.pending'").fetchone()
    return str(row[0]) if row else ""


def test_kill_9_between_receiving_and_running_still_delivers(tmp_path: Path) -> None:
    world = WebhookWorld(tmp_path, debounce="10m")
    try:
        world.start()
        world.wait_first_run()
        [kira] = world.xero_put(person("Kira", "kira@kill.test"))
        wait_until(lambda: world.webhooks()["delivered"] == 1, 60, "the delivery answered")
        assert world.sync()["webhooks"]["events_waiting"] == 1
        # the answer waits for the event to be saved only up to PERSIST_WAIT (2 s), which a
        # loaded machine's store may take: saved, before the kill
        wait_until(lambda: kira["ContactID"] in saved_queue(tmp_path / "state"), 60, "the save")
        assert world.daemon is not None
        world.daemon.kill()  # SIGKILL: the run the debounce holds back never started
        assert world.salesflare_contact("kira@kill.test") is None
        world.debounce = "1s"
        world.write_config()
        world.start_daemon()
        wait_until(lambda: world.salesflare_contact("kira@kill.test"), 60, "Kira in Salesflare")
        # Kira is written before the run that wrote her is recorded as finished
        world.wait_idle()
        # the persisted queue did it, not the interval (its next run is 10 minutes away)
        assert [r["trigger"] for r in world.finished_runs("webhook")] == ["webhook"]
    finally:
        world.close()


def test_a_separate_hooks_listener_serves_only_the_hooks(tmp_path: Path) -> None:
    with WebhookWorld(tmp_path, separate_listener=True) as world:
        world.wait_first_run()
        assert world.hooks_port != world.api_port
        world.xero_put(person("Sepp", "sepp@listener.test"))
        wait_until(lambda: world.salesflare_contact("sepp@listener.test"), 60, "Sepp")
        root = f"http://127.0.0.1:{world.hooks_port}"
        assert world.daemon is not None
        token = {"Authorization": f"Bearer {world.daemon.token()}"}
        for path in ("/api/v1/status", "/healthz", "/metrics", "/api/v1/reload"):
            assert post_raw(root + path, b"", token)[0] == 404, path
        body = payload("x")
        assert post_raw(root + f"/hooks/xero/{CLIENT_ID}", body, signed(body))[0] == 200


def test_without_the_right_intent_to_receive_answers_nothing_is_delivered(
    tmp_path: Path,
) -> None:
    with WebhookWorld(tmp_path, subscribe=False) as world:
        world.wait_first_run()
        # subscribed with another key: the daemon refuses the "good" payloads (401)
        state = world.subscribe(key="a-key-the-daemon-does-not-have")
        assert not state["active"] and "intent to receive failed" in state["problem"]
        world.xero_put(person("Nora", "nora@itr.test"))
        assert world.webhooks()["deliveries"] == 0
        assert world.subscribe()["active"]
        world.xero_put(person("Nina", "nina@itr.test"))
        wait_until(lambda: world.salesflare_contact("nina@itr.test"), 60, "Nina in Salesflare")


def test_a_field_edited_on_both_sides_still_goes_to_the_winner(tmp_path: Path) -> None:
    """A webhook-driven run reads the linked record on the other side too (Salesflare, which
    cannot read by id, incrementally): the three-way merge sees both edits."""
    with WebhookWorld(tmp_path, extra_sync='winner = "b"') as world:
        world.wait_first_run()
        [contact] = world.xero_put(person("Wyn", "wyn@winner.test"))
        found = wait_until(lambda: world.salesflare_contact("wyn@winner.test"), 60, "Wyn")
        world.wait_idle()
        world.salesflare("PUT", f"/contacts/{found['id']}", {"lastname": "FromSalesflare"})
        world.xero_put({"ContactID": contact["ContactID"], "LastName": "FromXero"})

        def settled() -> bool:
            xero = next(c for c in world.xero_contacts() if c["ContactID"] == contact["ContactID"])
            return xero["LastName"] == "FromSalesflare"

        wait_until(settled, 60, "the winner's value in Xero")
        world.wait_idle()
        assert (world.salesflare_contact("wyn@winner.test") or {})["lastname"] == "FromSalesflare"
        assert any(r["counts"]["conflicts"] for r in world.finished_runs("webhook"))

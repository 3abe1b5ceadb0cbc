"""``syncd explain``'s engine-level answers: "why did this contact not sync?" against two
in-memory apps, and the health view with "Retry now" (syncd/explain.py, syncd/health.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import memory_sync

from syncd.config import SyncConfig
from syncd.engine.executor import RunOptions, RunResult, run_sync
from syncd.explain import ExplainError, explain, live_values
from syncd.health import health_on_store, retry_on_store
from syncd.plugins import Plugins
from syncd.store import Store
from syncd.testing.memory import app

FILTER = """
[[rules.a-to-b]]
if = [ { field = "tags", op = "contains", value = "customer" } ]
then = [ { add_tag = "from-a" } ]
"""


async def run(sync: SyncConfig, store: Store, **options: object) -> RunResult:
    return await run_sync(sync, store, RunOptions(**options))  # type: ignore[arg-type]


async def why(store: Store, sync: SyncConfig, query: str) -> dict[str, object]:
    return await store.run(explain, store, sync, query)


def only(result: dict[str, object]) -> dict[str, object]:
    contacts = result["contacts"]
    assert isinstance(contacts, list) and len(contacts) == 1, result
    contact = contacts[0]
    assert isinstance(contact, dict)
    return contact


async def test_a_linked_contact_is_in_sync_since_the_run_that_linked_it(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "jane@x.com", "first_name": "Jane"})
    idb = b.add({"email": "JANE@x.com", "first_name": "Jane"})
    sync = memory_sync(tmp_path, plugins)
    first = await run(sync, store)
    await run(sync, store)  # a later run does not move "linked since"
    for query in (" Jane@X.com ", ida, idb):
        contact = only(await why(store, sync, query))
        assert contact["status"] == "in_sync", contact
        assert contact["sides"] == {
            "a": {"app": "memory", "record_id": ida, "linked": True},
            "b": {"app": "memory", "record_id": idb, "linked": True},
        }
        link = contact["link"]
        assert isinstance(link, dict) and link["linked_run"] == first.run_id
        assert f"linked since run {first.run_id}" in str(contact["summary"])


async def test_a_contact_without_email_is_excluded_with_the_reason(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    rid = app("mem-a").add({"first_name": "Nomail"})
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    contact = only(await why(store, sync, rid))
    assert contact["status"] == "excluded"
    assert "no email address" in str(contact["summary"])
    assert contact["sides"]["a"]["record_id"] == rid  # type: ignore[index]


async def test_an_ambiguous_contact_names_the_records_holding_its_email(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    app("mem-a").add({"email": "twin@x.com", "first_name": "A"})
    b = app("mem-b")
    one = b.add({"email": "twin@x.com", "first_name": "B1"})
    two = b.add({"email": "Twin@x.com", "first_name": "B2"})
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    result = await why(store, sync, "twin@x.com")
    statuses = {c["status"] for c in result["contacts"]}  # type: ignore[union-attr,index]
    assert statuses == {"ambiguous"}, result
    summary = str(result["contacts"][0]["summary"])  # type: ignore[index]
    assert "side b" in summary and one in summary and two in summary


async def test_a_filtered_contact_says_which_rule_did_not_match_until_it_syncs(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a = app("mem-a")
    rid = a.add({"email": "lead@x.com", "tags": ("lead",)})
    sync = memory_sync(tmp_path, plugins, extra=FILTER)
    await run(sync, store)
    contact = only(await why(store, sync, "lead@x.com"))
    assert contact["status"] == "filtered", contact
    summary = str(contact["summary"])
    assert "not sent to side b" in summary
    assert "IF tags contains customer THEN add tag from-a" in summary
    assert "tags contains customer does not hold" in summary
    health = await store.run(health_on_store, store, sync.name)
    assert health["counts"]["filtered"] == 1
    assert [d["record_id"] for d in health["filtered"]] == [rid]
    # once it matches, it travels, and the decision is gone
    a.edit(rid, tags=("lead", "customer"))
    synced = await run(sync, store)
    assert synced.counts["created_b"] == 1
    contact = only(await why(store, sync, "lead@x.com"))
    assert contact["status"] == "in_sync", contact
    assert contact["decisions"] == []
    health = await store.run(health_on_store, store, sync.name)
    assert health["counts"]["filtered"] == 0


async def test_a_filtered_record_that_is_deleted_is_forgotten_by_a_full_run(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a = app("mem-a")
    rid = a.add({"email": "lead@x.com", "tags": ("lead",)})
    sync = memory_sync(tmp_path, plugins, extra=FILTER)
    await run(sync, store)
    del a.records[rid]
    await run(sync, store, full=True)
    assert not (await why(store, sync, "lead@x.com"))["found"]


async def test_a_failed_contact_has_the_apps_reason_attempts_and_next_retry(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    app("mem-a").add({"email": "bad-refuse@x.com", "first_name": "Bad"})
    app("mem-b").refuse_marker = "refuse"
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    contact = only(await why(store, sync, "bad-refuse@x.com"))
    assert contact["status"] == "failed"
    summary = str(contact["summary"])
    assert "refused by the app" in summary and "1 attempt;" in summary
    assert "next retry after 20" in summary  # an RFC 3339 time
    health = await store.run(health_on_store, store, sync.name)
    assert health["counts"]["failing"] == 1
    failing = health["failing"][0]
    assert failing["attempts"] == 1 and failing["next_attempt_at"]


async def test_retry_now_resets_the_backoff_so_the_next_run_tries_again(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    app("mem-a").add({"email": "bad-refuse@x.com", "first_name": "Bad"})
    b = app("mem-b")
    b.refuse_marker = "refuse"
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    calls = b.write_calls
    await run(sync, store)
    assert b.write_calls == calls, "a backed-off record is not tried again yet"
    assert (await store.run(retry_on_store, store, sync.name))["retried"] == 1
    reset = (await store.run(health_on_store, store, sync.name))["failing"][0]
    assert reset["attempts"] == 0 and reset["next_attempt_at"] is None
    b.refuse_marker = None
    retried = await run(sync, store)
    assert retried.counts["created_b"] == 1
    assert (await store.run(health_on_store, store, sync.name))["counts"]["failing"] == 0
    assert only(await why(store, sync, "bad-refuse@x.com"))["status"] == "in_sync"


async def test_retry_of_one_record_resets_only_that_one_and_names_one_not_failing(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a = app("mem-a")
    first = a.add({"email": "one-refuse@x.com"})
    a.add({"email": "two-refuse@x.com"})
    app("mem-b").refuse_marker = "refuse"
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    done = await store.run(retry_on_store, store, sync.name, [("a", first), ("b", "nope")])
    assert done == {"retried": 1, "not_failing": [{"side": "b", "record_id": "nope"}]}
    failing = {
        i["record_id"]: i["next_attempt_at"]
        for i in (await store.run(health_on_store, store, sync.name))["failing"]
    }
    assert failing[first] is None
    assert all(v is not None for k, v in failing.items() if k != first)


async def test_an_unknown_contact_says_so_and_a_bad_query_is_refused(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    result = await why(store, sync, "nobody@x.com")
    assert result["found"] is False and "knows no contact" in str(result["summary"])
    for bad in ("", "   ", "a\nb", "x" * 400):
        with pytest.raises(ExplainError):
            await why(store, sync, bad)


async def test_live_values_show_both_sides_with_the_differing_fields_marked(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    a, b = app("mem-a"), app("mem-b")
    ida = a.add({"email": "jane@x.com", "first_name": "Jane", "city": "Leeds"})
    extra = 'direction = "b-to-a"'
    b.add({"email": "jane@x.com", "first_name": "JANE"})
    sync = memory_sync(tmp_path, plugins, extra=extra)
    await run(sync, store)
    a.edit(ida, city="York")  # b-to-a: a's edit stays on a
    result = await why(store, sync, "jane@x.com")
    live = (await live_values(sync, store, result))["contacts"][0]["live"]
    assert live["sides"]["a"]["found"] and live["sides"]["b"]["found"]
    assert live["sides"]["a"]["fetched_by"] == "lookup by email"
    rows = {row["key"]: row for row in live["fields"]}
    assert rows["city"]["a"] == "York" and rows["city"]["b"] is None and rows["city"]["differs"]
    assert not rows["first_name"]["differs"], "re-casing is no difference"
    assert not rows["email"]["differs"]


async def test_live_values_of_an_unknown_email_ask_both_apps(
    tmp_path: Path, plugins: Plugins, store: Store
) -> None:
    sync = memory_sync(tmp_path, plugins)
    await run(sync, store)
    app("mem-b").add({"email": "late@x.com", "first_name": "Late"})  # added since the run
    result = await live_values(sync, store, await why(store, sync, "late@x.com"))
    live = result["contacts_live"][0]["live"]
    assert not live["sides"]["a"]["found"] and live["sides"]["b"]["found"]
    assert live["sides"]["b"]["values"]["first_name"] == "Late"

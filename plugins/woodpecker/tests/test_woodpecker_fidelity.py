"""The emulator as a client written from Woodpecker's docs sees it: the documented queue, search
fields and spellings, campaign filters, ``/rest/v1/me``, and faults in Woodpecker's shape."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from syncd_woodpecker.sandbox import DEFAULT_API_KEY, QUEUE_KEY

HEADERS = {"x-api-key": DEFAULT_API_KEY}


async def get(session: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with session.get(url, params=params) as response:
        text = await response.text()
        return response.status, (await response.json(content_type=None)) if text else None


async def waiting_reaches(sandbox: Any, count: int) -> None:
    """Wait (on the queue's own signal, not a clock) until ``count`` requests wait in line."""
    line = sandbox.server.app[QUEUE_KEY]
    while line.waiting(DEFAULT_API_KEY) < count:
        line.changed.clear()
        await line.changed.wait()


async def test_one_at_a_time_six_wait_in_line_the_rest_are_refused(start_sandbox: Any) -> None:
    sandbox = await start_sandbox(seed=1, count=5)
    gate = sandbox.store.gate = asyncio.Event()
    url = f"{sandbox.base_url}/v1/prospects"
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        first = asyncio.create_task(get(session, url))
        await sandbox.store.at_gate.wait()  # the first request is being processed
        queued = [asyncio.create_task(get(session, url, page=str(n))) for n in range(1, 7)]
        await waiting_reaches(sandbox, 6)
        status, body = await get(session, url)  # the eighth finds the line full
        assert status == 429
        assert body["status"]["code"] == "E_TOO_MANY_REQUESTS"
        assert not any(task.done() for task in [first, *queued])
        gate.set()
        answers = await asyncio.gather(first, *queued)
    assert [a[0] for a in answers] == [200, 200, 204, 204, 204, 204, 204]
    line = sandbox.server.app[QUEUE_KEY]
    assert (line.queued, line.most_waiting) == (6, 6)
    assert sandbox.store.refused_concurrent == 1


async def test_a_request_waiting_longer_than_the_queue_timeout_is_refused(
    start_sandbox: Any,
) -> None:
    # the first request is held for as long as the test likes: the second can only ever end by
    # its wait running out, whatever the machine's speed
    sandbox = await start_sandbox(seed=1, count=5, queue_timeout=0.05)
    gate = sandbox.store.gate = asyncio.Event()
    url = f"{sandbox.base_url}/v1/prospects"
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        first = asyncio.create_task(get(session, url))
        await sandbox.store.at_gate.wait()
        status, body = await get(session, url)
        assert status == 429
        assert body["status"]["code"] == "E_TOO_MANY_REQUESTS"
        assert "waited too long" in body["status"]["msg"]
        gate.set()
        assert (await first)[0] == 200
        # the line is free again
        assert (await get(session, url))[0] == 200


async def test_the_documented_wait_is_fifteen_seconds_for_six(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    line = sandbox.server.app[QUEUE_KEY]
    assert (line.queue_size, line.timeout) == (6, 15.0)
    strict = await start_sandbox(concurrency="strict")
    assert strict.server.app[QUEUE_KEY].queue_size == 0


async def test_search_takes_the_documented_fields_and_spellings(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    store = sandbox.store
    store.add(email="ann@acme.example", company="Acme Corp", snippet1="Gold", organization_id="77")
    store.add(email="bob@other.example", company="Other Ltd", snippet1="Silver")
    url = f"{sandbox.base_url}/v1/prospects"

    async def emails(search: str) -> list[str]:
        status, body = await get(session, url, search=search)
        assert status in (200, 204), body
        return [p["email"] for p in body or []]

    async with aiohttp.ClientSession(headers=HEADERS) as session:
        assert await emails("organization_id=77") == ["ann@acme.example"]
        assert await emails("snipet1=gold") == ["ann@acme.example"]
        assert await emails("snippet1=Silver") == ["bob@other.example"]
        assert await emails("company=.*corp.*") == ["ann@acme.example"]
        assert await emails("email=.*example.*,snipet1=Silver") == ["bob@other.example"]
        _, body = await get(session, url, sort="-snipet1")
        assert [p["email"] for p in body] == ["bob@other.example", "ann@acme.example"]
        assert body[1]["organization_id"] == "77"


async def test_campaign_filters_are_applied(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    store = sandbox.store
    spring, autumn = store.add_campaign("Spring"), store.add_campaign("Autumn")
    ann = store.add(email="ann@example.com")
    bob = store.add(email="bob@example.com")
    cat = store.add(email="cat@example.com")
    store.add(email="dan@example.com")  # in no campaign, never contacted
    store.enrol(ann.id, spring.id, interested="INTERESTED", opened=True, clicked=True)
    store.enrol(bob.id, spring.id, interested="MAYBE-LATER", contacted=True)
    store.enrol(cat.id, autumn.id, opened=True)
    url = f"{sandbox.base_url}/v1/prospects"

    async def emails(**params: str) -> list[str]:
        status, body = await get(session, url, **params)
        assert status in (200, 204), body
        return sorted(p["email"].split("@")[0] for p in body or [])

    async with aiohttp.ClientSession(headers=HEADERS) as session:
        assert await emails(campaigns_id=str(spring.id)) == ["ann", "bob"]
        assert await emails(campaigns_id=f"{spring.id},{autumn.id}") == ["ann", "bob", "cat"]
        assert await emails(activity="OPENED") == ["ann", "cat"]
        assert await emails(activity="NOT-OPENED") == ["bob"]
        assert await emails(activity="CLICKED", campaigns_id=str(spring.id)) == ["ann"]
        assert await emails(activity="NOT-CLICKED") == ["bob", "cat"]
        assert await emails(interested="INTERESTED") == ["ann"]
        assert await emails(interested="NOT-MARKED") == ["cat"]
        assert await emails(contacted="1") == ["ann", "bob", "cat"]
        assert await emails(contacted="0") == ["dan"]
        _, body = await get(session, url, campaigns_details="true", id=str(ann.id))
        assert body[0]["campaigns_details"] == [
            {
                "campaign_id": spring.id,
                "campaign_name": "Spring",
                "campaign_status": "RUNNING",
                "campaign_prospect_status": "ACTIVE",
                "interested": "INTERESTED",
                "campaign_email": "ann@example.com",
            }
        ]
        for params in ({"activity": "SEEN"}, {"interested": "yes"}, {"contacted": "maybe"}):
            status, body = await get(session, url, **params)
            assert status == 400 and body["status"]["code"] == "E_WRONG_PARAM", params


async def test_me_answers_the_keys_account(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        status, body = await get(session, f"{sandbox.base_url}/v1/me")
    assert status == 200 and body["email"] and body["company"]
    async with aiohttp.ClientSession(headers={"x-api-key": "wrong"}) as session:
        status, body = await get(session, f"{sandbox.base_url}/v1/me")
    assert status == 401 and body["status"]["code"] == "E_SESSION"


@pytest.mark.parametrize("mix", [None, {"502": 1}])
async def test_faults_answer_in_woodpeckers_shape(start_sandbox: Any, mix: Any) -> None:
    sandbox = await start_sandbox(seed=1, count=3)
    await sandbox.switches(error_rate=1.0, seed=1, **({"error_statuses": mix} if mix else {}))
    seen = set()
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        for _ in range(40):
            status, body = await get(session, f"{sandbox.base_url}/v1/prospects")
            assert body["status"]["status"] == "ERROR"
            assert body["status"]["code"] == "E_INTERNAL_ERROR" and body["status"]["msg"]
            seen.add(status)
    assert seen == ({502} if mix else {500, 502, 503, 504})


async def test_a_seeded_sandbox_has_campaigns_to_filter_on(start_sandbox: Any) -> None:
    sandbox = await start_sandbox(seed=1, count=200)
    first = min(sandbox.store.campaigns)
    url = f"{sandbox.base_url}/v1/prospects"
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        status, members = await get(session, url, campaigns_id=str(first), per_page="1000")
        assert status == 200 and members
        status, opened = await get(session, url, activity="OPENED", per_page="1000")
        assert status == 200 and opened
    # opening an email means it was sent: every opener has been contacted
    assert all(p["last_contacted"] for p in opened)

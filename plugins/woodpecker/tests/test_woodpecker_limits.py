"""Rate limits, concurrency, server errors and credentials, against the emulator."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from syncd_woodpecker.sandbox import DEFAULT_API_KEY

from syncd.connector import ConnectorConfigError, NeedsReauth, RecordWrite, RetryLater
from syncd.http import all_budgets


async def count_records(connector: Any) -> int:
    total = 0
    async for page in connector.list_records(None):
        total += len(page)
    return total


@pytest.mark.parametrize("too_many_status", [429, 400])
async def test_woodpecker_rides_out_a_too_many_requests_storm(
    start_sandbox: Any, connect: Any, too_many_status: int
) -> None:
    """E_TOO_MANY_REQUESTS backs off and retries, whether it comes as 429 or as 400."""
    sandbox = await start_sandbox(seed=1, count=2_500, too_many_status=too_many_status)
    connector = await connect(sandbox)
    await sandbox.switches(burst_429=3, retry_after=0.01)

    assert await count_records(connector) == 2_500
    results = await connector.create([RecordWrite("k", {"email": "storm@example.com"})])
    assert results[0].ok
    # three refusals, three pages, one write: nothing beyond what the storm cost
    assert (await sandbox.calls())["GET /rest/v1/prospects"] == 3 + 3


async def test_woodpecker_endless_storm_becomes_retry_later(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=1, count=10)
    connector = await connect(sandbox)
    await sandbox.switches(burst_429=100, retry_after=0.01)

    with pytest.raises(RetryLater):
        await count_records(connector)


async def test_woodpecker_retry_after_pauses_the_shared_budget(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=1, count=10)
    connector = await connect(sandbox)
    await sandbox.switches(burst_429=1, retry_after=0.05)

    assert await count_records(connector) == 10
    budget = connector.http.budget
    assert budget is not None and budget.blocked_until > 0


async def test_woodpecker_copes_with_5xx_and_dropped_connections(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=9, count=3_000)
    connector = await connect(sandbox)
    # the switches draw from a seeded generator: the same requests fail on every run
    await sandbox.switches(error_rate=0.3, drop_rate=0.1, seed=4)

    assert await count_records(connector) == 3_000
    results = await connector.create(
        [RecordWrite(str(n), {"email": f"flaky{n}@example.com"}) for n in range(20)]
    )
    assert all(r.ok for r in results)
    assert len(sandbox.store.prospects) == 3_020


async def test_woodpecker_bad_api_key_needs_reauth(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox(seed=1, count=5)
    secret = "wp-wrong-key-0123456789"
    connector = await connect(sandbox, api_key=secret)

    with pytest.raises(NeedsReauth) as caught:
        await connector.check()
    assert "E_SESSION" in str(caught.value)
    assert "api_key" in caught.value.fix
    assert secret not in str(caught.value) and secret not in caught.value.fix

    with pytest.raises(NeedsReauth):
        await count_records(connector)
    with pytest.raises(NeedsReauth):
        await connector.create([RecordWrite("k", {"email": "x@example.com"})])


async def test_woodpecker_wrong_base_url_is_a_config_error(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox()
    connector = await connect(sandbox, base_url=sandbox.url + "/api")

    with pytest.raises(ConnectorConfigError) as caught:
        await connector.check()
    assert caught.value.key == "base_url"


async def test_woodpecker_strict_sandbox_refuses_a_second_concurrent_request(
    start_sandbox: Any,
) -> None:
    """``concurrency="strict"``: a request that finds the key busy is refused at once."""
    sandbox = await start_sandbox(seed=1, count=5, concurrency="strict")
    gate = sandbox.store.gate = asyncio.Event()

    async with aiohttp.ClientSession(headers={"x-api-key": DEFAULT_API_KEY}) as session:

        async def get() -> tuple[int, Any]:
            async with session.get(f"{sandbox.base_url}/v1/prospects") as response:
                return response.status, await response.json()

        first = asyncio.create_task(get())
        await sandbox.store.at_gate.wait()  # the first request is being processed
        status, body = await get()
        gate.set()
        assert (await first)[0] == 200

    assert status == 429
    assert body["status"]["code"] == "E_TOO_MANY_REQUESTS"
    assert sandbox.store.refused_concurrent == 1


async def test_woodpecker_syncs_sharing_a_key_send_one_request_at_a_time(
    start_sandbox: Any, connect: Any
) -> None:
    """Two syncs on one API key draw from one budget of concurrency 1: the emulator, which
    refuses any overlap in its strict mode, never has to refuse one of theirs."""
    sandbox = await start_sandbox(seed=6, count=1_200, concurrency="strict")
    await sandbox.switches(latency_ms=2)
    first = await connect(sandbox, sync="crm-to-woodpecker", per_page=100)
    second = await connect(sandbox, sync="csv-to-woodpecker", per_page=100)
    assert first.http.budget is second.http.budget
    assert first.http.budget is not None and first.http.budget.concurrency == 1

    async def writes(connector: Any, prefix: str) -> None:
        for n in range(5):
            results = await connector.create(
                [RecordWrite(f"{prefix}{n}", {"email": f"{prefix}{n}@example.com"})]
            )
            assert results[0].ok

    counts = await asyncio.gather(
        count_records(first), count_records(second), writes(first, "a"), writes(second, "b")
    )

    assert all(count >= 1_200 for count in counts[:2])
    assert sandbox.store.refused_concurrent == 0


async def test_woodpecker_secret_stays_out_of_reprs_logs_and_budget_names(
    start_sandbox: Any, connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = await start_sandbox(seed=1, count=3)
    secret = DEFAULT_API_KEY
    caplog.set_level(logging.DEBUG)
    connector = await connect(sandbox)
    await count_records(connector)

    assert secret not in repr(connector)
    assert secret not in repr(connector.http)
    assert all(secret not in name for name in all_budgets())
    assert secret not in caplog.text

"""Rate limits and failures: 429 storms and 5xx ridden out within the budget, the daily limit
turned into a checkpoint, the budget shared per organisation."""

from __future__ import annotations

from typing import Any

import pytest
from syncd_xero.limits import XeroBudget

from syncd.connector import RateBudgetExhausted, RecordWrite, RetryLater


async def count(connector: Any) -> int:
    return sum([len(page) async for page in connector.list_records(None)])


async def test_a_429_storm_is_waited_out_with_retry_after(xero: Any) -> None:
    env = await xero(seed=9, count=250)
    connector = await env.authorized()
    await env.switches(burst_429=4, retry_after=0.05)
    assert await count(connector) == 250
    refused = [e for e in env.exchanges if e.status == 429]
    assert len(refused) == 4
    assert all(e.response_headers["X-Rate-Limit-Problem"] == "minute" for e in refused)
    assert connector.budget is not None and connector.budget.waited_seconds > 0


async def test_xeros_own_minute_limit_is_honoured(xero: Any) -> None:
    # five pages against two calls per two-second window: the emulator refuses some of them
    # however fast or slow this machine is, and the connector waits as told
    env = await xero(seed=9, count=250, rate_limits=True, minute_limit=2, minute_window=2.0)
    connector = await env.authorized(page_size=50)
    assert await count(connector) == 250
    assert env.accounting.limits.refused.get("minute", 0) >= 1
    retry_after = [e.response_headers.get("Retry-After") for e in env.exchanges if e.status == 429]
    assert retry_after and all(value for value in retry_after)


async def test_server_errors_and_dropped_connections_are_retried(xero: Any) -> None:
    env = await xero(seed=9, count=250)
    connector = await env.authorized(page_size=25)
    await env.switches(error_rate=0.3, drop_rate=0.1, seed=3)
    assert await count(connector) == 250
    results = await connector.create(
        [RecordWrite(f"k{i}", {"Name": f"Stormy {i}"}) for i in range(30)]
    )
    await env.switches(error_rate=0, drop_rate=0)
    assert all(r.ok for r in results)
    # retries carry the same idempotency key, so a create that went through is not repeated
    names = [c["Name"] for c in await env.contacts() if c["Name"].startswith("Stormy")]
    assert sorted(names) == sorted(f"Stormy {i}" for i in range(30))


async def test_unending_5xx_becomes_retry_later(xero: Any) -> None:
    env = await xero(seed=9, count=10)
    connector = await env.authorized()
    await env.switches(error_rate=1.0)
    with pytest.raises(RetryLater) as caught:
        await connector.check()
    assert not isinstance(caught.value, RateBudgetExhausted)


async def test_the_daily_limit_checkpoints_instead_of_retrying(xero: Any) -> None:
    env = await xero(seed=9, count=250, rate_limits=True, day_limit=2)
    connector = await env.authorized()
    with pytest.raises(RateBudgetExhausted) as caught:
        await count(connector)
    assert caught.value.delay is not None and caught.value.delay > 3600
    refused = [e for e in env.exchanges if e.status == 429]
    assert len(refused) == 1 and refused[0].response_headers["X-Rate-Limit-Problem"] == "day"
    # the next call in this process does not even try
    with pytest.raises(RateBudgetExhausted):
        await connector.check()
    assert len([e for e in env.exchanges if e.status == 429]) == 1


async def test_the_day_limit_setting_is_kept_locally(xero: Any) -> None:
    env = await xero(seed=9, count=250)
    connector = await env.authorized(day_limit=2)
    with pytest.raises(RateBudgetExhausted, match="day_limit"):
        await count(connector)
    assert len(env.exchanges) == 2 + 1  # /Connections at authorisation + two pages


async def test_rate_headers_are_read(xero: Any) -> None:
    env = await xero(seed=9, count=10, rate_limits=True)
    connector = await env.authorized()
    await connector.check()
    budget = connector.budget
    assert isinstance(budget, XeroBudget)
    assert budget.day_remaining == 4999 and budget.minute_remaining == 59
    assert budget.app_minute_remaining == 9999


async def test_syncs_on_one_organisation_share_a_budget(xero: Any) -> None:
    env = await xero()
    first = await env.authorized(side="a", sync="one")
    second = await env.authorized(side="b", sync="two")
    other = await env.authorized(side="a", sync="three", tenant="Demo Company (NZ)")
    assert first.budget is second.budget
    assert other.budget is not first.budget
    assert first.budget is not None and first.budget.calls == 60
    assert first.budget.concurrency == 5

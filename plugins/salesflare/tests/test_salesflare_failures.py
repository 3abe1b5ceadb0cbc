"""Throttling, 429 storms, 5xx, dropped connections and refused credentials."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from syncd_salesflare.connector import SalesflareConnector

from syncd.connector import ConnectorConfigError, NeedsReauth, RecordWrite, RetryLater


async def list_all(connector: Any, cursor: str | None = None) -> list[Any]:
    records = []
    async for page in connector.list_records(cursor):
        records.extend(page)
    return records


async def set_switches(sandbox: Any, **values: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sandbox.url}/_sandbox/switches", json=values) as response,
    ):
        assert response.status == 200


async def sandbox_calls(sandbox: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.url}/_sandbox/calls") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


async def test_a_429_storm_is_waited_out_with_backoff_inside_the_budget(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox(seed=20, count=30)
    connector = await make_connector(sandbox, page_size=10, retry_attempts=6)
    await set_switches(sandbox, burst_429=3)

    records = await list_all(connector)

    assert len(records) == 30
    statuses = await sandbox_calls(sandbox)
    # every attempt went through the connector's client (and so its rate budget)
    assert statuses["total"] == connector.http.calls
    assert connector.http.calls == 3 + 4  # three refused attempts, then the four pages
    budget = connector.http.budget
    assert budget is not None and budget.blocked_until > 0  # the 429s paused the whole account


async def test_a_storm_longer_than_the_retries_becomes_retry_later(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=21, count=5)
    connector = await make_connector(sandbox, retry_attempts=2)
    await set_switches(sandbox, burst_429=5)
    with pytest.raises(RetryLater):
        await list_all(connector)
    assert connector.http.calls == 2


async def test_the_sandboxes_own_rate_limit_answers_429_without_retry_after(start_sandbox):
    sandbox = await start_sandbox(rate_limit=2, rate_window=3600)
    headers = {"Authorization": "Bearer sandbox-api-key"}
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(3):
            async with session.get(f"{sandbox.url}/me", headers=headers) as response:
                statuses.append(response.status)
                body = await response.json()
        assert statuses == [200, 200, 429]
        assert "Retry-After" not in response.headers
        assert body == {
            "statusCode": 429,
            "error": "Too Many Requests",
            "message": "Rate limit exceeded",
        }


async def test_5xx_and_dropped_connections_are_retried(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=22, count=25)
    connector = await make_connector(sandbox, page_size=10, retry_attempts=8, concurrency=1)
    # seeded: the same requests fail on every run
    await set_switches(sandbox, error_rate=0.3, drop_rate=0.1, seed=3)

    records = await list_all(connector)
    results = await connector.create(
        [RecordWrite(f"k{n}", {"email": f"r{n}@example.test"}) for n in range(5)]
    )

    assert len(records) == 25
    assert all(r.ok for r in results)
    assert connector.http.calls > 4  # some attempts failed and were repeated
    emails = [c["email"] for c in sandbox.state.contacts.values()]
    assert all(emails.count(f"r{n}@example.test") == 1 for n in range(5))


async def test_a_bad_api_key_is_a_needs_reauth_failure_without_the_key(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox(seed=23, count=3)
    secret = "sf-wrong-key-1234567890"
    connector = await make_connector(sandbox, api_key=secret)
    for action in (connector.check(), list_all(connector)):
        with pytest.raises(NeedsReauth) as caught:
            await action
        assert "Salesflare refused the API key (HTTP 401: Unauthorized: Bad token)" in str(
            caught.value
        )
        assert "Settings → API keys" in caught.value.fix
        assert secret not in str(caught.value) and secret not in caught.value.fix
    assert secret not in repr(connector) and secret not in repr(connector.http)


async def test_check_names_the_user_of_the_key(start_sandbox, make_connector):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    assert await connector.check() == (
        f"Salesflare at {sandbox.url}: API key of Sandbox User sandbox.user@example.com"
    )


async def test_a_base_url_that_is_not_salesflare_is_a_config_error(start_sandbox, make_connector):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox, base_url=sandbox.url + "/nowhere")
    with pytest.raises(ConnectorConfigError) as caught:
        await list_all(connector)
    assert caught.value.key == "base_url"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"api_key": ""}, "api_key"),
        ({"base_url": "api.salesflare.com"}, "base_url"),
        ({"page_size": 1}, "page_size"),
        ({"calls_per_minute": "many"}, "calls_per_minute"),
        ({"create_accounts": "perhaps"}, "create_accounts"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path, settings, key):
    from syncd.connector import ConnectorContext

    config = {"api_key": "k", **settings}
    with pytest.raises(ConnectorConfigError) as caught:
        SalesflareConnector(config, ConnectorContext("t", "b", tmp_path))
    assert caught.value.key == key


def test_declares_what_salesflare_can_do(tmp_path):
    from syncd.connector import ConnectorContext

    connector = SalesflareConnector({"api_key": "k"}, ConnectorContext("t", "b", tmp_path))
    caps = connector.capabilities
    assert caps.incremental and caps.lookup_by_email and caps.custom_fields
    assert caps.idempotency_keys is False and caps.archive == "archive"
    assert caps.create_batch_size == 100 and caps.update_batch_size == 1
    assert SalesflareConnector.secret_settings() == frozenset({"api_key"})
    canonical = {f.name: f.canonical for f in SalesflareConnector.fields}
    assert canonical["account.name"] == "company" and canonical["position.role"] == "title"
    assert SalesflareConnector.field_spec("name").read_only

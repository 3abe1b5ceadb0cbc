"""The misbehaviour switches every emulator shares, and ``syncd sandbox NAME --option``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from support import SYNCD, cli_env

from syncd.sandbox import (
    SandboxServer,
    Switches,
    install_switches,
    option_list,
    parse_error_statuses,
)
from syncd.testing.daemon import free_port, wait_until


def _app(**install: Any) -> web.Application:
    app = web.Application()
    install_switches(app, **install)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": True})

    app.router.add_get("/hello", hello)
    return app


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body) as response:
        return response.status, await response.json()


async def test_error_faults_use_the_vendor_shape_and_the_status_mix() -> None:
    def vendor(request: web.Request, status: int) -> web.StreamResponse:
        return web.json_response({"vendor": "shape", "code": status}, status=status)

    app = _app(fault=vendor, error_statuses={"500": 1, "502": 1})
    async with SandboxServer(app) as server, aiohttp.ClientSession() as session:
        status, body = await _post(
            session,
            server.url + "/_sandbox/switches",
            {"error_rate": 1.0, "error_statuses": "500:1,502:1,503:2,504:4", "seed": 5},
        )
        assert status == 200
        assert body["error_statuses"] == {"500": 1.0, "502": 1.0, "503": 2.0, "504": 4.0}
        seen: Counter[int] = Counter()
        for _ in range(800):
            async with session.get(server.url + "/hello") as response:
                assert await response.json() == {"vendor": "shape", "code": response.status}
                seen[response.status] += 1
    assert set(seen) == {500, 502, 503, 504}
    # 1:1:2:4 of 800 is 100:100:200:400; a seeded draw stays well inside these bounds
    assert 60 < seen[500] < 140 and 60 < seen[502] < 140
    assert 150 < seen[503] < 250 and 340 < seen[504] < 460


async def test_the_vendor_default_mix_applies_until_a_switch_changes_it() -> None:
    app = _app(error_statuses={"504": 1})
    async with SandboxServer(app) as server, aiohttp.ClientSession() as session:
        await _post(session, server.url + "/_sandbox/switches", {"error_rate": 1.0})
        async with session.get(server.url + "/hello") as response:
            assert response.status == 504


async def test_which_requests_fail_does_not_depend_on_the_mix() -> None:
    """The status is drawn apart from the failure itself: a seeded run fails the same requests
    whatever the mix, so changing the mix does not change a test's sequence of failures."""

    def failures(mix: str) -> list[bool]:
        state = Switches()
        state.update({"error_rate": 0.3, "error_statuses": mix, "seed": 9})
        out = []
        for _ in range(200):
            failed = state.rng.random() < state.error_rate
            if failed:
                state.fault_status()
            out.append(failed)
        return out

    assert failures("503") == failures("500:1,502:5,504:2")


@pytest.mark.parametrize(
    "value",
    ["404:1", "500:-1", "500:0", {"418": 1}, 503, "", "503:x"],
)
async def test_a_bad_status_mix_is_refused_in_one_line(value: Any) -> None:
    app = _app()
    async with SandboxServer(app) as server, aiohttp.ClientSession() as session:
        status, body = await _post(
            session, server.url + "/_sandbox/switches", {"error_statuses": value}
        )
    assert status == 400
    assert body["error"].startswith("bad switch:")
    assert "\n" not in body["error"]


@given(
    st.dictionaries(
        st.sampled_from(["500", "502", "503", "504"]),
        st.integers(min_value=1, max_value=50),
        min_size=1,
    )
)
def test_a_mix_reads_the_same_as_text_and_as_an_object(mix: dict[str, int]) -> None:
    text = ",".join(f"{status}:{weight}" for status, weight in mix.items())
    assert parse_error_statuses(text) == parse_error_statuses(mix)
    assert parse_error_statuses(text) == {k: float(v) for k, v in mix.items()}


async def test_timeout_rate_accepts_and_never_answers() -> None:
    app = _app()
    server = SandboxServer(app)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            await _post(session, server.url + "/_sandbox/switches", {"timeout_rate": 1.0})
            request = asyncio.ensure_future(session.get(server.url + "/hello"))

            async def held() -> None:
                while True:
                    async with session.get(server.url + "/_sandbox/calls") as response:
                        if (await response.json())["never_answered"] == 1:
                            return
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(held(), 60)
            assert not request.done()  # accepted (counted), and still without an answer
            stopped = asyncio.ensure_future(server.stop())
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(request, 60)
            await asyncio.wait_for(stopped, 60)  # the held request does not keep it running
    finally:
        await server.stop()


def test_option_list_reads_comma_separated_text_and_lists() -> None:
    assert option_list("id, name,,email") == ["id", "name", "email"]
    assert option_list(["id", "name"]) == ["id", "name"]
    assert option_list(None) == []


def test_sandbox_option_with_a_list_value_is_split_on_commas(tmp_path: Any) -> None:
    """``--option sort_keys=id,name`` gives the keys ``id`` and ``name``, not the characters
    ``i``, ``d``, ``,``, ``n``... (which refused every real ``order_by``)."""
    port = free_port()
    process = subprocess.Popen(
        [*SYNCD, "sandbox", "salesflare", "--port", str(port), "--option", "sort_keys=id,name"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            url + path, headers={"Authorization": "Bearer sandbox-api-key"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    def up() -> bool:
        try:
            get("/me")
        except OSError:
            return False
        return True

    try:
        wait_until(up, 60, "the salesflare sandbox")
        assert get("/contacts?order_by=name")[0] == 200
        assert get("/contacts?order_by=id%20desc")[0] == 200
        status, body = get("/contacts?order_by=email")
        assert status == 400
        assert body["message"] == '"order_by[0]" must be one of [id, name]'
    finally:
        process.terminate()
        process.communicate(timeout=60)

"""The local HTTP API of a real ``syncd run`` (a subprocess, on 127.0.0.1 and a free port).

One daemon serves the whole module. Its syncs: ``alpha`` (a small CSV → CSV sync), ``slow`` (a
run that stays running: its writes are held after a few batches until the module ends),
``expired`` (its app refuses the credentials), ``down`` (its app is unavailable and says when
to come back) and ``messy`` (a CSV with rows that have no email, so that it has failing records
to list). The tests start once every sync has made its first run (each runs once soon after the
daemon starts, then hourly), so that only what a test does runs during it.
"""

from __future__ import annotations

import ast
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.daemon.client import ApiClient
from syncd.store.lock import SyncLock
from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

ENV = {"SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv"}


def write_contacts(path: Path, count: int, prefix: str = "p") -> None:
    lines = ["email,first_name,last_name"]
    lines += [f"{prefix}{i}@example.com,First{i},Last{i}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")


def write_sync(config_dir: Path, name: str, body: str) -> Path:
    path = config_dir / "syncs" / f"{name}.toml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, Path]]:
    root = tmp_path_factory.mktemp("daemon-api")
    config, state, data = root / "config", root / "state", root / "data"
    data.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state, shutdown_deadline="10s")
    write_contacts(data / "alpha-a.csv", 3)
    write_contacts(data / "slow-a.csv", 400, "slow")
    write_contacts(data / "other.csv", 2, "other")
    write_sync(
        config,
        "alpha",
        f"""
        direction = "a-to-b"
        interval = "1h"
        [a]
        connector = "csv"
        path = "{data / "alpha-a.csv"}"
        [b]
        connector = "csv"
        path = "{data / "alpha-b.csv"}"
        """,
    )
    write_sync(
        config,
        "slow",
        f"""
        direction = "a-to-b"
        interval = "1h"
        [a]
        connector = "csv"
        path = "{data / "slow-a.csv"}"
        [b]
        connector = "testcsv"
        path = "{data / "slow-b.csv"}"
        batch_size = 1
        rate = 4
        hold = "{data / "release-slow"}"
        hold_after = 3
        """,
    )
    (data / "messy-a.csv").write_text(
        "email,first_name,last_name\nm1@example.com,M,One\n,No,Email\n,Also,Nobody\n"
    )
    write_sync(
        config,
        "messy",
        f"""
        direction = "a-to-b"
        interval = "1h"
        [a]
        connector = "csv"
        path = "{data / "messy-a.csv"}"
        [b]
        connector = "csv"
        path = "{data / "messy-b.csv"}"
        """,
    )
    for name, fail in (("expired", "needs_auth"), ("down", "retry_later")):
        write_sync(
            config,
            name,
            f"""
            interval = "1h"
            [a]
            connector = "testcsv"
            path = "{data / "other.csv"}"
            fail = "{fail}"
            retry_after = 600
            [b]
            connector = "csv"
            path = "{data / f"{name}-b.csv"}"
            """,
        )
    daemon = DaemonProcess(config, state, listen, env=ENV)
    with daemon:
        daemon.wait_ready()
        # the start-up runs: "slow" is held in its writes, the others have finished
        wait_until(lambda: (data / "release-slow.held").exists(), 120, "slow to be held")
        for name in ("alpha", "expired", "down"):
            wait_until(
                lambda name=name: (
                    (s := sync_summary(daemon, name))["last_run"] and s["running"] is None
                ),
                120,
                f"the first run of {name}",
            )
        try:
            yield daemon, config
        finally:
            (data / "release-slow").touch()  # let the held run go, so that it stops at once


@pytest.fixture
def daemon(setup: tuple[DaemonProcess, Path]) -> DaemonProcess:
    return setup[0]


def sync_summary(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    data: dict[str, Any] = daemon.get(f"/api/v1/syncs/{name}")
    return data


def wait_for_run(daemon: DaemonProcess, name: str, run_id: int) -> dict[str, Any]:
    # not the history alone: it says a run finished before the run lets go of the sync and
    # before the sync's counts and the metrics record it (the next test's trigger would be 409)
    return daemon.wait_run(name, run_id)


# --- access -----------------------------------------------------------------------------------


def test_healthz_needs_no_token_and_reports_its_checks(daemon: DaemonProcess) -> None:
    status, body = daemon.client(token=None).request("GET", "/healthz", auth=False)
    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {"loop": "ok", "database": "ok", "scheduler": "ok"},
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/syncs"),
        ("GET", "/api/v1/syncs/alpha"),
        ("GET", "/api/v1/syncs/alpha/runs"),
        ("GET", "/api/v1/syncs/alpha/errors"),
        ("POST", "/api/v1/syncs/alpha/trigger"),
        ("POST", "/api/v1/syncs/alpha/pause"),
        ("POST", "/api/v1/syncs/alpha/resume"),
        ("POST", "/api/v1/reload"),
        ("GET", "/api/v1/plugins"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/no-such-thing"),
    ],
)
def test_every_other_path_refuses_a_missing_or_wrong_token(
    daemon: DaemonProcess, method: str, path: str
) -> None:
    right = daemon.token()
    for token in (None, "wrong-token", right[:-1], right + "x"):
        status, body = daemon.client(token=token).request(method, path)
        assert status == 401, (token, path)
        assert body["error"]["code"] == "unauthorized"
        assert body["error"]["message"]
    # a scheme other than Bearer is refused too, even with the right token
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", daemon.endpoint.port, timeout=30)
    connection.request(method, path, headers={"Authorization": f"Basic {right}"})
    response = connection.getresponse()
    assert response.status == 401
    assert response.getheader("WWW-Authenticate", "").startswith("Bearer")
    connection.close()


def test_the_generated_token_file_is_private(daemon: DaemonProcess) -> None:
    path = daemon.state_dir / "api-token"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600
    assert len(daemon.token()) >= 32


# --- reading ----------------------------------------------------------------------------------


def test_status_has_the_version_uptime_and_one_line_per_sync(daemon: DaemonProcess) -> None:
    status = daemon.get("/api/v1/status")
    assert status["version"]
    assert status["uptime_seconds"] >= 0
    assert status["state"] == "running"
    assert status["config"]["error"] is None
    names = [sync["name"] for sync in status["syncs"]]
    assert names == ["alpha", "down", "expired", "messy", "slow"]
    for sync in status["syncs"]:
        assert sync["state"] in ("idle", "running", "paused", "needs_auth", "failing")
        assert set(sync) >= {"name", "state", "last_run", "next_run_at", "last_success_at"}
    assert [sync["name"] for sync in daemon.get("/api/v1/syncs")["syncs"]] == names


def test_sync_detail_has_counts_and_cursor_age(daemon: DaemonProcess) -> None:
    run_id = daemon.post("/api/v1/syncs/alpha/trigger")["run_id"]
    wait_for_run(daemon, "alpha", run_id)
    detail = sync_summary(daemon, "alpha")
    assert detail["name"] == "alpha"
    assert detail["a"] == "csv" and detail["b"] == "csv"
    assert detail["links"] == 3
    assert detail["counts"]["read_a"] == 3
    assert detail["cursor_age_seconds"] is not None and detail["cursor_age_seconds"] >= 0
    assert set(detail["cursors"]) == {"a", "b"}
    assert detail["issues"] == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/syncs/nope"),
        ("GET", "/api/v1/syncs/nope/runs"),
        ("GET", "/api/v1/syncs/nope/errors"),
        ("POST", "/api/v1/syncs/nope/trigger"),
        ("POST", "/api/v1/syncs/nope/pause"),
        ("POST", "/api/v1/syncs/nope/resume"),
    ],
)
def test_an_unknown_sync_is_404_with_a_json_error(
    daemon: DaemonProcess, method: str, path: str
) -> None:
    status, body = daemon.client().request(method, path)
    assert status == 404
    assert body["error"]["code"] == "unknown_sync"
    assert "nope" in body["error"]["message"]


def test_unknown_paths_and_bad_bodies_get_json_errors(daemon: DaemonProcess) -> None:
    client = daemon.client()
    status, body = client.request("GET", "/api/v1/whatever")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = client.request("DELETE", "/api/v1/status")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    status, body = client.request("POST", "/api/v1/syncs/alpha/trigger", {"full": "yes"})
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = client.request("GET", "/api/v1/syncs/alpha/runs?limit=zero")
    assert status == 400 and body["error"]["code"] == "bad_request"


def test_plugins_lists_the_builtin_and_loaded_connectors(daemon: DaemonProcess) -> None:
    plugins = daemon.get("/api/v1/plugins")["plugins"]
    connectors = {c for p in plugins for c in p["connectors"]}
    assert {"csv", "testcsv"} <= connectors


# --- control ----------------------------------------------------------------------------------


def test_a_trigger_runs_the_sync_and_history_shows_it(
    setup: tuple[DaemonProcess, Path],
) -> None:
    daemon, config = setup
    client = daemon.client()
    status, started = client.request("POST", "/api/v1/syncs/alpha/trigger")
    assert status == 202
    assert started["sync"] == "alpha" and isinstance(started["run_id"], int)
    run = wait_for_run(daemon, "alpha", started["run_id"])
    assert run["outcome"] == "success"
    assert run["trigger"] == "api"
    # the CLI reads the same state directory
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | ENV
    history = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), "history", "alpha", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    runs = json.loads(history.stdout)
    assert any(r["id"] == started["run_id"] and r["trigger"] == "api" for r in runs)


def test_a_trigger_of_a_running_sync_is_409(daemon: DaemonProcess) -> None:
    client = daemon.client()
    # "slow" ran soon after start (never synced) and is held in its writes until the module ends
    assert sync_summary(daemon, "slow")["state"] == "running"
    status, body = client.request("POST", "/api/v1/syncs/slow/trigger")
    assert status == 409
    assert body["error"]["code"] == "already_running"
    running = sync_summary(daemon, "slow")["running"]
    assert running["run_id"] is not None


def test_a_trigger_while_another_process_runs_the_sync_is_409(daemon: DaemonProcess) -> None:
    client = daemon.client()
    # no run of the daemon's own may hold the lock: paused, alpha starts no scheduled run, and
    # any run still going (another test's) is waited for
    client.call("POST", "/api/v1/syncs/alpha/pause")
    try:
        wait_until(lambda: sync_summary(daemon, "alpha")["running"] is None, 120, "alpha idle")
        # the lock a manual `syncd sync alpha` would hold
        with SyncLock(daemon.state_dir, "alpha"):
            status, body = client.request("POST", "/api/v1/syncs/alpha/trigger")
        assert status == 409
        assert body["error"]["code"] == "already_running"
        assert "another process" in body["error"]["message"]
        # and it did not count as a run of the daemon's
        assert sync_summary(daemon, "alpha")["running"] is None
    finally:
        client.call("POST", "/api/v1/syncs/alpha/resume")


def test_pause_and_resume(daemon: DaemonProcess) -> None:
    client = daemon.client()
    paused = client.call("POST", "/api/v1/syncs/alpha/pause")
    assert paused["state"] == "paused" and paused["paused"] is True
    assert paused["next_run_at"] is None
    assert sync_summary(daemon, "alpha")["state"] == "paused"
    resumed = client.call("POST", "/api/v1/syncs/alpha/resume")
    assert resumed["paused"] is False and resumed["state"] != "paused"
    assert resumed["next_run_at"] is not None


def test_needs_auth_shows_as_a_state_and_leaves_the_daemon_healthy(daemon: DaemonProcess) -> None:
    expired = wait_until(
        lambda: (s := sync_summary(daemon, "expired"))["state"] == "needs_auth" and s,
        60,
        "expired in needs_auth",
    )
    assert "refused the credentials" in expired["message"]
    # not retried in a loop: the next run is at the interval (1h), not soon
    next_run = datetime.fromisoformat(expired["next_run_at"].replace("Z", "+00:00"))
    assert (next_run - datetime.now(UTC)).total_seconds() > 600
    status, body = daemon.client(token=None).request("GET", "/healthz", auth=False)
    assert status == 200 and body["status"] == "ok"


def test_retry_later_moves_the_next_run_to_when_the_app_said(daemon: DaemonProcess) -> None:
    down = wait_until(
        lambda: (s := sync_summary(daemon, "down"))["last_run"] and s, 60, "down to have run"
    )
    assert down["last_run"]["outcome"] == "retry_later"
    assert down["state"] == "failing"
    next_run = datetime.fromisoformat(down["next_run_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(down["last_run"]["finished_at"].replace("Z", "+00:00"))
    # retry_after = 600 s; the interval is an hour
    assert 590 <= (next_run - finished).total_seconds() <= 700


def test_metrics_are_prometheus_text_with_the_documented_families(daemon: DaemonProcess) -> None:
    run_id = daemon.post("/api/v1/syncs/alpha/trigger")["run_id"]
    wait_for_run(daemon, "alpha", run_id)
    status, text = daemon.client().request("GET", "/metrics")
    assert status == 200
    assert isinstance(text, str)
    for family in (
        'syncd_runs_total{outcome="success",sync="alpha"}',
        'syncd_records_total{outcome="read",sync="alpha"}',
        'syncd_run_duration_seconds_count{sync="alpha"}',
        'syncd_last_success_timestamp_seconds{sync="alpha"}',
        'syncd_rate_budget_wait_seconds_total{budget="testcsv:',
        'syncd_sync_state{state="needs_auth",sync="expired"} 1.0',
        "syncd_runs_in_progress",
    ):
        assert family in text, family


def test_the_client_reports_an_absent_daemon_plainly(tmp_path: Path) -> None:
    from syncd.daemon.client import DaemonUnreachable
    from syncd.daemon.endpoint import Endpoint

    client = ApiClient(Endpoint.parse(f"127.0.0.1:{free_port()}"), "token", timeout=5)
    with pytest.raises(DaemonUnreachable, match="is 'syncd run' running"):
        client.request("GET", "/api/v1/status")


# --- hostile input: a 400 or 401 with the documented body, never a 500 ---------------------------

UNAUTHORIZED = "a valid 'Authorization: Bearer <token>' is needed"
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def raw(
    daemon: DaemonProcess,
    method: str,
    path: str,
    headers: dict[str, str | bytes] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request with exactly these headers (bytes values go on the wire as they are)."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.endpoint.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        answer = dict(response.getheaders())
        status = response.status
    finally:
        connection.close()
    if data and answer.get("Content-Type", "").startswith("application/json"):
        return status, answer, json.loads(data)
    return status, answer, data


def bearer(daemon: DaemonProcess) -> dict[str, str | bytes]:
    return {"Authorization": f"Bearer {daemon.token()}"}


class LogWatch:
    """What the daemon logged from now on."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.start = len(daemon.log_text())

    def new(self) -> str:
        return self.daemon.log_text()[self.start :]

    def assert_no_traceback(self) -> None:
        text = self.new()
        assert "Traceback" not in text, text[-3000:]
        assert "API request failed" not in text, text[-3000:]


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",  # superscript two: str.isdigit() says yes
        "limit=%D9%A3",  # an Arabic-Indic three
        "limit=" + "9" * 5000,
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=%2B5",
        "limit=1.5",
        "limit=",
        "limit=%201",
        "limit=%FF",
        "limit=1&limit=2",
    ],
)
def test_a_limit_that_is_not_a_number_from_1_to_1000_is_400(
    daemon: DaemonProcess, query: str
) -> None:
    watch = LogWatch(daemon)
    status, _, body = raw(daemon, "GET", f"/api/v1/syncs/alpha/runs?{query}", bearer(daemon))
    assert status == 400
    assert body == {
        "error": {"code": "bad_request", "message": "limit must be one number from 1 to 1000"}
    }
    watch.assert_no_traceback()


def test_the_limit_range_ends_take_effect(daemon: DaemonProcess) -> None:
    for limit in ("1", "1000", "0007"):
        status, _, body = raw(
            daemon, "GET", f"/api/v1/syncs/alpha/runs?limit={limit}", bearer(daemon)
        )
        assert status == 200, body
        assert len(body["runs"]) <= int(limit)


def test_a_query_parameter_the_path_does_not_take_is_400(daemon: DaemonProcess) -> None:
    for path, message in (
        (
            "/api/v1/syncs/alpha/runs?limt=5",
            "unknown query parameter 'limt' (this path takes: limit)",
        ),
        ("/api/v1/status?verbose=1", "unknown query parameter 'verbose' (this path takes none)"),
    ):
        status, _, body = raw(daemon, "GET", path, bearer(daemon))
        assert status == 400
        assert body == {"error": {"code": "bad_request", "message": message}}


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"[" * 10_000, "application/json", "not valid JSON"),
        (b'{"full":' * 1_500 + b"true" + b"}" * 1_500, "application/json", "not valid JSON"),
        (b"\xff\xfe{}", "application/json", "not valid JSON"),
        (b'{"full": tru', "application/json", "not valid JSON"),
        (b"null", "application/json", "must be a JSON object"),
        (b'["full"]', "application/json", "must be a JSON object"),
        (b'{"fulll": true}', "application/json", "unknown key 'fulll'"),
        (b'{"full": "yes"}', "application/json", "full must be true or false"),
        (b'{"nope": 1}', "application/json; charset=no-such-charset", "unknown key 'nope'"),
    ],
)
def test_a_bad_trigger_body_is_400(
    daemon: DaemonProcess, body: bytes, content_type: str, message: str
) -> None:
    watch = LogWatch(daemon)
    headers = bearer(daemon) | {"Content-Type": content_type}
    status, _, answer = raw(daemon, "POST", "/api/v1/syncs/alpha/trigger", headers, body)
    assert status == 400, answer
    assert answer["error"]["code"] == "bad_request"
    assert message in answer["error"]["message"]
    watch.assert_no_traceback()


def test_a_body_over_the_cap_is_413_with_a_json_error(daemon: DaemonProcess) -> None:
    watch = LogWatch(daemon)
    headers = bearer(daemon) | {"Content-Type": "application/json"}
    paths = ("trigger", "pause", "resume")
    for path in [f"/api/v1/syncs/alpha/{p}" for p in paths] + ["/api/v1/reload"]:
        for body in (b"[" * 30_000, json.dumps({"full": False, "pad": "x" * 20_000}).encode()):
            status, _, answer = raw(daemon, "POST", path, headers, body)
            assert status == 413, path
            assert answer["error"] == {
                "code": "too_large",
                "message": "the body is larger than 16384 bytes",
            }
    watch.assert_no_traceback()


def test_pause_resume_and_reload_take_no_body(daemon: DaemonProcess) -> None:
    headers = bearer(daemon) | {"Content-Type": "application/json"}
    for path in ("/api/v1/syncs/alpha/pause", "/api/v1/syncs/alpha/resume", "/api/v1/reload"):
        status, _, answer = raw(daemon, "POST", path, headers, b'{"full": true}')
        assert status == 400, path
        assert answer["error"]["message"] == (
            "unknown key 'full' in the body (this path takes none)"
        )
    assert sync_summary(daemon, "alpha")["paused"] is False


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xfe\xfd",
        b"Bearer \xc3\x28",
        b"Bearer \x80\x81\x82\x83",
        b"\xe9t\xe9 token",
        b"Bearer \xed\xa0\x80",  # an encoded surrogate
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/status", "/api/v1/syncs/alpha/runs", "/nowhere"])
def test_an_authorization_header_that_is_not_utf8_is_401_without_a_traceback(
    daemon: DaemonProcess, value: bytes, path: str
) -> None:
    watch = LogWatch(daemon)
    status, headers, body = raw(daemon, "GET", path, {"Authorization": value})
    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": UNAUTHORIZED}}
    assert headers["WWW-Authenticate"] == 'Bearer realm="syncd"'
    watch.assert_no_traceback()


def test_the_right_token_after_bytes_that_are_not_utf8_is_still_refused(
    daemon: DaemonProcess,
) -> None:
    token = daemon.token().encode()
    for value in (b"Bearer " + token + b"\xff", b"Bearer \xff" + token, b"\xffBearer " + token):
        status, _, body = raw(daemon, "GET", "/api/v1/status", {"Authorization": value})
        assert status == 401 and body["error"]["code"] == "unauthorized"


def test_a_wrong_method_is_405_with_allow_and_head_is_not_served(daemon: DaemonProcess) -> None:
    status, headers, body = raw(daemon, "DELETE", "/api/v1/status", bearer(daemon))
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    assert headers["Allow"] == "GET"
    status, headers, _ = raw(daemon, "HEAD", "/api/v1/status", bearer(daemon))
    assert status == 405


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/status?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: " + b"a" * 10_000 + b"\r\n\r\n",
        b"GET /api/v1/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v1/syncs/alpha/trigger HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
    ],
)
def test_a_request_http_cannot_parse_is_400_and_leaves_no_traceback(
    daemon: DaemonProcess, request_bytes: bytes
) -> None:
    watch = LogWatch(daemon)
    with socket.create_connection(("127.0.0.1", daemon.endpoint.port), timeout=30) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0], answer
    # the daemon still answers, and logged nothing for it (it logs at info)
    assert daemon.get("/api/v1/status")["state"] == "running"
    watch.assert_no_traceback()
    assert "Error handling request" not in watch.new()


async def test_an_unexpected_exception_is_a_json_500_without_its_details() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from syncd.daemon.api import errors_middleware

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("the detail that must not leak")

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/broken")
        assert response.status == 500
        assert response.content_type == "application/json"
        body = await response.json()
    assert body == {
        "error": {"code": "internal", "message": "internal error; the daemon's log has the details"}
    }


# --- one time format ------------------------------------------------------------------------------


def times_in(data: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every value of a key that names a time (``…_at``, ``first_seen``, ``last_seen``)."""
    found: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            found += times_in(v, k)
    elif isinstance(data, list):
        for item in data:
            found += times_in(item, key)
    elif key.endswith("_at") or key in ("first_seen", "last_seen", "at"):
        found.append((key, data))
    return found


def assert_times(data: Any, at_least: int) -> None:
    stamps = [(k, v) for k, v in times_in(data) if v is not None]
    assert len(stamps) >= at_least, data
    for key, value in stamps:
        assert isinstance(value, str) and TIME.match(value), (key, value)


def messy_errors(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return wait_until(
        lambda: daemon.get("/api/v1/syncs/messy/errors")["errors"] or None,
        60,
        "messy to have failing records",
    )


def test_every_time_in_the_api_is_rfc3339_to_the_second_with_z(daemon: DaemonProcess) -> None:
    run_id = daemon.post("/api/v1/syncs/alpha/trigger")["run_id"]
    wait_for_run(daemon, "alpha", run_id)
    errors = messy_errors(daemon)
    assert {e["kind"] for e in errors} == {"excluded"}
    assert_times(errors, 2 * len(errors))  # first_seen and last_seen of each
    assert_times(daemon.get("/api/v1/status"), 3)
    assert_times(daemon.get("/api/v1/syncs"), 2)
    assert_times(daemon.get("/api/v1/syncs/alpha"), 4)
    assert_times(daemon.get("/api/v1/syncs/alpha/runs"), 2)
    assert_times(daemon.get("/api/v1/syncs/messy/errors"), 2)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | ENV
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_cli_json_has_the_apis_times_and_runs(setup: tuple[DaemonProcess, Path]) -> None:
    daemon, config = setup
    run_id = daemon.post("/api/v1/syncs/alpha/trigger")["run_id"]
    wait_for_run(daemon, "alpha", run_id)
    history = cli(config, "history", "alpha", "--json", "--limit", "5")
    assert history.returncode == 0, history.stderr
    runs = json.loads(history.stdout)
    assert_times(runs, 2)
    # the same entries as the API's, field for field
    api_runs = daemon.get("/api/v1/syncs/alpha/runs?limit=5")["runs"]
    finished = [r for r in api_runs if r["outcome"] != "running"]
    assert [r for r in runs if r["id"] in {f["id"] for f in finished}] == finished
    messy_errors(daemon)
    errors = cli(config, "errors", "messy", "--json")
    assert errors.returncode == 0, errors.stderr
    issues = json.loads(errors.stdout)
    assert issues and issues == daemon.get("/api/v1/syncs/messy/errors")["errors"]
    assert_times(issues, 2 * len(issues))


def test_history_limit_has_the_apis_range(setup: tuple[DaemonProcess, Path]) -> None:
    _, config = setup
    for limit in ("1001", "10000", "0"):
        result = cli(config, "history", "alpha", "--limit", limit)
        assert result.returncode == 2, (limit, result.stdout, result.stderr)
        assert "1<=x<=1000" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert cli(config, "history", "alpha", "--limit", "1000").returncode == 0


# --- the API depends on the service, not the other way round -----------------------------------


def test_the_service_does_not_import_the_api() -> None:
    import syncd.daemon.service as service

    tree = ast.parse(Path(service.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):  # function-level imports too
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {name for name in imported if name.startswith("syncd.daemon.api")}

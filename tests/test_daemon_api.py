"""The local HTTP API of a real ``syncd run`` (a subprocess, on 127.0.0.1 and a free port).

One daemon serves the whole module. Its syncs: ``alpha`` (a small CSV → CSV sync), ``slow`` (a
run that stays running: its writes are held after a few batches until the module ends),
``expired`` (its app refuses the credentials) and ``down`` (its app is unavailable and says when
to come back). The tests start once every sync has made its first run (each runs once soon after
the daemon starts, then hourly), so that only what a test does runs during it.
"""

from __future__ import annotations

import json
import os
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
    def finished() -> dict[str, Any] | None:
        for run in daemon.get(f"/api/v1/syncs/{name}/runs")["runs"]:
            if run["id"] == run_id and run["outcome"] != "running":
                return dict(run)
        return None

    return wait_until(finished, 60, f"run {run_id} of {name}")


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
    assert names == ["alpha", "down", "expired", "slow"]
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

"""A reload to an out-of-range value (issue 21): ``interval = 1e308`` used to pass validation,
then crash APScheduler inside the reload — a 500, with the config half applied. Now it is a
config error like any other: the reload answers 422, and the old config keeps running, whole."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

ENV = {"SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv"}
SYNCD_CLI = [sys.executable, "-m", "syncd.cli"]


def _sync(config: Path, data: Path, name: str, interval: str) -> Path:
    path = config / "syncs" / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = {interval}
            [a]
            connector = "csv"
            path = "{data / f"{name}-a.csv"}"
            [b]
            connector = "testcsv"
            path = "{data / f"{name}-b.csv"}"
            """
        )
    )
    return path


def _daemon_with_two_syncs(config: Path, state: Path, data: Path) -> DaemonProcess:
    """A daemon (not started yet: enter it) with the valid hourly syncs ``one`` and ``two``."""
    data.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state)
    for name in ("one", "two"):
        (data / f"{name}-a.csv").write_text(f"email\n{name}@example.com\n")
        _sync(config, data, name, '"1h"')
    return DaemonProcess(config, state, listen, env=ENV)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("1e308", "interval: 1e+308s is longer than the maximum of 30d"),
        ('"99999999999999999999999d"', "interval: expected a duration"),
        ('"1ms"', "interval: 0.001s is shorter than the minimum of 10s"),
        ("inf", "interval: expected a duration"),
    ],
    ids=["1e308", "huge-days", "1ms", "inf"],
)
def test_a_reload_to_an_out_of_range_interval_keeps_the_old_config_running(
    tmp_path: Path, bad: str, message: str
) -> None:
    config, state, data = tmp_path / "config", tmp_path / "state", tmp_path / "data"
    with _daemon_with_two_syncs(config, state, data) as daemon:
        daemon.wait_ready()
        wait_until(
            lambda: all(s["last_success_at"] for s in daemon.get("/api/v1/status")["syncs"]),
            60,
            "the first runs",
        )
        before = {s["name"]: s for s in daemon.get("/api/v1/status")["syncs"]}
        # one sync gains a valid change, the other an out-of-range interval: neither applies
        _sync(config, data, "one", '"2h"')
        _sync(config, data, "two", bad)
        status, body = daemon.client().request("POST", "/api/v1/reload")
        assert status == 422, body
        assert body["error"]["code"] == "config_error"
        assert message in body["error"]["message"]
        assert "previous config keeps running" in body["error"]["message"]
        after = {s["name"]: s for s in daemon.get("/api/v1/status")["syncs"]}
        for name in ("one", "two"):
            assert after[name]["interval_seconds"] == 3600
            assert after[name]["next_run_at"] == before[name]["next_run_at"]
        assert daemon.get("/api/v1/status")["config"]["error"]["message"].count(message) == 1
        # the old config still runs syncs on request, and a fixed file reloads cleanly
        run_id = daemon.post("/api/v1/syncs/two/trigger")["run_id"]
        assert isinstance(run_id, int)
        _sync(config, data, "two", '"1h"')
        changes = daemon.post("/api/v1/reload")
        assert changes["changed"] == ["one"]
        assert daemon.get("/api/v1/status")["config"]["error"] is None
        assert {s["name"]: s for s in daemon.get("/api/v1/status")["syncs"]}["one"][
            "interval_seconds"
        ] == 7200
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.log_text()


def test_syncd_reload_prints_every_problem_as_an_error_line(tmp_path: Path) -> None:
    config, state, data = tmp_path / "config", tmp_path / "state", tmp_path / "data"
    with _daemon_with_two_syncs(config, state, data) as daemon:
        daemon.wait_ready()
        _sync(config, data, "one", '"1ms"')
        _sync(config, data, "two", "1e308")
        result = subprocess.run(
            [*SYNCD_CLI, "--config", str(config), "--state-dir", str(state), "reload"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) >= 2, result.stderr
        assert all(line.startswith("error: ") for line in lines), result.stderr
        assert any("one.toml: interval" in line for line in lines), result.stderr
        assert any("two.toml: interval" in line for line in lines), result.stderr
        assert "Traceback" not in result.stderr
        assert daemon.stop() == 0

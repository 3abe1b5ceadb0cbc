"""The control commands (``status``, ``trigger``, ``pause``, ``resume``, ``reload``,
``healthcheck``) against a real daemon, and their exit statuses when things go wrong."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

ENV = {"SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv"}


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config"
        self.state = root / "state"
        self.listen = f"127.0.0.1:{free_port()}"
        data = self.data = root / "data"
        data.mkdir()
        write_daemon_config(self.config, self.listen, self.state)
        (data / "a.csv").write_text("email,first_name\nann@example.com,Ann\nbo@example.com,Bo\n")
        rows = "\n".join(f"s{i}@example.com,S{i}" for i in range(300))
        (data / "slow.csv").write_text(f"email,first_name\n{rows}\n")
        for name, source, extra in (
            ("alpha", "a.csv", ""),
            # held in its writes after two batches, until the module ends: a sync that is
            # running for as long as the tests need one
            (
                "slow",
                "slow.csv",
                f'batch_size = 1\nhold = "{data / "release-slow"}"\nhold_after = 2\n',
            ),
        ):
            (self.config / "syncs" / f"{name}.toml").write_text(
                textwrap.dedent(
                    f"""
                    direction = "a-to-b"
                    interval = "1h"
                    [a]
                    connector = "csv"
                    path = "{data / source}"
                    [b]
                    connector = "testcsv"
                    path = "{data / f"{name}-b.csv"}"
                    """
                )
                + extra
            )


def cli(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | ENV
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=120,
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, DaemonProcess]]:
    setup = Setup(tmp_path_factory.mktemp("daemon-cli"))
    with DaemonProcess(setup.config, setup.state, setup.listen, env=ENV) as daemon:
        daemon.wait_ready()
        # both syncs make a first run soon after the start: only what a test does runs after
        wait_until(lambda: (setup.data / "release-slow.held").exists(), 120, "slow to be held")
        wait_until(
            lambda: (s := daemon.get("/api/v1/syncs/alpha"))["last_run"] and s["running"] is None,
            120,
            "the first run of alpha",
        )
        try:
            yield setup, daemon
        finally:
            (setup.data / "release-slow").touch()  # the held run goes on, and stops at once


@pytest.fixture
def config(running: tuple[Setup, DaemonProcess]) -> Path:
    return running[0].config


def test_status_prints_one_aligned_line_per_sync(config: Path) -> None:
    result = cli(config, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("syncd ") and "2 syncs" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("SYNC "))
    rows = lines[header + 1 :]
    assert [row.split()[0] for row in rows if not row.startswith(" ")] == ["alpha", "slow"]
    state_column = lines[header].index("STATE")
    for row in rows:
        if not row.startswith(" "):
            assert row[state_column:].split()[0] in ("idle", "running", "paused")


def test_status_json_is_the_api_answer(config: Path) -> None:
    result = cli(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["syncs"]] == ["alpha", "slow"]
    assert data["config"]["error"] is None


def test_trigger_wait_reports_the_outcome(running: tuple[Setup, DaemonProcess]) -> None:
    setup, daemon = running
    wait_until(lambda: daemon.get("/api/v1/syncs/alpha")["running"] is None, 120, "alpha idle")
    result = cli(setup.config, "trigger", "alpha", "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("alpha: run ") and " success in " in result.stdout
    result = cli(setup.config, "trigger", "alpha", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["outcome"] == "success" and run["trigger"] == "api"


def test_trigger_of_a_running_sync_exits_3(running: tuple[Setup, DaemonProcess]) -> None:
    setup, daemon = running
    assert daemon.get("/api/v1/syncs/slow")["state"] == "running"  # held until the module ends
    result = cli(setup.config, "trigger", "slow")
    assert result.returncode == 3
    assert "already running" in result.stderr


def test_unknown_sync_exits_2(config: Path) -> None:
    for command in ("trigger", "pause", "resume"):
        result = cli(config, command, "nope")
        assert result.returncode == 2, command
        assert "no sync named 'nope'" in result.stderr
        assert "Traceback" not in result.stderr


def test_pause_and_resume(config: Path) -> None:
    result = cli(config, "pause", "alpha")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("alpha: paused")
    status = json.loads(cli(config, "status", "--json").stdout)
    assert {s["name"]: s["state"] for s in status["syncs"]}["alpha"] == "paused"
    result = cli(config, "resume", "alpha")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("alpha: resumed, next run")


def test_reload_reports_what_changed(config: Path) -> None:
    result = cli(config, "reload")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "config reloaded: 2 unchanged"


def test_healthcheck_exits_0_when_healthy(config: Path) -> None:
    result = cli(config, "healthcheck")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "healthy"


def test_without_a_daemon_healthcheck_exits_1_and_control_commands_exit_3(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    write_daemon_config(config, f"127.0.0.1:{free_port()}", tmp_path / "state")
    result = cli(config, "healthcheck", "--timeout", "5")
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: no daemon answers")
    for args in (("status",), ("trigger", "alpha"), ("reload",)):
        result = cli(config, *args)
        assert result.returncode == 3, args
        assert "is 'syncd run' running?" in result.stderr


def test_a_wrong_token_exits_2_with_a_hint(
    running: tuple[Setup, DaemonProcess], tmp_path: Path
) -> None:
    setup, _ = running
    config = tmp_path / "config"
    write_daemon_config(config, setup.listen, setup.state, extra='token = "not-the-token"\n')
    result = cli(config, "status")
    assert result.returncode == 2
    assert "Bearer" in result.stderr and "api-token" in result.stderr
    assert "not-the-token" not in result.stderr + result.stdout


def test_the_listen_address_can_come_from_the_environment(
    running: tuple[Setup, DaemonProcess], tmp_path: Path
) -> None:
    """As in the container: SYNCD_API_LISTEN=0.0.0.0:PORT, reached on loopback."""
    setup, _ = running
    port = setup.listen.rsplit(":", 1)[1]
    config = tmp_path / "config"
    write_daemon_config(config, f"127.0.0.1:{free_port()}", setup.state)
    result = cli(config, "healthcheck", env={"SYNCD_API_LISTEN": f"0.0.0.0:{port}"})
    assert result.returncode == 0, result.stderr


def test_the_api_on_a_unix_socket(tmp_path: Path) -> None:
    # a short directory: a unix socket path is limited to 107 bytes
    sockets = Path(tempfile.mkdtemp(prefix="syncd-sock-"))
    socket_path = sockets / "run" / "api.sock"
    config = tmp_path / "config"
    write_daemon_config(config, f"unix:{socket_path}", tmp_path / "state")
    try:
        with DaemonProcess(config, tmp_path / "state", f"unix:{socket_path}") as daemon:
            daemon.wait_ready()
            assert stat.S_ISSOCK(socket_path.stat().st_mode)
            assert stat.S_IMODE(socket_path.stat().st_mode) == 0o660
            assert cli(config, "healthcheck").returncode == 0
            status = cli(config, "status", "--json")
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["api"] == f"unix:{socket_path}"
            assert daemon.client(token=None).request("GET", "/api/v1/status")[0] == 401
            assert daemon.stop() == 0
        assert not socket_path.exists()
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def test_trigger_wait_returns_once_the_daemon_recorded_the_run_not_when_history_lists_it() -> None:
    """The history lists a run as finished a moment before the run lets go of the sync and the
    daemon records it as the sync's last run: ``trigger --wait`` returning then would let the
    next trigger find the sync "already running". It waits for the record."""
    from syncd.daemon.commands import _wait_for_run

    finished = {"id": 7, "outcome": "success", "trigger": "api"}
    # what the daemon answers, poll after poll: the run finished in the history at once, but
    # recorded as the sync's last run only from the third look at the sync on
    last_runs = iter([{"id": 6}, {"id": 6}, {"id": 7}])
    asked: list[str] = []

    class Daemon:
        def call(self, method: str, path: str, body: object = None) -> object:
            asked.append(path)
            if path == "/api/v1/syncs/alpha":
                return {"last_run": next(last_runs)}
            return {"runs": [finished, {"id": 6, "outcome": "success"}]}

    assert _wait_for_run(Daemon(), "alpha", 7, 60) == finished  # type: ignore[arg-type]
    assert asked.count("/api/v1/syncs/alpha") == 3

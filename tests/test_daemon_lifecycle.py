"""The daemon's life, on a real ``syncd run`` subprocess: reload on SIGHUP (good and broken
configs), a stop in the middle of a long sync, a bad config at start, and SIGTERM as PID 1."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

ENV = {"SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv"}


class Setup:
    def __init__(self, root: Path, deadline: str = "15s") -> None:
        self.root = root
        self.config = root / "config"
        self.state = root / "state"
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.listen = f"127.0.0.1:{free_port()}"
        write_daemon_config(self.config, self.listen, self.state, shutdown_deadline=deadline)

    def contacts(self, name: str, count: int) -> Path:
        path = self.data / f"{name}.csv"
        rows = [f"{name}{i}@example.com,First{i},Last{i}" for i in range(count)]
        path.write_text("email,first_name,last_name\n" + "\n".join(rows) + "\n")
        return path

    def sync(self, name: str, target_extra: str = "", source_rows: int = 3) -> Path:
        source = self.contacts(f"{name}-a", source_rows)
        path = self.config / "syncs" / f"{name}.toml"
        path.write_text(
            textwrap.dedent(
                f"""
                direction = "a-to-b"
                interval = "1h"
                [a]
                connector = "csv"
                path = "{source}"
                [b]
                connector = "testcsv"
                path = "{self.data / f"{name}-b.csv"}"
                """
            )
            + textwrap.dedent(target_extra)
        )
        return path

    def daemon(self, **kwargs: Any) -> DaemonProcess:
        return DaemonProcess(self.config, self.state, self.listen, env=ENV, **kwargs)


def syncs(daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in daemon.get("/api/v1/status")["syncs"]}


def emails(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row["email"] for row in csv.DictReader(handle)]


def run_cli(setup: Setup, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | ENV
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(setup.config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    yield Setup(tmp_path)


def test_sighup_schedules_an_added_sync_and_drops_a_removed_one(setup: Setup) -> None:
    setup.sync("first")
    with setup.daemon() as daemon:
        daemon.wait_ready()
        assert set(syncs(daemon)) == {"first"}
        second = setup.sync("second")
        daemon.send(signal.SIGHUP)
        wait_until(lambda: "second" in syncs(daemon), 60, "second to be scheduled")
        # it never ran, so it runs soon after being added, on its own
        done = wait_until(
            lambda: (s := syncs(daemon)["second"])["last_run"] and s["state"] == "idle" and s,
            60,
            "second to run",
        )
        assert done["last_run"]["outcome"] == "success"
        assert done["last_run"]["trigger"] == "daemon"
        assert sorted(emails(setup.data / "second-b.csv")) == sorted(
            emails(setup.data / "second-a.csv")
        )
        # removed: unscheduled, and unknown to the API
        second.unlink()
        daemon.send(signal.SIGHUP)
        wait_until(lambda: "second" not in syncs(daemon), 60, "second to be dropped")
        status, _ = daemon.client().request("GET", "/api/v1/syncs/second")
        assert status == 404
        assert daemon.stop() == 0


def test_a_changed_sync_takes_effect_on_reload(setup: Setup) -> None:
    path = setup.sync("first")
    with setup.daemon() as daemon:
        daemon.wait_ready()
        assert syncs(daemon)["first"]["interval_seconds"] == 3600
        path.write_text(path.read_text().replace('interval = "1h"', 'interval = "2h"'))
        changes = daemon.post("/api/v1/reload")
        assert changes["changed"] == ["first"]
        assert changes["added"] == [] and changes["removed"] == []
        assert syncs(daemon)["first"]["interval_seconds"] == 7200
        assert daemon.stop() == 0


def test_a_broken_file_and_sighup_keep_the_old_config(setup: Setup) -> None:
    setup.sync("first")
    with setup.daemon() as daemon:
        daemon.wait_ready()
        broken = setup.config / "syncs" / "broken.toml"
        broken.write_text('direction = "sideways"\n[a]\nconnector = "csv"\n')
        daemon.send(signal.SIGHUP)
        error = wait_until(
            lambda: daemon.get("/api/v1/status")["config"]["error"], 60, "the reload error"
        )
        assert "broken.toml" in error["message"]
        assert error["source"] == "SIGHUP"
        # the old config keeps running: its sync is there and runs on request
        assert set(syncs(daemon)) == {"first"}
        wait_until(lambda: syncs(daemon)["first"]["last_success_at"], 60, "the first run")
        run_id = daemon.post("/api/v1/syncs/first/trigger")["run_id"]
        assert isinstance(run_id, int)
        # the error shows in `syncd status`, and `syncd reload` fails with it (exit 2)
        status = run_cli(setup, "status")
        assert status.returncode == 0, status.stderr
        assert "config reload failed" in status.stdout and "broken.toml" in status.stdout
        reload = run_cli(setup, "reload")
        assert reload.returncode == 2
        assert "broken.toml" in reload.stderr and "previous config keeps running" in reload.stderr
        assert "Traceback" not in reload.stderr
        # fixed: the next reload clears the error
        broken.unlink()
        assert run_cli(setup, "reload").returncode == 0
        assert daemon.get("/api/v1/status")["config"]["error"] is None
        assert daemon.stop() == 0
    assert "config reload failed" in daemon.log_text()


def test_sigterm_during_a_long_sync_stops_it_at_a_checkpoint_and_the_next_start_finishes(
    setup: Setup,
) -> None:
    # the stop must come at the checkpoint after the released batch, not at the shutdown
    # deadline: a deadline a loaded machine cannot miss (15 s could pass between SIGTERM and
    # that checkpoint under two CPU hogs); a stop that ignored the checkpoint would still write
    # all the rows, which the test sees
    setup = Setup(setup.root / "long-deadline", deadline="180s")
    rows = 300
    release = setup.data / "release-big"
    # five rows per batch; from the sixth batch on, each write waits until `release` exists
    setup.sync("big", f'batch_size = 5\nhold = "{release}"\nhold_after = 5\n', source_rows=rows)
    target = setup.data / "big-b.csv"
    with setup.daemon() as daemon:
        daemon.wait_ready()
        assert daemon.notify is not None
        # the run is in the middle of its writes, and stays there whatever the machine's pace
        wait_until(lambda: Path(f"{release}.held").exists(), 120, "the run to be held")
        assert syncs(daemon)["big"]["state"] == "running"
        daemon.send(signal.SIGTERM)
        # STOPPING=1 is sent in the same step that asks the runs to stop: from here on the held
        # batch may finish, and the run must stop after it, well before the shutdown deadline
        # would cancel it (which the held batch would otherwise reach)
        daemon.notify.wait_for("STOPPING", "1", timeout=120)
        release.touch()  # (and it stays: the next start is not held)
        assert daemon.wait_exit(timeout=120) == 0
    written = emails(target)
    assert 30 <= len(written) < rows, "the run should have been stopped part-way"
    history = run_cli(setup, "history", "big", "--json")
    assert history.returncode == 0, history.stderr
    (last, *_) = json.loads(history.stdout)
    assert last["outcome"] == "interrupted", last
    # stopped at a checkpoint, not cancelled at the deadline ("... the shutdown deadline ...")
    assert last["message"] == "stopped by shutdown; committed work is kept", last
    assert "runs cancelled at the shutdown deadline" not in daemon.log_text()

    with setup.daemon() as again:
        again.wait_ready()
        done = wait_until(
            lambda: (s := syncs(again)["big"])["last_success_at"] and s, 300, "the rerun"
        )
        assert done["last_run"]["outcome"] == "success"
        assert again.stop() == 0
    written = emails(target)
    assert len(written) == rows
    assert len(set(written)) == rows, "no duplicates"
    assert set(written) == set(emails(setup.data / "big-a.csv"))


def test_a_paused_sync_stays_paused_after_a_restart(setup: Setup) -> None:
    setup.sync("first")
    with setup.daemon() as daemon:
        daemon.wait_ready()
        daemon.post("/api/v1/syncs/first/pause")
        assert daemon.stop() == 0
    with setup.daemon() as daemon:
        daemon.wait_ready()
        first = syncs(daemon)["first"]
        assert first["state"] == "paused" and first["next_run_at"] is None
        assert daemon.stop() == 0


def test_an_invalid_config_at_start_exits_2_with_one_clear_line(setup: Setup) -> None:
    path = setup.sync("first")
    path.write_text(path.read_text().replace('"a-to-b"', '"sideways"'))
    daemon = setup.daemon()
    with daemon:
        assert daemon.wait_exit(timeout=60) == 2
    log = daemon.log_text()
    assert "first.toml: direction: must be one of" in log
    assert "Traceback" not in log


def test_an_unusable_listen_address_exits_2(setup: Setup) -> None:
    setup.sync("first")
    with setup.daemon() as first:
        first.wait_ready()
        second = DaemonProcess(setup.config, setup.root / "state2", setup.listen, env=ENV)
        with second:
            assert second.wait_exit(timeout=60) == 2
        assert "cannot listen" in second.log_text()
        assert first.stop() == 0


def test_sigint_stops_it_like_sigterm(setup: Setup) -> None:
    setup.sync("first")
    with setup.daemon() as daemon:
        daemon.wait_ready()
        daemon.send(signal.SIGINT)
        assert daemon.wait_exit(timeout=60) == 0


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_sigterm_stops_it_as_pid_1(setup: Setup) -> None:
    """PID 1 gets no default signal actions: without its own handlers it would ignore SIGTERM."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("no permission to make a PID namespace here")
    import psutil

    setup.sync("first")
    prefix = ("unshare", "--pid", "--fork", "--mount-proc")
    with setup.daemon(prefix=prefix) as daemon:
        daemon.wait_ready()
        ready = daemon.notify.find("READY", "1") if daemon.notify else None
        assert ready is not None and ready[1]["MAINPID"] == "1"
        (child,) = psutil.Process(daemon.pid).children()
        child.send_signal(signal.SIGTERM)
        assert daemon.wait_exit(timeout=60) == 0

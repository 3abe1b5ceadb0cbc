"""sd_notify: the datagrams systemd would receive on ``$NOTIFY_SOCKET`` (bound by the test)."""

from __future__ import annotations

import signal
import socket
import textwrap
from pathlib import Path

import pytest

from syncd.daemon.notify import Notifier
from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config


def make_daemon(root: Path, env: dict[str, str] | None = None) -> DaemonProcess:
    config, state, data = root / "config", root / "state", root / "data"
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state)
    data.mkdir()
    (data / "a.csv").write_text("email,first_name\nann@example.com,Ann\n")
    (config / "syncs" / "demo.toml").write_text(
        textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = "1h"
            [a]
            connector = "csv"
            path = "{data / "a.csv"}"
            [b]
            connector = "csv"
            path = "{data / "b.csv"}"
            """
        )
    )
    return DaemonProcess(config, state, listen, env=env)


def test_ready_status_reloading_and_stopping_are_sent(tmp_path: Path) -> None:
    with make_daemon(tmp_path) as daemon:
        assert daemon.notify is not None
        daemon.wait_ready()
        _, ready = daemon.notify.wait_for("READY", "1")
        assert ready["MAINPID"] == str(daemon.pid)
        assert "1 sync" in ready["STATUS"]
        # READY comes only once the API listens and the scheduler runs
        status, body = daemon.client(token=None).request("GET", "/healthz", auth=False)
        assert status == 200 and body["checks"]["scheduler"] == "ok"
        # a run changes the STATUS line
        daemon.notify.wait_for("STATUS", "1 sync, 1 running")
        daemon.send(signal.SIGHUP)
        daemon.notify.wait_for("RELOADING", "1")
        wait_until(lambda: len(find_all(daemon, "READY")) >= 2, 60, "READY=1 after the reload")
        daemon.send(signal.SIGTERM)
        assert daemon.wait_exit(60) == 0
        _, stopping = daemon.notify.wait_for("STOPPING", "1")
        assert stopping["STATUS"].startswith("stopping")
        order = [next(iter(fields)) for fields in daemon.notify.drain()]
        assert order.index("READY") < order.index("STOPPING")


def find_all(daemon: DaemonProcess, key: str) -> list[dict[str, str]]:
    assert daemon.notify is not None
    return [fields for fields in daemon.notify.drain() if key in fields]


def test_watchdog_pings_when_watchdog_usec_is_set(tmp_path: Path) -> None:
    # 0.2 s: pings every 0.1 s
    with make_daemon(tmp_path, env={"WATCHDOG_USEC": "200000"}) as daemon:
        assert daemon.notify is not None
        daemon.wait_ready()
        wait_until(lambda: len(find_all(daemon, "WATCHDOG")) >= 3, 60, "three watchdog pings")
        assert daemon.stop() == 0


def test_no_watchdog_pings_for_another_process(tmp_path: Path) -> None:
    """WATCHDOG_PID names who should ping; a process that merely inherited it must not."""
    with make_daemon(tmp_path, env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}) as daemon:
        assert daemon.notify is not None
        daemon.wait_ready()
        daemon.notify.wait_for("STATUS", "1 sync, 1 running")
        assert daemon.stop() == 0
        daemon.notify.wait_for("STOPPING", "1")
        assert find_all(daemon, "WATCHDOG") == []


def test_notifier_speaks_to_abstract_sockets_and_is_silent_without_one() -> None:
    name = f"syncd-test-{free_port()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    receiver.settimeout(30)
    try:
        notifier = Notifier("@" + name)
        notifier.ready("all good")
        message = receiver.recv(4096).decode()
        assert message.splitlines()[0] == "READY=1"
        assert "STATUS=all good" in message.splitlines()
        notifier.close()
    finally:
        receiver.close()
    assert Notifier(None).send(READY="1") is False


def test_a_missing_notify_socket_is_not_fatal(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert notifier.send(READY="1") is False
    assert notifier.send(STATUS="still fine") is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "5000000"}, 5_000_000),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}, None),
        ({"NOTIFY_SOCKET": "/run/x"}, None),
    ],
)
def test_watchdog_interval_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: int | None
) -> None:
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Notifier.from_environment().watchdog_usec == expected

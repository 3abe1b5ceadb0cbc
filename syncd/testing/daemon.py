"""A real ``syncd run`` in a subprocess: for the daemon's tests, ``bench/daemon.py`` and the demo.

:class:`NotifyListener` binds a unix datagram socket and hands its path to the daemon as
``$NOTIFY_SOCKET``, standing in for systemd; :class:`DaemonProcess` starts the daemon, waits for
``READY=1``, talks to its API with the token from the state directory, sends it signals and
keeps its log in a file. Everything waits by polling with a deadline, never by sleeping a fixed
time, so a slow machine makes a test slower, not flaky.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from syncd.daemon.client import ApiClient, DaemonUnreachable
from syncd.daemon.endpoint import Endpoint

T = TypeVar("T")


#: ports handed out by free_port below Linux's ephemeral range (32768-60999): a port the kernel
#: picked with bind(0) comes from that range, and the kernel may give it to any process's next
#: outgoing connection before the test binds it ("address already in use")
_TEST_PORTS = range(20000, 32768)
_handed_out: set[int] = set()
#: its own generator: a test that seeds ``random`` must not make every process pick alike
_pick = random.Random()


def free_port() -> int:
    """A loopback port that is free now, never handed out before by this process, and outside
    the range the kernel draws outgoing connections' ports from."""
    for _ in range(200):
        port = _pick.choice(_TEST_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None], timeout: float = 60.0, what: str = "the condition"
) -> T:
    """Poll ``probe`` until it returns something other than None/False."""
    give_up = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > give_up:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(0.25, delay * 1.5)


def write_daemon_config(
    config_dir: Path,
    listen: str,
    state_dir: Path,
    shutdown_deadline: str = "25s",
    extra: str = "",
) -> Path:
    """``syncd.toml`` for a test daemon; logs are JSON at info level so tests can scan them."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "syncs").mkdir(exist_ok=True)
    path = config_dir / "syncd.toml"
    body = f"""
    [daemon]
    state_dir = "{state_dir}"
    log_format = "json"
    log_level = "info"
    shutdown_deadline = "{shutdown_deadline}"

    [api]
    listen = "{listen}"
    """
    path.write_text(textwrap.dedent(body) + textwrap.dedent(extra))
    return path


class NotifyListener:
    """What systemd does with ``$NOTIFY_SOCKET``: receive the daemon's datagrams."""

    def __init__(self) -> None:
        # a short directory: a unix socket path is limited to 107 bytes
        self.directory = Path(tempfile.mkdtemp(prefix="syncd-notify-"))
        self.path = self.directory / "notify.sock"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))
        self.socket.setblocking(False)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.socket.recv(65536)
            except BlockingIOError:
                break
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))
        return [fields for _, fields in self.messages]

    def find(self, key: str, value: str | None = None) -> tuple[float, dict[str, str]] | None:
        self.drain()
        for stamp, fields in self.messages:
            if key in fields and (value is None or fields[key] == value):
                return stamp, fields
        return None

    def wait_for(
        self, key: str, value: str | None = None, timeout: float = 60.0
    ) -> tuple[float, dict[str, str]]:
        """The first message with ``key`` (equal to ``value``): (monotonic time, fields)."""
        return wait_until(lambda: self.find(key, value), timeout, f"{key}={value or '*'}")

    def close(self) -> None:
        self.socket.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class DaemonProcess:
    """``syncd --config DIR run`` as a child process."""

    def __init__(
        self,
        config_dir: Path,
        state_dir: Path,
        listen: str,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        notify: bool = True,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.config_dir = config_dir
        self.state_dir = state_dir
        self.endpoint = Endpoint.parse(listen)
        self.extra_env = env or {}
        self.log_path = log_path or config_dir.parent / "daemon.log"
        self.notify = NotifyListener() if notify else None
        #: a command the daemon runs under (``unshare ...`` to make it PID 1)
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    # --- life -------------------------------------------------------------------------------

    def start(self) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        env.update(self.extra_env)
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = str(self.notify.path)
        command = [
            *self.prefix,
            sys.executable,
            "-m",
            "syncd.cli",
            "--config",
            str(self.config_dir),
            "run",
        ]
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        return self

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start to READY=1 (or to the API answering, without a notify socket)."""
        if self.notify is not None:

            def ready() -> float | None:
                self._check_alive()
                found = self.notify.find("READY", "1") if self.notify else None
                return found[0] if found else None

            stamp = wait_until(ready, timeout, "READY=1")
            return stamp - self.started_at

        def answering() -> bool:
            self._check_alive()
            try:
                return self.client(token=None).request("GET", "/healthz", auth=False)[0] == 200
            except DaemonUnreachable:
                return False

        wait_until(answering, timeout, "the API")
        return time.monotonic() - self.started_at

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"the daemon exited with status {self.process.returncode}:\n{self.log_text()}"
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.send(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def close(self) -> None:
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(30)
        finally:
            self.kill()
            if self.notify is not None:
                self.notify.close()

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- talking to it ----------------------------------------------------------------------

    def token(self) -> str:
        return (self.state_dir / "api-token").read_text().strip()

    def client(self, token: str | None = "") -> ApiClient:
        """A client with the daemon's token (``token=None``: without one). Its timeout is long:
        on a loaded machine an answer is late, not lost (a trigger alone may wait 30 s for its
        run to be recorded)."""
        return ApiClient(self.endpoint, self.token() if token == "" else token, timeout=120)

    def get(self, path: str) -> Any:
        return self.client().call("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client().call("POST", path, body)

    def run_over(self, sync: str, run_id: int) -> dict[str, Any] | None:
        """Run ``run_id`` of ``sync`` as the daemon publishes its end, or None while it is not
        over. The run's row in the history says it finished *before* the run has let go of the
        sync's lock and before the scheduler records it (the sync's state, ``last_run`` and
        counts, the metrics): a test that waited on the history alone and then triggers, undoes
        or reads the sync's summary races the end of the run. The sync's ``last_run`` is the
        scheduler's record, made once the run let go of everything: when it names this run (or
        a later one: a sync's runs follow one another), the run's end is visible everywhere."""
        last = self.get(f"/api/v1/syncs/{sync}")["last_run"]
        if last is None or last["id"] is None or last["id"] < run_id:
            return None
        for run in self.get(f"/api/v1/syncs/{sync}/runs?limit=100")["runs"]:
            if run["id"] == run_id and run["outcome"] != "running":
                return dict(run)
        return None

    def wait_run(self, sync: str, run_id: int, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for :meth:`run_over`; the run as the history lists it."""
        return wait_until(lambda: self.run_over(sync, run_id), timeout, f"run {run_id} of {sync}")

    def not_running(self, sync: str) -> bool:
        """No run holds ``sync`` (see :meth:`run_over`: once the history says a run finished,
        this says its end has been recorded everywhere)."""
        return self.get(f"/api/v1/syncs/{sync}")["running"] is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

"""The systemd notification protocol (``sd_notify``), in-tree: no libsystemd needed.

Each message is one datagram of ``KEY=VALUE`` lines sent to the unix socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract-namespace name when it starts with ``@``). Without
that variable every call is a no-op, so the daemon behaves the same outside systemd. A failing
send is logged once and never stops the daemon: notifications are advisory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

from syncd.logs import get_logger

log = get_logger("syncd.daemon")


class Notifier:
    """Sends ``READY=1``, ``STATUS=...``, ``RELOADING=1``, ``STOPPING=1`` and ``WATCHDOG=1``."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(cls) -> Notifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        watchdog = None
        raw = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process meant to ping; a child that inherited it is not
        if raw.isdigit() and int(raw) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(raw)
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def _target(self) -> str:
        assert self.address is not None
        # "@name" is Linux's abstract namespace: a leading NUL byte on the wire
        return "\0" + self.address[1:] if self.address.startswith("@") else self.address

    def send(self, **fields: str) -> bool:
        """Send one message; ``send(READY="1", STATUS="...")``. True when it was sent."""
        if self.address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(payload, self._target())
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify failed", socket=self.address, error=str(exc))
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status, MAINPID=str(os.getpid()))

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def reloading(self) -> None:
        # systemd wants the monotonic clock with RELOADING=1 (newer versions check it)
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(RELOADING="1", MONOTONIC_USEC=str(usec), STATUS="reloading the config")

    def stopping(self, status: str = "stopping") -> None:
        self.send(STOPPING="1", STATUS=status)

    def watchdog(self) -> None:
        self.send(WATCHDOG="1")

    async def watchdog_loop(self) -> None:
        """Ping at half the watchdog interval, as sd_watchdog_enabled(3) advises. Runs on the
        event loop, so a wedged loop stops the pings and systemd restarts the service."""
        if self.watchdog_usec is None or self.address is None:
            return
        interval = self.watchdog_usec / 2_000_000
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None

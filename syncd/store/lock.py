"""One run per sync at a time, across processes (rule 8).

An exclusive ``flock`` on ``<state_dir>/locks/<sync>.lock``: the kernel releases it when the
holder exits, however it exits (``kill -9`` included), so a crash never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType


class SyncBusy(Exception):
    """Another process (the daemon, or another ``syncd sync``) is running this sync."""

    def __init__(self, sync: str, holder: str) -> None:
        self.sync = sync
        self.holder = holder
        who = f" (process {holder})" if holder else ""
        super().__init__(f"sync {sync!r} is already running{who}; try again when it has finished")


class SyncLock:
    def __init__(self, state_dir: Path, sync: str) -> None:
        self.sync = sync
        self.path = state_dir / "locks" / f"{sync}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SyncBusy(self.sync, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

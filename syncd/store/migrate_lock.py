"""Migrating a SQLite status database one process at a time.

Two processes opening a new state directory together (``syncd run`` and ``syncd sync``, two
``syncd sync``) would both find the migrations pending and both apply them: the second fails
on "duplicate column name" or on the migration history's unique name. PostgreSQL has an
advisory lock for this (see :meth:`syncd.store.Store.open`); for SQLite the check-and-apply
runs under an exclusive ``flock`` on ``<database>.migrate.lock`` beside the database file. The
kernel releases it when its holder exits, however it exits, so a crash never leaves it stale;
a process that finds it taken waits, then sees the migrations applied and applies none.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from syncd.logs import get_logger

log = get_logger("syncd.store")


def lock_path(database: Path) -> Path:
    """The lock file of the SQLite database ``database``."""
    return database.with_name(database.name + ".migrate.lock")


@contextlib.contextmanager
def migration_lock(database: Path) -> Iterator[None]:
    """Hold the exclusive migration lock of ``database`` (waiting for another holder)."""
    path = lock_path(database)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            log.info("waiting for the migration lock", database=str(database), holder=holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)

"""A real PostgreSQL for the tests: the ``pgserver`` wheel (it bundles the server binaries),
started once per test process in a temporary directory, speaking on a unix socket there.

Each test gets a database of its own (``CREATE DATABASE``), so tests never see each other's rows.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from syncd.store import Store, StoreSettings

_lock = threading.Lock()
_server: Any = None
_dir: Path | None = None
_counter = itertools.count()


def server_uri() -> str:
    """The server's URI (started on first use, stopped when the test process exits)."""
    global _server, _dir
    with _lock:
        if _server is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
                import pgserver

                # short: a unix socket's path has at most 107 bytes
                _dir = Path(tempfile.mkdtemp(prefix="syncd-pg-", dir="/tmp"))
                _server = pgserver.get_server(_dir, cleanup_mode="stop")
            atexit.register(_stop)
        return str(_server.get_uri())


def _stop() -> None:
    # a fast shutdown by signal to the postmaster (its pid is the first line of postmaster.pid)
    if _dir is not None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            for _ in range(600):
                os.kill(pid, 0)  # raises once it is gone
                time.sleep(0.05)
        shutil.rmtree(_dir, ignore_errors=True)


def socket_dir() -> str:
    server_uri()
    assert _dir is not None
    return str(_dir)


def new_database() -> str:
    """A fresh, empty database; its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@/{name}?host={socket_dir()}"


def pg_settings(url: str | None = None, lease: float = 30.0, **kw: Any) -> StoreSettings:
    return StoreSettings(url=url or new_database(), lease_timeout=lease, **kw)


#: the kind of store the current test runs on (set by conftest's ``store_kind`` fixture)
CURRENT_KIND = "sqlite"
_urls: dict[Path, str] = {}


def store_for(state: Path, kind: str | None = None) -> Store:
    """The store of a state directory, on the current test's kind: on PostgreSQL the same
    database every time for the same directory (a reopened store sees what was committed)."""
    kind = kind or CURRENT_KIND
    if kind != "postgresql":
        return Store(state)
    url = _urls.get(state)
    if url is None:
        url = _urls[state] = new_database()
    return Store(state, pg_settings(url))


def make_store(state: Path, kind: str) -> Store:
    """A store of the given kind (``sqlite``: in ``state``; ``postgresql``: a fresh database)."""
    if kind == "postgresql":
        return Store(state, pg_settings())
    return Store(state)

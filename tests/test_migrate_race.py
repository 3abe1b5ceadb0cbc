"""Processes started together on a new SQLite state directory migrate it once, one at a time.

Before the migration lock, ``syncd run`` and ``syncd sync`` started together on an empty state
directory both found every migration pending and both applied them: one failed ("duplicate column
name …", "UNIQUE constraint failed: schema_migration.name", exit 2). Here the test holds the lock
itself, starts both, waits until each says it is waiting for it, then lets go: both must succeed,
and the schema must be migrated exactly once. Without the lock neither process ever waits.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from support import SYNCD, cli_env

from syncd.store import DB_NAME, MIGRATIONS
from syncd.store.migrate_lock import migration_lock
from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

WAITING = "waiting for the migration lock"


def _waiting(
    log: Path, process: subprocess.Popen[bytes], who: str, ready: Callable[[], bool] = bool
) -> bool:
    """True once ``who`` logged that it waits for the lock; fails at once if it exited, or got
    ``ready``, without waiting."""
    text = log.read_text(errors="replace") if log.exists() else ""
    if WAITING in text:
        return True
    if process.poll() is not None or ready():
        raise AssertionError(f"{who} went on ({process.returncode}) without waiting:\n{text}")
    return False


def test_run_and_sync_started_together_on_a_new_state_dir(example: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    database = state / DB_NAME
    # the daemon has a config directory of its own (no syncs: it runs none of the CLI's)
    daemon_config, listen = tmp_path / "daemon", f"127.0.0.1:{free_port()}"
    write_daemon_config(daemon_config, listen, state)
    daemon = DaemonProcess(daemon_config, state, listen)
    sync_log = tmp_path / "sync.log"
    sync: subprocess.Popen[bytes] | None = None
    try:
        with migration_lock(database):
            run = daemon.start().process
            assert run is not None
            command = [*SYNCD, "--config", str(example), "--state-dir", str(state)]
            with sync_log.open("wb") as err:
                sync = subprocess.Popen(
                    [*command, "--log-level", "info", "sync", "crm-to-accounts", "--json"],
                    env=cli_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                )
            started = sync
            assert daemon.notify is not None
            notify = daemon.notify

            def daemon_ready() -> bool:
                return notify.find("READY", "1") is not None

            wait_until(
                lambda: _waiting(daemon.log_path, run, "syncd run", daemon_ready), 120, "syncd run"
            )
            wait_until(lambda: _waiting(sync_log, started, "syncd sync"), 120, "syncd sync")
        # the lock is let go: one of them migrates, the other waits for it, then finds nothing
        out, _ = sync.communicate(timeout=300)
        assert sync.returncode == 0, f"{out.decode()}\n{sync_log.read_text()}"
        assert json.loads(out)["outcome"] == "success", out.decode()
        daemon.wait_ready()
    finally:
        if sync is not None and sync.poll() is None:
            sync.kill()
            sync.communicate()
        daemon.close()
    logs = daemon.log_text() + sync_log.read_text()
    assert "duplicate column" not in logs and "UNIQUE constraint" not in logs, logs
    with sqlite3.connect(database) as db:
        applied = [name for (name,) in db.execute("SELECT name FROM schema_migration")]
    assert sorted(applied) == sorted(p.stem for p in MIGRATIONS.glob("[0-9]*.py"))

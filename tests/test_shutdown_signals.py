"""Ctrl-C pressed again and again while the daemon stops: it stops cleanly, no traceback.

The first SIGINT stops the daemon (it asks the running sync to checkpoint), the second stops the
waiting; every later one must be ignored. Before, a signal that came after the daemon had let go
of its handlers raised KeyboardInterrupt wherever the interpreter was (joining the store's
threads at exit), which printed a traceback and killed the process with SIGINT.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import textwrap
from pathlib import Path

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

ENV = {"SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv"}


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def test_sigint_again_and_again_during_shutdown_exits_0_without_a_traceback(
    tmp_path: Path,
) -> None:
    config, state, data = tmp_path / "config", tmp_path / "state", tmp_path / "data"
    data.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state, shutdown_deadline="15s")
    source = data / "a.csv"
    source.write_text(
        "email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(1500))
    )
    target = data / "b.csv"
    hold = data / "release"  # never created: the run stays in its writes until it is cancelled
    (config / "syncs" / "big.toml").write_text(
        textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = "1h"
            [a]
            connector = "csv"
            path = "{source}"
            [b]
            connector = "testcsv"
            path = "{target}"
            batch_size = 5
            hold = "{hold}"
            hold_after = 2
            """
        )
    )
    daemon = DaemonProcess(config, state, listen, env=ENV)
    with daemon:
        daemon.wait_ready()
        # a run is held in its writes, so the shutdown has a sync to wait for
        held = Path(f"{hold}.held")
        wait_until(held.exists, 120, "the run to be held in its writes")
        assert daemon.process is not None
        # the first Ctrl-C: the daemon stops, and waits for the held run
        daemon.send(signal.SIGINT)
        sent = 1
        wait_until(lambda: '"event": "stopping"' in daemon.log_text(), 120, "the stop to begin")
        # as a person leaning on Ctrl-C would: until the process is gone
        while daemon.process.poll() is None:
            daemon.send(signal.SIGINT)
            sent += 1
            try:
                daemon.wait_exit(timeout=0.005)
            except subprocess.TimeoutExpired:
                continue  # still stopping: press again
        status = daemon.process.returncode
    log = daemon.log_text()
    assert sent >= 2, "the test must press Ctrl-C at least twice"
    assert status == 0, log[-3000:]
    assert "KeyboardInterrupt" not in log and "Aborted!" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert '"event": "stopped"' in log


def test_after_the_stop_began_late_signals_meet_a_python_handler_not_sig_ign(
    tmp_path: Path,
) -> None:
    """A SIGINT that arrived just before the daemon let go of its handlers is still to be
    handled; with SIG_IGN in place by then, Python raises "Signal 2 ignored due to race
    condition" wherever it is (seen as a traceback in the demo's log). A Python-level handler
    that does nothing takes it, and every later one."""
    import asyncio

    from syncd.daemon.service import Daemon
    from syncd.plugins import load_plugins

    daemon = Daemon(lambda _: None, tmp_path, load_plugins())  # type: ignore[arg-type,return-value]
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    async def stop_twice() -> dict[int, object]:
        daemon._install_signal_handlers()
        daemon.request_stop("test")
        daemon._remove_signal_handlers()
        signal.raise_signal(signal.SIGINT)  # handled by the handler left in place: nothing
        await asyncio.sleep(0)
        return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    try:
        left = asyncio.run(stop_twice())
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    for sig, handler in left.items():
        assert callable(handler) and handler not in (signal.SIG_IGN, signal.SIG_DFL), (sig, handler)
        assert handler is not signal.default_int_handler

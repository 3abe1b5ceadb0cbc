"""`make demo` works on this machine, and what it prints works as printed.

* ``--once``: emulators, daemon, first merge, a second run that writes nothing, a clean stop.
* The demo as a person runs it: every command it prints is run from a second shell (a separate
  process with a bare environment, which only ``. .demo/env`` prepares), the printed edit travels
  and its run shows up in the demo's terminal, and Ctrl-C pressed twice stops everything
  without a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from support import ROOT, cli_env

from syncd.testing.daemon import wait_until

DEMO = ROOT / "config" / "demo" / "run.py"


def test_the_demo_runs_a_first_merge_then_a_second_run_that_writes_nothing(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--once", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "The first merge finished: success" in out
    assert re.search(r"linked \d+ pairs by email", out)
    # rule 2: the run right after the first merge, with no edits, writes nothing at all
    second = next(line for line in out.splitlines() if "run 2 (api)" in line)
    assert "success" in second
    assert "created 0 in Xero, 0 in Salesflare; updated 0 in Xero, 0 in Salesflare" in second
    assert "wrote nothing" in out and "UNEXPECTED" not in out
    log = (tmp_path / "demo" / "logs" / "syncd.log").read_text()
    assert '"event": "stopped"' in log  # the daemon was stopped cleanly, not killed


class Terminal:
    """The demo's terminal: its output, read as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 600) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"the demo exited early:\n{self.text()}")
            return re.search(pattern, self.text(), re.MULTILINE)

        return wait_until(found, timeout, repr(pattern))

    def close(self) -> None:
        self._reader.join(timeout=30)


def press_ctrl_c_twice(process: subprocess.Popen[str], terminal: Terminal) -> None:
    """Ctrl-C, then Ctrl-C again while the demo is stopping, as a terminal sends them: to the
    whole foreground process group. The daemon is held (SIGSTOP) meanwhile, so that the demo
    is surely still waiting for it when the second press comes; then it is let go."""
    import psutil

    daemons = [
        child for child in psutil.Process(process.pid).children() if child.cmdline()[-1:] == ["run"]
    ]
    assert len(daemons) == 1
    daemon = daemons[0]
    daemon.suspend()
    try:
        os.killpg(process.pid, signal.SIGINT)
        terminal.wait_for(r"^Stopping …")
        os.killpg(process.pid, signal.SIGINT)
        terminal.wait_for(r"^Stopping without waiting for the running sync", timeout=120)
    finally:
        daemon.resume()


def fetch(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def second_shell(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a fresh shell, as a person types it in a second terminal: none of the
    demo's environment, not even the virtualenv on PATH."""
    bare = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        env=bare,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def start_demo(workdir: Path) -> subprocess.Popen[str]:
    """``make demo``'s script in the background, its output on a pipe."""
    return subprocess.Popen(
        [sys.executable, str(DEMO), "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def test_the_printed_commands_work_from_a_second_shell_and_ctrl_c_twice_stops_cleanly(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "demo"
    process = start_demo(workdir)
    terminal = Terminal(process)
    try:
        terminal.wait_for(r"its runs show here\. Ctrl-C stops everything")
        text = terminal.text()
        printed = [line.strip() for line in text.splitlines() if line.startswith("  ")]
        source = next(line for line in printed if line.startswith(". "))
        env_file = source.split()[1]
        assert Path(ROOT, env_file).resolve() == (workdir / "env").resolve()
        commands = [
            line.split("  #")[0].strip()
            for line in printed
            if line.startswith(("syncd ", "python "))
        ]
        inspect = [c for c in commands if c.split()[1] in ("status", "history", "errors")]
        assert {c.split()[1] for c in inspect} == {"status", "history", "errors"}
        for command in inspect:
            done = second_shell(f". {env_file} && {command}")
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert "error" not in done.stderr.lower(), (command, done.stderr)
        status = second_shell(f". {env_file} && {inspect[0]}").stdout
        assert "xero-salesflare" in status and "idle" in status
        # the printed console command gives a one-time sign-in link to the demo's daemon
        console = second_shell(f". {env_file} && syncd console")
        assert console.returncode == 0, (console.stdout, console.stderr)
        assert "syncd console" in commands and "/signin?code=" in console.stdout, console.stdout

        # no person became a company in Salesflare (the demo maps Xero's Organisation, which is
        # not a person's own name, and never echoes a Name Xero derived)
        urls = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in (workdir / "env").read_text().splitlines()
            if line.startswith("export DEMO_")
        )
        people = {
            f"{c.get('FirstName') or ''} {c.get('LastName') or ''}".strip().casefold()
            for c in fetch(urls["DEMO_XERO_URL"] + "/_sandbox/xero/contacts")["Contacts"]
        }
        accounts = fetch(urls["DEMO_SALESFLARE_URL"] + "/accounts?limit=1000", "sandbox-api-key")
        assert accounts and not [a["name"] for a in accounts if a["name"].casefold() in people]

        # the printed edit, then the printed trigger: the run shows up in the demo's terminal
        edit_xero = next(c for c in commands if c.startswith("python") and " xero " in c)
        trigger = next(c for c in commands if c.startswith("syncd trigger"))
        done = second_shell(f". {env_file} && {edit_xero} && {trigger}")
        assert done.returncode == 0, (done.stdout, done.stderr)
        terminal.wait_for(r"run 3 \(api\): success .*updated 0 in Xero, 1 in Salesflare")
        edit_salesflare = next(c for c in commands if c.startswith("python") and "salesflare" in c)
        done = second_shell(f". {env_file} && {edit_salesflare} && {trigger}")
        assert done.returncode == 0, (done.stdout, done.stderr)
        terminal.wait_for(r"run 4 \(api\): success .*updated 1 in Xero, 0 in Salesflare")

        press_ctrl_c_twice(process, terminal)
        assert process.wait(timeout=120) == 0, terminal.text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        terminal.close()
    output = terminal.text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    for log in (workdir / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name
    assert '"event": "stopped"' in (workdir / "logs" / "syncd.log").read_text()


def test_ctrl_c_twice_during_the_first_merge_stops_everything_without_a_traceback(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "demo"
    process = start_demo(workdir)
    terminal = Terminal(process)
    try:
        terminal.wait_for(r"^Waiting for the first merge")
        # the daemon is merging: the demo waits for it to checkpoint, and must keep waiting
        press_ctrl_c_twice(process, terminal)
        status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        terminal.close()
    output = terminal.text()
    assert status == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert '"event": "stopped"' in (workdir / "logs" / "syncd.log").read_text()

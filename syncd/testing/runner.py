"""``syncd`` run as a user runs it, in a subprocess: the shared runner for engine-level tests.

A connector's unit tests call its methods directly; its engine-level tests should run the real
command — config directory, state directory, ``syncd sync NAME --json``, exit status — against
the app's emulator. :class:`Syncd` is that harness, used by the shipped plugins' tests and meant
for third-party connector authors too (see ``docs/writing-a-connector.md``)::

    from syncd.testing.runner import Syncd

    async def test_a_second_run_writes_nothing(tmp_path):
        syncd = Syncd(tmp_path, plugins=["syncd-jsonbook"])
        syncd.write_sync("book", '''
            [a]
            connector = "jsonbook"
            path = "book.json"
            [b]
            connector = "csv"
            path = "crm.csv"
        ''')
        first = await syncd.sync("book")        # exit 0 and a JSON result, or the test fails
        assert first.counts["created_b"] == 1
        again = await syncd.sync("book")
        assert again.written == 0

The subprocesses are started with asyncio, so an emulator served by the test's own event loop
(``syncd.sandbox.SandboxServer``) keeps answering while ``syncd`` runs, and the test can edit
the app between runs or kill a run (``await syncd.start(...)``) at a point the emulator signals.
Each command gets a generous time limit (:data:`RUN_TIMEOUT`): on a loaded machine a test gets
slower, it does not fail; only a command that hangs fails it. Tests without an event loop use
:meth:`Syncd.run_blocking`.

The environment is the test's own without ``SYNCD_*`` variables (a developer's ``SYNCD_CONFIG``
must not leak in), plus ``SYNCD_LOAD_PLUGINS`` / ``SYNCD_PLUGIN_MODULES`` from ``plugins`` and
``plugin_modules``, plus :attr:`Syncd.env` (for ``${env:...}`` references in sync files).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RUN_TIMEOUT", "SYNCD", "Syncd", "SyncdResult", "syncd_environment"]

#: the command: this interpreter's syncd, wherever it is installed (no console script needed)
SYNCD = (sys.executable, "-m", "syncd.cli")
#: seconds one command may take before it counts as hung (generous: a loaded machine is slow)
RUN_TIMEOUT = 300.0
#: the count keys of a run result that are writes to an app
WRITE_COUNTS = ("created_a", "created_b", "updated_a", "updated_b", "archived_a", "archived_b")


def syncd_environment(
    extra: Mapping[str, str] | None = None,
    plugins: Iterable[str] | None = None,
    plugin_modules: Iterable[str] = (),
) -> dict[str, str]:
    """This process's environment without ``SYNCD_*``, then ``plugins`` (distribution names for
    ``SYNCD_LOAD_PLUGINS``; ``None`` loads every installed one), ``plugin_modules`` (module names
    for ``SYNCD_PLUGIN_MODULES``) and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    if plugins is not None:
        env["SYNCD_LOAD_PLUGINS"] = ",".join(plugins)
    modules = ",".join(plugin_modules)
    if modules:
        env["SYNCD_PLUGIN_MODULES"] = modules
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class SyncdResult:
    """What one ``syncd`` command did."""

    args: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"syncd {' '.join(self.args)}: exit {self.status}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )

    @property
    def json(self) -> Any:
        """The ``--json`` output, parsed; fails the test (with the output) if it is not JSON."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"not JSON output:\n{self}") from None

    @property
    def counts(self) -> dict[str, int]:
        """The counts of ``syncd sync --json``."""
        counts: dict[str, int] = self.json["counts"]
        return counts

    @property
    def written(self) -> int:
        """Creates, updates and archives on both sides (0: the run wrote nothing)."""
        return sum(self.counts.get(key, 0) for key in WRITE_COUNTS)


class Syncd:
    """A config directory and a state directory under ``root``, and ``syncd`` run on them.

    ``plugins``: the installed plugin distributions to load (``None``: all of them);
    ``plugin_modules``: modules to load as plugins without installing them; ``env``: added to
    every command's environment (also :attr:`env`, which a test may change between commands).
    """

    def __init__(
        self,
        root: Path,
        *,
        plugins: Iterable[str] | None = None,
        plugin_modules: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = RUN_TIMEOUT,
    ) -> None:
        self.root = root
        self.config = root / "config"
        self.state = root / "state"
        (self.config / "syncs").mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        #: the directory commands run in (relative paths in a sync file are relative to the
        #: config directory, not to this)
        self.cwd = root
        self.plugins = None if plugins is None else list(plugins)
        self.plugin_modules = list(plugin_modules)
        #: added to the environment of every command (for ``${env:...}`` references)
        self.env: dict[str, str] = dict(env or {})
        self.timeout = timeout

    # --- the files ----------------------------------------------------------------------------

    def write_sync(self, name: str, body: str) -> Path:
        """``syncs/NAME.toml`` (``body`` is dedented, so it may be indented like the test)."""
        path = self.config / "syncs" / f"{name}.toml"
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path

    # --- the commands -------------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return [*SYNCD, "--config", str(self.config), "--state-dir", str(self.state), *args]

    def environment(self) -> dict[str, str]:
        return syncd_environment(self.env, self.plugins, self.plugin_modules)

    async def start(self, *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
        """Start a command and return at once (stdout and stderr are pipes): to kill it at a
        point of the test's choosing, or to talk to it (``stdin=True``)."""
        return await asyncio.create_subprocess_exec(
            *self.command(*args),
            cwd=self.cwd,
            env=self.environment(),
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str, input: str | None = None) -> SyncdResult:
        """Run a command to its end (``input`` is written to its stdin)."""
        process = await self.start(*args, stdin=input is not None)
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await process.communicate(None if input is None else input.encode())
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
            raise AssertionError(
                f"syncd {' '.join(args)} did not finish within {self.timeout:.0f}s\n"
                f"{err.decode(errors='replace')[-3000:]}"
            ) from None
        assert process.returncode is not None
        return SyncdResult(tuple(args), process.returncode, out.decode(), err.decode())

    def run_blocking(self, *args: str, input: str | None = None) -> SyncdResult:
        """:meth:`run` for a test without an event loop (the app must not be served by one this
        call would block)."""
        done = subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=self.environment(),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        return SyncdResult(tuple(args), done.returncode, done.stdout, done.stderr)

    async def sync(self, name: str, *flags: str, expect: int | None = 0) -> SyncdResult:
        """``syncd sync NAME --json FLAGS``. Fails the test unless it exits with ``expect`` (0:
        the run succeeded; ``None``: any status) and prints its JSON result."""
        result = await self.run("sync", name, "--json", *flags)
        if expect is not None:
            assert result.status == expect, str(result)
        result.json  # noqa: B018  (fails with the output when it is not JSON)
        return result

    async def links(self, name: str) -> list[dict[str, Any]]:
        """``syncd links NAME --json``: the linked pairs."""
        result = await self.run("links", name, "--json")
        assert result.status == 0, str(result)
        links: list[dict[str, Any]] = result.json
        return links

    async def auth(
        self, sync: str, side: str, answer: Callable[[str], Awaitable[str | None]]
    ) -> SyncdResult:
        """``syncd auth SYNC SIDE``, with ``answer`` playing the person at the terminal: it is
        given each line the command prints and returns what to type (a line), or None to read
        on. For an OAuth app, ``answer`` finds the authorisation URL, consents as the browser
        would (against the emulator) and returns the URL the browser landed on."""
        process = await self.start("auth", sync, side, stdin=True)
        assert process.stdout is not None and process.stdin is not None
        printed: list[str] = []
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    line = (await process.stdout.readline()).decode()
                    if not line:
                        break
                    printed.append(line)
                    reply = await answer(line)
                    if reply is not None:
                        process.stdin.write(reply.encode() + b"\n")
                        await process.stdin.drain()
                rest, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.communicate()
            raise AssertionError(
                f"syncd auth {sync} {side} did not finish within {self.timeout:.0f}s:\n"
                + "".join(printed)
            ) from None
        assert process.returncode is not None
        return SyncdResult(
            ("auth", sync, side), process.returncode, "".join(printed) + rest.decode(), err.decode()
        )

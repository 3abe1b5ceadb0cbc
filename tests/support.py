"""Helpers shared by the core tests (importable as ``support``; tests/ is on pythonpath).

The subprocess harnesses themselves live in :mod:`syncd.testing` (``runner``, ``daemon``), where
the plugins' tests and connector authors use them too; this module adds the core tests' own
shortcuts on top.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from syncd.config import SyncConfig, load_sync
from syncd.plugins import Plugins
from syncd.testing import runner

ROOT = Path(__file__).resolve().parents[1]
SYNCD = list(runner.SYNCD)


def write_sync(directory: Path, name: str, body: str) -> Path:
    path = directory / "syncs" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def memory_sync(
    tmp_path: Path,
    plugins: Plugins,
    extra: str = "",
    name: str = "mem",
    a_settings: str = "",
    b_settings: str = "",
) -> SyncConfig:
    """A sync between the in-memory apps ``<name>-a`` and ``<name>-b``.

    ``extra`` holds top-level keys, ``[[fields]]`` and rules (TOML, any indentation).
    """
    top, tables = _split_toml(textwrap.dedent(extra).strip())
    body = "\n".join(
        [
            top,
            "[a]",
            'connector = "memory"',
            f'account = "{name}-a"',
            textwrap.dedent(a_settings).strip(),
            "[b]",
            'connector = "memory"',
            f'account = "{name}-b"',
            textwrap.dedent(b_settings).strip(),
            tables,
        ]
    )
    path = write_sync(tmp_path / "config", name, body + "\n")
    return load_sync(path, plugins)


def _split_toml(text: str) -> tuple[str, str]:
    """Top-level keys must come before the first table header."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith("["):
            return "\n".join(lines[:index]), "\n".join(lines[index:])
    return text, ""


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a ``syncd`` subprocess: this one without ``SYNCD_*``, plus ``extra``."""
    return runner.syncd_environment(extra)


#: the README's first-merge example (two CSV files and a sync between them)
FIRST_MERGE_EXAMPLE = ROOT / "config" / "examples" / "first-merge"


def syncd_on(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``syncd --config CONFIG --state-dir CONFIG/../state ARGS``, run to its end."""
    return subprocess.run(
        [*SYNCD, "--config", str(config), "--state-dir", str(config.parent / "state"), *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )

"""A daemon with a connector that leaks its secret, for the rule-12 tests (test_daemon_secrets,
test_explain_secrets, test_secrets): sync ``leaky`` from a testcsv side whose every error
message carries its ``token`` (``fail = "leak"``) to a plain CSV file, both in ``data``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

#: loads the testcsv connector into the daemon and the CLI
PLUGIN_ENV = {"SYNCD_PLUGIN_MODULES": "syncd.testing.testcsv"}


def write_leaky_sync(config: Path, data: Path, token_env: str) -> Path:
    """``syncs/leaky.toml``: side a's ``token`` is ``${env:TOKEN_ENV}``, and its errors say it."""
    path = config / "syncs" / "leaky.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            interval = "1h"
            [a]
            connector = "testcsv"
            path = "{data / "a.csv"}"
            token = "${{env:{token_env}}}"
            fail = "leak"
            [b]
            connector = "csv"
            path = "{data / "b.csv"}"
            """
        )
    )
    return path


def syncd_cli(config: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``syncd --config CONFIG ARGS`` beside the daemon: this environment without ``SYNCD_*``,
    plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | dict(env),
        timeout=120,
    )

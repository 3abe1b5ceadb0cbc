"""Rule 12: secrets never leak into logs, error messages or --json output."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import ROOT, SYNCD, cli_env, write_sync

SECRET = "sk_live_9f8e7d6c5b4a3210"


def test_a_leaky_connector_cannot_leak_its_secret(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("email,first_name\ntwo@example.com,Two\n")
    write_sync(
        tmp_path,
        "leak",
        '[a]\nconnector = "leaky"\napi_key = "${env:LEAKY_KEY}"\n'
        f'[b]\nconnector = "csv"\npath = "{tmp_path / "other.csv"}"\n',
    )
    env = cli_env(
        LEAKY_KEY=SECRET,
        SYNCD_PLUGIN_MODULES="leaky_plugin",
        PYTHONPATH=str(ROOT / "tests"),
    )
    base = [*SYNCD, "--config", str(tmp_path), "--state-dir", str(tmp_path / "state")]
    outputs = []
    for args in (
        ["--log-level", "debug", "--log-format", "json", "sync", "leak"],
        ["--log-level", "debug", "sync", "leak", "--json"],
        ["--log-format", "console", "sync", "leak", "--dry-run", "--json"],
        ["errors", "leak", "--json"],
        ["errors", "leak"],
        ["history", "leak", "--json"],
        ["check", "--connect"],
    ):
        result = subprocess.run([*base, *args], capture_output=True, text=True, env=env)
        outputs.append((args, result.stdout + result.stderr))
    joined = "\n".join(text for _, text in outputs)
    assert "refused" in joined  # the refusal itself is reported ...
    assert "***" in joined  # ... with the secret masked
    for args, text in outputs:
        assert SECRET not in text, f"secret leaked by syncd {' '.join(args)}:\n{text}"

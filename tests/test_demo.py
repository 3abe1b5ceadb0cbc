"""`make demo` works on this machine: emulators, daemon, first merge, clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT, cli_env


def test_the_demo_runs_a_first_merge_and_stops(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "config" / "demo" / "run.py"),
            "--once",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The first merge finished: success." in result.stdout
    assert "linked" in result.stdout and "syncd" in result.stdout
    log = (tmp_path / "demo" / "logs" / "syncd.log").read_text()
    assert '"event": "stopped"' in log  # the daemon was stopped cleanly, not killed

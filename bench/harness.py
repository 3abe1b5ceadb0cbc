"""What the connector benchmarks share: running ``syncd sync bench --json`` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SYNCD = str(Path(sys.executable).with_name("syncd"))


async def run_sync(root: Path, plugin: str) -> tuple[float, dict[str, Any]]:
    """Run the sync named ``bench`` of ``root/config`` with only ``plugin`` loaded; returns the
    wall time and the ``--json`` result."""
    env = {**os.environ, "SYNCD_LOAD_PLUGINS": plugin}
    args = [SYNCD, "--config", str(root / "config"), "--state-dir", str(root / "state")]
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *args,
        "sync",
        "bench",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    elapsed = time.monotonic() - started
    if not out.strip():
        raise SystemExit(f"syncd sync failed (exit {process.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return elapsed, result

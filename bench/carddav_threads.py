"""Where a CardDAV first sync's client CPU goes, by thread.

    .venv/bin/python bench/carddav_threads.py [--cards 2000] [--repeat 3]

Seeds ``--cards`` vCards into one address book of a fresh Radicale (on 127.0.0.1, a temporary
folder) and an empty second one, then runs ``syncd sync`` in a child process (the same command
``bench/carddav.py`` times), straight at Radicale with no proxy. The child reports the CPU time
(user + system, from ``/proc``) of each of its threads: the event loop (the main thread: every
HTTP exchange, the connector's card building, the engine's bookkeeping between requests), the
store thread (``syncd-store``: journal, pending writes, links) and asyncio's default executor
(``asyncio``: planning, mapping, parsing the listed cards, the mirror's file), and the start-up
(CPU spent before the sync's first line runs: the interpreter and the imports). Medians of
``--repeat`` runs.

Why (issue 22): the first sync's client CPU is set against vdirsyncer's. ``bench/http_floor.py``
measures what a bare aiohttp client spends per request against a server that answers one
request at a time, late (~0.66 ms); this script shows how much of syncd's figure is that floor
(the event loop's share per card) and how much is work off the loop.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def child(config: str) -> None:
    """Run the sync in this process and print each thread kind's CPU as JSON."""
    started = thread_cpu(threading.get_native_id())
    spent: dict[str, float] = {}
    lock = threading.Lock()
    run = threading.Thread.run

    def counted(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            kind = re.sub(r"[-_]\d+( \(.*\))?$", "", self.name)  # syncd-store_0, Thread-1 (f)
            with lock:
                spent[kind] = spent.get(kind, 0.0) + thread_cpu(threading.get_native_id())

    threading.Thread.run = counted  # type: ignore[method-assign]
    command = json.loads(config)
    sys.argv = command["argv"]
    os.environ.update(command["env"])
    from syncd.cli import main

    import_done = thread_cpu(threading.get_native_id())
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    loop = thread_cpu(threading.get_native_id()) - import_done
    print(
        json.dumps(
            {"exit": code, "start-up": import_done, "event loop": loop, "before": started} | spent
        )
    )


def one_run(cards: int) -> dict[str, Any]:
    # imported here, so that the child's start-up is syncd's own
    import carddav as bench
    from syncd_carddav.servers import Radicale, Running

    with tempfile.TemporaryDirectory(prefix="carddav-threads-") as tmp:
        work = Path(tmp)
        with Running(Radicale(work / "radicale")) as server:
            bench.seed(server, "pa", cards)
            bench.seed(server, "pb", 0)
            tool = bench.Syncd(bench.mkdir(work / "syncd"), server, server.url, "pa", "pb")
            config = json.dumps({"argv": tool.command, "env": tool.env})
            done = subprocess.run(
                [sys.executable, __file__, "--child", config],
                env=os.environ | tool.env,
                capture_output=True,
                text=True,
                check=False,
            )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["exit"] != 0:
        raise SystemExit(f"syncd sync failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    runs = [one_run(args.cards) for _ in range(args.repeat)]
    kinds = sorted({k for r in runs for k in r} - {"exit", "before"})
    print(f"first sync of {args.cards} cards, syncd sync, medians of {args.repeat} runs")
    print(f"{'thread':<14} {'CPU s':>7} {'per card µs':>12}")
    total = 0.0
    for kind in kinds:
        value = statistics.median(r.get(kind, 0.0) for r in runs)
        total += value
        per_card = "" if kind == "start-up" else f"{value / args.cards * 1e6:12.0f}"
        print(f"{kind:<14} {value:7.2f} {per_card}")
    print(f"{'total':<14} {total:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

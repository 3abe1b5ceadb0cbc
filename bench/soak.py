"""The crash soak (``make soak``): a sync killed at seeded crash points, edits on both sides
between kills, over CSV files and the Xero and Salesflare emulators; then the checks of rule 4.
See ``syncd/testing/soak.py`` for what an episode does and checks.

    .venv/bin/python bench/soak.py                          # 1,000 kill points per pair of apps
    .venv/bin/python bench/soak.py --points 200 --pairs csv-csv --seed 7
    .venv/bin/python bench/soak.py --sigkill --points 50 --pairs csv-csv   # real SIGKILLs

Prints one line per episode, then the counts (JSON); exits 1 when anything did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from syncd.logs import configure
from syncd.testing.soak import Counts, soak

PAIRS = "csv-csv,xero-csv,salesflare-csv,xero-salesflare"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000, help="kill points per pair of apps")
    parser.add_argument("--pairs", default=PAIRS, help=f"side a-side b kinds (default {PAIRS})")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--per-episode", type=int, default=10, help="kills before the checks")
    parser.add_argument("--sigkill", action="store_true", help="kill real syncd processes")
    parser.add_argument("--quiet", action="store_true", help="no line per episode")
    args = parser.parse_args()
    configure(level="error")
    pairs = []
    for item in args.pairs.split(","):
        a_kind, _, b_kind = item.strip().partition("-")
        pairs.append((a_kind, b_kind))
    total = Counts()
    started = time.monotonic()
    for index, pair in enumerate(pairs):
        began = time.monotonic()
        counts = asyncio.run(
            soak(
                [pair],
                args.points,
                args.seed + index,
                per_episode=args.per_episode,
                sigkill=args.sigkill,
                log=None if args.quiet else lambda line: print(line, flush=True),
            )
        )
        summary = counts.summary()
        summary["seconds"] = round(time.monotonic() - began, 1)
        print(f"{'-'.join(pair)}: {json.dumps(summary)}", flush=True)
        total.add(counts)
    summary = total.summary()
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(f"total: {json.dumps(summary)}")
    for problem in total.problems[:50]:
        print(f"problem: {problem}")
    return 0 if total.ok else 1


if __name__ == "__main__":
    sys.exit(main())

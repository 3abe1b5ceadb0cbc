"""`make demo`: a real two-way sync between local emulators of Xero and Salesflare.

Starts both sandboxes with a few hundred contacts, copies a third of Xero's people into
Salesflare with different details (so the first merge has pairs to link and conflicts to settle),
runs the daemon on config/demo/, waits for the first merge and says what happened and where to
look. Ctrl-C stops everything. ``--once`` stops after the first merge (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from syncd.testing.daemon import free_port, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SYNCD = [sys.executable, "-m", "syncd.cli"]
SYNC = "xero-salesflare"
XERO_SECRET = "sandbox-custom-secret"
SALESFLARE_KEY = "sandbox"


def http(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False
    return True


def overlap(xero: str, salesflare: str) -> int:
    """Give Salesflare a third of Xero's people, with other details, as if both were in use."""
    contacts = http("GET", f"{xero}/_sandbox/xero/contacts")["Contacts"]
    people = [c for c in contacts if c.get("EmailAddress") and c.get("ContactStatus") == "ACTIVE"]
    chosen = people[: len(people) // 3]
    batch = [
        {
            "email": c["EmailAddress"].upper() if i % 5 == 0 else c["EmailAddress"],
            "firstname": c.get("FirstName") or "",
            "lastname": (c.get("LastName") or "") + (" Jr" if i % 4 == 0 else ""),
            "tags": ["customer"] if i % 2 == 0 else ["lead"],
        }
        for i, c in enumerate(chosen)
    ]
    for start in range(0, len(batch), 50):
        http(
            "POST",
            f"{salesflare}/contacts?force=false",
            batch[start : start + 50],
            token=SALESFLARE_KEY,
        )
    return len(batch)


def _shown(path: Path) -> str:
    """A path as short as it can be said from the repository root."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after the first merge")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    args = parser.parse_args()

    workdir: Path = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    ports = {"xero": free_port(), "salesflare": free_port(), "api": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        **os.environ,
        "DEMO_XERO_URL": urls["xero"],
        "DEMO_SALESFLARE_URL": urls["salesflare"],
        "SYNCD_API_LISTEN": f"127.0.0.1:{ports['api']}",
        "XERO_CLIENT_SECRET": XERO_SECRET,
        "SALESFLARE_API_KEY": SALESFLARE_KEY,
        "SYNCD_CONFIG": str(HERE),
        "SYNCD_STATE_DIR": str(workdir / "state"),
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str]) -> None:
        log = (workdir / "logs" / f"{name}.log").open("wb")
        processes.append(
            subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        )

    def stop(*_: object) -> None:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print("Starting the Xero and Salesflare emulators …")
        # the Salesflare emulator's own limit is raised so that the demo's first merge takes
        # seconds; Xero's emulator keeps Xero's 60 calls a minute
        extra = {"xero": [], "salesflare": ["--option", "rate_limit=5000"]}
        for name, seed in (("xero", 1), ("salesflare", 2)):
            start(
                name,
                [
                    *SYNCD,
                    "sandbox",
                    name,
                    "--port",
                    str(ports[name]),
                    "--seed",
                    str(seed),
                    "--option",
                    "count=300",
                    *extra[name],
                ],
            )
        for name in ("xero", "salesflare"):
            wait_until(lambda n=name: reachable(urls[n] + "/_sandbox/switches"), 60, name)
        shared = overlap(urls["xero"], urls["salesflare"])
        print(f"  Xero:       {urls['xero']}  (300 contacts)")
        total = 300 + shared
        print(f"  Salesflare: {urls['salesflare']}  ({total} contacts, {shared} also in Xero)")

        print("Starting the syncd daemon on config/demo/ …")
        start("syncd", [*SYNCD, "run"])
        token_file = workdir / "state" / "api-token"
        token = wait_until(
            lambda: token_file.read_text().strip() if token_file.exists() else None, 60, "token"
        )
        api = urls["api"]

        def last_run() -> dict[str, Any] | None:
            try:
                runs = http("GET", f"{api}/api/v1/syncs/{SYNC}/runs", token=token)
            except OSError:
                return None
            items = runs.get("runs", runs) if isinstance(runs, dict) else runs
            done = [r for r in items if r.get("outcome") not in (None, "running")]
            return done[0] if done else None

        print("Waiting for the first merge …")
        run = wait_until(last_run, 600, "the first merge")
        counts = run.get("counts", {})
        print(f"\nThe first merge finished: {run.get('outcome')}.")
        print(
            f"  read {counts.get('read_a')} Xero and {counts.get('read_b')} Salesflare contacts;"
            f" linked {counts.get('linked')} pairs by email"
        )
        print(
            f"  created {counts.get('created_a')} in Xero and {counts.get('created_b')} in"
            f" Salesflare; updated {counts.get('updated_a')} and {counts.get('updated_b')};"
            f" {counts.get('conflicts')} conflicts went to Xero (winner = a)"
        )
        print(
            f"  not synced: {counts.get('excluded')} without an email, "
            f"{counts.get('ambiguous')} with an email held twice, {counts.get('failed')} refused"
        )
        config = f"--config {_shown(HERE)} --state-dir {_shown(workdir / 'state')}"
        print("\nWhere to look:")
        print(f"  .venv/bin/syncd {config} status")
        print(f"  .venv/bin/syncd {config} errors {SYNC}")
        print(f"  .venv/bin/syncd {config} history {SYNC}")
        print(f"  API: {api}/api/v1/status  (Authorization: Bearer {token})")
        print(f"  logs: {_shown(workdir / 'logs')}/")
        if args.once:
            return 0
        print("\nThe daemon keeps syncing every 2 minutes. Ctrl-C stops everything.")
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("a process stopped; see the logs", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping …")
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())

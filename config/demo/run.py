"""`make demo`: a real two-way sync between local emulators of Xero and Salesflare.

Starts both sandboxes with a few hundred contacts, copies a third of Xero's people into
Salesflare with different details (so the first merge has pairs to link and conflicts to settle),
runs the daemon on config/demo/, waits for the first merge and says what happened, runs the sync
once more to show that a run without edits writes nothing, and writes ``.demo/env`` so that the
commands it prints work as printed from a second shell. Later runs are shown as they happen, one
line each. Ctrl-C stops everything (pressed again, it stops without waiting for a running sync).

``--once`` stops after the second run (used by the tests); its exit status is 1 when that run
wrote anything.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.cli_output import duration, plural, writes
from syncd.testing.daemon import free_port, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SYNCD = [sys.executable, "-m", "syncd.cli"]
SYNC = "xero-salesflare"
XERO_SECRET = "sandbox-custom-secret"
SALESFLARE_KEY = "sandbox-api-key"
WRITE_KEYS = ("created_a", "created_b", "updated_a", "updated_b", "archived_a", "archived_b")


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


def overlap(xero: str, salesflare: str) -> tuple[int, str]:
    """Give Salesflare a third of Xero's people, with other details, as if both were in use.
    Returns how many, and the email of one of them (the one the printed edit changes)."""
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
    emails = [str(c["EmailAddress"]).lower() for c in chosen]
    # one held once in each app, so that the printed edit finds exactly one contact
    example = next((e for e in emails[1:] if emails.count(e) == 1), emails[0] if emails else "")
    return len(batch), example


def shown(path: Path) -> str:
    """A path as short as it can be said from the current directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_line(run: dict[str, Any]) -> str:
    """One line for a finished run, as the demo shows later runs."""
    c = run.get("counts") or {}
    stamp = run.get("finished_at") or run.get("started_at") or ""
    try:
        when = (
            datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
        )
    except ValueError:
        when = stamp
    text = (
        f"  {when}  run {run.get('id')} ({run.get('trigger')}): {run.get('outcome')} in "
        f"{duration(run.get('duration_seconds'))}; "
        f"created {c.get('created_a', 0)} in Xero, {c.get('created_b', 0)} in Salesflare; "
        f"updated {c.get('updated_a', 0)} in Xero, {c.get('updated_b', 0)} in Salesflare; "
        f"{plural(int(c.get('conflicts', 0)), 'conflict')}, "
        f"{c.get('failed', 0)} failed"
    )
    if run.get("message"):
        text += f"\n      {run['message']}"
    return text


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """``.demo/env``: what a second shell needs to talk to this demo, for ``. .demo/env``."""
    keys = (
        "SYNCD_CONFIG",
        "SYNCD_STATE_DIR",
        "SYNCD_API_LISTEN",
        "DEMO_XERO_URL",
        "DEMO_SALESFLARE_URL",
        "XERO_CLIENT_SECRET",
        "SALESFLARE_API_KEY",
    )
    lines = [
        "# written by `make demo` for a second shell: . .demo/env",
        "# (the demo's own emulators and daemon; the secrets are the emulators' sample ones)",
        *(f"export {key}={shlex.quote(env[key])}" for key in keys),
        # the checkout's syncd and python, whichever shell sources this
        f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


class Interrupted(Exception):
    """Ctrl-C, the first time."""


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports = {"xero": free_port(), "salesflare": free_port(), "api": free_port()}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.env = {
            **os.environ,
            "DEMO_XERO_URL": self.urls["xero"],
            "DEMO_SALESFLARE_URL": self.urls["salesflare"],
            "SYNCD_API_LISTEN": f"127.0.0.1:{self.ports['api']}",
            "XERO_CLIENT_SECRET": XERO_SECRET,
            "SALESFLARE_API_KEY": SALESFLARE_KEY,
            "SYNCD_CONFIG": str(HERE),
            "SYNCD_STATE_DIR": str(workdir / "state"),
        }
        self.token: str | None = None
        self.stopping = False

    def start(self, name: str, command: list[str]) -> None:
        log = (self.workdir / "logs" / f"{name}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        )

    def interrupted(self, *_: object) -> None:
        """The first Ctrl-C: every later one goes to :meth:`again`, so none can interrupt the
        stop (which printed a KeyboardInterrupt traceback)."""
        signal.signal(signal.SIGINT, self.again)
        raise Interrupted

    def again(self, *_: object) -> None:
        """A Ctrl-C while stopping: passed on to the daemon, which then stops without waiting
        for its running sync (a terminal sends it to the daemon too; the daemon ignores any
        signal past the second)."""
        if not self.stopping:
            print("Stopping without waiting for the running sync …", flush=True)
        self.stopping = True
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """SIGTERM everything and wait; a Ctrl-C meanwhile never interrupts the wait."""
        signal.signal(signal.SIGINT, self.again)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def runs(self) -> list[dict[str, Any]]:
        """The sync's finished runs, oldest first (empty while the daemon does not answer).

        Only those the daemon has recorded as the sync's last run (or before it): the history
        says a run finished a moment before the run lets go of the sync, and a trigger sent
        then (the demo's own, or one typed after a run line shows) would be "already running".
        """
        try:
            sync = http("GET", f"{self.urls['api']}/api/v1/syncs/{SYNC}", token=self.token)
            answer = http("GET", f"{self.urls['api']}/api/v1/syncs/{SYNC}/runs", token=self.token)
        except OSError:
            return []
        last = (sync.get("last_run") or {}).get("id") if isinstance(sync, dict) else None
        items = answer.get("runs", []) if isinstance(answer, dict) else answer
        done = [
            r
            for r in items
            if r.get("outcome") not in (None, "running")
            and last is not None
            and int(r["id"]) <= int(last)
        ]
        return sorted(done, key=lambda r: int(r["id"]))

    def run(self, once: bool) -> int:
        workdir = self.workdir
        print("Starting the Xero and Salesflare emulators …")
        # the Salesflare emulator's own limit is raised so that the demo's first merge takes
        # seconds; Xero's emulator keeps Xero's 60 calls a minute
        extra = {"xero": [], "salesflare": ["--option", "rate_limit=5000"]}
        for name, seed in (("xero", 1), ("salesflare", 2)):
            self.start(
                name,
                [
                    *SYNCD,
                    "sandbox",
                    name,
                    "--port",
                    str(self.ports[name]),
                    "--seed",
                    str(seed),
                    "--option",
                    "count=300",
                    *extra[name],
                ],
            )
        for name in ("xero", "salesflare"):
            wait_until(
                functools.partial(reachable, self.urls[name] + "/_sandbox/switches"), 60, name
            )
        shared, example = overlap(self.urls["xero"], self.urls["salesflare"])
        print(f"  Xero:       {self.urls['xero']}  (300 contacts)")
        total = 300 + shared
        print(f"  Salesflare: {self.urls['salesflare']}  ({total} contacts, {shared} also in Xero)")

        print("Starting the syncd daemon on config/demo/ …")
        self.start("syncd", [*SYNCD, "run"])
        token_file = workdir / "state" / "api-token"
        self.token = wait_until(
            lambda: token_file.read_text().strip() if token_file.exists() else None, 60, "token"
        )

        print("Waiting for the first merge …")
        run = wait_until(lambda: next(iter(self.runs()), None), 600, "the first merge")
        counts = run.get("counts", {})
        took = duration(run.get("duration_seconds"))
        print(f"\nThe first merge finished: {run.get('outcome')} in {took}.")
        print(
            f"  read {counts.get('read_a')} Xero and {counts.get('read_b')} Salesflare contacts;"
            f" linked {plural(int(counts.get('linked', 0)), 'pair')} by email"
        )
        print(
            f"  created {counts.get('created_a')} in Xero and {counts.get('created_b')} in"
            f" Salesflare; updated {counts.get('updated_a')} and {counts.get('updated_b')};"
            f" {plural(int(counts.get('conflicts', 0)), 'conflict')} went to Xero (winner = a)"
        )
        print(
            f"  not synced: {counts.get('excluded')} without an email, "
            f"{counts.get('ambiguous')} with an email held twice, {counts.get('failed')} refused"
        )

        # rule 2, shown: a run right after, with no edits anywhere, writes nothing
        print("\nRunning it again at once, with nothing edited …")
        started = http(
            "POST", f"{self.urls['api']}/api/v1/syncs/{SYNC}/trigger", {}, token=self.token
        )
        second_id = int(started["run_id"])
        second = wait_until(
            lambda: next((r for r in self.runs() if int(r["id"]) == second_id), None),
            600,
            "the second run",
        )
        wrote = writes(second.get("counts") or {})
        print(run_line(second))
        if wrote or second.get("outcome") != "success":
            print(
                f"  UNEXPECTED: the second run wrote {plural(wrote, 'record')}; a run without "
                "edits must write nothing",
            )
        else:
            print("  wrote nothing: every record already agrees on both sides")

        env_file = workdir / "env"
        write_env_file(env_file, self.env)
        env = shown(env_file)
        edit = shown(HERE / "edit.py")
        print("\nIn another shell, in this directory:")
        print(f"  . {env}                  # the demo's addresses, state and sample secrets")
        print("  syncd status")
        print(f"  syncd history {SYNC}")
        print(f"  syncd errors {SYNC}")
        print("  syncd console                # a link that signs a browser in to the web console")
        print("\nMake an edit in an emulator and watch it travel:")
        print(f"  python {edit} xero {example} LastName=Edited-in-Xero")
        print(f"  syncd trigger {SYNC}      # or wait for the next run (every 2 minutes)")
        print(f"  python {edit} salesflare {example} lastname=Edited-in-Salesflare")
        print(f"\n  API: {self.urls['api']}/api/v1/status  (token: {shown(token_file)})")
        print(f"  logs: {shown(workdir / 'logs')}/")
        if once:
            return 0 if not wrote and second.get("outcome") == "success" else 1

        print(
            "\nThe daemon keeps syncing every 2 minutes; its runs show here."
            " Ctrl-C stops everything."
        )
        sys.stdout.flush()
        seen = second_id
        while all(p.poll() is None for p in self.processes):
            for later in self.runs():
                if int(later["id"]) > seen:
                    print(run_line(later), flush=True)
                    seen = int(later["id"])
            time.sleep(1.0)
        print("a process stopped; see the logs", file=sys.stderr)
        return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after the second run")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    args = parser.parse_args()

    workdir: Path = args.workdir.resolve()
    for stale in ("state", "logs"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    (workdir / "env").unlink(missing_ok=True)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, demo.interrupted)
    try:
        return demo.run(args.once)
    except Interrupted:
        print("\nStopping … (Ctrl-C again: stop without waiting for a running sync)", flush=True)
        return 0
    finally:
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())

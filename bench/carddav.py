"""Benchmark: syncd's CardDAV connector side by side with vdirsyncer, on one real Radicale.

    .venv/bin/python bench/carddav.py [--first 2000] [--large 10000] [--repeat 3] [--json]

vdirsyncer (PyPI, 0.21.0 when this was written) runs from a venv of its own, ``.venv-bench/``,
made by this script when it is missing: its pins (click, aiostream) are not syncd's. Both tools
talk to the same Radicale through a counting proxy (requests, bytes each way), as separate
processes; wall time is measured around each process, client CPU is the process's user+system
time (``RUSAGE_CHILDREN``; the server's CPU is not in it). The tools run alternately, each on
its own pair of address books, so that a slower or faster moment of the machine hits both.

1. **First sync**: ``--first`` vCards in one address book, copied into an empty second one.
   Radicale's cost per PUT grows with the address book, so the server dominates the wall time.
2. **Large address books**: ``--large`` vCards in each of two address books (seeded straight
   into Radicale's storage folder, which it reads as its own), brought in sync by each tool once
   (not measured), then a run with no changes and a run after 1 % of the cards changed on one
   side (edited in the storage folder). Each is repeated ``--repeat`` times; medians are shown.

The large books are also synced by a third runner, ``syncd daemon``: ``syncd run`` on its own
pair of books, as syncd is deployed (a daemon whose schedule starts each run; here the API's
trigger does), so its figures have no process start-up in them. Its wall time runs from the
trigger to the daemon's ``run.finished`` event, its CPU is the daemon process's own (``/proc``),
and its ratios to vdirsyncer are printed as ``daemon ratio``. vdirsyncer has no daemon: each of
its runs is a process, as cron or a systemd timer starts it.

Targets (issue 22): first sync <= 1.0 x vdirsyncer's wall time and <= 0.5 x its client CPU; the
no-change run <= 0.3 x; the 1 % run <= 0.5 x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from syncd_carddav.proxy import PROXY_COUNTS, Counts, make_proxy
from syncd_carddav.servers import Radicale, Running, basic_auth

from syncd.sandbox import SandboxServer
from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-bench"
VDIRSYNCER_SPEC = "vdirsyncer>=0.21"


def ensure_vdirsyncer() -> Path:
    exe = BENCH_VENV / "bin" / "vdirsyncer"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run(
            [str(BENCH_VENV / "bin" / "pip"), "install", "--quiet", VDIRSYNCER_SPEC], check=True
        )
    return exe


def vdirsyncer_version(exe: Path) -> str:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    return out.stdout.strip().rsplit(" ", 1)[-1] or "?"


# --- the server and the proxy -----------------------------------------------------------


class ProxyThread:
    """The counting proxy, on an event loop of its own in a thread (the tools are processes)."""

    def __init__(self, upstream: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = SandboxServer(make_proxy(lambda: upstream))
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        self.ready.set()
        self.loop.run_forever()

    @property
    def counts(self) -> Counts:
        return self.server.app[PROXY_COUNTS]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def card(n: int, tag: str = "") -> str:
    return (
        "BEGIN:VCARD\r\nVERSION:3.0\r\n"
        f"UID:bench-{n:06d}\r\n"
        f"FN:Person {n}{tag}\r\nN:Number {n}{tag};Person;;;\r\n"
        f"EMAIL;TYPE=INTERNET:person{n}@bench.example\r\n"
        f"TEL;TYPE=CELL:+44 7700 {n % 1000000:06d}\r\n"
        f"ORG:Company {n % 97}\r\nTITLE:Title {n % 13}\r\n"
        f"ADR;TYPE=WORK:;;{n} High Street;Leeds;;LS1 {n % 9}AA;UK\r\n"
        "X-PHONETIC-FIRST-NAME:Per-son\r\n"
        "END:VCARD\r\n"
    )


def seed(server: Radicale, book: str, count: int) -> Path:
    """An address book straight in Radicale's storage folder (as Radicale itself lays it out)."""
    folder = server.folder / "collections" / "collection-root" / server.user / book
    folder.mkdir(parents=True, exist_ok=True)
    props = {"tag": "VADDRESSBOOK", "D:displayname": book}
    (folder / ".Radicale.props").write_text(json.dumps(props))
    for n in range(count):
        (folder / f"bench-{n:06d}.vcf").write_text(card(n), newline="")
    warm(server, book)
    return folder


def warm(server: Radicale, book: str) -> None:
    """Let Radicale index a seeded address book before anything is timed, as it has indexed
    cards that were PUT to it: the first PROPFIND of a seeded folder parses every card (its item
    cache), and the first sync-token another 8 ms a card (measured: 7.7 s for 1,000 seeded
    cards, 0.15 s for 300 cards PUT through Radicale). That is the seeding's cost, not any
    client's."""
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/{server.user}/{book}/",
        method="PROPFIND",
        data=b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/>'
        b"<d:sync-token/></d:prop></d:propfind>",
        headers={
            "Depth": "1",
            "Content-Type": "application/xml",
            "Authorization": basic_auth(server.user, server.password),
        },
    )
    with urllib.request.urlopen(request, timeout=3600) as answer:
        answer.read()


# --- a bare client: what the server's own answers cost -------------------------------------


def bare(
    server: Radicale, proxy_url: str, method: str, path: str, body: bytes, **headers: str
) -> tuple[float, bytes]:
    """One request by a bare client (urllib, no syncd, no vdirsyncer): (seconds, answer)."""
    import urllib.request

    request = urllib.request.Request(
        proxy_url + path,
        method=method,
        data=body,
        headers={"Authorization": basic_auth(server.user, server.password), **headers},
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=3600) as answer:
        text = answer.read()
    return time.monotonic() - started, text


def floor_figures(
    server: Radicale, proxy_url: str, book: str, count: int, repeat: int
) -> dict[str, float]:
    """Medians of what Radicale takes to answer, to a bare client, the requests each tool makes
    of a ``count``-card address book: syncd's ``sync-collection`` REPORT with a current token,
    vdirsyncer's PROPFIND depth 1 of every ETag, and one conditional PUT of a changed card."""
    path = f"/{server.user}/{book}/"
    xml = {"Content-Type": "application/xml"}
    _, answer = bare(
        server,
        proxy_url,
        "PROPFIND",
        path,
        b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/>'
        b"</d:prop></d:propfind>",
        Depth="0",
        **xml,
    )
    token = answer.split(b"sync-token>", 1)[1].split(b"<", 1)[0].decode()
    report = (
        '<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:">'
        f"<d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level>"
        "<d:prop><d:getetag/></d:prop></d:sync-collection>"
    ).encode()
    propfind = (
        b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/>'
        b"<d:resourcetype/></d:prop></d:propfind>"
    )
    reports, propfinds, puts = [], [], []
    for rep in range(repeat):
        reports.append(bare(server, proxy_url, "REPORT", path, report, Depth="1", **xml)[0])
        propfinds.append(bare(server, proxy_url, "PROPFIND", path, propfind, Depth="1", **xml)[0])
        n = (rep * 37) % count
        name = f"bench-{n:06d}.vcf"
        puts.append(
            bare(
                server,
                proxy_url,
                "PUT",
                path + name,
                card(n, f" floor{rep}").encode(),
                **{"Content-Type": "text/vcard"},
            )[0]
        )
    return {
        "report_s": statistics.median(reports),
        "propfind_s": statistics.median(propfinds),
        "put_s": statistics.median(puts),
    }


def server_costs(count: int, repeat: int) -> dict[str, float]:
    """What Radicale's storage spends (CPU seconds, in this process, no HTTP) on the steps the
    tools' requests make it take on a ``count``-card address book: why each request costs what
    it does, step by step (see plugins/carddav/README.md, "What the server spends")."""
    import radicale.item as radicale_item
    from radicale import config as radicale_config
    from radicale import storage as radicale_storage

    folder = Path(tempfile.mkdtemp(prefix="syncd-bench-radicale-costs-"))
    try:
        configuration = radicale_config.load([])
        configuration.update(
            {"storage": {"filesystem_folder": str(folder)}}, "bench", privileged=True
        )
        store = radicale_storage.load(configuration)
        book = folder / "collection-root" / "ann" / "book"
        book.mkdir(parents=True)
        (book / ".Radicale.props").write_text(json.dumps({"tag": "VADDRESSBOOK"}))
        for n in range(count):
            (book / f"bench-{n:06d}.vcf").write_text(card(n), newline="")

        def cpu(step: Any, times: int = repeat) -> float:
            spent = []
            for _ in range(times):
                started = time.process_time()
                step()
                spent.append(time.process_time() - started)
            return min(spent)

        def update() -> None:
            item = radicale_item.Item(
                collection_path="ann/book",
                vobject_item=radicale_item.read_components(card(5, f" {time.time_ns()}"))[0],
            )
            item.prepare()
            collection.upload("bench-000005.vcf", item)

        with store.acquire_lock("w"):
            collection: Any = next(iter(store.discover("/ann/book/")))
            costs = {"index_once_s": cpu(lambda: list(collection.get_all()), 1)}
            costs["history_once_s"] = cpu(collection.sync, 1)
            costs |= {
                # every request that lists the book reads each card's cache entry
                "get_all_s": cpu(lambda: list(collection.get_all())),
                # sync-collection (and the sync-token property): get_all + each card's
                # history entry + a scan of the history folder, even when nothing changed
                "sync_s": cpu(collection.sync),
                # getctag: get_all + a hash
                "ctag_s": cpu(lambda: collection.etag),
                # a create (a PUT to a new name) first looks for its UID in every card
                "has_uid_s": cpu(lambda: collection.has_uid("absent")),
                # every PUT (create or update) ends by looking for deleted cards' history
                # entries to expire: a scan of the history folder and a stat of each card
                "clean_history_s": cpu(collection._clean_history),
                "update_s": cpu(update),
            }
        return costs
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def edit_share(folder: Path, count: int, share: float, round_: int) -> None:
    """Change ``share`` of the cards (their family name), a different slice every round."""
    step = max(1, round(1 / share))
    for n in range(round_ % step, count, step):
        (folder / f"bench-{n:06d}.vcf").write_text(card(n, f" r{round_}"), newline="")


# --- the tools --------------------------------------------------------------------------


def tool_env(**extra: str) -> dict[str, str]:
    """The environment of a tool's process: as a user has it, so Python writes and reuses its
    bytecode caches (a session with PYTHONDONTWRITEBYTECODE would compile both tools from
    source on every run, which no installed tool does)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


#: the server's process id, whose CPU time :func:`timed` reads around each run
SERVER_PID: list[int] = []


def server_cpu() -> float:
    """The server process's user+system CPU seconds so far (Linux ``/proc``; 0 elsewhere).
    Unlike wall time, it does not grow when the machine is loaded: it is what the server
    itself spent answering a tool's requests."""
    if not SERVER_PID:
        return 0.0
    try:
        return process_cpu(SERVER_PID[0])
    except OSError:
        return 0.0


def process_cpu(pid: int) -> float:
    """A process's user+system CPU seconds so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(command: list[str], env: dict[str, str], proxy: ProxyThread) -> dict[str, Any]:
    proxy.counts.reset()
    server_before = server_cpu()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, input="")
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu_s = server_cpu() - server_before
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return run_figures(wall, cpu, server_cpu_s, proxy.counts)


def run_figures(wall: float, cpu: float, server_cpu_s: float, counts: Counts) -> dict[str, Any]:
    """One run's figures: ``cpu`` is the client's, ``server_cpu_s`` the server's own."""
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "requests": counts.requests,
        "bytes": counts.bytes_sent + counts.bytes_received,
        # the wall time during which the server was working on at least one request
        "server_s": counts.busy_seconds,
        # the server's own CPU seconds for this run (one tool runs at a time)
        "server_cpu_s": server_cpu_s,
        "both_cpu_s": server_cpu_s + cpu,
    }


class Vdirsyncer:
    name = "vdirsyncer"
    prefix = "v"

    def __init__(self, exe: Path, work: Path, server: Radicale, proxy_url: str, a: str, b: str):
        self.exe, self.work = exe, work
        config = work / "vdirsyncer.conf"
        storage = textwrap.dedent(
            """
            [storage {name}]
            type = "carddav"
            url = "{url}/{user}/{book}/"
            username = "{user}"
            password = "{password}"
            """
        )
        config.write_text(
            textwrap.dedent(
                f"""
                [general]
                status_path = "{work / "status"}/"

                [pair bench]
                a = "side_a"
                b = "side_b"
                collections = null
                conflict_resolution = "a wins"
                """
            )
            + storage.format(
                name="side_a", url=proxy_url, user=server.user, password=server.password, book=a
            )
            + storage.format(
                name="side_b", url=proxy_url, user=server.user, password=server.password, book=b
            )
        )
        self.env = tool_env(VDIRSYNCER_CONFIG=str(config))
        subprocess.run(
            [str(exe), "discover", "bench"], env=self.env, check=True, capture_output=True
        )

    def sync(self, proxy: ProxyThread) -> dict[str, Any]:
        return timed([str(self.exe), "sync", "bench"], self.env, proxy)


class Syncd:
    name = "syncd"
    prefix = "s"

    concurrency = 4

    def __init__(self, work: Path, server: Radicale, proxy_url: str, a: str, b: str) -> None:
        self.work = work
        syncs = work / "config" / "syncs"
        syncs.mkdir(parents=True, exist_ok=True)
        side = textwrap.dedent(
            """
            [{side}]
            connector = "carddav"
            url = "{url}/{user}/{book}/"
            username = "{user}"
            password = "${{env:BENCH_CARDDAV_PASSWORD}}"
            concurrency = {concurrency}
            """
        )
        (syncs / "bench.toml").write_text(
            'direction = "two-way"\ninitial = "merge"\nwinner = "a"\ndeletions = "ignore"\n'
            + side.format(
                side="a", url=proxy_url, user=server.user, book=a, concurrency=self.concurrency
            )
            + side.format(
                side="b", url=proxy_url, user=server.user, book=b, concurrency=self.concurrency
            )
        )
        self.env = {k: v for k, v in tool_env().items() if not k.startswith("SYNCD_")} | {
            "BENCH_CARDDAV_PASSWORD": server.password,
            "SYNCD_LOAD_PLUGINS": "syncd-carddav",
        }
        self.command = [
            str(Path(sys.executable).with_name("syncd")),
            "--config",
            str(work / "config"),
            "--state-dir",
            str(work / "state"),
            "sync",
            "bench",
        ]

    def sync(self, proxy: ProxyThread) -> dict[str, Any]:
        return timed(self.command, self.env, proxy)


class EventStream:
    """The daemon's ``GET /api/v1/events``, read line by line (no polling: a run's end is
    seen the moment the daemon publishes it, and the reading costs the daemon nothing)."""

    def __init__(self, port: int, token: str) -> None:
        import http.client

        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.connection.request(
            "GET", "/api/v1/events", headers={"Authorization": f"Bearer {token}"}
        )
        self.response = self.connection.getresponse()
        if self.response.status != 200:
            raise SystemExit(f"GET /api/v1/events: HTTP {self.response.status}")
        self.next_event()  # hello

    def next_event(self) -> tuple[str, dict[str, Any]]:
        kind, data = "", ""
        while True:
            line = self.response.readline().decode()
            if not line:
                raise SystemExit("the daemon's event stream ended")
            line = line.rstrip("\r\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and kind:
                return kind, json.loads(data or "{}")

    def close(self) -> None:
        self.connection.close()


class SyncdDaemon(Syncd):
    """syncd as it is deployed: ``syncd run`` keeps running and each run is one of its own
    (here triggered through the API, as the schedule would start it), so no process start-up
    is in the run. Wall time is from the trigger to the daemon's ``run.finished`` event; CPU is
    the daemon process's own over that span (``/proc``)."""

    name = "syncd daemon"
    prefix = "d"

    def __init__(self, work: Path, server: Radicale, proxy_url: str, a: str, b: str) -> None:
        super().__init__(work, server, proxy_url, a, b)
        sync_file = work / "config" / "syncs" / "bench.toml"
        # runs only when triggered (after the first, which it makes at start-up)
        sync_file.write_text('interval = "24h"\n' + sync_file.read_text())
        self.port = free_port()
        listen = f"127.0.0.1:{self.port}"
        write_daemon_config(work / "config", listen, work / "state")
        self.daemon = DaemonProcess(
            work / "config",
            work / "state",
            listen,
            env={
                "BENCH_CARDDAV_PASSWORD": server.password,
                "SYNCD_LOAD_PLUGINS": "syncd-carddav",
            },
            log_path=work / "daemon.log",
        )
        self.started = False

    def _first_run(self, proxy: ProxyThread) -> dict[str, Any]:
        """Start the daemon; its start-up run is the books' first sync (not a figure)."""
        proxy.counts.reset()
        started = time.monotonic()
        self.daemon.start()
        self.daemon.wait_ready()
        wait_until(
            lambda: (
                self.daemon.get("/api/v1/syncs/bench")["last_run"] is not None
                and self.daemon.not_running("bench")
            ),
            timeout=3600,
            what="the daemon's first run",
        )
        self.started = True
        return self._figures(proxy, started, 0.0, 0.0)

    def _figures(
        self, proxy: ProxyThread, started: float, cpu_before: float, server_before: float
    ) -> dict[str, Any]:
        wall = time.monotonic() - started
        cpu = process_cpu(self.daemon.pid) - cpu_before
        return run_figures(wall, cpu, server_cpu() - server_before, proxy.counts)

    def sync(self, proxy: ProxyThread) -> dict[str, Any]:
        if not self.started:
            return self._first_run(proxy)
        events = EventStream(self.port, self.daemon.token())
        try:
            client = self.daemon.client()
            proxy.counts.reset()
            server_before = server_cpu()
            cpu_before = process_cpu(self.daemon.pid)
            started = time.monotonic()
            run_id = client.call("POST", "/api/v1/syncs/bench/trigger")["run_id"]
            while True:
                kind, data = events.next_event()
                if kind == "run.finished" and data.get("run_id") == run_id:
                    break
            figures = self._figures(proxy, started, cpu_before, server_before)
            if data.get("outcome") not in ("success", "ok", "partial"):
                raise SystemExit(f"the daemon's run {run_id}: {data}")
            return figures
        finally:
            events.close()

    def stop(self) -> None:
        self.daemon.close()


# --- the runs ---------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", type=int, default=2000, help="cards of the first sync")
    parser.add_argument("--large", type=int, default=10000, help="cards of each large book")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--concurrency", type=int, default=4, help="syncd's concurrency")
    parser.add_argument("--skip-large", action="store_true", help="only the first sync")
    parser.add_argument("--skip-first", action="store_true", help="only the large books")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--server-costs",
        type=int,
        metavar="CARDS",
        help="only measure Radicale's storage steps (CPU seconds, no HTTP) on a book this large",
    )
    args = parser.parse_args()
    if args.server_costs:
        costs = server_costs(args.server_costs, args.repeat)
        if args.json:
            print(json.dumps(costs, indent=1))
        else:
            print(f"Radicale's storage, {args.server_costs}-card address book, CPU seconds:")
            for key, value in costs.items():
                print(f"  {key:<17} {value:8.4f}")
        return 0

    Syncd.concurrency = args.concurrency
    exe = ensure_vdirsyncer()
    version = vdirsyncer_version(exe)
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-carddav-"))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        running = Running(Radicale(work / "radicale"))
        with running as server:
            assert isinstance(server, Radicale) and running.popen is not None
            SERVER_PID[:] = [running.popen.pid]
            proxy = ProxyThread(server.url)
            daemons: list[SyncdDaemon] = []
            try:
                url = proxy.server.url

                def tools(tag: str, a: str, b: str, daemon: bool = False) -> list[Any]:
                    pair: list[Any] = [
                        Vdirsyncer(exe, mkdir(work / f"vdir-{tag}"), server, url, f"v{a}", f"v{b}"),
                        Syncd(mkdir(work / f"syncd-{tag}"), server, url, f"s{a}", f"s{b}"),
                    ]
                    if daemon:
                        runner = SyncdDaemon(
                            mkdir(work / f"daemon-{tag}"), server, url, f"d{a}", f"d{b}"
                        )
                        daemons.append(runner)
                        pair.append(runner)
                    return pair

                # 1. first sync, alternating, each on a fresh pair of books
                for rep in range(0 if args.skip_first else args.repeat):
                    for prefix in ("v", "s"):
                        seed(server, f"{prefix}first{rep}a", args.first)
                        seed(server, f"{prefix}first{rep}b", 0)
                    pair = tools(f"first{rep}", f"first{rep}a", f"first{rep}b")
                    for tool in pair if rep % 2 == 0 else reversed(pair):
                        run = tool.sync(proxy)
                        results.setdefault("first sync", {}).setdefault(tool.name, []).append(run)
                        log(f"first sync {rep + 1}/{args.repeat} {tool.name}: {fmt(run)}")

                # 2. large books, in sync once, then no-change and 1 % runs
                if not args.skip_large:
                    large_runs(args, server, proxy, tools, results)
            finally:
                for runner in daemons:
                    runner.stop()
                proxy.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    floors = results.pop("floor", {}).get("bare", [None])[0]
    report = {}
    for figure, by_tool in results.items():
        theirs = median_of(by_tool["vdirsyncer"])
        report[figure] = {"vdirsyncer": theirs}
        for tool, ratio in (("syncd", "ratio"), ("syncd daemon", "daemon ratio")):
            if tool in by_tool:
                ours = median_of(by_tool[tool])
                report[figure][tool] = ours
                report[figure][ratio] = {
                    k: (ours[k] / theirs[k] if theirs[k] else float("nan")) for k in ours
                }
    if args.json:
        print(json.dumps({"vdirsyncer": version, "figures": report, "floor": floors}, indent=1))
        return 0
    print(
        f"syncd vs vdirsyncer {version} on one Radicale; medians of {args.repeat} runs; "
        f"first sync {args.first} cards, large books {args.large} cards each"
    )
    print(
        f"{'figure':<13} {'tool':<12} {'wall s':>7} {'server s':>9} {'cpu s':>8} "
        f"{'srv cpu s':>9} {'both cpu':>8} {'requests':>9} {'bytes':>12}"
    )
    for figure, row in report.items():
        for tool in ("syncd", "syncd daemon", "vdirsyncer"):
            if tool not in row:
                continue
            m = row[tool]
            print(
                f"{figure:<13} {tool:<12} {m['wall_s']:7.2f} {m['server_s']:9.2f} "
                f"{m['cpu_s']:8.2f} {m['server_cpu_s']:9.2f} {m['both_cpu_s']:8.2f} "
                f"{m['requests']:9.0f} {m['bytes']:12.0f}"
            )
        for ratio in ("ratio", "daemon ratio"):
            if ratio not in row:
                continue
            r = row[ratio]
            print(
                f"{figure:<13} {ratio:<12} {r['wall_s']:7.2f} {r['server_s']:9.2f} "
                f"{r['cpu_s']:8.2f} {r['server_cpu_s']:9.2f} {r['both_cpu_s']:8.2f} "
                f"{r['requests']:9.2f} {r['bytes']:12.2f}"
            )
    print(
        "srv cpu s: the server's CPU seconds for the run; both cpu: the client's and the "
        "server's CPU seconds together, the run's wall time on an idle machine when the two "
        "never overlap"
    )
    for figure, row in report.items():
        least = row["syncd"]["server_cpu_s"] / (row["vdirsyncer"]["both_cpu_s"] or float("nan"))
        print(
            f"{figure}: a client costing nothing, with syncd's requests, would score "
            f"{least:.2f} x vdirsyncer's both-cpu (syncd's server cpu / vdirsyncer's both cpu)"
        )
    if floors is not None:
        print_floors(floors, report, args.large)
    return 0


def print_floors(floors: dict[str, float], report: dict[str, Any], count: int) -> None:
    """The server's own time for each tool's requests (a bare client, medians), and the ratio a
    client that cost nothing would score: the floor Radicale sets."""
    changed = max(1, round(count * 0.01))
    print(
        f"bare client, {count}-card book (medians): sync-collection REPORT "
        f"{floors['report_s']:.2f}s, PROPFIND depth 1 {floors['propfind_s']:.2f}s, "
        f"one PUT {floors['put_s']:.3f}s"
    )
    no_change = report.get("no change")
    if no_change:
        least = 2 * floors["report_s"]
        theirs = no_change["vdirsyncer"]["wall_s"]
        print(
            f"no change floor: 2 REPORTs = {least:.2f}s; / vdirsyncer's wall "
            f"{theirs:.2f}s = {least / theirs:.2f} (vdirsyncer's own 2 PROPFINDs: "
            f"{2 * floors['propfind_s']:.2f}s)"
        )
    one = report.get("1 % changed")
    if one:
        least = 2 * floors["report_s"] + changed * floors["put_s"]
        theirs = one["vdirsyncer"]["wall_s"]
        print(
            f"1 % changed floor: 2 REPORTs + {changed} PUTs = {least:.2f}s; / vdirsyncer's wall "
            f"{theirs:.2f}s = {least / theirs:.2f}"
        )


def large_runs(
    args: argparse.Namespace,
    server: Radicale,
    proxy: ProxyThread,
    tools: Any,
    results: dict[str, dict[str, list[dict[str, Any]]]],
) -> None:
    """Two large address books in sync; then runs with no change and with 1 % changed."""
    folders = {}
    for prefix in ("v", "s", "d"):
        for side in ("a", "b"):
            folders[prefix + side] = seed(server, f"{prefix}large{side}", args.large)
    large = tools("large", "largea", "largeb", daemon=True)
    for tool in large:
        run = tool.sync(proxy)
        log(f"initial sync of the large books, {tool.name} (not a figure): {fmt(run)}")
    for rep in range(args.repeat):
        order = large if rep % 2 == 0 else large[::-1]  # who goes first alternates too
        for tool in order:
            run = tool.sync(proxy)
            results.setdefault("no change", {}).setdefault(tool.name, []).append(run)
            log(f"no change {rep + 1}/{args.repeat} {tool.name}: {fmt(run)}")
        for tool in order:
            edit_share(folders[tool.prefix + "a"], args.large, 0.01, rep + 1)
            run = tool.sync(proxy)
            results.setdefault("1 % changed", {}).setdefault(tool.name, []).append(run)
            log(f"1 % changed {rep + 1}/{args.repeat} {tool.name}: {fmt(run)}")
    # what the server alone takes (after the measured runs: the PUTs change a book)
    floors = floor_figures(server, proxy.server.url, "vlargea", args.large, args.repeat)
    log(f"bare client on a {args.large}-card book: {floors}")
    results["floor"] = {"bare": [floors]}


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def fmt(run: dict[str, Any]) -> str:
    return (
        f"{run['wall_s']:.2f}s wall ({run['server_s']:.2f}s at the server), "
        f"{run['cpu_s']:.2f}s cpu ({run['server_cpu_s']:.2f}s the server's), "
        f"{run['requests']} requests, "
        f"{run['bytes']} bytes"
    )


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

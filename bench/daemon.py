"""Daemon benchmark: a real ``syncd run`` subprocess, measured from outside.

1. Start to ``READY=1`` (received on a notify socket, as systemd would), with four syncs
   configured: on a fresh state directory (the database is created and migrated) and on a restart.
2. Idle RSS of the daemon with those four syncs, once their first runs are done.
3. The latency of ``GET /api/v1/status`` (a new connection per request, as ``syncd status``
   makes) while a sync of N contacts runs (CSV to CSV; the first merge of N new contacts),
   polled back to back for the whole run; and the run's own duration.

4. The web console during such a sync: the overview page (``GET /`` with a session cookie) and
   ``GET /api/v1/status`` polled back to back while 20 consoles keep the event stream
   (``GET /api/v1/events``) open and read every event; and the overview's weight with its
   stylesheet and script.

    .venv/bin/python bench/daemon.py                       # 100,000 contacts
    .venv/bin/python bench/daemon.py --contacts 20000 --repeats 5
    .venv/bin/python bench/daemon.py --only console        # just the console's figures

Targets (issue 19): status p99 ≤ 20 ms and max ≤ 200 ms during the 100,000-contact sync; idle
RSS ≤ 60 MB; start to READY ≤ 0.8 s; overview p99 ≤ 100 ms during that sync; API p99 ≤ 100 ms
with 20 consoles streaming; overview with its assets ≤ 100 kB.

Beside the wall times it prints the daemon's CPU time to READY (user + system, read as READY
arrives), which a loaded machine inflates much less, and the event loop's stalls during the
sync as the daemon's own loop watch saw them (``syncd_event_loop_lag_seconds`` in /metrics).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import select
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

TARGETS = {
    "status_p99_ms": 20.0,
    "status_max_ms": 200.0,
    "idle_rss_mb": 60.0,
    "ready_seconds": 0.8,
    "overview_p99_ms": 100.0,
    "api_p99_with_consoles_ms": 100.0,
    "page_weight_kb": 100.0,
}
CONSOLES = 20


def write_contacts(path: Path, count: int, prefix: str) -> None:
    with path.open("w") as out:
        out.write("email,first_name,last_name,company,city,phone\n")
        for i in range(count):
            out.write(
                f"{prefix}{i}@example.com,First{i},Last{i},Company {i % 977},Leeds,"
                f"+44207946{i % 100000:05d}\n"
            )


def write_sync(config: Path, name: str, source: Path, target: Path, batch: int) -> None:
    (config / "syncs" / f"{name}.toml").write_text(
        textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = "1h"
            [a]
            connector = "csv"
            path = "{source}"
            [b]
            connector = "csv"
            path = "{target}"
            batch_size = {batch}
            """
        )
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def four_syncs(root: Path) -> tuple[Path, Path, str]:
    config, state, data = root / "config", root / "state", root / "data"
    data.mkdir(parents=True)
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state)
    for index in range(4):
        source = data / f"source{index}.csv"
        write_contacts(source, 200, f"s{index}-")
        write_sync(config, f"sync{index}", source, data / f"target{index}.csv", 500)
    return config, state, listen


def all_idle(daemon: DaemonProcess) -> bool:
    syncs = daemon.get("/api/v1/status")["syncs"]
    return all(s["last_success_at"] and s["state"] == "idle" for s in syncs)


def wait_ready(daemon: DaemonProcess, timeout: float = 120.0) -> tuple[float, float]:
    """Seconds from start to READY=1, taken the moment the datagram arrives (not when a poll
    next looks), and the daemon's CPU seconds by then."""
    listener = daemon.notify
    assert listener is not None
    give_up = time.monotonic() + timeout
    while listener.find("READY", "1") is None:
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log_text()
        assert time.monotonic() < give_up, "no READY=1"
        readable, _, _ = select.select([listener.socket], [], [], 0.5)
        if readable:
            stamp = time.monotonic()
            listener.drain()
    found = listener.find("READY", "1")
    assert found is not None
    cpu = psutil.Process(daemon.pid).cpu_times()
    return min(found[0], stamp) - daemon.started_at, cpu.user + cpu.system


def bench_start_and_idle(repeats: int, tree: Path | None = None) -> dict[str, Any]:
    """``tree``: a directory holding another version's ``syncd`` package (``git archive REV
    syncd | tar -x -C TREE``), which the daemon then runs instead: it is started in that
    directory, and ``python -m`` puts it first on the module path."""
    prefix = ("env", f"--chdir={tree}") if tree is not None else ()
    fresh: list[float] = []
    restart: list[float] = []
    cpu: list[float] = []
    rss: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            config, state, listen = four_syncs(Path(tmp))
            with DaemonProcess(config, state, listen, prefix=prefix) as daemon:
                wall, used = wait_ready(daemon)
                fresh.append(wall)
                cpu.append(used)
                wait_until(lambda d=daemon: all_idle(d), 120, "the first runs")  # type: ignore[misc]
                time.sleep(2)  # let the allocator settle after the runs
                rss.append(psutil.Process(daemon.pid).memory_info().rss / 2**20)
                assert daemon.stop() == 0
            with DaemonProcess(config, state, listen, prefix=prefix) as daemon:
                wall, used = wait_ready(daemon)
                restart.append(wall)
                cpu.append(used)
                assert daemon.stop() == 0
    return {
        "ready_fresh_seconds": statistics.median(fresh),
        "ready_restart_seconds": statistics.median(restart),
        "ready_max_seconds": max(fresh + restart),
        "ready_cpu_seconds": statistics.median(cpu),
        "idle_rss_mb": statistics.median(rss),
        "idle_rss_max_mb": max(rss),
    }


def bench_status_during_sync(contacts: int, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        root = Path(tmp)
        config, state, data = root / "config", root / "state", root / "data"
        data.mkdir()
        listen = f"127.0.0.1:{free_port()}"
        write_daemon_config(config, listen, state)
        source = data / "big-a.csv"
        write_contacts(source, contacts, "p")
        write_sync(config, "big", source, data / "big-b.csv", batch)
        with DaemonProcess(config, state, listen) as daemon:
            daemon.wait_ready()
            client = daemon.client()
            # the sync never ran, so it starts within seconds by itself
            wait_until(lambda: daemon.get("/api/v1/syncs/big")["state"] == "running", 60, "the run")
            latencies: list[float] = []
            peak_rss = 0.0
            process = psutil.Process(daemon.pid)
            while True:
                started = time.perf_counter()
                status, body = client.request("GET", "/api/v1/status")
                latencies.append((time.perf_counter() - started) * 1000)
                assert status == 200, body
                if len(latencies) % 50 == 0:
                    peak_rss = max(peak_rss, process.memory_info().rss / 2**20)
                sync = body["syncs"][0]
                if sync["state"] != "running":
                    break
            run = sync["last_run"]
            stalls = loop_stalls(client.request("GET", "/metrics")[1])
            assert daemon.stop() == 0
    return {
        **stalls,
        "contacts": contacts,
        "batch_size": batch,
        "run_outcome": run["outcome"],
        "run_seconds": run["duration_seconds"],
        "status_requests": len(latencies),
        "status_p50_ms": percentile(latencies, 0.50),
        "status_p95_ms": percentile(latencies, 0.95),
        "status_p99_ms": percentile(latencies, 0.99),
        "status_max_ms": max(latencies),
        "rss_during_run_mb": peak_rss,
    }


def loop_stalls(metrics: Any) -> dict[str, Any]:
    """The daemon's loop watch: how many wake-ups were late by more than each bound, the worst."""
    text = metrics if isinstance(metrics, str) else json.dumps(metrics)
    counts = {
        float(bound): float(value)
        for bound, value in re.findall(
            r'syncd_event_loop_lag_seconds_bucket\{le="([0-9.e+-]+)"\} ([0-9.e+]+)', text
        )
    }
    total = re.search(r"syncd_event_loop_lag_seconds_count ([0-9.e+]+)", text)
    largest = re.search(r"syncd_event_loop_lag_max_seconds ([0-9.e+-]+)", text)
    busiest = re.search(r"syncd_event_loop_busy_max_seconds ([0-9.e+-]+)", text)
    busy = {
        float(bound): float(value)
        for bound, value in re.findall(
            r'syncd_event_loop_busy_seconds_bucket\{le="([0-9.e+-]+)"\} ([0-9.e+]+)', text
        )
    }
    count = float(total.group(1)) if total else 0.0
    return {
        "loop_busy_over_ms": {
            f"{bound * 1000:g}": count - below
            for bound, below in sorted(busy.items())
            if bound >= 0.02
        },
        "loop_busy_max_ms": float(busiest.group(1)) * 1000 if busiest else 0.0,
        "loop_wakeups": count,
        "loop_late_over_ms": {
            f"{bound * 1000:g}": count - below
            for bound, below in sorted(counts.items())
            if bound >= 0.02
        },
        "loop_stall_max_ms": float(largest.group(1)) * 1000 if largest else 0.0,
    }


def _sign_in(url: str, token: str) -> Any:
    import re

    import requests

    browser = requests.Session()
    form = browser.get(url + "/signin", timeout=60)
    field = re.search(r'name="signin_csrf" value="([^"]+)"', form.text)
    assert field, "no sign-in form"
    answer = browser.post(
        url + "/signin",
        data={"token": token, "signin_csrf": field.group(1)},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 303, answer.text
    return browser


def bench_console_during_sync(contacts: int, batch: int, consoles: int) -> dict[str, Any]:
    import threading

    import requests

    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        root = Path(tmp)
        config, state, data = root / "config", root / "state", root / "data"
        data.mkdir()
        listen = f"127.0.0.1:{free_port()}"
        write_daemon_config(config, listen, state)
        source = data / "big-a.csv"
        write_contacts(source, contacts, "p")
        write_sync(config, "big", source, data / "big-b.csv", batch)
        url = f"http://{listen}"
        with DaemonProcess(config, state, listen) as daemon:
            daemon.wait_ready()
            token = daemon.token()
            browser = _sign_in(url, token)
            page = browser.get(url + "/", timeout=60)
            weight = len(page.content)
            for asset in ("console.css", "console.js"):
                weight += len(browser.get(f"{url}/static/{asset}", timeout=60).content)
            # the consoles: each reads its event stream until the end
            streams = [
                _sign_in(url, token).get(url + "/api/v1/events", stream=True, timeout=600)
                for _ in range(consoles)
            ]
            received = [0] * consoles

            def read(index: int, answer: Any) -> None:
                try:
                    for line in answer.iter_lines():
                        if line.startswith(b"event:"):
                            received[index] += 1
                except (requests.RequestException, AttributeError, ValueError):
                    pass  # closed at the end

            readers = [
                threading.Thread(target=read, args=(i, answer), daemon=True)
                for i, answer in enumerate(streams)
            ]
            for reader in readers:
                reader.start()
            wait_until(lambda: daemon.get("/api/v1/syncs/big")["state"] == "running", 60, "run")
            overview: list[float] = []
            api: list[float] = []
            status_client = daemon.client()
            running = True
            while running:
                started = time.perf_counter()
                answer = browser.get(url + "/", timeout=60)
                overview.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200
                started = time.perf_counter()
                code, body = status_client.request("GET", "/api/v1/status")
                api.append((time.perf_counter() - started) * 1000)
                assert code == 200, body
                running = body["syncs"][0]["state"] == "running"
            run = body["syncs"][0]["last_run"]
            # the daemon first: it ends the streams, so the readers return and let go of the
            # responses (closing one while its reader waits for the next event, up to a 15 s
            # heartbeat, blocks on the reader's buffer lock)
            assert daemon.stop() == 0
            for answer in streams:
                answer.close()
    return {
        "console_contacts": contacts,
        "console_run_seconds": run["duration_seconds"],
        "consoles": consoles,
        "events_per_console": statistics.median(received),
        "overview_requests": len(overview),
        "overview_p50_ms": percentile(overview, 0.50),
        "overview_p99_ms": percentile(overview, 0.99),
        "api_p50_with_consoles_ms": percentile(api, 0.50),
        "api_p99_with_consoles_ms": percentile(api, 0.99),
        "page_weight_kb": weight / 1000,
    }


def console_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (
            f"web console during a sync of {figures['console_contacts']:,} contacts",
            f"{figures['console_run_seconds']:.1f} s run",
        ),
        (
            f"  {figures['consoles']} consoles on the event stream",
            f"{figures['events_per_console']:.0f} events each (median)",
        ),
        ("  overview page requests", f"{figures['overview_requests']:,}"),
        ("  overview page latency p50", f"{figures['overview_p50_ms']:.1f} ms"),
        ("  overview page latency p99", f"{figures['overview_p99_ms']:.1f} ms"),
        ("  GET /api/v1/status p50 beside them", f"{figures['api_p50_with_consoles_ms']:.1f} ms"),
        ("  GET /api/v1/status p99 beside them", f"{figures['api_p99_with_consoles_ms']:.1f} ms"),
        ("overview + console.css + console.js", f"{figures['page_weight_kb']:.1f} kB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="batch_size of the CSV target")
    parser.add_argument("--repeats", type=int, default=3, help="start/idle measurements")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--consoles", type=int, default=CONSOLES, help="open event streams")
    parser.add_argument(
        "--only", choices=("console", "start", "sync"), help="measure only this part"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="TREE",
        help="with --only start: alternate with the syncd package in TREE (another commit's, "
        "from git archive), one start/idle measurement each per repeat, and print both",
    )
    args = parser.parse_args()

    machine = f"{platform.machine()}, {psutil.cpu_count()} CPUs, Python {platform.python_version()}"
    if args.only == "console":
        console = {
            "machine": machine,
            **bench_console_during_sync(args.contacts, args.batch, args.consoles),
        }
        if args.json:
            print(json.dumps(console, indent=2))
            return
        report(
            console,
            console_rows(console),
            ("overview_p99_ms", "api_p99_with_consoles_ms", "page_weight_kb"),
        )
        return
    if args.against is not None:
        compare_start(args.against.resolve(), args.repeats, machine)
        return
    figures: dict[str, Any] = {"machine": machine}
    rows: list[tuple[str, str]] = []
    checked: dict[str, float] = {}
    if args.only in (None, "start"):
        figures.update(bench_start_and_idle(args.repeats))
        rows += start_rows(figures)
        checked["idle_rss_mb"] = figures["idle_rss_max_mb"]
        checked["ready_seconds"] = figures["ready_max_seconds"]
    if args.only in (None, "sync"):
        figures.update(bench_status_during_sync(args.contacts, args.batch))
        rows += sync_rows(figures)
        checked["status_p99_ms"] = figures["status_p99_ms"]
        checked["status_max_ms"] = figures["status_max_ms"]
    names: tuple[str, ...] = tuple(checked)
    if args.only is None:
        figures.update(bench_console_during_sync(args.contacts, args.batch, args.consoles))
        rows += console_rows(figures)
        names += ("overview_p99_ms", "api_p99_with_consoles_ms", "page_weight_kb")
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    report({**figures, **checked}, rows, names)


def compare_start(tree: Path, repeats: int, machine: str) -> None:
    runs: dict[str, list[dict[str, Any]]] = {"this": [], str(tree): []}
    for _ in range(repeats):
        runs["this"].append(bench_start_and_idle(1))
        runs[str(tree)].append(bench_start_and_idle(1, tree))
    print(f"syncd daemon start, alternating ({machine}; load average {load_average()})")
    for name, found in runs.items():
        median = {key: statistics.median(run[key] for run in found) for key in found[0]}
        print(
            f"  {name}: READY fresh {median['ready_fresh_seconds']:.2f} s, restart "
            f"{median['ready_restart_seconds']:.2f} s, CPU by READY "
            f"{median['ready_cpu_seconds']:.2f} s, idle RSS {median['idle_rss_mb']:.1f} MB "
            f"(medians of {repeats})"
        )


def start_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("start to READY=1, fresh state (median)", f"{figures['ready_fresh_seconds']:.2f} s"),
        ("start to READY=1, restart (median)", f"{figures['ready_restart_seconds']:.2f} s"),
        ("start to READY=1, worst", f"{figures['ready_max_seconds']:.2f} s"),
        ("daemon CPU time by READY=1 (median)", f"{figures['ready_cpu_seconds']:.2f} s"),
        ("idle RSS, four syncs (median)", f"{figures['idle_rss_mb']:.1f} MB"),
        ("idle RSS, four syncs (worst)", f"{figures['idle_rss_max_mb']:.1f} MB"),
    ]


def sync_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (
            f"sync of {figures['contacts']:,} contacts (batch {figures['batch_size']})",
            f"{figures['run_seconds']:.1f} s, {figures['run_outcome']}",
        ),
        ("  GET /api/v1/status requests meanwhile", f"{figures['status_requests']:,}"),
        ("  status latency p50", f"{figures['status_p50_ms']:.1f} ms"),
        ("  status latency p95", f"{figures['status_p95_ms']:.1f} ms"),
        ("  status latency p99", f"{figures['status_p99_ms']:.1f} ms"),
        ("  status latency max", f"{figures['status_max_ms']:.1f} ms"),
        ("  daemon RSS during the run (peak seen)", f"{figures['rss_during_run_mb']:.1f} MB"),
        ("  event loop: wake-ups watched", f"{figures['loop_wakeups']:,.0f}"),
        *(
            (f"  event loop: wake-ups late > {bound} ms", f"{late:,.0f}")
            for bound, late in figures["loop_late_over_ms"].items()
            if bound in ("20", "50", "100", "200", "500", "1000")
        ),
        ("  event loop: longest stall", f"{figures['loop_stall_max_ms']:.0f} ms"),
        *(
            (f"  event loop: computing > {bound} ms at a stretch", f"{late:,.0f}")
            for bound, late in figures["loop_busy_over_ms"].items()
            if bound in ("20", "50", "100", "200")
        ),
        ("  event loop: longest computing stretch", f"{figures['loop_busy_max_ms']:.0f} ms"),
    ]


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in psutil.getloadavg())


def report(figures: dict[str, Any], rows: list[tuple[str, str]], checked: tuple[str, ...]) -> None:
    print(f"syncd daemon benchmark ({figures['machine']}; load average {load_average()})")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    units = {"ms": "ms", "mb": "MB", "seconds": "s", "kb": "kB"}
    print(
        "targets: "
        + ", ".join(
            f"{name} ≤ {TARGETS[name]:g} {units[name.rsplit('_', 1)[1]]}" for name in checked
        )
    )
    failed = [name for name in checked if figures[name] > TARGETS[name]]
    if failed:
        print(f"over target: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Daemon benchmark: a real ``syncd run`` subprocess, measured from outside.

1. Start to ``READY=1`` (received on a notify socket, as systemd would), with four syncs
   configured: on a fresh state directory (the database is created and migrated) and on a restart.
2. Idle RSS of the daemon with those four syncs, once their first runs are done.
3. The latency of ``GET /api/v1/status`` (a new connection per request, as ``syncd status``
   makes) while a sync of N contacts runs (CSV to CSV; the first merge of N new contacts),
   polled back to back for the whole run; and the run's own duration.

    .venv/bin/python bench/daemon.py                       # 100,000 contacts
    .venv/bin/python bench/daemon.py --contacts 20000 --repeats 5

Targets: status p99 ≤ 100 ms during the 100,000-contact sync; idle RSS ≤ 120 MB; start to READY
≤ 2 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

TARGETS = {"status_p99_ms": 100.0, "idle_rss_mb": 120.0, "ready_seconds": 2.0}


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


def bench_start_and_idle(repeats: int) -> dict[str, Any]:
    fresh: list[float] = []
    restart: list[float] = []
    rss: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            config, state, listen = four_syncs(Path(tmp))
            with DaemonProcess(config, state, listen) as daemon:
                fresh.append(daemon.wait_ready())
                wait_until(lambda d=daemon: all_idle(d), 120, "the first runs")  # type: ignore[misc]
                time.sleep(2)  # let the allocator settle after the runs
                rss.append(psutil.Process(daemon.pid).memory_info().rss / 2**20)
                assert daemon.stop() == 0
            with DaemonProcess(config, state, listen) as daemon:
                restart.append(daemon.wait_ready())
                assert daemon.stop() == 0
    return {
        "ready_fresh_seconds": statistics.median(fresh),
        "ready_restart_seconds": statistics.median(restart),
        "ready_max_seconds": max(fresh + restart),
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
            assert daemon.stop() == 0
    return {
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="batch_size of the CSV target")
    parser.add_argument("--repeats", type=int, default=3, help="start/idle measurements")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    figures = {
        "machine": f"{platform.machine()}, {psutil.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        **bench_start_and_idle(args.repeats),
        **bench_status_during_sync(args.contacts, args.batch),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    rows = [
        ("start to READY=1, fresh state (median)", f"{figures['ready_fresh_seconds']:.2f} s"),
        ("start to READY=1, restart (median)", f"{figures['ready_restart_seconds']:.2f} s"),
        ("start to READY=1, worst", f"{figures['ready_max_seconds']:.2f} s"),
        ("idle RSS, four syncs (median)", f"{figures['idle_rss_mb']:.1f} MB"),
        ("idle RSS, four syncs (worst)", f"{figures['idle_rss_max_mb']:.1f} MB"),
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
    ]
    print(f"syncd daemon benchmark ({figures['machine']})")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print(
        f"targets: status p99 ≤ {TARGETS['status_p99_ms']:.0f} ms, idle RSS ≤ "
        f"{TARGETS['idle_rss_mb']:.0f} MB, READY ≤ {TARGETS['ready_seconds']:.0f} s"
    )
    failed = [
        name
        for name, value in (
            ("status_p99_ms", figures["status_p99_ms"]),
            ("idle_rss_mb", figures["idle_rss_max_mb"]),
            ("ready_seconds", figures["ready_max_seconds"]),
        )
        if value > TARGETS[name]
    ]
    if failed:
        print(f"over target: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()

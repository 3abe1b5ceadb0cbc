"""What a bare aiohttp client spends per request, by how long the server takes to answer.

    .venv/bin/python bench/http_floor.py [--requests 1000] [--latency-ms 0 35] [--repeat 3]

A server process (aiohttp, on 127.0.0.1) answers each PUT after ``--latency-ms``; a client in
this process, with nothing but aiohttp (no syncd), sends ``--requests`` PUTs of a vCard's size
at concurrency 1 and 4. It prints the client's own CPU (this thread's user+system time) per
request, medians of ``--repeat`` runs.

Why (issue 22, first sync's client CPU): Radicale takes 20-70 ms a PUT and answers one request
at a time, so a CardDAV client waits for every answer; each wait puts the process to sleep
and each answer wakes it, which costs the client several times the exchange itself (measured
here: ~150 us a request against a server answering at once, ~450 us against one answering in
35 ms). That part of a first sync's client CPU is the same for every aiohttp client (vdirsyncer
uses aiohttp too), and no client-side change removes it short of sending fewer requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp
from syncd_carddav.servers import wait_for_port

from syncd.testing.daemon import free_port

SERVER = """
import asyncio, sys
from aiohttp import web

async def answer(request):
    await request.read()
    if float(sys.argv[2]):
        await asyncio.sleep(float(sys.argv[2]))
    return web.Response(status=201, headers={"ETag": '"e"'})

app = web.Application()
app.router.add_route("*", "/{name}", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
BODY = b"BEGIN:VCARD\r\nVERSION:3.0\r\n" + b"X-PAD:" + b"x" * 400 + b"\r\nEND:VCARD\r\n"


async def client_cpu_per_request(port: int, requests: int, concurrency: int) -> float:
    """Microseconds of this thread's CPU per request."""
    timeout = aiohttp.ClientTimeout(total=60, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        gate = asyncio.Semaphore(concurrency)

        async def put(n: int) -> None:
            async with (
                gate,
                session.put(
                    f"http://127.0.0.1:{port}/c{n}.vcf",
                    data=BODY,
                    headers={"If-None-Match": "*", "Content-Type": "text/vcard"},
                ) as response,
            ):
                await response.read()

        await put(-1)  # the connection, and aiohttp's first-use work, are not the figure
        started = time.thread_time()
        await asyncio.gather(*(put(n) for n in range(requests)))
        return (time.thread_time() - started) / requests * 1e6


async def measure(port: int, requests: int, repeat: int) -> dict[int, float]:
    figures: dict[int, list[float]] = {1: [], 4: []}
    for _ in range(repeat):
        for concurrency in figures:
            figures[concurrency].append(await client_cpu_per_request(port, requests, concurrency))
    return {c: statistics.median(runs) for c, runs in figures.items()}


def with_server(latency_ms: float, requests: int, repeat: int) -> dict[int, float]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(latency_ms / 1000)],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, time.monotonic() + 30)
        return asyncio.run(measure(port, requests, repeat))
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 35.0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"aiohttp {aiohttp.__version__}: a bare client's CPU per PUT (us), medians of {args.repeat}"
    )
    print(f"{'server latency':>16} {'concurrency 1':>14} {'concurrency 4':>14}")
    for latency in args.latency_ms:
        figures = with_server(latency, args.requests, args.repeat)
        print(f"{latency:>13.0f} ms {figures[1]:>14.0f} {figures[4]:>14.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

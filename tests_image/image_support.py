"""Helpers of ``make image-test``: the image built from the real Dockerfile on a debootstrap base,
run with podman (runc), and a container booted with systemd as PID 1.

Not collected by ``make test`` (pytest's testpaths are tests/ and plugins/). Every test here
runs real containers; a missing tool is an error, never a skip (``make image-test`` installs
podman, runc and debootstrap first).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = os.environ.get("PODMAN_RUNTIME", "/usr/sbin/runc")


def _ulimits() -> list[str]:
    """The host's own limits: podman's defaults (nofile 1048576) are above what runc may set
    here (no CAP_SYS_RESOURCE), and so is ``--ulimit host``."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def podman(
    *args: str, check: bool = True, timeout: float = 600, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", "--runtime", RUNTIME, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)}: exit {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def run_args() -> list[str]:
    """What every ``podman run`` here needs: limits runc may set (the network: see Site.args)."""
    return _ulimits()


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something true; the timeout only ends a broken test."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    from syncd.testing.daemon import free_port as _free_port

    return _free_port()


@dataclass(frozen=True)
class Images:
    image: str
    systemd_image: str
    size: int
    #: the debootstrap base standing in for python:3.11-slim-bookworm (PYTHON_IMAGE)
    base: str


class Container:
    """One detached container; removed (with its logs checked by the test) afterwards."""

    def __init__(self, image: str, args: list[str], command: list[str]) -> None:
        self.name = f"syncd-test-{uuid.uuid4().hex[:10]}"
        self.image = image
        self.args = args
        self.command = command

    def start(self) -> Container:
        podman("run", "-d", "--name", self.name, *run_args(), *self.args, self.image, *self.command)
        return self

    def inspect(self) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(podman("inspect", self.name).stdout)
        return data[0]

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(
        self, *args: str, check: bool = True, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra = ["--user", user] if user else []
        return podman("exec", *extra, self.name, *args, check=check)

    def host_pid(self) -> int:
        return int(self.inspect()["State"]["Pid"])

    def syncd_pid(self) -> int:
        """The host pid of the syncd process: tini's (PID 1's) only child."""
        tini = self.host_pid()
        children = Path(f"/proc/{tini}/task/{tini}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)

"""Fixtures of ``make image-test``: the image built from the real Dockerfile on a debootstrap base,
run with podman (runc), and a container booted with systemd as PID 1.

Not collected by ``make test`` (pytest's testpaths are tests/ and plugins/). Every test here
runs real containers; a missing tool is an error, never a skip (``make image-test`` installs
podman, runc and debootstrap first). The helpers are in image_support.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

# the helpers beside this file (pytest's importlib mode does not put this folder on sys.path)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from image_support import ROOT, RUNTIME, Container, Images


@pytest.fixture(scope="session")
def images() -> Images:
    for tool in ("podman", "debootstrap", RUNTIME):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make image-test`, which installs it")
    env = {k: v for k, v in os.environ.items() if k.startswith("SYNCD_TEST_")}
    wanted = {"SYNCD_TEST_IMAGE", "SYNCD_TEST_SYSTEMD_IMAGE", "SYNCD_TEST_IMAGE_SIZE"}
    if (wanted | {"SYNCD_TEST_PYTHON_BASE"}) - env.keys():
        built = subprocess.run(
            ["sh", str(ROOT / "contrib/image/build.sh")],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        sys.stderr.write(built.stderr)
        assert built.returncode == 0, built.stderr[-3000:]
        env = dict(line.split("=", 1) for line in built.stdout.split() if "=" in line)
    return Images(
        env["SYNCD_TEST_IMAGE"],
        env["SYNCD_TEST_SYSTEMD_IMAGE"],
        int(env["SYNCD_TEST_IMAGE_SIZE"]),
        env["SYNCD_TEST_PYTHON_BASE"],
    )


@pytest.fixture
def containers() -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def make(image: str, *args: str, command: tuple[str, ...] = ()) -> Container:
        container = Container(image, list(args), list(command))
        made.append(container)
        return container.start()

    yield make
    for container in made:
        container.remove()

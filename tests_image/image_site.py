"""A user's folders for one container: config (mounted read-only), data, CSV files, secrets."""

from __future__ import annotations

import json
import os
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from image_support import free_port

UID = 10001


class Site:
    def __init__(self, root: Path, shutdown_deadline: str = "10s", extra_toml: str = "") -> None:
        self.root = root
        self.config = root / "config"
        self.data = root / "data"
        self.csv = root / "csv"
        self.secrets = root / "secrets"
        for path in (self.config / "syncs", self.data, self.csv, self.secrets):
            path.mkdir(parents=True, exist_ok=True)
        # the CSV files are the apps: writable by the container's user; /data starts root's,
        # as a fresh bind mount does (the entrypoint hands it to the user)
        os.chown(self.csv, UID, UID)
        self.port = free_port()
        (self.config / "syncd.toml").write_text(
            textwrap.dedent(
                f"""
                [daemon]
                log_format = "json"
                log_level = "info"
                shutdown_deadline = "{shutdown_deadline}"
                """
            )
            + textwrap.dedent(extra_toml)
        )

    def sync(self, name: str, body: str) -> None:
        (self.config / "syncs" / f"{name}.toml").write_text(textwrap.dedent(body))

    def people(self, name: str, rows: list[tuple[str, str]]) -> Path:
        path = self.csv / name
        path.write_text("email,first_name\n" + "".join(f"{e},{n}\n" for e, n in rows))
        os.chown(path, UID, UID)
        return path

    def secret(self, name: str, value: str) -> Path:
        path = self.secrets / name
        path.write_text(value + "\n")
        # a mounted secret is usually root's 0600 on the host; the container user must read it
        os.chown(path, UID, UID)
        path.chmod(0o600)
        return path

    def args(self, *extra: str, published: bool = False) -> list[str]:
        """The mounts; the API on the host's loopback port ``self.port``: published from the
        image's 0.0.0.0:8765 on podman's bridge network, or (the default, cheaper) listening
        on it directly with ``--network host``."""
        network = (
            ["--network", "bridge", "-p", f"127.0.0.1:{self.port}:8765"]
            if published
            else ["--network", "host", "-e", f"SYNCD_API_LISTEN=127.0.0.1:{self.port}"]
        )
        return [
            "-v", f"{self.config}:/config:ro",
            "-v", f"{self.data}:/data",
            "-v", f"{self.csv}:/csv",
            "-v", f"{self.secrets}:/run/secrets:ro",
            *network,
            *extra,
        ]  # fmt: skip

    def token(self) -> str:
        return (self.data / "api-token").read_text().strip()

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        if token is None:
            try:
                token = self.token()
            except FileNotFoundError:  # not generated yet: the daemon is still starting
                return 0, None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        request.add_header("Authorization", f"Bearer {token}")
        try:
            # generous: an answer on a loaded machine is late, not lost (a test reads it once)
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except OSError:
            return 0, None

    def healthz(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

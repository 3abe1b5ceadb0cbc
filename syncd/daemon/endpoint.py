"""Where the local API listens, and its bearer token: shared by the daemon and the control commands.

The listen address comes from ``--listen`` (``syncd run``), then ``$SYNCD_API_LISTEN`` (the
container sets ``0.0.0.0:8765``), then ``[api] listen``. The token comes from ``[api] token``,
or else from ``<state_dir>/api-token``, which the daemon creates with mode 0600 on first start.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from syncd.redact import register_secret

LISTEN_ENV = "SYNCD_API_LISTEN"
TOKEN_FILE = "api-token"


@dataclass(frozen=True)
class Endpoint:
    """``host:port`` or ``unix:/path``."""

    host: str | None = None
    port: int | None = None
    path: str | None = None

    @classmethod
    def parse(cls, listen: str) -> Endpoint:
        if listen.startswith("unix:"):
            path = listen[len("unix:") :]
            if not path:
                raise ValueError("unix: needs a socket path")
            return cls(path=path)
        host, sep, port = listen.rpartition(":")
        host = host.strip("[]")  # [::1]:8765
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT or unix:PATH, got {listen!r}")
        return cls(host=host, port=int(port))

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def connect_host(self) -> str:
        """The address a client on this machine dials: a wildcard bind is reached on loopback."""
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host or "127.0.0.1"

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self) -> str:
        """A URL for people (the unix socket form is curl's ``--unix-socket`` hint)."""
        if self.path is not None:
            return f"http://localhost (curl --unix-socket {self.path})"
        host = self.connect_host()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


def choose_listen(option: str | None, configured: str) -> str:
    return option or os.environ.get(LISTEN_ENV) or configured


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def read_token_file(state_dir: Path) -> str | None:
    try:
        token = token_path(state_dir).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if token:
        register_secret(token)
    return token or None


def ensure_token_file(state_dir: Path) -> str:
    """The generated token, created (mode 0600, never wider) on first start."""
    path = token_path(state_dir)
    existing = read_token_file(state_dir)
    if existing is not None:
        # someone may have loosened it; a directory we do not own keeps its mode
        with contextlib.suppress(PermissionError):
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    register_secret(token)
    temp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    # created 0600 from the start (O_EXCL: never through a file someone else planted)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return token


def configured_token(api_token: str | None, state_dir: Path) -> str | None:
    """What a client sends: the configured token, else the generated one (None: not readable)."""
    if api_token:
        return api_token
    try:
        return read_token_file(state_dir)
    except PermissionError:
        return None

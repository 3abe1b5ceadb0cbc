"""Durable OAuth token storage: one JSON file per token set, mode 0600, replaced atomically.

Xero rotates refresh tokens: every refresh returns a new refresh token and the old one dies (after
a 30-minute grace period). Losing the new one means asking the user to authorise again, so a token
set is written to disk, flushed and fsynced, and renamed over the old file **before** the new
access token is used. A sidecar lock file (``fcntl.flock``) makes sure that only one process
refreshes a token set at a time; within a process an asyncio lock does the same (see
:mod:`syncd_xero.oauth`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass
class TokenSet:
    """What the token endpoint gave us, plus what we resolved with it (the tenant)."""

    access_token: str
    expires_at: float
    refresh_token: str | None = None
    #: when the refresh token was last used or issued (Xero expires it after 60 idle days)
    refreshed_at: float = 0.0
    scope: str = ""
    tenant_id: str | None = None
    tenant_name: str | None = None

    def __repr__(self) -> str:
        # never print the tokens themselves
        return (
            f"TokenSet(expires_at={self.expires_at:.0f}, refreshed_at={self.refreshed_at:.0f}, "
            f"has_refresh_token={self.refresh_token is not None}, tenant={self.tenant_name!r})"
        )

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return self.expires_at - (time.time() if now is None else now) < seconds

    @classmethod
    def from_response(
        cls, body: dict[str, Any], previous: TokenSet | None = None, now: float | None = None
    ) -> TokenSet:
        now = time.time() if now is None else now
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token response has no access_token")
        expires_in = float(body.get("expires_in") or 1800)
        refresh = body.get("refresh_token")
        return cls(
            access_token=access,
            expires_at=now + expires_in,
            # a response without a refresh token keeps the one we had (never for Xero's
            # authorization-code grant, but cheap robustness)
            refresh_token=refresh
            if isinstance(refresh, str) and refresh
            else (previous.refresh_token if previous else None),
            refreshed_at=now,
            scope=str(body.get("scope") or (previous.scope if previous else "")),
            tenant_id=previous.tenant_id if previous else None,
            tenant_name=previous.tenant_name if previous else None,
        )


class TokenFile:
    """A token set on disk at ``path`` with its lock file beside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def load(self) -> TokenSet | None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        known = {f.name for f in fields(TokenSet)}
        try:
            return TokenSet(**{k: v for k, v in raw.items() if k in known})
        except TypeError:
            return None

    def save(self, tokens: TokenSet) -> None:
        """Write atomically and durably: temp file (0600) → flush → fsync → rename → fsync dir."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = json.dumps(asdict(tokens), indent=2, sort_keys=True).encode()
        handle, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def acquire(self) -> int:
        """Take the cross-process refresh lock; blocks, so call it from a worker thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def release(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The refresh lock as a (blocking) context manager, for tests and tools."""
        fd = self.acquire()
        try:
            yield
        finally:
            self.release(fd)

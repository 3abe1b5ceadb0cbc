"""Console sign-ins: sessions, one-time sign-in codes and the failed sign-in throttle.

A session is a random 256-bit id in an HttpOnly, SameSite=Strict cookie. The daemon keeps only
the SHA-256 of each id (with its CSRF token, creation and expiry times) in
``<state_dir>/console-sessions.json`` (mode 0600), so that sessions survive a restart of the
daemon (an upgrade, a reboot) without the file being enough to sign in: the file holds no cookie.
Every session is also bound to the API token it was signed in with (an HMAC of it): changing
``[api] token`` (or deleting the generated ``api-token`` file) signs every console out.

One-time codes (``syncd console``) live in memory only, for :data:`CODE_LIFETIME` seconds, and
are good for one sign-in. They are never logged (the API has no access log, and the daemon's own
log lines never carry them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from syncd.logs import get_logger

log = get_logger("syncd.console")

SESSIONS_FILE = "console-sessions.json"
#: how long a code printed by ``syncd console`` can be used
CODE_LIFETIME = 120.0
#: failed sign-ins from one address within THROTTLE_WINDOW seconds before it must wait
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = 60.0
#: at most this many unused codes are kept
MAX_CODES = 100
#: at most this many sessions are kept (the oldest go first)
MAX_SESSIONS = 1000


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def token_mark(token: str) -> str:
    """What binds a session to the API token, without keeping the token."""
    return hmac.new(token.encode(), b"syncd console session", hashlib.sha256).hexdigest()[:32]


@dataclass
class Session:
    key: str
    csrf: str
    created: float
    expires: float
    mark: str
    #: notices to show on the next page (not kept across restarts)
    flash: list[str] = field(default_factory=list)

    def stored(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("flash")
        return data


class Sessions:
    def __init__(
        self, path: Path | None, lifetime: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.lifetime = lifetime
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    # --- the file ---------------------------------------------------------------------------

    def load(self) -> None:
        if self.path is None:
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("console sessions unreadable; everyone signs in again", error=str(exc))
            return
        now = self.clock()
        for item in raw.get("sessions", []) if isinstance(raw, dict) else []:
            try:
                session = Session(
                    str(item["key"]),
                    str(item["csrf"]),
                    float(item["created"]),
                    float(item["expires"]),
                    str(item["mark"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
            if session.expires > now:
                self._sessions[session.key] = session

    def _write(self, items: list[dict[str, Any]]) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{SESSIONS_FILE}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"sessions": items}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def _save(self) -> None:
        if self.path is None:
            return
        items = [s.stored() for s in self._sessions.values()]
        async with self._lock:
            await asyncio.to_thread(self._write, items)

    # --- sessions ---------------------------------------------------------------------------

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.created)
            del self._sessions[oldest.key]

    async def create(self, token: str) -> tuple[str, Session]:
        """A new session; returns the cookie value (never kept) and the session."""
        self._prune()
        cookie = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(
            digest(cookie), secrets.token_urlsafe(32), now, now + self.lifetime, token_mark(token)
        )
        self._sessions[session.key] = session
        await self._save()
        return cookie, session

    def get(self, cookie: str | None, token: str) -> Session | None:
        if not cookie or len(cookie) > 200 or not token:
            return None
        session = self._sessions.get(digest(cookie))
        if session is None:
            return None
        if session.expires <= self.clock() or not hmac.compare_digest(
            session.mark, token_mark(token)
        ):
            self._sessions.pop(session.key, None)
            return None
        return session

    async def end(self, session: Session) -> None:
        self._sessions.pop(session.key, None)
        await self._save()


class SignInCodes:
    """The one-time codes of ``syncd console``."""

    def __init__(
        self, lifetime: float = CODE_LIFETIME, clock: Callable[[], float] = time.monotonic
    ):
        self.lifetime = lifetime
        self.clock = clock
        self._codes: dict[str, float] = {}

    def issue(self) -> str:
        now = self.clock()
        self._codes = {k: v for k, v in self._codes.items() if v > now}
        while len(self._codes) >= MAX_CODES:  # a script asking in a loop: the oldest go
            del self._codes[next(iter(self._codes))]
        code = secrets.token_urlsafe(18)
        self._codes[digest(code)] = now + self.lifetime
        return code

    def redeem(self, code: str) -> bool:
        """Whether ``code`` is good; a good code is gone afterwards."""
        if not code or len(code) > 100:
            return False
        expires = self._codes.pop(digest(code), None)
        return expires is not None and expires > self.clock()


class Throttle:
    """At most :data:`THROTTLE_FAILURES` failed sign-ins per address per window; past that, the
    address is refused (even with the right token) until the oldest failure leaves the window."""

    def __init__(
        self,
        failures: int = THROTTLE_FAILURES,
        window: float = THROTTLE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window = window
        self.clock = clock
        self._failed: dict[str, collections.deque[float]] = {}

    def wait(self, address: str) -> float:
        """Seconds the address must wait before it may try again (0: it may try now)."""
        now = self.clock()
        times = self._failed.get(address)
        if not times:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failed[address]
            return 0.0
        if len(times) < self.failures:
            return 0.0
        return max(0.0, times[0] + self.window - now)

    def failed(self, address: str) -> None:
        if len(self._failed) > 10_000:  # a flood of addresses: forget the idle ones
            now = self.clock()
            self._failed = {
                a: t for a, t in self._failed.items() if t and t[-1] > now - self.window
            }
        self._failed.setdefault(address, collections.deque(maxlen=self.failures)).append(
            self.clock()
        )

    def succeeded(self, address: str) -> None:
        self._failed.pop(address, None)

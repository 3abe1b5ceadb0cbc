"""A small blocking client of the local API, for the control commands.

The standard library's ``http.client`` rather than aiohttp: a control command makes one or two
requests and exits, and ``syncd healthcheck`` runs every 30 s in a container, so start-up cost
matters more than anything else here. Unix sockets are dialled by overriding ``connect``.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from syncd.daemon.endpoint import Endpoint

DEFAULT_TIMEOUT = 30.0


class DaemonUnreachable(Exception):
    """Nothing answers at the API address (the daemon is not running, or elsewhere)."""


class ApiError(Exception):
    """The daemon answered with an error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    def __init__(
        self, endpoint: Endpoint, token: str | None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.endpoint.path is not None:
            return _UnixConnection(self.endpoint.path, self.timeout)
        return http.client.HTTPConnection(
            self.endpoint.connect_host(), self.endpoint.port, timeout=self.timeout
        )

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True
    ) -> tuple[int, Any]:
        """``(status, decoded JSON or text)``; raises :class:`DaemonUnreachable`."""
        headers = {"Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = self._connection()
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            status = response.status
            content_type = response.getheader("Content-Type", "")
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise DaemonUnreachable(
                f"no daemon answers at {self.endpoint} ({reason}); is 'syncd run' running?"
            ) from None
        finally:
            connection.close()
        text = raw.decode("utf-8", errors="replace")
        if content_type.startswith("application/json"):
            try:
                return status, json.loads(text)
            except ValueError:
                pass
        return status, text

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The decoded body of a successful answer; raises :class:`ApiError` otherwise."""
        status, data = self.request(method, path, body)
        if status >= 400:
            code, message = "http_error", f"HTTP {status}"
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                code = str(data["error"].get("code", code))
                message = str(data["error"].get("message", message))
            raise ApiError(status, code, message)
        return data

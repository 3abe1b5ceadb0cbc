"""The typed failures a connector raises for what stops a run.

They live in a module of their own so that :mod:`syncd.connector` (the contract) and
:mod:`syncd.http` (the shared HTTP client, which turns answers into these failures) can both
import them without importing each other. Connector code imports them from
:mod:`syncd.connector`, which re-exports them.
"""

from __future__ import annotations

__all__ = [
    "ConnectorConfigError",
    "ConnectorError",
    "NeedsReauth",
    "RateBudgetExhausted",
    "RecordRejected",
    "RetryLater",
]


class ConnectorError(Exception):
    """Base of every failure a connector reports. Its message must never contain a secret."""


class RetryLater(ConnectorError):
    """The app cannot be used now (down, throttled); the run checkpoints and retries later.

    ``delay`` is how long to wait in seconds, when the app said so (``Retry-After``).
    """

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class RateBudgetExhausted(RetryLater):
    """A long budget (a daily limit) is spent: do not retry before ``delay`` seconds."""


class NeedsReauth(ConnectorError):
    """The app refused the credentials (revoked grant, expired refresh token, bad API key).

    The sync is put in the ``needs_auth`` state; ``fix`` says what the user should run or change.
    """

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class ConnectorConfigError(ConnectorError):
    """A setting is wrong in a way only the app could tell (unknown tenant, wrong list URL)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class RecordRejected(ConnectorError):
    """One record was refused by the app; ``str(exc)`` is the app's own reason."""

"""Logging through structlog: JSON for machines, console for people, secrets redacted.

Standard-library loggers (aiohttp, peewee, apscheduler) are routed through the same processors,
so every line leaving the process passes the redaction step (rule 12). Per-run context (sync
name, run id) is bound with ``structlog.contextvars`` and shows on every line of that run.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from syncd.redact import redact, redact_data


def _redact_event(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, dict | list | tuple):
            event[key] = redact_data(value)
        elif isinstance(value, BaseException):
            event[key] = redact(f"{type(value).__name__}: {value}")
    return event


def _redact_rendered(_: WrappedLogger, __: str, event: Any) -> Any:
    # the final line too: exception text rendered by format_exc_info is checked again here
    return redact(event) if isinstance(event, str) else event


def configure(fmt: str | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up logging once per process. ``fmt`` None picks console on a TTY, JSON otherwise."""
    stream = stream or sys.stderr
    if fmt is None:
        fmt = "console" if stream.isatty() else "json"
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if fmt == "json" else _noop,
        _redact_event,
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
            _redact_rendered,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # the access log of the local API and peewee's SQL echo are noise at info level
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("peewee").setLevel(logging.WARNING)


def _noop(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    return event


def get_logger(name: str = "syncd") -> Any:
    return structlog.get_logger(name)

"""Logging through structlog: JSON for machines, console for people, secrets redacted.

Standard-library loggers (aiohttp, peewee, apscheduler) are routed through the same processors,
so every line leaving the process passes the redaction step (rule 12). Per-run context (sync
name, run id) is bound with ``structlog.contextvars`` and shows on every line of that run.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

if "structlog" not in sys.modules:
    # structlog imports, when they are installed, rich and better_exceptions (structlog.dev,
    # to render tracebacks with them, local variables included) and greenlet (for its
    # deprecated thread-local context). They come with test dependencies (schemathesis,
    # playwright) and cost about 4 MB of a daemon's resident memory. syncd renders tracebacks
    # plainly (configure() below) and keeps its context in contextvars, so structlog is
    # imported with the three hidden: ``sys.modules[name] = None`` makes ``import name`` fail,
    # as structlog expects when they are not installed. Whoever imported them before gets the
    # ordinary structlog (tests/test_daemon_startup.py).
    _hidden = [n for n in ("rich", "better_exceptions", "greenlet") if n not in sys.modules]
    for _name in _hidden:
        sys.modules[_name] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        for _name in _hidden:
            if sys.modules.get(_name, "") is None:
                del sys.modules[_name]

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
        # plain tracebacks whatever is installed: rich's would show local variables (secrets)
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
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

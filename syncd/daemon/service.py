"""The daemon's lifecycle: start-up, signals, reload and the shutdown deadline.

Start-up order, and why: the config is loaded first (a bad config exits with status 2 before
anything else happens); then the store is opened and migrated; then the scheduler starts and the
API listens; only then is ``READY=1`` sent, so that systemd (``Type=notify``) and anyone waiting
on it see a daemon that can answer.

Signals are handled on the event loop (``loop.add_signal_handler``), which also makes SIGTERM work
when Python is PID 1 in a container without an init: PID 1 gets no default signal actions, only
the handlers it installs.

* SIGTERM, SIGINT: stop scheduling, ask running syncs to checkpoint (their ``stop`` event: each
  stops after its current batch, with everything committed), wait for them up to
  ``daemon.shutdown_deadline``, cancel what is left, close the API, exit 0. A second signal
  stops waiting; any later one is ignored (it is stopping already).
* SIGHUP (and ``POST /api/v1/reload``): read the config again. Added, removed and changed syncs
  take effect at once; an invalid config leaves the running one in place and the error shows
  in ``syncd status``.

The daemon knows nothing of HTTP routes: whoever starts it hands it the factory of its API
(:func:`syncd.daemon.api.make_app`), so that the API depends on the daemon and not the other way
round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from syncd import __version__
from syncd.cli_output import plural
from syncd.config import Config, ConfigError, DaemonConfig, load_config
from syncd.daemon.endpoint import Endpoint, choose_listen, ensure_token_file
from syncd.daemon.events import EventHub
from syncd.daemon.hooks import Hooks, make_hooks_app
from syncd.daemon.loopwatch import LoopWatch
from syncd.daemon.memory import limit_arenas
from syncd.daemon.metrics import Metrics
from syncd.daemon.notify import Notifier
from syncd.daemon.scheduler import SyncScheduler, utcnow
from syncd.logs import configure as configure_logging
from syncd.logs import get_logger
from syncd.plugins import Plugins
from syncd.redact import redact
from syncd.store import Store

log = get_logger("syncd.daemon")

#: builds the API's application for a daemon (:func:`syncd.daemon.api.make_app`)
AppFactory = Callable[["Daemon"], web.Application]

EXIT_OK, EXIT_CRASHED, EXIT_CONFIG = 0, 1, 2
#: how long /healthz waits for the database before calling it unreachable
HEALTH_DB_TIMEOUT = 10.0
#: how long a thread may keep the GIL while another wants it (Python's default: 5 ms). The
#: event loop gives the GIL up at every system call (accept, recv, send, close: several per
#: request); while a run's threads (a connector's writes, the store, the planner) compute, each
#: of them cost up to the interval
SWITCH_INTERVAL = 0.001


@dataclass
class ConfigProblem:
    message: str
    at: datetime
    source: str


class MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot even parse (a line over 8 KiB, bytes that are not HTTP,
    a broken chunk) as an error with a traceback, before any token is checked: anyone who can
    reach the port could fill the log. Such a request is the client's problem, answered 400:
    at debug level it is one line naming the kind of error (not its text, which quotes the
    request), otherwise nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "malformed HTTP request refused: %s", (type(error).__name__,)
        record.exc_info = record.exc_text = None
        return True


def quiet_malformed_requests() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server.filters):
        server.addFilter(MalformedRequests())


class Daemon:
    def __init__(
        self,
        app_factory: AppFactory,
        config_dir: Path,
        plugins: Plugins,
        state_dir: str | None = None,
        log_format: str | None = None,
        log_level: str | None = None,
        listen: str | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.app_factory = app_factory
        self.config_dir = config_dir
        self.plugins = plugins
        self.state_dir_option = state_dir
        self.log_format_option = log_format
        self.log_level_option = log_level
        self.listen_option = listen
        self.notifier = notifier or Notifier.from_environment()
        self.metrics = Metrics()
        self.loop_watch = LoopWatch(self.metrics.registry)
        #: what GET /api/v1/events streams (the scheduler publishes to it)
        self.events = EventHub()
        self.started_at = utcnow()
        self.started_clock = time.monotonic()
        self.config: Config | None = None
        self.config_loaded_at = utcnow()
        self.config_error: ConfigProblem | None = None
        self.restart_needed: list[str] = []
        self.endpoint: Endpoint | None = None
        self.token = ""
        self._store: Store | None = None
        self._scheduler: SyncScheduler | None = None
        self._hooks: Hooks | None = None
        self._hooks_runner: web.AppRunner | None = None
        self.hooks_endpoint: Endpoint | None = None
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        self._stop_reason = ""
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- accessors for the API ----------------------------------------------------------------

    @property
    def store(self) -> Store:
        assert self._store is not None
        return self._store

    @property
    def scheduler(self) -> SyncScheduler:
        assert self._scheduler is not None
        return self._scheduler

    @property
    def hooks(self) -> Hooks:
        assert self._hooks is not None
        return self._hooks

    @property
    def daemon_config(self) -> DaemonConfig:
        assert self.config is not None
        return self.config.daemon

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_clock

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- the whole life -----------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until a stop signal; the process exit status."""
        self.notifier.status("starting")
        sys.setswitchinterval(SWITCH_INTERVAL)
        limit_arenas()  # before the first thread: see syncd.daemon.memory
        try:
            self.config = await asyncio.to_thread(
                load_config, self.config_dir, self.plugins, self.state_dir_option
            )
        except ConfigError as exc:
            _fail(str(exc))
            return EXIT_CONFIG
        daemon = self.config.daemon
        self._configure_logging(daemon)
        for problem in self.plugins.loaded_problems:  # the others are not imported
            log.warning("plugin problem", plugin=problem.plugin, problem=problem.message)
        try:
            self.endpoint = Endpoint.parse(choose_listen(self.listen_option, daemon.api_listen))
        except ValueError as exc:
            _fail(f"api.listen: {exc}")
            return EXIT_CONFIG
        try:
            if daemon.hooks_listen:
                self.hooks_endpoint = Endpoint.parse(daemon.hooks_listen)
        except ValueError as exc:
            _fail(f"hooks.listen: {exc}")
            return EXIT_CONFIG
        store = Store(daemon.state_dir, daemon.store)
        try:
            await store.aopen()
            self.token = await self._token(daemon)
        except Exception as exc:
            _fail(f"state directory {daemon.state_dir}: {type(exc).__name__}: {exc}")
            await store.aclose()
            return EXIT_CONFIG
        self._store = store
        self._install_signal_handlers()
        self._scheduler = SyncScheduler(
            store,
            self.metrics,
            self._status_changed,
            self.events,
            max_runs=daemon.max_concurrent_runs,
        )
        self._hooks = Hooks(store, self._scheduler, daemon.hooks_debounce)
        self.metrics.watch_states(self.scheduler.states, self.scheduler.running_count)
        # the API first: when its address is taken, nothing has started yet
        try:
            runner = await self._start_api(self.endpoint)
        except OSError as exc:
            _fail(f"api.listen: cannot listen on {self.endpoint}: {exc.strerror or exc}")
            await self._close(None)
            return EXIT_CONFIG
        if self.hooks_endpoint is not None:
            try:
                self._hooks_runner = await self._start_api(
                    self.hooks_endpoint, make_hooks_app(self.hooks)
                )
            except OSError as exc:
                _fail(
                    f"hooks.listen: cannot listen on {self.hooks_endpoint}: {exc.strerror or exc}"
                )
                await self._close(runner)
                return EXIT_CONFIG
        await self.scheduler.start(self.config.syncs)
        await self.hooks.start(self.config.syncs)
        log.info(
            "daemon started",
            version=__version__,
            api=str(self.endpoint),
            syncs=len(self.config.syncs),
            state_dir=str(daemon.state_dir),
            seconds=round(self.uptime, 3),
        )
        self.notifier.ready(self.status_line())
        self._spawn(self.notifier.watchdog_loop())
        self._spawn(self.scheduler.publish_progress_forever())
        self._spawn(self.loop_watch.run_forever())
        if not self._stop.is_set():
            await self._stop.wait()
        return await self._shutdown(runner)

    def _configure_logging(self, daemon: DaemonConfig) -> None:
        level = self.log_level_option or daemon.log_level
        configure_logging(self.log_format_option or daemon.log_format, level)
        if level != "debug":
            # APScheduler logs every job start and finish at info; the daemon logs runs itself
            logging.getLogger("apscheduler").setLevel(logging.WARNING)

    async def _start_api(
        self, endpoint: Endpoint, app: web.Application | None = None
    ) -> web.AppRunner:
        quiet_malformed_requests()
        app = app if app is not None else self.app_factory(self)
        runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await runner.setup()
        site: web.BaseSite
        if endpoint.path is not None:
            path = Path(endpoint.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            site = web.UnixSite(runner, endpoint.path)
            await site.start()
            # the token still guards it; the mode keeps other local users from even asking
            os.chmod(path, 0o660)
        else:
            site = web.TCPSite(runner, endpoint.host, endpoint.port, reuse_address=True)
            try:
                await site.start()
            except OSError:
                await runner.cleanup()
                raise
        return runner

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = self._stop.is_set()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if sig == signal.SIGHUP or not stopping:
                loop.remove_signal_handler(sig)
                continue
            # the daemon is stopping already: another Ctrl-C (or SIGTERM) changes nothing.
            # Left to Python's defaults, it would raise KeyboardInterrupt wherever the
            # interpreter is by then (joining the store's threads at exit: a traceback). Not
            # SIG_IGN either: a signal that arrived just before is still to be handled, and
            # Python raises "Signal 2 ignored due to race condition" for it wherever it is.
            # A Python-level handler that does nothing takes late and pending signals alike.
            try:
                loop.remove_signal_handler(sig)
                signal.signal(sig, _ignore_signal)
            except KeyboardInterrupt:
                # the Ctrl-C that came in the instant between the two: the same nothing
                signal.signal(sig, _ignore_signal)

    def request_stop(self, reason: str = "request") -> None:
        if self._stop.is_set():
            log.warning("second stop request: no longer waiting for running syncs", signal=reason)
            self._hurry.set()
            return
        self._stop_reason = reason
        self._stop.set()

    def _on_sighup(self) -> None:
        if self._stop.is_set():
            return

        async def reload() -> None:
            with contextlib.suppress(ConfigError):
                await self.reload("SIGHUP")

        self._spawn(reload())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, runner: web.AppRunner | None) -> int:
        running = self.scheduler.running_count()
        self.notifier.stopping(f"stopping: {running} running syncs checkpoint")
        deadline = self.daemon_config.shutdown_deadline
        log.info("stopping", signal=self._stop_reason, running=running, deadline=deadline)
        # the runs get most of the deadline; unwinding cancelled runs and closing the API the rest
        grace = min(2.0, deadline * 0.1)
        wait = max(deadline * 0.8, deadline - 3.0) - grace
        cancelled = await self.scheduler.drain(wait, grace, hurry=self._hurry)
        if cancelled:
            log.warning("some runs were cancelled mid-batch; the next run reconciles them")
        await self._close(runner)
        log.info("stopped", seconds=round(self.uptime, 3))
        return EXIT_OK

    async def _close(self, runner: web.AppRunner | None) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        if self._hooks is not None:
            await self._hooks.close()
        if self._scheduler is not None and self._scheduler.running:
            await self._scheduler.drain(0.0, 0.5)
        # the event streams end first: an open one would hold the API's shutdown up
        self.events.close()
        if runner is not None:
            await runner.cleanup()
        if self._hooks_runner is not None:
            await self._hooks_runner.cleanup()
            if self.hooks_endpoint is not None and self.hooks_endpoint.path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.hooks_endpoint.path)
        if self.endpoint is not None and self.endpoint.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.endpoint.path)
        with contextlib.suppress(RuntimeError):
            self._remove_signal_handlers()
        if self._store is not None:
            await self._store.aclose()
        self.notifier.close()

    # --- reload -------------------------------------------------------------------------------

    async def reload(self, source: str = "api") -> dict[str, Any]:
        """Read the config again. Raises :class:`ConfigError` (the old config keeps running)."""
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                try:
                    config = await asyncio.to_thread(
                        load_config, self.config_dir, self.plugins, self.state_dir_option
                    )
                except ConfigError:
                    raise
                except Exception as exc:  # an unreadable directory, say
                    raise ConfigError(
                        self.config_dir, None, f"{type(exc).__name__}: {exc}"
                    ) from exc
            except ConfigError as exc:
                self.config_error = ConfigProblem(redact(str(exc)), utcnow(), source)
                self.metrics.config_ok.set(0)
                log.error(
                    "config reload failed; the previous config keeps running",
                    error=str(exc),
                    source=source,
                )
                self.notifier.ready(self.status_line())
                raise
            changes = await self.scheduler.apply(config.syncs)
            self.hooks.apply(config.syncs)
            restart = await self._apply_daemon_settings(config.daemon)
            self.config = config
            self.config_error = None
            self.config_loaded_at = utcnow()
            self.restart_needed = restart
            self.metrics.config_ok.set(1)
            unchanged = len(config.syncs) - len(changes["added"]) - len(changes["changed"])
            log.info("config reloaded", source=source, restart_needed=restart, **changes)
            self.events.publish("syncs.changed", dict(changes))
            self.notifier.ready(self.status_line())
            return {**changes, "unchanged": unchanged, "restart_needed": restart}

    async def _token(self, daemon: DaemonConfig) -> str:
        if daemon.api_token:
            return daemon.api_token
        return await asyncio.to_thread(ensure_token_file, daemon.state_dir)

    async def _apply_daemon_settings(self, new: DaemonConfig) -> list[str]:
        """Apply what can change in a running daemon; name what needs a restart."""
        old = self.daemon_config
        if (new.log_format, new.log_level) != (old.log_format, old.log_level):
            self._configure_logging(new)
        if new.api_token != old.api_token:
            self.token = await self._token(new)
        restart = []
        if choose_listen(self.listen_option, new.api_listen) != choose_listen(
            self.listen_option, old.api_listen
        ):
            restart.append("api.listen")
        if new.state_dir != old.state_dir:
            restart.append("daemon.state_dir")
        if new.hooks_listen != old.hooks_listen:
            restart.append("hooks.listen")
        if self._hooks is not None:
            self._hooks.debounce = new.hooks_debounce
        return restart

    # --- state for status, health and sd_notify -----------------------------------------------

    def status_line(self) -> str:
        if self._scheduler is None:
            return "starting"
        states = list(self.scheduler.states().values())
        parts = [plural(len(states), "sync"), f"{states.count('running')} running"]
        for state, one, more in (
            ("failing", "failing", "failing"),
            ("needs_auth", "needs authorisation", "need authorisation"),
        ):
            if states.count(state):
                parts.append(f"{states.count(state)} {one if states.count(state) == 1 else more}")
        line = ", ".join(parts)
        if self.config_error is not None:
            line += "; config reload failed (see syncd status)"
        return line

    def _status_changed(self) -> None:
        if not self._stop.is_set():
            self.notifier.status(self.status_line())

    async def health(self) -> dict[str, str]:
        """What ``/healthz`` checks: never whether a sync failed, only whether the daemon works."""
        checks = {"loop": "ok"}
        try:
            await asyncio.wait_for(self.store.run(self.store.ping), HEALTH_DB_TIMEOUT)
            checks["database"] = "ok"
        except TimeoutError:
            checks["database"] = f"no answer within {HEALTH_DB_TIMEOUT:.0f}s"
        except Exception as exc:
            checks["database"] = redact(f"{type(exc).__name__}: {exc}")
        checks["scheduler"] = "ok" if self.scheduler.running else "stopped"
        return checks


def _fail(message: str) -> None:
    click.echo(f"error: {redact(message)}", err=True)


async def run_daemon(
    app_factory: AppFactory,
    config_dir: Path,
    plugins: Plugins,
    state_dir: str | None = None,
    log_format: str | None = None,
    log_level: str | None = None,
    listen: str | None = None,
) -> int:
    daemon = Daemon(app_factory, config_dir, plugins, state_dir, log_format, log_level, listen)
    try:
        return await daemon.serve()
    except Exception:
        log.exception("the daemon crashed")
        return EXIT_CRASHED


def _ignore_signal(signum: int, frame: object) -> None:
    """A stop signal after the stop began: nothing more to do."""


def ignore_stop_signals() -> None:
    """Once the daemon has stopped: SIGINT and SIGTERM ignored by the kernel until the process
    is gone. Python's own handlers (the no-op above included) are reset to the defaults as the
    interpreter finalises, where one more Ctrl-C would kill the process with SIGINT.

    A signal that came just before SIG_IGN is set is still handled after it, and Python reports
    it as "ignored due to race condition" at its next check, which is the end of the call that
    set SIG_IGN: inside the ``suppress``."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(OSError):  # that signal: ignored, as wanted
            signal.signal(sig, signal.SIG_IGN)

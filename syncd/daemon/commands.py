"""The daemon's commands: ``run`` and the control commands that talk to it over the local API.

Exit status of the control commands: 0 done; 1 ``trigger --wait`` saw some records fail, or
``healthcheck`` found the daemon unhealthy or absent; 2 a usage or config error (an unknown sync,
a refused token, an invalid config on ``reload``); 3 it could not be done now (no daemon answers,
the sync is already running, the daemon is stopping, or ``trigger --wait`` saw the run stop).

This module is imported by :mod:`syncd.cli` at start-up, so it imports nothing heavy at the top:
the daemon itself (aiohttp, APScheduler, the engine) is imported only by ``syncd run``.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from syncd.cli_output import duration as took_text
from syncd.cli_output import plural
from syncd.redact import redact, redact_data

if TYPE_CHECKING:
    from syncd.daemon.client import ApiClient

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED_RECORDS, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3
EXIT_UNHEALTHY = 1


def add_daemon_commands(cli: click.Group) -> None:
    """Attach ``run``, ``status``, ``trigger``, ``pause``, ``resume``, ``reload``,
    ``healthcheck`` and ``console`` to the ``syncd`` command group."""
    for command in (
        run_command,
        status_command,
        trigger_command,
        pause_command,
        resume_command,
        reload_command,
        healthcheck_command,
    ):
        cli.add_command(command)
    cli.add_command(console_command)


# --- shared plumbing ---------------------------------------------------------------------------


def _fail(message: str, status: int) -> NoReturn:
    # a config with several problems answers one line each: each says it is an error
    for line in redact(message).splitlines() or [""]:
        click.echo(f"error: {line}", err=True)
    sys.exit(status)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(redact_data(data), indent=2, sort_keys=True, default=str))


def _client(obj: Any, timeout: float = 30.0) -> ApiClient:
    from syncd.config import load_daemon_config
    from syncd.daemon.client import ApiClient
    from syncd.daemon.endpoint import Endpoint, choose_listen, configured_token

    daemon = load_daemon_config(obj.config_dir, obj.state_dir)
    endpoint = Endpoint.parse(choose_listen(None, daemon.api_listen))
    return ApiClient(endpoint, configured_token(daemon.api_token, daemon.state_dir), timeout)


def _api_status(status: int) -> int:
    if status in (400, 401, 403, 404, 422):
        return EXIT_USAGE
    return EXIT_STOPPED


def talks_to_daemon(fn: F) -> F:
    """One clear line and a documented exit status for every way a control command can fail."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from syncd.config import ConfigError
        from syncd.daemon.client import ApiError, DaemonUnreachable

        try:
            return fn(*args, **kwargs)
        except (ConfigError, ValueError) as exc:
            _fail(str(exc), EXIT_USAGE)
        except DaemonUnreachable as exc:
            _fail(str(exc), EXIT_STOPPED)
        except ApiError as exc:
            message = exc.message
            if exc.status == 401:
                message += (
                    " (the token is read from [api] token in syncd.toml, or from the state "
                    "directory's api-token file: run as the daemon's user, with its --config and "
                    "--state-dir)"
                )
            _fail(message, _api_status(exc.status))

    return wrapper  # type: ignore[return-value]


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = (now - when).total_seconds()
    return f"{_span(abs(seconds))} ago" if seconds >= 0 else f"in {_span(-seconds)}"


def _until(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = (when - now).total_seconds()
    return "now" if seconds <= 1 else f"in {_span(seconds)}"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600)}h"


# --- run ---------------------------------------------------------------------------------------


@click.command("run")
@click.option(
    "--listen",
    metavar="HOST:PORT|unix:PATH",
    help="Where the local API listens [default: $SYNCD_API_LISTEN, then [api] listen].",
)
@click.pass_obj
def run_command(obj: Any, listen: str | None) -> None:
    """The daemon, in the foreground (what Docker and systemd start)."""
    import asyncio

    from syncd.daemon.api import make_app
    from syncd.daemon.service import ignore_stop_signals, run_daemon

    status = asyncio.run(
        run_daemon(
            make_app,
            obj.config_dir,
            obj.plugins,
            obj.state_dir,
            obj.log_format,
            obj.log_level,
            listen,
        )
    )
    ignore_stop_signals()
    sys.exit(status)


# --- status ------------------------------------------------------------------------------------


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@click.pass_obj
@talks_to_daemon
def status_command(obj: Any, as_json: bool) -> None:
    """How the running daemon and each sync are doing."""
    data = _client(obj).call("GET", "/api/v1/status")
    if as_json:
        _emit_json(data)
        return
    print_status(data)


def print_status(data: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    syncs = data.get("syncs", [])
    click.echo(
        f"syncd {data['version']} (pid {data['pid']}), up {_span(data['uptime_seconds'])}, "
        f"API {data['api']}; {plural(len(syncs), 'sync')}, {data['runs_in_progress']} running"
    )
    config = data.get("config", {})
    error = config.get("error")
    if error:
        click.echo(
            f"config reload failed {_ago(error['at'], now)} ({error['source']}): "
            f"{error['message']}\n  the previous config keeps running"
        )
    if config.get("restart_needed"):
        click.echo(f"restart needed for: {', '.join(config['restart_needed'])}")
    if not syncs:
        click.echo("no syncs configured")
        return
    rows = [("SYNC", "STATE", "LAST RUN", "NEXT RUN")]
    notes: dict[str, str] = {}
    for sync in syncs:
        last = sync.get("last_run")
        if sync["state"] == "running" and sync.get("running"):
            progress = sync["running"]["progress"]
            done = f" {progress['done']}/{progress['total']}" if progress["total"] else ""
            last_text = f"running{done}, since {_ago(sync['running']['started_at'], now)}"
        elif last:
            duration = last.get("duration_seconds")
            took = f" ({took_text(duration)})" if isinstance(duration, int | float) else ""
            last_text = f"{last['outcome']} {_ago(last['finished_at'] or last['started_at'], now)}"
            last_text += took
        else:
            last_text = "never"
        next_text = "paused" if sync["state"] == "paused" else _until(sync["next_run_at"], now)
        rows.append((sync["name"], sync["state"], last_text, next_text))
        if sync.get("message"):
            notes[sync["name"]] = sync["message"]
        elif sync.get("running_elsewhere"):
            notes[sync["name"]] = f"running in another process ({sync['running_elsewhere']})"
        elif sync.get("claim") and sync["state"] != "running":
            claim = sync["claim"]
            notes[sync["name"]] = f"running on {claim['daemon']} since {_ago(claim['since'], now)}"
        hooks = sync.get("webhooks") or {}
        if hooks.get("active"):
            line = (
                f"webhooks: active, last event {_ago(hooks.get('last_event_at'), now)}, "
                f"{hooks.get('events_waiting', 0)} waiting"
            )
            notes[sync["name"]] = (
                f"{notes[sync['name']]}\n    {line}" if sync["name"] in notes else line
            )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        click.echo(f"{line}  {row[3]}")
        if row[0] in notes:
            click.echo(f"    {notes[row[0]]}")


# --- trigger, pause, resume, reload ------------------------------------------------------------


@click.command("trigger")
@click.argument("name")
@click.option("--full", is_flag=True, help="List both sides in full (notices deletions).")
@click.option("--force", is_flag=True, help="Go past the mass-deletion and empty-side guards.")
@click.option("--wait", is_flag=True, help="Wait for the run to finish and report its outcome.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="With --wait: give up after this many seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@click.pass_obj
@talks_to_daemon
def trigger_command(
    obj: Any, name: str, full: bool, force: bool, wait: bool, timeout: float, as_json: bool
) -> None:
    """Ask the running daemon to run a sync now."""
    client = _client(obj)
    started = client.call("POST", f"/api/v1/syncs/{name}/trigger", {"full": full, "force": force})
    run_id = started.get("run_id")
    if not wait:
        if as_json:
            _emit_json(started)
        else:
            click.echo(f"{name}: run {run_id} started")
        return
    run = _wait_for_run(client, name, run_id, timeout)
    if as_json:
        _emit_json(run)
    else:
        click.echo(f"{name}: run {run_id} {run['outcome']} in {took_text(run['duration_seconds'])}")
        if run.get("message"):
            click.echo(f"  {run['message']}")
    outcome = run["outcome"]
    if outcome == "success":
        return
    sys.exit(EXIT_FAILED_RECORDS if outcome == "partial" else EXIT_STOPPED)


def _wait_for_run(client: ApiClient, name: str, run_id: int | None, timeout: float) -> Any:
    give_up = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < give_up:
        # over once the daemon has recorded it as the sync's last run: the history says a run
        # finished a moment before the run lets go of the sync, and a trigger right after
        # `trigger --wait` would find it "already running"
        last = client.call("GET", f"/api/v1/syncs/{name}")["last_run"]
        if run_id is None or (last is not None and (last.get("id") or 0) >= run_id):
            runs = client.call("GET", f"/api/v1/syncs/{name}/runs?limit=5")["runs"]
            for run in runs:
                if run["id"] == run_id and run["outcome"] != "running":
                    return run
        time.sleep(delay)
        delay = min(2.0, delay * 1.5)
    _fail(f"run {run_id} of {name} did not finish within {timeout:.0f}s", EXIT_STOPPED)


@click.command("pause")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@click.pass_obj
@talks_to_daemon
def pause_command(obj: Any, name: str, as_json: bool) -> None:
    """Stop scheduling a sync (a run going on finishes); survives restarts."""
    data = _client(obj).call("POST", f"/api/v1/syncs/{name}/pause")
    if as_json:
        _emit_json(data)
    else:
        click.echo(f"{name}: paused" + (" (the current run finishes)" if data["running"] else ""))


@click.command("resume")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@click.pass_obj
@talks_to_daemon
def resume_command(obj: Any, name: str, as_json: bool) -> None:
    """Schedule a paused sync again (it runs soon when it is due)."""
    data = _client(obj).call("POST", f"/api/v1/syncs/{name}/resume")
    if as_json:
        _emit_json(data)
        return
    if not data["enabled"]:
        click.echo(f"{name}: resumed, but its file says enabled = false")
        return
    click.echo(f"{name}: resumed, next run {_until(data['next_run_at'], datetime.now(UTC))}")


@click.command("reload")
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@click.pass_obj
@talks_to_daemon
def reload_command(obj: Any, as_json: bool) -> None:
    """Ask the running daemon to read the config again (like SIGHUP)."""
    data = _client(obj).call("POST", "/api/v1/reload")
    if as_json:
        _emit_json(data)
        return
    parts = [
        f"{label} {', '.join(data[key])}"
        for key, label in (("added", "added"), ("removed", "removed"), ("changed", "changed"))
        if data[key]
    ]
    parts.append(f"{data['unchanged']} unchanged")
    click.echo("config reloaded: " + "; ".join(parts))
    if data.get("restart_needed"):
        click.echo(f"restart needed for: {', '.join(data['restart_needed'])}")


# --- healthcheck -------------------------------------------------------------------------------


@click.command("healthcheck")
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds."
)
@click.pass_obj
def healthcheck_command(obj: Any, timeout: float) -> None:
    """Exit 0 when the local daemon is healthy, 1 when not (Docker's HEALTHCHECK)."""
    from syncd.config import ConfigError
    from syncd.daemon.client import DaemonUnreachable

    try:
        status, data = _client(obj, timeout).request("GET", "/healthz", auth=False)
    except (ConfigError, DaemonUnreachable, ValueError) as exc:
        click.echo(f"unhealthy: {redact(str(exc))}", err=True)
        sys.exit(EXIT_UNHEALTHY)
    if status == 200 and isinstance(data, dict) and data.get("status") == "ok":
        click.echo("healthy")
        return
    checks = data.get("checks", {}) if isinstance(data, dict) else {}
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok") or f"HTTP {status}"
    click.echo(f"unhealthy: {redact(failing)}", err=True)
    sys.exit(EXIT_UNHEALTHY)


# --- the web console's sign-in link ------------------------------------------------------------
# ``syncd console`` prints a link with a one-time code (good for one sign-in, for two minutes),
# like Jupyter's: the daemon issues it (POST /api/v1/console/codes, with the API token this command
# reads as every control command does). The code is printed, never logged.


def console_url(listen_url: str, base_url: str | None, path: str) -> str:
    """The link: ``--base-url`` (the address a proxy serves the console at), else the daemon's."""
    origin = (base_url or listen_url).rstrip("/")
    return origin + path


@click.command("console")
@click.option(
    "--base-url",
    metavar="URL",
    help="Where your browser reaches the console (a reverse proxy's https://host/syncd); "
    "default: the daemon's own address.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def console_command(obj: Any, base_url: str | None, as_json: bool) -> None:
    """Print a one-time sign-in link to the web console (served by `syncd run`)."""

    @talks_to_daemon
    def run() -> None:
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url must start with http:// or https://, got {base_url!r}")
        client = _client(obj)
        data = client.call("POST", "/api/v1/console/codes")
        # a unix socket has no address a browser can open: the path, for the proxy's address
        listen_url = "" if client.endpoint.is_unix else client.endpoint.url()
        url = console_url(listen_url, base_url, data["path"])
        if as_json:
            _emit_json({**data, "url": url})
            return
        click.echo(
            f"Open the syncd console (the link signs you in once, within "
            f"{data['expires_in_seconds'] // 60} minutes):\n\n  {url}\n"
        )
        if client.endpoint.is_unix and base_url is None:
            click.echo(
                "The daemon listens on a unix socket: put a reverse proxy in front of it "
                "(docs/console.md) and pass its address with --base-url."
            )

    run()

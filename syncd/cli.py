"""The ``syncd`` command line.

Exit status: 0 success; 1 the run finished but some records failed; 2 a usage or config error;
3 the run stopped before it finished (a safety guard, expired credentials, the app unavailable,
or the sync already running elsewhere).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from syncd import __version__, cli_output
from syncd.cli_history import add_history_commands
from syncd.cli_output import duration, plural
from syncd.config import Config, ConfigError, config_directory, load_config
from syncd.config_values import format_seconds
from syncd.connector import NeedsReauth
from syncd.contact import display
from syncd.daemon.commands import add_daemon_commands
from syncd.engine.executor import RunOptions, RunResult, make_connector, run_sync
from syncd.explain_cli import explain_command
from syncd.logs import configure as configure_logging
from syncd.plugins import PluginCommands, Plugins, load_plugins
from syncd.redact import redact, redact_data
from syncd.run_json import result_json
from syncd.state_owner import hand_back_after
from syncd.store import Store
from syncd.store.commands import add_store_commands
from syncd.store.lock import SyncBusy
from syncd.timefmt import RUNS_LIMIT_DEFAULT, RUNS_LIMIT_MAX, issue_json, run_json

EXIT_OK, EXIT_FAILED_RECORDS, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    config_dir: Path
    state_dir: str | None
    log_format: str | None
    log_level: str | None
    plugins: Plugins
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_dir, self.plugins, self.state_dir)
            # one-shot commands print their own results: only warnings are logged by default
            configure_logging(
                self.log_format or self._config.daemon.log_format, self.log_level or "warning"
            )
        return self._config

    def store(self) -> Store:
        store = Store(self.config().daemon.state_dir, self.config().daemon.store)
        try:
            store.open()
        except Exception as exc:
            fail(f"store {store.where}: {exc}", EXIT_USAGE)
        return store


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(status)


def handles_errors(fn: F) -> F:
    """Bad input gets one clear line and exit status 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            # one line per problem: a config can hold several
            for problem in exc.problems[:-1]:
                click.echo(f"error: {redact(problem.line())}", err=True)
            fail(exc.problems[-1].line(), EXIT_USAGE)
        except SyncBusy as exc:
            fail(str(exc), EXIT_STOPPED)

    return wrapper  # type: ignore[return-value]


def emit_json(data: Any) -> None:
    click.echo(json.dumps(redact_data(data), indent=2, sort_keys=True, default=str))


@click.group(cls=PluginCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncd")
@click.option(
    "--config",
    "config_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Config directory [default: $SYNCD_CONFIG, then /etc/syncd].",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="State directory [default: $SYNCD_STATE_DIR, then daemon.state_dir].",
)
@click.option("--log-format", type=click.Choice(["json", "console"]), help="Log line format.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level."
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_dir: Path | None,
    state_dir: str | None,
    log_format: str | None,
    log_level: str | None,
) -> None:
    """syncd keeps contacts in sync between apps, on your own box."""
    plugins = ctx.obj if isinstance(ctx.obj, Plugins) else load_plugins()
    configure_logging(log_format, log_level or "warning")
    ctx.obj = Context(config_directory(config_dir), state_dir, log_format, log_level, plugins)
    ctx.call_on_close(functools.partial(hand_back_after, ctx.obj))


# run, status, trigger, pause, resume, reload, healthcheck (syncd/daemon/commands.py)
add_daemon_commands(cli)
add_store_commands(cli)
# "why did this contact not sync?" (syncd/explain_cli.py)
cli.add_command(explain_command)
# changes, undo, review (syncd/cli_history.py)
add_history_commands(cli)


# --- sync ---------------------------------------------------------------------------------


@cli.command("sync")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Show what the run would do; write nothing.")
@click.option("--full", is_flag=True, help="List both sides in full (notices deletions).")
@click.option("--force", is_flag=True, help="Go past the mass-deletion and empty-side guards.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
@handles_errors
def sync_command(
    obj: Context, name: str, dry_run: bool, full: bool, force: bool, as_json: bool
) -> None:
    """Run one sync now, in this process."""
    config = obj.config()
    sync = config.sync(name)
    store = obj.store()
    progress = _progress_printer() if sys.stderr.isatty() and not as_json else None
    options = RunOptions(dry_run=dry_run, full=full, force=force, trigger="cli", progress=progress)
    try:
        result = asyncio.run(run_sync(sync, store, options))
    finally:
        store.close()
    if progress is not None:
        click.echo("", err=True)
    if as_json:
        emit_json(result_json(result))
    else:
        print_result(result)
    sys.exit(exit_status(result))


def exit_status(result: RunResult) -> int:
    if result.outcome in ("success", "dry_run"):
        return EXIT_OK
    if result.outcome == "partial":
        return EXIT_FAILED_RECORDS
    if result.outcome == "config_error":
        return EXIT_USAGE
    return EXIT_STOPPED


def _progress_printer() -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        click.echo(f"\r  writing [{bar}] {done}/{total}", err=True, nl=False)

    return show


def print_result(result: RunResult) -> None:
    c = result.counts
    if result.outcome == "dry_run" and result.plan is not None:
        plan = result.plan
        s = plan.summary()
        click.echo(f"Dry run of {result.sync}: nothing was written.")
        rows = [
            ("read", f"a: {c['read_a']}", f"b: {c['read_b']}"),
            ("link", f"{plural(s['linked'], 'pair')} matched by email", ""),
            ("create", f"on a: {s['create_a']}", f"on b: {s['create_b']}"),
            ("update", f"on a: {s['update_a']}", f"on b: {s['update_b']}"),
            ("archive", f"on a: {s['archive_a']}", f"on b: {s['archive_b']}"),
            ("conflicts", str(s["conflicts"]), ""),
            ("excluded", str(s["excluded"]), ""),
            ("ambiguous", str(s["ambiguous"]), ""),
        ]
        for label, left, right in rows:
            click.echo(f"  {label:<10} {left:<28} {right}".rstrip())
        if plan.guard:
            click.echo(f"\nThe real run would stop: {plan.guard}")
        if plan.conflicts:
            click.echo("\nConflicts (the winner's value is kept):")
            for conflict in plan.conflicts[:50]:
                click.echo(
                    f"  {conflict.email or '-':<30} {conflict.field:<12} "
                    f"a: {display(conflict.value_a)!r}  b: {display(conflict.value_b)!r}  "
                    f"→ {conflict.winner}"
                )
            if len(plan.conflicts) > 50:
                click.echo(f"  … and {len(plan.conflicts) - 50} more (--json lists all)")
        issues = [i for i in plan.issues if i.kind in ("excluded", "ambiguous")]
        if issues:
            click.echo("\nNot synced:")
            for issue in issues[:50]:
                click.echo(f"  {issue.side} {issue.record_id:<14} {issue.kind:<10} {issue.reason}")
            if len(issues) > 50:
                click.echo(f"  … and {len(issues) - 50} more (--json lists all)")
        return
    click.echo(
        f"{result.sync}: {result.outcome} in {duration(result.duration)} (run {result.run_id})"
    )
    for line in cli_output.run_counts(c):
        click.echo(f"  {line}")
    if result.message:
        click.echo(f"  {redact(result.message)}")


# --- inspection ---------------------------------------------------------------------------


@cli.command("history")
@click.argument("name")
@click.option(
    "--limit",
    default=RUNS_LIMIT_DEFAULT,
    show_default=True,
    type=click.IntRange(1, RUNS_LIMIT_MAX),
    help=f"How many runs (1 to {RUNS_LIMIT_MAX}, as the API's limit).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def history_command(obj: Context, name: str, limit: int, as_json: bool) -> None:
    """Runs of a sync, newest first."""
    obj.config().sync(name)
    store = obj.store()
    runs = store.list_runs(name, limit)
    store.close()
    if as_json:
        # the entries of GET /api/v1/syncs/NAME/runs, times in the one format
        emit_json([run_json(r) for r in runs])
        return
    if not runs:
        click.echo(f"{name}: no runs yet")
        return
    for line in cli_output.history_lines(runs):
        click.echo(line)


@cli.command("links")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def links_command(obj: Context, name: str, as_json: bool) -> None:
    """Linked records of a sync (record id on side a and on side b)."""
    obj.config().sync(name)
    store = obj.store()
    links = store.load_links(name)
    store.close()
    if as_json:
        emit_json([{"id": k.id, "a": k.a_id, "b": k.b_id, "state": k.state} for k in links])
        return
    for line in cli_output.link_lines(links):
        click.echo(line)


@cli.command("errors")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handles_errors
def errors_command(obj: Context, name: str, as_json: bool) -> None:
    """Records that did not sync, and why."""
    obj.config().sync(name)
    store = obj.store()
    issues = store.list_issues(name)
    store.close()
    if as_json:
        emit_json([issue_json(issue) for issue in issues])
        return
    if not issues:
        click.echo(f"{name}: no failing records")
        return
    for line in cli_output.issue_lines(issues):
        click.echo(line)


# --- plugins and config -------------------------------------------------------------------


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plugins_command(obj: Context, as_json: bool) -> None:
    """Installed plugins: distribution, version, connectors and hooks."""
    plugins = obj.plugins
    infos = sorted(plugins.infos.values(), key=lambda i: i.name)
    if as_json:
        emit_json(plugins.as_json())
        return
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "built-in"
        click.echo(f"{info.name}  ({dist})")
        if info.connectors:
            click.echo(f"  connectors: {', '.join(info.connectors)}")
        if info.sandboxes:
            click.echo(f"  sandboxes:  {', '.join(info.sandboxes)}")
        click.echo(f"  hooks:      {', '.join(info.hooks)}")
    for problem in plugins.problems:
        click.echo(f"problem: {problem.plugin}: {problem.message}", err=True)


@cli.command("check")
@click.option("--connect", is_flag=True, help="Also reach every side with its credentials.")
@click.pass_obj
@handles_errors
def check_command(obj: Context, connect: bool) -> None:
    """Validate the config and plugins; with --connect, reach every side."""
    for problem in obj.plugins.problems:
        click.echo(f"warning: plugin {problem.plugin}: {problem.message}", err=True)
    config = obj.config()
    click.echo(f"config {config.directory}: OK, {plural(len(config.syncs), 'sync')}")
    click.echo(f"state directory: {config.daemon.state_dir}")
    for sync in config.syncs.values():
        click.echo(
            f"  {sync.name}: {sync.a.connector} ⇄ {sync.b.connector}, {sync.direction}, "
            f"every {format_seconds(sync.interval)}, initial {sync.initial}, winner {sync.winner}"
        )
    if not connect:
        return
    store = Store(config.daemon.state_dir, config.daemon.store)
    failures = asyncio.run(_connect_all(config, store))
    sys.exit(EXIT_STOPPED if failures else EXIT_OK)


async def _connect_all(config: Config, store: Store) -> int:
    failures = 0
    for sync in config.syncs.values():
        for side in ("a", "b"):
            label = f"  {sync.name} {side} ({sync.side(side).connector})"
            try:
                connector = make_connector(sync, side, store)
            except Exception as exc:  # a setting only the connector could refuse
                failures += 1
                click.echo(f"{label}: FAILED: {redact(_one_line(exc))}")
                continue
            try:
                await connector.open()
                answer = await connector.check()
                click.echo(f"{label}: {redact(answer)}")
            except NeedsReauth as exc:
                failures += 1
                # as the needs_auth state says it: what to run
                fix = f" (fix: {exc.fix})" if exc.fix else ""
                click.echo(f"{label}: FAILED: {redact(_one_line(exc))}{fix}")
            except Exception as exc:
                failures += 1
                click.echo(f"{label}: FAILED: {redact(_one_line(exc))}")
            finally:
                try:
                    await connector.close()
                except Exception as exc:
                    click.echo(f"{label}: closing failed: {redact(_one_line(exc))}")
    return failures


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    key = getattr(exc, "key", None)
    return f"{key}: {text}" if isinstance(key, str) and key and not text.startswith(key) else text


# --- auth and sandboxes -------------------------------------------------------------------


class _TerminalPrompt:
    def show(self, text: str) -> None:
        click.echo(text)

    def ask(self, question: str) -> str:
        return str(click.prompt(question, prompt_suffix=" "))


@cli.command("auth")
@click.argument("sync_name", metavar="SYNC")
@click.argument("side", type=click.Choice(["a", "b"]))
@click.pass_obj
@handles_errors
def auth_command(obj: Context, sync_name: str, side: str) -> None:
    """One-time authorisation (OAuth) of a sync's side."""
    config = obj.config()
    sync = config.sync(sync_name)
    store = Store(config.daemon.state_dir, config.daemon.store)
    store.state_dir.mkdir(parents=True, exist_ok=True)
    connector = make_connector(sync, side, store)
    if not connector.needs_authorization:
        fail(f"{sync.path}: {side}.connector: {connector.name} needs no authorisation")

    async def authorise() -> str:
        try:
            return await connector.authorize(_TerminalPrompt())
        finally:
            await connector.close()

    try:
        summary = asyncio.run(authorise())
    except click.Abort:
        fail("authorisation cancelled", EXIT_STOPPED)
    except Exception as exc:
        fail(f"authorisation failed: {exc}", EXIT_STOPPED)
    click.echo(redact(summary))


@cli.command("sandbox")
@click.argument("name", required=False)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", type=int, default=None, help="Fill with sample data from this seed.")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Sandbox option (repeatable; a list takes comma-separated values: sort_keys=id,name).",
)
@click.pass_obj
def sandbox_command(
    obj: Context, name: str | None, port: int, host: str, seed: int | None, options: tuple[str, ...]
) -> None:
    """Run a connector's local emulator of its vendor's API (without NAME: list them)."""
    sandboxes = obj.plugins.sandboxes
    if name is None:
        if not sandboxes:
            click.echo("no sandboxes installed")
        for sandbox in sorted(sandboxes.values(), key=lambda s: s.name):
            click.echo(f"{sandbox.name:<12} {sandbox.help}  ({sandbox.plugin})")
        return
    if name not in sandboxes:
        known = ", ".join(sorted(sandboxes)) or "none"
        fail(f"unknown sandbox {name!r} (installed: {known})")
    parsed: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--option expects KEY=VALUE, got {item!r}")
        parsed[key] = value
    app = sandboxes[name].factory(seed, parsed)
    asyncio.run(_serve(app, host, port, name))


async def _serve(app: Any, host: str, port: int, name: str) -> None:
    from syncd.sandbox import SandboxServer

    server = SandboxServer(app, port=port, host=host)
    await server.start()
    click.echo(f"{name} sandbox listening on {server.url} (Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    finally:
        await server.stop()


def main() -> None:
    plugins = load_plugins()
    cli.plugins = plugins  # their commands are added when a command is not syncd's own
    try:
        cli.main(obj=plugins, prog_name="syncd")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

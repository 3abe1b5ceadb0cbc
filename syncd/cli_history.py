"""``syncd changes``, ``syncd undo`` and ``syncd review`` (issue 15): the change journal, undo
of a run, and the review queue for deletions, in this process (not through the daemon: like
``syncd sync``, an undo or a decision takes the sync's lock, so it never runs beside a run).

Exit status: 0 done; 1 some records failed; 2 a usage or config error (an unknown sync, run or
review id); 3 stopped (the mass-deletion guard, or the sync is running elsewhere).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from syncd.config import ConfigError
from syncd.config_values import parse_duration
from syncd.redact import redact, redact_data
from syncd.store.lock import SyncBusy

F = TypeVar("F", bound=Callable[..., Any])
EXIT_OK, EXIT_FAILED_RECORDS, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3


def add_history_commands(cli: click.Group) -> None:
    """Attach ``changes``, ``undo`` and ``review`` to the ``syncd`` command group."""
    for command in (changes_command, undo_command, review_command):
        cli.add_command(command)


def _fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(status)


def _emit(data: Any) -> None:
    click.echo(json.dumps(redact_data(data), indent=2, sort_keys=True, default=str))


def _errors(fn: F) -> F:
    """One clear line and the right exit status, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from syncd.engine.review_actions import ReviewError
        from syncd.engine.undo import UndoError

        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems[:-1]:
                click.echo(f"error: {redact(problem.line())}", err=True)
            _fail(exc.problems[-1].line())
        except (UndoError, ReviewError) as exc:
            _fail(str(exc))
        except SyncBusy as exc:
            _fail(str(exc), EXIT_STOPPED)

    return wrapper  # type: ignore[return-value]


def since_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, Path("--since"), "--since")
    except ConfigError:
        _fail(f"--since: expected a duration such as '30m', '12h' or '7d', got {value[:40]!r}")


def _show(value: Any) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, list | tuple):
        return repr(";".join(str(v) for v in value))
    return repr(value)


# --- changes ----------------------------------------------------------------------------------


@click.command("changes")
@click.argument("name", metavar="SYNC")
@click.option("--run", "run_id", type=click.IntRange(1), help="Only the writes of this run.")
@click.option("--record", help="Only this record: its email, or its id on either side.")
@click.option("--since", help="Only writes younger than this (30m, 12h, 7d).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True, help="Print the writes as JSON.")
@click.pass_obj
@_errors
def changes_command(
    obj: Any,
    name: str,
    run_id: int | None,
    record: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """What syncd wrote, field by field, oldest first: value before, sent, stored, why."""
    from syncd.store.history import change_json, query_changes

    obj.config().sync(name)
    seconds = since_seconds(since)
    store = obj.store()
    try:
        changes, total = query_changes(store, name, run_id, record, seconds, limit)
    finally:
        store.close()
    entries = [change_json(c) for c in changes]
    if as_json:
        _emit({"sync": name, "total": total, "changes": entries})
        return
    if not entries:
        click.echo(f"{name}: no journaled writes match")
        return
    for entry in entries:
        who = entry["email"] or entry["record_id"] or entry["source_id"] or "-"
        click.echo(
            f"run {entry['run_id']}  {entry['at']}  {entry['kind']} on {entry['side']} "
            f"{entry['record_id'] or '(new)'}  {who}  [{entry['outcome']}]  {entry['reason'] or ''}"
        )
        for item in entry["fields"]:
            stored = f" (stored {_show(item['stored'])})" if "stored" in item else ""
            why = f"  — {item['reason']}" if item["reason"] != entry["reason"] else ""
            click.echo(
                f"    {item['field']:<14} {_show(item['before'])} → {_show(item['sent'])}"
                f"{stored}{why}"
            )
    if total > len(entries):
        click.echo(f"… {total - len(entries)} more (--limit, or --json)")


# --- undo -------------------------------------------------------------------------------------


@click.command("undo")
@click.argument("name", metavar="SYNC")
@click.argument("run_id", metavar="RUN_ID", type=click.IntRange(1))
@click.option("--record", help="Only this record's writes: its email, or its id on either side.")
@click.option(
    "--dry-run", is_flag=True, help="Show what would be restored and skipped; write nothing."
)
@click.option("--force", is_flag=True, help="Go past the mass-deletion guard.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
@_errors
def undo_command(
    obj: Any,
    name: str,
    run_id: int,
    record: str | None,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Put back what run RUN_ID wrote, where the records still hold what it wrote."""
    from syncd.engine.undo import undo_run

    sync = obj.config().sync(name)
    store = obj.store()
    try:
        result = asyncio.run(undo_run(sync, store, run_id, record, dry_run, force))
    finally:
        store.close()
    if as_json:
        _emit(result.json())
    else:
        print_undo(result)
    if result.outcome == "failed":
        sys.exit(EXIT_STOPPED)
    sys.exit(EXIT_FAILED_RECORDS if result.outcome == "partial" else EXIT_OK)


def print_undo(result: Any) -> None:
    c = result.counts
    verb = {"restore": "restore", "archive": "archive", "recreate": "make again"}
    if result.dry_run:
        click.echo(
            f"Dry run of the undo of run {result.undone_run} of {result.sync}: nothing was written."
        )
    else:
        click.echo(
            f"Undo of run {result.undone_run} of {result.sync}: {result.outcome} "
            f"(run {result.run_id})"
        )
        click.echo(
            f"  restored {c['restored_fields']} field(s); archived a {c['archived_a']}, "
            f"b {c['archived_b']}; made again a {c['created_a']}, b {c['created_b']}; "
            f"skipped {c['skipped']}; failed {c['failed']}"
        )
    if result.message:
        click.echo(f"  {redact(result.message)}")
    done = [i for i in result.items if i.action != "skip"]
    skipped = [i for i in result.items if i.action == "skip"]
    if result.dry_run and done:
        click.echo("Would do:")
        for item in done:
            what = verb[item.action]
            detail = (
                f" {item.field}: {_show(item.now)} → {_show(item.restored)}" if item.field else ""
            )
            click.echo(f"  {what} {item.side} {item.record_id} {item.email or '-'}{detail}")
    if skipped:
        click.echo("Left alone:")
        for item in skipped:
            where = f" {item.field}" if item.field else ""
            click.echo(
                f"  {item.side} {item.record_id or '-'} {item.email or '-'}{where}: {item.reason}"
            )


# --- review -----------------------------------------------------------------------------------


def _ids(values: tuple[str, ...], flag: str) -> list[int] | None:
    """``--approve 3 4`` → [3, 4]; ``--approve --all`` (or ``all``) → [] (every one)."""
    if not values:
        return None
    if any(v == "all" for v in values):
        return []
    ids = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isascii() or not part.isdigit():
                _fail(f"{flag}: expected review ids (numbers) or --all, got {part[:20]!r}")
            ids.append(int(part))
    return ids


@click.command("review")
@click.argument("name", metavar="SYNC")
@click.argument("ids", nargs=-1)
@click.option("--approve", "approve", is_flag=True, help="Approve IDS (or --all): apply them.")
@click.option("--reject", "reject", is_flag=True, help="Reject IDS (or --all): forget the link.")
@click.option("--all", "everything", is_flag=True, help="Every held deletion.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_errors
def review_command(
    obj: Any,
    name: str,
    ids: tuple[str, ...],
    approve: bool,
    reject: bool,
    everything: bool,
    as_json: bool,
) -> None:
    """Deletions held for review: list them, or --approve / --reject IDS (or --all)."""
    from syncd.engine.review_actions import decide_held
    from syncd.store.history import held_json, list_held

    sync = obj.config().sync(name)
    if approve and reject:
        _fail("--approve and --reject: one at a time")
    if (ids or everything) and not (approve or reject):
        _fail("review ids need --approve or --reject")
    if (approve or reject) and not ids and not everything:
        _fail("--approve/--reject need review ids, or --all")
    store = obj.store()
    try:
        if not (approve or reject):
            entries = [held_json(h) for h in list_held(store, name)]
            if as_json:
                _emit({"sync": name, "held": entries})
            elif not entries:
                click.echo(f"{name}: no deletion is held for review")
            else:
                for e in entries:
                    click.echo(
                        f"{e['id']:>4}  {e['email'] or '-':<28} {e['why']} ({e['deleted_id']}), "
                        f"{e['detected_at']}; approving: {e['action']} on side "
                        f"{e['survivor_side']} ({e['survivor_id']})"
                    )
            return
        chosen = [] if everything else _ids(ids, "--approve" if approve else "--reject")
        result = asyncio.run(
            decide_held(
                sync,
                store,
                approve=chosen if approve else None,
                reject=chosen if reject else None,
            )
        )
    finally:
        store.close()
    if as_json:
        _emit(
            {
                "sync": name,
                "run_id": result.run_id,
                "approved": result.approved,
                "rejected": result.rejected,
                "failed": result.failed,
            }
        )
    else:
        click.echo(
            f"{name}: approved {len(result.approved)}, rejected {len(result.rejected)}, "
            f"failed {len(result.failed)}"
        )
        for item in result.failed:
            click.echo(f"  {item['id']} {item['email'] or '-'}: {item['reason']}")
    sys.exit(EXIT_FAILED_RECORDS if result.failed else EXIT_OK)

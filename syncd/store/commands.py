"""``syncd migrate`` and ``syncd store copy``."""

from __future__ import annotations

import sys
from typing import Any

import click

from syncd.redact import redact
from syncd.store.copy import CopyError, copy_store, describe, open_location

EXIT_OK, EXIT_USAGE, EXIT_PENDING = 0, 2, 1


def _fail(message: str, status: int = EXIT_USAGE) -> None:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(status)


def _token_key(reference: str) -> str:
    """``--token-key``'s reference resolved and checked (a one-line error naming it)."""
    from pathlib import Path

    from syncd.config import ConfigError
    from syncd.store.config import token_key

    try:
        return token_key(reference, Path("--token-key"))
    except ConfigError as exc:
        _fail(exc.problems[-1].line())
        raise AssertionError("unreachable") from None


def add_store_commands(cli: click.Group) -> None:
    @cli.command("migrate")
    @click.option("--check", is_flag=True, help="Only report pending migrations (exit 1 if any).")
    @click.pass_obj
    def migrate_command(obj: Any, check: bool) -> None:
        """Apply the store's pending schema migrations (SQLite or PostgreSQL)."""
        from syncd.config import ConfigError
        from syncd.store import Store

        try:
            daemon = obj.config().daemon
        except ConfigError as exc:
            _fail(exc.problems[-1].line())
        store = Store(daemon.state_dir, daemon.store)
        try:
            pending = store.pending_migrations()
            if check:
                for name in pending:
                    click.echo(f"pending: {name}")
                if not pending:
                    click.echo(f"store {store.where}: up to date")
                sys.exit(EXIT_PENDING if pending else EXIT_OK)
            # what this process applied: another one may have applied some in between
            for name in store.open():
                click.echo(f"applied: {name}")
            click.echo(f"store {store.where}: up to date")
        except SystemExit:
            raise
        except Exception as exc:
            _fail(f"store {store.where}: {type(exc).__name__}: {exc}")
        finally:
            store.close()

    @cli.group("store")
    def store_group() -> None:
        """The status database."""

    @store_group.command("copy")
    @click.option("--from", "source", required=True, metavar="SQLITE:PATH|URL")
    @click.option("--to", "target", required=True, metavar="URL|SQLITE:PATH")
    @click.option(
        "--password-env",
        metavar="VAR",
        help="Environment variable holding the PostgreSQL password (else PG*/.pgpass).",
    )
    @click.option(
        "--token-key",
        metavar="REF",
        help="The [store] token_key, as a secret reference (${env:VAR}, ${file:PATH}): OAuth "
        "tokens are encrypted with it on the way into PostgreSQL (decrypted on the way out).",
    )
    def copy_command(
        source: str, target: str, password_env: str | None, token_key: str | None
    ) -> None:
        """Copy an installation's status (links, history, everything) into an empty store.

        Stop the daemon first. Example: syncd store copy --from sqlite:/var/lib/syncd
        --to postgresql://syncd@db:5432/syncd"""
        import os

        password = os.environ.get(password_env) if password_env else None
        key = _token_key(token_key) if token_key is not None else None
        try:
            src = open_location(source, password)
            dst = open_location(target, password)
        except CopyError as exc:
            _fail(str(exc))
        if not src.shared and not src.path.exists():
            _fail(f"{describe(source)}: no database there")
        try:
            src.open()
            dst.open()
            report = copy_store(src, dst, key)
        except CopyError as exc:
            _fail(str(exc))
        except Exception as exc:
            _fail(f"store copy: {type(exc).__name__}: {exc}")
        finally:
            src.close()
            dst.close()
        for table, rows in sorted(report.tables.items()):
            click.echo(f"  {table}: {rows} rows")
        click.echo(f"copied {report.rows} rows from {describe(source)} to {describe(target)}")

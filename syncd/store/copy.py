"""``syncd store copy``: move an installation's status between SQLite and PostgreSQL.

Every table of the source (links, history, issues, pending writes, the journal, key/values,
and whatever later migrations add) is copied row by row into a target migrated to the same
schema, converting what the engines store differently (SQLite's 0/1 booleans and text time
stamps). The target must be empty: copying over live data would mix two installations. Ids
are kept (the journal and the runs refer to them) and PostgreSQL's sequences are moved past
them afterwards.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.store import Store
from syncd.store.engines import StoreSettings, is_postgres_url, make_database, safe_url
from syncd.store.lazy_psycopg import postgresql_missing
from syncd.store.tokens import TokenKeyError, export_token_files, import_token_files, token_files

#: tables that say nothing about the installation (the schema's own history; live claims; the
#: calls of the current minute)
SKIP = {"schema_migration", "sync_claim", "rate_budget"}
#: OAuth tokens: files of the state directory on SQLite, rows of this table on PostgreSQL
TOKENS = "oauth_token"
BATCH = 2000


class CopyError(Exception):
    """The copy cannot be made (say why in one line)."""


@dataclass
class CopyReport:
    tables: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def open_location(spec: str, password: str | None = None) -> Store:
    """``sqlite:PATH`` (a database file, or a state directory holding ``syncd.db``) or a
    ``postgresql://`` URL, as a store that is not opened yet."""
    if is_postgres_url(spec):
        missing = postgresql_missing()
        if missing is not None:
            raise CopyError(missing)
        # nothing is kept in a state directory for a copy: an empty one of its own
        scratch = Path(tempfile.mkdtemp(prefix="syncd-copy-"))
        store = Store(scratch, StoreSettings(url=spec, password=password))
        store.verify_tokens = False  # encrypted rows are copied as they are
        return store
    if not spec.startswith("sqlite:"):
        raise CopyError(f"expected sqlite:PATH or postgresql://…, got {spec!r}")
    path = Path(spec[len("sqlite:") :]).expanduser()
    if path.is_dir() or not path.suffix:
        store = Store(path)
    else:
        store = Store(path.parent)
        store.path = path
        store.db = make_database(str(path), store.settings)
    return store


def tables_of(store: Store) -> list[str]:
    return [t for t in store.db.get_tables() if t not in SKIP]


def row_count(store: Store, table: str) -> int:
    return int(store.db.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])


def columns_of(store: Store, table: str) -> dict[str, str]:
    """Column name → type name, lower case."""
    return {c.name: str(c.data_type).lower() for c in store.db.get_columns(table)}


def copy_store(source: Store, target: Store, token_key: str | None = None) -> CopyReport:
    """Copy everything from ``source`` into the empty ``target`` (both opened, migrated).

    OAuth tokens go along: a SQLite installation's token files become rows of ``oauth_token``,
    encrypted with ``token_key`` (the ``[store] token_key`` of the daemons that will use the
    PostgreSQL store); the rows of a PostgreSQL store become token files again on SQLite
    (decrypted with ``token_key``), and are copied as they are (encrypted) to PostgreSQL."""
    missing = set(source.pending_migrations())
    if missing:
        raise CopyError(f"the source {source.where} is not migrated: {', '.join(sorted(missing))}")
    busy = {t: n for t in tables_of(target) if (n := row_count(target, t))}
    if busy:
        listing = ", ".join(f"{t} ({n} rows)" for t, n in sorted(busy.items()))
        raise CopyError(
            f"the target {target.where} is not empty: {listing}; copy into a new database"
        )
    report: dict[str, int] = {}
    target_tables = set(tables_of(target))
    with target.db.atomic():
        for table in tables_of(source):
            if table not in target_tables:
                raise CopyError(f"the target has no table {table!r}: migrate it first")
            if table == TOKENS and source.shared and not target.shared:
                continue  # below: files
            report[table] = _copy_table(source, target, table)
        if target.shared:
            _move_sequences(target, list(report))
        _copy_tokens(source, target, token_key, report)
    return CopyReport(report)


def _copy_tokens(
    source: Store, target: Store, token_key: str | None, report: dict[str, int]
) -> None:
    how = (
        "give --token-key with a secret reference to the [store] token_key the daemons use "
        '(for example --token-key "${env:SYNCD_TOKEN_KEY}")'
    )
    if not source.shared and target.shared:
        files = token_files(source.state_dir)
        if not files:
            return
        if not token_key:
            raise CopyError(
                f"the source holds {len(files)} OAuth token file(s) in {files[0].parent}, to be "
                f"kept in the store encrypted: {how}"
            )
        try:
            report["oauth token files"] = import_token_files(
                target.db, source.state_dir, token_key, "store copy"
            )
        except ValueError as exc:
            raise CopyError(str(exc)) from None
    elif source.shared and not target.shared:
        rows = row_count(source, TOKENS)
        if not rows:
            return
        if not token_key:
            raise CopyError(
                f"the source holds {rows} OAuth token set(s), encrypted; to write them as token "
                f"files of the SQLite installation, {how}"
            )
        try:
            report["oauth token files"] = export_token_files(source.db, target.state_dir, token_key)
        except TokenKeyError as exc:
            raise CopyError(f"--token-key: {exc}") from None


def _copy_table(source: Store, target: Store, table: str) -> int:
    src_cols = columns_of(source, table)
    dst_cols = columns_of(target, table)
    names = [c for c in src_cols if c in dst_cols]
    convert = [_converter(dst_cols[c], target.shared) for c in names]
    quoted = ", ".join(f'"{c}"' for c in names)
    marks = ", ".join("?" for _ in names)
    insert = f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})'
    order = " ORDER BY id" if "id" in src_cols else ""
    cursor = source.db.execute_sql(f'SELECT {quoted} FROM "{table}"{order}')
    copied = 0
    out = target.db.cursor()
    while True:
        rows = cursor.fetchmany(BATCH)
        if not rows:
            break
        out.executemany(
            insert, [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
        )
        copied += len(rows)
    return copied


def _converter(kind: str, to_postgres: bool) -> Any:
    if not to_postgres:
        return _same
    if kind.startswith("bool"):
        return _boolean
    if kind.startswith("timestamp") or kind == "date":
        return _timestamp
    if kind in ("integer", "bigint", "smallint"):
        return _integer
    return _same


def _same(value: Any) -> Any:
    return value


def _boolean(value: Any) -> Any:
    return None if value is None else bool(value)


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


def _timestamp(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _move_sequences(target: Store, tables: list[str]) -> None:
    for table in tables:
        if "id" not in columns_of(target, table):
            continue
        seq = target.db.execute_sql("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if seq and seq[0]:
            target.db.execute_sql(
                f'SELECT setval(?, COALESCE((SELECT MAX(id) FROM "{table}"), 0) + 1, false)',
                (seq[0],),
            )


def describe(spec: str) -> str:
    return safe_url(spec) if is_postgres_url(spec) else spec

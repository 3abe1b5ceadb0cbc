"""The built-in ``csv`` connector: a CSV file as a contact list, for backups, imports and demos.

* The header row names canonical fields (``email``, ``first_name``, ``tags``, ...); any other
  column is exposed as ``custom.<column>``.
* An ``id`` column identifies rows. When the column or a row's id is missing, ids are filled in
  and the file is rewritten once, so that links survive.
* ``tags`` are separated by ``;``. An ``archived`` column (``true``) marks archived rows, and
  archiving a row sets it rather than deleting anything. An ``updated_at`` column (ISO 8601), when
  present, is read for ``winner = "newest"`` and stamped on every write.
* A row whose number of cells does not match the header is reported as that row's error and kept
  in the file untouched.
* Every write goes to a temporary file in the same directory which is flushed, synced and renamed
  over the original: a reader never sees a half-written file, and a crash leaves the old or the
  new file, never a mix.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import os
import stat
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.connector import (
    Capabilities,
    Connector,
    ConnectorConfigError,
    ConnectorContext,
    FieldSpec,
    RawValue,
    RecordWrite,
    RemoteRecord,
    Setting,
    WriteResult,
    one_character,
)
from syncd.contact import CANONICAL_FIELDS, CUSTOM_PREFIX
from syncd.hookspecs import hookimpl

RESERVED = ("id", "archived", "updated_at")
PAGE_SIZE = 1000


@dataclass
class _Row:
    cells: list[str]
    #: why the row cannot be read; such a row is written back exactly as it was
    broken: str | None = None
    line: int = 0


@dataclass
class _Table:
    header: list[str]
    rows: list[_Row]
    stamp: tuple[int, int] | None = None


class CsvConnector(Connector):
    name = "csv"
    title = "CSV file"
    settings = (
        Setting(
            "path",
            "path of the CSV file, relative to the config directory (created when missing)",
            required=True,
            path=True,
        ),
        Setting(
            "delimiter",
            "the column separator, one character",
            default=",",
            validator=one_character,
            public=True,
        ),
        Setting(
            "batch_size",
            "rows written per atomic rewrite",
            type=int,
            default=500,
            minimum=1,
            maximum=100_000,
        ),
    )
    capabilities = Capabilities(
        read=True,
        write=True,
        incremental=False,
        lookup_by_email=True,
        archive="archive",
        create_batch_size=500,
        update_batch_size=500,
        custom_fields=True,
    )
    fields = tuple(FieldSpec(name, name) for name in CANONICAL_FIELDS)

    def __init__(self, settings: dict[str, Any], context: ConnectorContext) -> None:
        super().__init__(settings, context)
        path = Path(str(self.config["path"])).expanduser()
        if not path.is_absolute() and context.config_dir is not None:
            path = context.config_dir / path
        self.path = path
        delimiter = str(self.config.get("delimiter") or ",")
        if len(delimiter) != 1:
            raise ConnectorConfigError("delimiter must be exactly one character", key="delimiter")
        self.delimiter = delimiter
        batch = int(self.config.get("batch_size") or 500)
        if batch < 1:
            raise ConnectorConfigError("batch_size must be at least 1", key="batch_size")
        self.batch_size = batch
        self.capabilities = dataclasses.replace(
            type(self).capabilities, create_batch_size=batch, update_batch_size=batch
        )
        self._table: _Table | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> str:
        table = await asyncio.to_thread(self._load)
        return f"{self.path}: {len(table.rows)} rows"

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        async with self._lock:
            # parsing 100,000 rows takes a while: off the event loop
            records = await asyncio.to_thread(self._all_records)
        for start in range(0, len(records), PAGE_SIZE):
            yield records[start : start + PAGE_SIZE]

    def _all_records(self) -> list[RemoteRecord]:
        table = self._load_with_ids()
        return [self._record(table, row) for row in table.rows]

    async def lookup_by_email(self, emails: Sequence[str]) -> list[RemoteRecord]:
        wanted = {e.strip().lower() for e in emails}
        async with self._lock:
            table = await asyncio.to_thread(self._load_with_ids)
        found = []
        for row in table.rows:
            record = self._record(table, row)
            email = record.data.get("email")
            if isinstance(email, str) and email.strip().lower() in wanted:
                found.append(record)
        return found

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        async with self._lock:
            return await asyncio.to_thread(self._apply, writes, "create")

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        async with self._lock:
            return await asyncio.to_thread(self._apply, writes, "update")

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        writes = [RecordWrite(key=i, id=i, data={"archived": "true"}) for i in ids]
        async with self._lock:
            return await asyncio.to_thread(self._apply, writes, "update")

    # --- file handling (runs on a worker thread) -------------------------------------------

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _load(self) -> _Table:
        stamp = self._stamp()
        if self._table is not None and stamp is not None and self._table.stamp == stamp:
            return self._table
        if stamp is None:
            table = _Table(header=["id", "email", "first_name", "last_name"], rows=[])
        else:
            table = self._parse(self._read())
        table.stamp = stamp
        self._table = table
        return table

    def _read(self) -> str:
        """The file's text; a FIFO or device put there since ``syncd check`` is refused, not
        read (it could block forever), and so is text that is not UTF-8."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConnectorConfigError(f"{self.path}: not a regular file", key="path")
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read()
        finally:
            os.close(fd)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ConnectorConfigError(
                f"{self.path}: line {line} is not UTF-8 text; save the file as UTF-8", key="path"
            ) from None

    def _parse(self, text: str) -> _Table:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        try:
            header = [cell.strip() for cell in next(reader)]
        except StopIteration:
            return _Table(header=["id", "email", "first_name", "last_name"], rows=[])
        except csv.Error as exc:
            raise ConnectorConfigError(f"{self.path}: unreadable header: {exc}") from None
        if len(set(header)) != len(header):
            raise ConnectorConfigError(f"{self.path}: the header repeats a column name")
        rows: list[_Row] = []
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                rows.append(_Row([], f"line {reader.line_num}: {exc}", reader.line_num))
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                rows.append(
                    _Row(
                        cells,
                        f"line {reader.line_num}: {len(cells)} cells where the header has "
                        f"{len(header)}",
                        reader.line_num,
                    )
                )
            else:
                rows.append(_Row(cells))
        return _Table(header, rows)

    def _load_with_ids(self) -> _Table:
        table = self._load()
        if "id" not in table.header:
            table.header.insert(0, "id")
            for row in table.rows:
                if row.broken is None:
                    row.cells.insert(0, "")
        index = table.header.index("id")
        missing = False
        seen: set[str] = set()
        for position, row in enumerate(table.rows):
            if row.broken is not None:
                continue
            current = row.cells[index].strip()
            if not current or current in seen:
                # a copied row keeps its neighbour's id; give it one of its own. The id comes
                # from the row itself, so that a dry run (which writes nothing) names the row
                # by the id the real run then writes into the file
                row.cells[index] = _row_id(position, row.cells, seen)
                missing = True
            seen.add(row.cells[index])
        if (missing or not self.path.exists()) and not self.context.dry_run:
            self._write(table)
        return table

    def _record(self, table: _Table, row: _Row) -> RemoteRecord:
        header = table.header
        if row.broken is not None:
            # a broken row keeps no reliable id cell: it is known by its line
            return RemoteRecord(id=f"line-{row.line}", data={}, error=row.broken)
        record_id = row.cells[header.index("id")]
        data: dict[str, RawValue] = {}
        archived = False
        updated_at = None
        for column, cell in zip(header, row.cells, strict=True):
            if column == "id":
                continue
            if column == "archived":
                archived = cell.strip().lower() in ("true", "1", "yes")
                continue
            if column == "updated_at":
                updated_at = _parse_time(cell)
                continue
            key = column if column in CANONICAL_FIELDS else CUSTOM_PREFIX + column
            if key == "tags":
                data[key] = tuple(t.strip() for t in cell.split(";") if t.strip())
            else:
                data[key] = cell if cell != "" else None
        return RemoteRecord(record_id, data, updated_at=updated_at, archived=archived)

    def _apply(self, writes: Sequence[RecordWrite], mode: str) -> list[WriteResult]:
        table = self._load_with_ids()
        id_index = table.header.index("id")
        by_id = {
            row.cells[id_index]: row
            for row in table.rows
            if row.broken is None and len(row.cells) > id_index
        }
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        results = []
        for write in writes:
            if mode == "update":
                row = by_id.get(write.id or "")
                if row is None:
                    results.append(WriteResult(write.key, write.id, f"no row with id {write.id}"))
                    continue
            else:
                row = _Row([""] * len(table.header))
                row.cells[id_index] = uuid.uuid4().hex[:12]
                table.rows.append(row)
            values = dict(write.data)
            if "updated_at" in table.header and "updated_at" not in values:
                values["updated_at"] = now
            for key, value in values.items():
                column = _column_for(key)
                if column not in table.header:
                    table.header.append(column)
                    for other in table.rows:
                        if other.broken is None:
                            other.cells.append("")
                row.cells[table.header.index(column)] = _cell(value)
            results.append(WriteResult(write.key, row.cells[id_index]))
        self._write(table)
        return results

    def _write(self, table: _Table) -> None:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator="\n")
        writer.writerow(table.header)
        for row in table.rows:
            writer.writerow(row.cells)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(buffer.getvalue())
                out.flush()
                os.fsync(out.fileno())
            if self.path.exists():
                os.chmod(temp, self.path.stat().st_mode & 0o777)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        table.stamp = self._stamp()
        self._table = table


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _column_for(key: str) -> str:
    return key[len(CUSTOM_PREFIX) :] if key.startswith(CUSTOM_PREFIX) else key


def _cell(value: RawValue) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ";".join(sorted(value))


def _row_id(position: int, cells: Sequence[str], taken: set[str]) -> str:
    """A 12-hex-digit id for a row that has none: the same for the same file, unique in it."""
    for attempt in range(1000):
        text = "\x1f".join([str(position), str(attempt), *cells])
        candidate = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
        if candidate not in taken:
            return candidate
    return uuid.uuid4().hex[:12]  # pragma: no cover - 1,000 collisions in 48 bits


def _parse_time(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@hookimpl
def register_connectors(register: Any) -> None:
    register(CsvConnector)

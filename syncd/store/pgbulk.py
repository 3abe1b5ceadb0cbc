"""The store's bulk writes on PostgreSQL: one statement per batch over arrays (``unnest``).

On SQLite a statement per row (``executemany``) costs a function call; on PostgreSQL every
statement is parsed, planned and executed by the server, even pipelined. A first merge of
100,000 contacts a side settles 200,000 journal entries in several statements each: that was
most of PostgreSQL's time (the merge took ~6 x SQLite's on a loaded 2-core machine). Here each
of those goes as one statement over arrays, planned once for the table sizes of now (no cached
generic plan, see :mod:`syncd.store.engines`), in the caller's transaction.

Every function has the same effect as the ``executemany`` it replaces in
:class:`syncd.store.Store` (the same rows change, the same way); duplicates in the input are
folded as applying the rows one after another would.

Journal lookups by key or by record name the condition of the unsettled entries (``OPEN``),
as the SQLite statements do, so that the journal's partial indexes serve them.

The ids of new journal entries come from the table's sequence, taken in one query before the
insert: another daemon may insert journal entries at the same time (a sequence is not
transactional), so "the last N ids" is not a safe way to find one's own on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

OPEN = "outcome IN ('pending', 'failed')"
SETTLING = ("confirmed", "refused")


def _new_ids(cursor: Any, table: str, count: int) -> list[int]:
    rows = cursor.execute(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"  # a table name of ours
        " FROM generate_series(1, %s)",
        (count,),
    ).fetchall()
    return [int(row[0]) for row in rows]


def insert_journal_bare(
    cursor: Any, sync: str, rows: Sequence[Any], run_id: int | None, when: str
) -> None:
    """History off: the entries with only the hashes a crash needs."""
    cursor.execute(
        "INSERT INTO journal (sync, run_id, side, kind, record_id, source_id, key, sent, hashes,"
        " created_at, outcome) SELECT %s, %s::integer, u.side, u.kind, u.record_id, u.source_id,"
        " u.key, '{}', u.hashes, %s::timestamp, 'pending' FROM unnest(%b::text[], %b::text[],"
        " %b::text[], %b::text[], %b::text[], %b::text[]) AS u(side, kind, record_id, source_id,"
        " key, hashes)",
        (
            sync,
            run_id,
            when,
            [r.side for r in rows],
            [r.kind for r in rows],
            [r.record_id for r in rows],
            [r.source_id for r in rows],
            [r.key for r in rows],
            [r.packed for r in rows],
        ),
    )


def insert_journal(
    cursor: Any,
    sync: str,
    rows: Sequence[Any],
    run_id: int | None,
    when: str,
    sent: Callable[[Any], str],
    detail: Callable[[Any], str | None],
) -> None:
    """History kept: the entries (their values, ``sent(row)``), and the hashes a crash needs in
    ``journal_hashes``."""
    ids = _new_ids(cursor, "journal", len(rows))
    cursor.execute(
        "INSERT INTO journal (id, sync, run_id, side, kind, record_id, source_id, key, sent,"
        " hashes, created_at, email, reason, detail, outcome) SELECT u.id, %s, %s::integer,"
        " u.side, u.kind, u.record_id, u.source_id, u.key, u.sent, '', %s::timestamp, u.email,"
        " u.reason, u.detail, 'pending' FROM unnest(%b::integer[], %b::text[], %b::text[],"
        " %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[])"
        " AS u(id, side, kind, record_id, source_id, key, sent, email, reason, detail)",
        (
            sync,
            run_id,
            when,
            ids,
            [r.side for r in rows],
            [r.kind for r in rows],
            [r.record_id for r in rows],
            [r.source_id for r in rows],
            [r.key for r in rows],
            [sent(r) for r in rows],
            [r.email for r in rows],
            [r.reason for r in rows],
            [detail(r) for r in rows],
        ),
    )
    cursor.execute(
        "INSERT INTO journal_hashes (journal_id, hashes)"
        " SELECT * FROM unnest(%b::integer[], %b::text[])",
        (ids, [r.packed for r in rows]),
    )


def journal_results(
    cursor: Any, results: Sequence[tuple[str, str | None, str | None, str | None]], when: str
) -> None:
    """The apps' answers, ``(key, outcome, record id, stored JSON)``: each ``None`` leaves the
    column as it is; a confirmed or refused entry is settled (its crash hashes dropped)."""
    folded: dict[str, list[Any]] = {}
    for key, outcome, record_id, stored in results:
        row = folded.setdefault(key, [None, None, None, False])
        for i, value in enumerate((outcome, record_id, stored)):
            if value is not None:
                row[i] = value  # as COALESCE(?, column), one row after another
        row[3] = row[3] or outcome in SETTLING
    keys = list(folded)
    settled = [key for key, row in folded.items() if row[3]]
    if settled:
        cursor.execute(
            "DELETE FROM journal_hashes WHERE journal_id IN (SELECT id FROM journal"
            f" WHERE key = ANY(%b::text[]) AND {OPEN})",
            (settled,),
        )
    cursor.execute(
        "UPDATE journal j SET outcome = COALESCE(u.outcome, j.outcome),"
        " record_id = COALESCE(u.record_id, j.record_id), stored = COALESCE(u.stored, j.stored),"
        " settled_at = CASE WHEN u.settle THEN %s::timestamp ELSE j.settled_at END"
        " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::boolean[])"
        " AS u(key, outcome, record_id, stored, settle)"
        f" WHERE j.key = u.key AND j.{OPEN}",
        (
            when,
            keys,
            [folded[k][0] for k in keys],
            [folded[k][1] for k in keys],
            [folded[k][2] for k in keys],
            [folded[k][3] for k in keys],
        ),
    )


def settle_records(
    cursor: Any,
    sync: str,
    records: Sequence[tuple[str, str]],
    run_id: int | None,
    when: str,
    keep: bool,
) -> None:
    """The unsettled entries of these records (side, record id): kept as history (``keep``:
    ``confirmed`` where this run sent them, else ``superseded``; crash hashes dropped) or
    deleted."""
    unique = list(dict.fromkeys(records))
    sides = [side for side, _ in unique]
    ids = [rid for _, rid in unique]
    if not keep:
        cursor.execute(
            "DELETE FROM journal j USING unnest(%b::text[], %b::text[]) AS u(side, record_id)"
            f" WHERE j.sync = %s AND j.side = u.side AND j.record_id = u.record_id AND j.{OPEN}",
            (sides, ids, sync),
        )
        return
    # one statement: the entries settled, and their crash hashes dropped
    cursor.execute(
        "WITH settled AS (UPDATE journal j SET outcome = CASE WHEN j.outcome = 'pending'"
        " AND j.run_id IS NOT DISTINCT FROM %s::integer THEN 'confirmed' ELSE 'superseded' END,"
        " settled_at = %s::timestamp FROM unnest(%b::text[], %b::text[]) AS u(side, record_id)"
        f" WHERE j.sync = %s AND j.side = u.side AND j.record_id = u.record_id AND j.{OPEN}"
        " RETURNING j.id)"
        " DELETE FROM journal_hashes WHERE journal_id IN (SELECT id FROM settled)",
        (run_id, when, sides, ids, sync),
    )


def delete_pending(
    cursor: Any, keys: Sequence[str], open_keys: Sequence[str] | None, when: str
) -> None:
    """Finished pending writes, and the journal entries of their keys: ``open_keys`` settled as
    ``superseded`` (history kept), or, with ``None``, every unsettled entry of ``keys``
    deleted."""
    cursor.execute("DELETE FROM pending_write WHERE key = ANY(%b::text[])", (list(keys),))
    if open_keys is None:
        cursor.execute(f"DELETE FROM journal WHERE key = ANY(%b::text[]) AND {OPEN}", (list(keys),))
        return
    if open_keys:
        cursor.execute(
            "WITH settled AS (UPDATE journal SET outcome = 'superseded', settled_at = %s::timestamp"
            f" WHERE key = ANY(%b::text[]) AND {OPEN} RETURNING id)"
            " DELETE FROM journal_hashes WHERE journal_id IN (SELECT id FROM settled)",
            (when, list(open_keys)),
        )

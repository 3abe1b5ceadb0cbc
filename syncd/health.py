"""A sync's health (HubSpot's "Sync Health"): how many contacts are in sync, excluded,
ambiguous, failing or filtered out, each with its records, the app's own reason, the attempts and
the next retry; and "Retry now", which resets the backoff of failing records so that the next
run (or one started now) tries them again.

Functions named ``*_on_store`` run on the store's thread (``await store.run(fn, store, ...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncd.store import Store
from syncd.timefmt import issue_json, rfc3339

#: the columns of a record issue as the API shows it (``GET .../errors``)
ISSUE_COLUMNS = (
    "side",
    "record_id",
    "kind",
    "email",
    "reason",
    "attempts",
    "first_seen",
    "last_seen",
    "next_attempt_at",
)
#: records listed per kind (the counts are always complete)
LIST_LIMIT = 500


def health_on_store(store: Store, sync: str, limit: int = LIST_LIMIT) -> dict[str, Any]:
    """Counts and lists of a sync's records that are not in sync, with the number in sync.

    The counts are complete; each list holds at most ``limit`` records (a first merge of a
    messy address book may exclude tens of thousands), failing ones soonest retry first."""
    counts: dict[str, int] = {}
    for table in ("record_issue", "record_decision"):
        for kind, count in store.rows(
            f"SELECT kind, COUNT(*) FROM {table} WHERE sync = ? GROUP BY kind", (sync,)
        ):
            counts[str(kind)] = int(count)
    lists: dict[str, list[dict[str, Any]]] = {}
    for kind in ("failed", "ambiguous", "excluded"):
        order = "next_attempt_at IS NULL, next_attempt_at, " if kind == "failed" else ""
        rows = store.rows(
            f"SELECT {', '.join(ISSUE_COLUMNS)} FROM record_issue WHERE sync = ? AND kind = ?"
            f" ORDER BY {order}side, record_id LIMIT ?",
            (sync, kind, limit),
        )
        lists[kind] = [issue_json(dict(zip(ISSUE_COLUMNS, row, strict=True))) for row in rows]
    decisions = [
        {**d, "decided_at": rfc3339(d["decided_at"])} for d in store.list_decisions(sync, limit)
    ]
    return {
        "sync": sync,
        "counts": {
            "in_sync": store.count_links(sync),
            "failing": counts.get("failed", 0),
            "ambiguous": counts.get("ambiguous", 0),
            "excluded": counts.get("excluded", 0),
            "filtered": counts.get("filtered", 0),
        },
        "failing": lists["failed"],
        "ambiguous": lists["ambiguous"],
        "excluded": lists["excluded"],
        "filtered": decisions,
        "limit": limit,
    }


def retry_on_store(
    store: Store, sync: str, records: Sequence[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """Reset the backoff of failing records (all of them when ``records`` is None): each is
    tried on the next run, and a new refusal waits the first backoff step again.

    Returns ``retried`` (how many were reset) and ``not_failing``: the given records that are
    not failing (never refused, or synced since), left as they are."""
    not_failing: list[dict[str, str]] = []
    if records is not None:
        failing = {
            (str(side), str(rid))
            for side, rid in store.rows(
                "SELECT side, record_id FROM record_issue WHERE sync = ? AND kind = 'failed'",
                (sync,),
            )
        }
        wanted = list(dict.fromkeys(records))
        not_failing = [{"side": s, "record_id": r} for s, r in wanted if (s, r) not in failing]
        records = [(s, r) for s, r in wanted if (s, r) in failing]
    return {"retried": store.reset_backoff(sync, records), "not_failing": not_failing}


#: the most records one retry request may name, and the longest record id it takes (printable
#: ASCII, as the apps' ids are): the request stays within the API's body cap
MAX_RETRY_RECORDS = 25
MAX_RETRY_ID = 200


def parse_retry_request(body: dict[str, Any]) -> tuple[list[tuple[str, str]] | None, bool]:
    """``{"records": [{"side": "a", "record_id": "..."}], "run": true}`` (both optional) as
    (the records, or None for every failing one; whether to start a run now). Raises
    ValueError with a one-line message naming what is wrong."""
    run = body.get("run", True)
    if not isinstance(run, bool):
        raise ValueError("run must be true or false")
    if "records" not in body:
        return None, run
    raw = body["records"]
    if not isinstance(raw, list) or len(raw) > MAX_RETRY_RECORDS:
        raise ValueError(f"records must be a list of at most {MAX_RETRY_RECORDS} records")
    records = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"side", "record_id"}:
            raise ValueError(f"records[{index}] must be an object with side and record_id")
        side, record_id = item["side"], item["record_id"]
        if side not in ("a", "b"):
            raise ValueError(f'records[{index}].side must be "a" or "b"')
        if (
            not isinstance(record_id, str)
            or not 1 <= len(record_id) <= MAX_RETRY_ID
            or not all("!" <= c <= "~" for c in record_id)
        ):
            raise ValueError(
                f"records[{index}].record_id must be 1 to {MAX_RETRY_ID} printable ASCII "
                "characters (retry a record with another id through the retry of all)"
            )
        records.append((side, record_id))
    return records, run


def retry_message(retried: int, run_id: int | None, running: bool) -> str:
    if not retried:
        return "no failing records to retry"
    records = f"{retried} record{'' if retried == 1 else 's'}"
    if run_id is not None:
        return f"{records} retried by run {run_id}, started now"
    if running:
        return f"{records} retried by the next run (the sync is running now)"
    return f"{records} retried by the next run"

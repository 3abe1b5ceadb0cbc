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
from syncd.timefmt import issue_json

#: the kinds of the health view, in the order it shows them
KINDS = ("failed", "ambiguous", "excluded", "filtered")
#: records listed per kind (the counts are always complete)
LIST_LIMIT = 500


class RetryError(ValueError):
    """A retry of a record that is not failing."""


def health_on_store(store: Store, sync: str, limit: int = LIST_LIMIT) -> dict[str, Any]:
    """Counts and lists of a sync's records that are not in sync, with the number in sync."""
    issues = [issue_json(i) for i in store.list_issues(sync)]
    decisions = store.list_decisions(sync, limit)
    counts = store.count_issues(sync)
    counts.update(store.count_decisions(sync))
    lists: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for issue in issues:
        if issue["kind"] in lists and len(lists[issue["kind"]]) < limit:
            lists[issue["kind"]].append(issue)
    lists["filtered"] = decisions
    # failing first by the soonest retry: what is retried next comes first
    lists["failed"].sort(key=lambda i: (i.get("next_attempt_at") or "", i["side"], i["record_id"]))
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
        "filtered": lists["filtered"],
        "limit": limit,
    }


def retry_on_store(
    store: Store, sync: str, records: Sequence[tuple[str, str]] | None = None
) -> int:
    """Reset the backoff of failing records (all of them when ``records`` is None): each is
    tried on the next run, and a new refusal waits the first backoff step again. Returns how
    many records were reset; raises :class:`RetryError` naming a given record that is not
    failing (nothing is reset then)."""
    if records is not None:
        failing = {
            (str(side), str(rid))
            for side, rid in store.rows(
                "SELECT side, record_id FROM record_issue WHERE sync = ? AND kind = 'failed'",
                (sync,),
            )
        }
        for side, record_id in records:
            if (side, record_id) not in failing:
                raise RetryError(
                    f"side {side} record {record_id} is not failing in {sync} (see its health view)"
                )
    return store.reset_backoff(sync, records)

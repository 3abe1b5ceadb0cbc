"""The JSON of a run's result and of a dry run's plan: what ``syncd sync NAME --dry-run --json``
prints and what the console's preview shows (one function, so the figures are the same)."""

from __future__ import annotations

from typing import Any

from syncd.contact import display
from syncd.engine.executor import RunResult
from syncd.engine.model import Plan

__all__ = ["plan_json", "result_json"]


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "summary": plan.summary(),
        "guard": plan.guard,
        "conflicts": [
            {
                "email": c.email,
                "field": c.field,
                "a": display(c.value_a),
                "b": display(c.value_b),
                "winner": c.winner,
            }
            for c in plan.conflicts
        ],
        "issues": [
            {
                "side": i.side,
                "record_id": i.record_id,
                "kind": i.kind,
                "email": i.email,
                "reason": i.reason,
            }
            for i in plan.issues
        ],
        "creates": {
            side: [
                {"from": w.source_id, "email": w.email} for _, w in plan.writes(side, create=True)
            ]
            for side in ("a", "b")
        },
        "updates": {
            side: [
                {"id": w.record_id, "email": w.email, "fields": sorted(w.values)}
                for _, w in plan.writes(side, create=False)
            ]
            for side in ("a", "b")
        },
    }


def result_json(result: RunResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sync": result.sync,
        "run_id": result.run_id,
        "outcome": result.outcome,
        "counts": result.counts,
        "message": result.message,
        "duration_seconds": round(result.duration, 3),
    }
    if result.outcome == "dry_run" and result.plan is not None:
        data["plan"] = plan_json(result.plan)
    return data

"""The sync page (``/syncs/{name}``): settings in plain words, the field mapping, the rules as
sentences, the run history as a table and an SVG chart, the health view with "Retry now" per
record and for all, and "why did this contact not sync?" (a search by email or record id, and
the live values from both apps on request).

The live values are fetched only when a person asks for them by loading the page (a navigation):
console.js re-fetches the page to refresh its live parts after every run, and that must not
spend the apps' API calls again (``Sec-Fetch-Mode`` tells a fetch from a navigation).
"""

from __future__ import annotations

from aiohttp import web

from syncd.console.charts import runs_chart, series_values
from syncd.console.history_service import HistoryService
from syncd.console.insight_service import InsightService
from syncd.console.overview import OUTCOME_WORDS, STATE_WORDS
from syncd.console.web import (
    ConsoleError,
    checks_csrf,
    done,
    form,
    render,
    requires_session,
    state,
    sync_slot,
)
from syncd.console.words import (
    app_name,
    duration_words,
    mapping_table,
    rules_in_words,
    settings_in_words,
)
from syncd.explain import ExplainError

#: runs in the history table and the chart
HISTORY = 30


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/syncs/{name}", sync_page, name="console.sync", allow_head=False)
    router.add_post("/syncs/{name}/retry", retry, name="console.retry")


def _insight(request: web.Request) -> InsightService:
    return InsightService(state(request).daemon)


def _is_refresh(request: web.Request) -> bool:
    """console.js re-fetching the page for its live parts, not a person loading it."""
    mode = request.headers.get("Sec-Fetch-Mode")
    return mode is not None and mode != "navigate"


@requires_session
async def sync_page(request: web.Request) -> web.Response:
    name = sync_slot(request).name
    console = state(request)
    insight = _insight(request)
    slot = console.service.slot(name)
    sync = slot.config
    query = request.query.get("record", "")
    live = request.query.get("live") == "1" and not _is_refresh(request)
    explanation = None
    explain_error = None
    history = HistoryService(console.daemon)
    timeline: list[dict[str, object]] = []
    timeline_total = 0
    if query.strip():
        try:
            explanation = await insight.explain(name, query, live)
        except ExplainError as exc:
            explain_error = str(exc)
        if explanation is not None and len(query) <= 320:
            timeline, timeline_total = await history.changes(name, record=query.strip())
    runs = await insight.runs(name, HISTORY)
    summary = console.service.summary(slot)
    return render(
        request,
        "sync.html",
        {
            "title": name,
            "name": name,
            "s": summary,
            "state_words": STATE_WORDS,
            "outcome_words": OUTCOME_WORDS,
            "apps": {side: app_name(sync, side) for side in ("a", "b")},
            "settings": settings_in_words(sync),
            "interval_words": duration_words(sync.interval),
            "mapping": mapping_table(sync),
            "rule_sets": rules_in_words(sync),
            "health": await insight.health(name),
            "runs": runs,
            "run_values": {run.id: series_values(run.counts) for run in runs},
            "chart": runs_chart(runs, title=f"Runs of {name}: created, updated and failed"),
            "query": query,
            "explanation": explanation,
            "explain_error": explain_error,
            "live": live,
            "timeline": timeline,
            "timeline_total": timeline_total,
            "held": await history.held(name),
            "back": f"/syncs/{name}",
        },
    )


@requires_session
@checks_csrf
async def retry(request: web.Request) -> web.StreamResponse:
    name = sync_slot(request).name
    data = await form(request)
    side, record_id = data.get("side", ""), data.get("record_id", "")
    records: list[tuple[str, str]] | None = None
    if side or record_id:
        if side not in ("a", "b") or not record_id or len(record_id) > 1000:
            raise ConsoleError(400, "Retry needs a side (a or b) and a record id.")
        records = [(side, record_id)]
    message = await _insight(request).retry(name, records)
    return done(request, message, f"/syncs/{name}#health")

"""The OpenAPI parts of a sync's health, "Retry now" and "why did this contact not sync?"
(``/api/v1/syncs/{name}/health``, ``/retry``, ``/explain``), merged into the document by
:mod:`syncd.daemon.openapi`. Self-contained data (it imports nothing of the API), closed objects
as in the rest of the document."""

from __future__ import annotations

from typing import Any

from syncd.explain import MAX_QUERY, STATUS_WORDS
from syncd.health import MAX_RETRY_ID, MAX_RETRY_RECORDS

_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_INTEGER = {"type": ["integer", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time", "pattern": _TIME_PATTERN}
_TIME = {"type": "string", "format": "date-time", "pattern": _TIME_PATTERN}
_SIDE = {"type": "string", "enum": ["a", "b"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _errors(*statuses: str) -> dict[str, Any]:
    every = {"400", "401", "500", *statuses}
    return {s: {"$ref": f"#/components/responses/{s}"} for s in sorted(every)}


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {"application/json": {"schema": _ref(schema)}},
        }
    }


_LIVE_SIDE = _obj(
    {
        "found": _BOOLEAN,
        "record_id": _NULLABLE_STRING,
        "fetched_by": _STRING,
        "values": {"type": "object", "additionalProperties": _STRING},
        "error": _STRING,
    },
    required=["found", "values"],
)

SCHEMAS: dict[str, Any] = {
    "RecordDecision": _obj(
        {
            "side": _SIDE,
            "record_id": _STRING,
            "kind": {"type": "string", "enum": ["filtered"]},
            "email": _NULLABLE_STRING,
            "reason": _STRING,
            "run_id": _NULLABLE_INTEGER,
            "decided_at": _TIME,
        }
    ),
    "SyncHealth": _obj(
        {
            "sync": _STRING,
            "counts": _obj(
                {
                    "in_sync": _INTEGER,
                    "failing": _INTEGER,
                    "ambiguous": _INTEGER,
                    "excluded": _INTEGER,
                    "filtered": _INTEGER,
                }
            ),
            "failing": _array(_ref("RecordIssue")),
            "ambiguous": _array(_ref("RecordIssue")),
            "excluded": _array(_ref("RecordIssue")),
            "filtered": _array(_ref("RecordDecision")),
            "limit": _INTEGER,
        }
    ),
    "RetryRequest": {
        "type": "object",
        "properties": {
            "records": {
                "type": "array",
                "maxItems": MAX_RETRY_RECORDS,
                "items": _obj(
                    {
                        "side": _SIDE,
                        "record_id": {
                            "type": "string",
                            "pattern": f"^[!-~]{{1,{MAX_RETRY_ID}}}$",
                        },
                    }
                ),
            },
            "run": _BOOLEAN,
        },
        "additionalProperties": False,
    },
    "Retried": _obj(
        {
            "sync": _STRING,
            "retried": _INTEGER,
            "not_failing": _array(_obj({"side": _SIDE, "record_id": _STRING})),
            "run_id": _NULLABLE_INTEGER,
            "message": _STRING,
        }
    ),
    "ExplainedContact": _obj(
        {
            "status": {"type": "string", "enum": list(STATUS_WORDS)},
            "status_words": _STRING,
            "summary": _STRING,
            "email": _NULLABLE_STRING,
            "sides": _obj(
                {
                    side: _obj({"app": _STRING, "record_id": _NULLABLE_STRING, "linked": _BOOLEAN})
                    for side in ("a", "b")
                }
            ),
            "link": {
                "anyOf": [
                    _obj(
                        {
                            "id": _INTEGER,
                            "state": _STRING,
                            "linked_run": _NULLABLE_INTEGER,
                            "linked_at": _NULLABLE_TIME,
                            "updated_at": _NULLABLE_TIME,
                        }
                    ),
                    {"type": "null"},
                ]
            },
            "issues": _array(_ref("RecordIssue")),
            "decisions": _array(_ref("RecordDecision")),
            "pending": _array(_obj({"side": _SIDE, "source_id": _STRING})),
            "live": _ref("LiveValues"),
        },
        required=[
            "status",
            "status_words",
            "summary",
            "email",
            "sides",
            "link",
            "issues",
            "decisions",
            "pending",
        ],
    ),
    "LiveValues": _obj(
        {
            "sides": _obj({"a": _LIVE_SIDE, "b": _LIVE_SIDE}, required=[]),
            "fields": _array(
                _obj(
                    {
                        "key": _STRING,
                        "a_field": _STRING,
                        "b_field": _STRING,
                        "a": _NULLABLE_STRING,
                        "b": _NULLABLE_STRING,
                        "differs": _BOOLEAN,
                    }
                )
            ),
        }
    ),
    "Explanation": _obj(
        {
            "sync": _STRING,
            "query": _STRING,
            "by": {"type": "string", "enum": ["email", "record_id"]},
            "apps": _obj({"a": _STRING, "b": _STRING}),
            "found": _BOOLEAN,
            "summary": _STRING,
            "contacts": _array(_ref("ExplainedContact")),
            "more": _INTEGER,
            "last_run": {
                "anyOf": [
                    _obj({"id": _INTEGER, "outcome": _STRING, "finished_at": _NULLABLE_TIME}),
                    {"type": "null"},
                ]
            },
            "contacts_live": _array(
                _obj(
                    {
                        "email": _NULLABLE_STRING,
                        "sides": _obj(
                            {s: _obj({"record_id": _NULLABLE_STRING}) for s in ("a", "b")}
                        ),
                        "live": _ref("LiveValues"),
                    }
                )
            ),
        },
        required=[
            "sync",
            "query",
            "by",
            "apps",
            "found",
            "summary",
            "contacts",
            "more",
            "last_run",
        ],
    ),
}

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The sync's name (its file in `syncs/`, without `.toml`)",
    "schema": _STRING,
}

#: one line, not only white space (the same test as :func:`syncd.explain.check_query`)
_QUERY_PATTERN = r"^[^\x00-\x1f]*[^\x00-\x1f\s][^\x00-\x1f]*$"


def paths() -> dict[str, Any]:
    return {
        "/api/v1/syncs/{name}/health": {
            "parameters": [_NAME],
            "get": {
                "operationId": "getSyncHealth",
                "summary": "In sync / failing / ambiguous / excluded / filtered: counts, and the "
                "records with the app's reason, attempts and next retry",
                "responses": {**_ok("SyncHealth", "The sync's health"), **_errors("404")},
            },
        },
        "/api/v1/syncs/{name}/retry": {
            "parameters": [_NAME],
            "post": {
                "operationId": "retryRecords",
                "summary": "Retry now: reset the backoff of failing records (all, or those "
                "named) and start a run",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RetryRequest")}},
                },
                "responses": {**_ok("Retried", "What was reset"), **_errors("404", "413")},
            },
        },
        "/api/v1/syncs/{name}/explain": {
            "parameters": [_NAME],
            "get": {
                "operationId": "explainContact",
                "summary": "Why did this contact not sync? (by email or record id)",
                "parameters": [
                    {
                        "name": "record",
                        "in": "query",
                        "required": True,
                        "description": "An email address or a record id of either side",
                        "schema": {
                            "type": "string",
                            "maxLength": MAX_QUERY,
                            "pattern": _QUERY_PATTERN,
                        },
                    },
                    {
                        "name": "live",
                        "in": "query",
                        "required": False,
                        "description": "Also fetch the current values from both apps (spends "
                        "API calls)",
                        "schema": {"type": "boolean", "default": False},
                    },
                ],
                "responses": {**_ok("Explanation", "What syncd knows"), **_errors("404")},
            },
        },
    }

"""The OpenAPI 3.1 document of the local API, served at ``GET /api/v1/openapi.json``.

Written here as data, next to the handlers in :mod:`syncd.daemon.api`, with a schema for every
body the API answers (the errors too). ``tests/test_api_schema.py`` holds it against the real
aiohttp routes (every route documented, nothing documented that is not routed, the same methods)
and runs schemathesis against a real daemon, so the document cannot drift from the code.

The objects are closed (``additionalProperties: false``): a field added to an answer without
being documented here fails the schema test.
"""

from __future__ import annotations

import copy
from typing import Any

from syncd import __version__
from syncd.daemon import openapi_insight
from syncd.timefmt import RUNS_LIMIT_DEFAULT, RUNS_LIMIT_MAX

#: what every ``…_at`` field looks like (:func:`syncd.timefmt.rfc3339`)
TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"

STATES = ["idle", "running", "paused", "needs_auth", "failing"]
OUTCOMES = [
    "success",
    "partial",
    "failed",
    "needs_auth",
    "deferred",
    "retry_later",
    "config_error",
    "interrupted",
    "running",
    "dry_run",
]
ERROR_CODES = [
    "bad_request",
    "unauthorized",
    "unknown_sync",
    "not_found",
    "method_not_allowed",
    "already_running",
    "too_large",
    "config_error",
    "shutting_down",
    "internal",
    "http_error",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(
    properties: dict[str, Any], required: list[str] | None = None, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
EMPTY_TEXT = {"type": "string", "maxLength": 0}
TIME = {"type": "string", "format": "date-time", "pattern": TIME_PATTERN}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time", "pattern": TIME_PATTERN}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
STRINGS = {"type": "array", "items": STRING}
COUNTS = {"type": "object", "additionalProperties": INTEGER}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": {"type": "string", "enum": ERROR_CODES},
                    "message": {"type": "string", "minLength": 1},
                }
            )
        }
    ),
    "Health": _obj(
        {
            "status": {"type": "string", "enum": ["ok", "unhealthy"]},
            "checks": _obj({"loop": STRING, "database": STRING, "scheduler": STRING}),
        }
    ),
    "LastRun": _obj(
        {
            "id": {"type": ["integer", "null"]},
            "outcome": {"type": "string", "enum": OUTCOMES},
            "trigger": STRING,
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
            "duration_seconds": NULLABLE_NUMBER,
            "message": NULLABLE_STRING,
        }
    ),
    "Claim": _obj({"daemon": STRING, "since": NULLABLE_TIME}),
    "Running": _obj(
        {
            "run_id": {"type": ["integer", "null"]},
            "trigger": STRING,
            "started_at": NULLABLE_TIME,
            "progress": _obj({"done": INTEGER, "total": INTEGER}),
        }
    ),
    "SyncSummary": _obj(
        {
            "name": STRING,
            "state": {"type": "string", "enum": STATES},
            "enabled": BOOLEAN,
            "paused": BOOLEAN,
            "a": STRING,
            "b": STRING,
            "direction": {"type": "string", "enum": ["two-way", "a-to-b", "b-to-a"]},
            "interval_seconds": NUMBER,
            "last_run": _nullable(_ref("LastRun")),
            "last_success_at": NULLABLE_TIME,
            "next_run_at": NULLABLE_TIME,
            "running": _nullable(_ref("Running")),
            "running_elsewhere": NULLABLE_STRING,
            "claim": _nullable(_ref("Claim")),
            "webhooks": _ref("Webhooks"),
            "message": NULLABLE_STRING,
        }
    ),
    "Webhooks": _obj(
        {
            "active": BOOLEAN,
            "sides": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            "paths": {"type": "array", "items": STRING},
            "last_event_at": NULLABLE_TIME,
            "events_received": INTEGER,
            "events_waiting": INTEGER,
            "runs": INTEGER,
        }
    ),
    "Cursor": _obj(
        {
            "incremental": BOOLEAN,
            "last_full_listing_at": NULLABLE_TIME,
            "last_full_listing_age_seconds": NULLABLE_NUMBER,
        }
    ),
    "Status": _obj(
        {
            "version": STRING,
            "pid": INTEGER,
            "started_at": TIME,
            "uptime_seconds": NUMBER,
            "state": {"type": "string", "enum": ["running", "stopping"]},
            "api": STRING,
            "config": _obj(
                {
                    "directory": STRING,
                    "loaded_at": TIME,
                    "error": _nullable(
                        _obj({"message": STRING, "at": TIME, "source": STRING}),
                    ),
                    "restart_needed": STRINGS,
                }
            ),
            "runs_in_progress": INTEGER,
            "syncs": {"type": "array", "items": _ref("SyncSummary")},
        }
    ),
    "SyncList": _obj({"syncs": {"type": "array", "items": _ref("SyncSummary")}}),
    "Run": _obj(
        {
            "id": INTEGER,
            "outcome": {"type": "string", "enum": OUTCOMES},
            "trigger": STRING,
            "dry_run": BOOLEAN,
            "started_at": TIME,
            "finished_at": NULLABLE_TIME,
            "duration_seconds": NULLABLE_NUMBER,
            "counts": COUNTS,
            "message": NULLABLE_STRING,
        }
    ),
    "RunList": _obj({"sync": STRING, "runs": {"type": "array", "items": _ref("Run")}}),
    "RecordIssue": _obj(
        {
            "side": {"type": "string", "enum": ["a", "b"]},
            "record_id": STRING,
            "kind": {"type": "string", "enum": ["failed", "excluded", "ambiguous"]},
            "email": NULLABLE_STRING,
            "reason": STRING,
            "attempts": INTEGER,
            "first_seen": TIME,
            "last_seen": TIME,
            "next_attempt_at": NULLABLE_TIME,
        }
    ),
    "IssueList": _obj({"sync": STRING, "errors": {"type": "array", "items": _ref("RecordIssue")}}),
    "NoBody": {
        "description": "These paths take no body; an empty object is accepted",
        "type": "object",
        "maxProperties": 0,
    },
    "TriggerRequest": {
        "type": "object",
        "properties": {"full": BOOLEAN, "force": BOOLEAN},
        "additionalProperties": False,
    },
    "Triggered": _obj(
        {"sync": STRING, "run_id": {"type": ["integer", "null"]}, "trigger": STRING}
        | {"full": BOOLEAN, "force": BOOLEAN}
    ),
    "Reloaded": _obj(
        {
            "added": STRINGS,
            "changed": STRINGS,
            "removed": STRINGS,
            "unchanged": INTEGER,
            "restart_needed": STRINGS,
        }
    ),
    "Plugins": _obj(
        {
            "plugins": {
                "type": "array",
                "items": _obj(
                    {
                        "name": STRING,
                        "distribution": NULLABLE_STRING,
                        "version": NULLABLE_STRING,
                        "hooks": STRINGS,
                        "connectors": STRINGS,
                        "sandboxes": STRINGS,
                    }
                ),
            },
            "problems": {
                "type": "array",
                "items": _obj({"plugin": STRING, "message": STRING}),
            },
        }
    ),
    # the web console (issue 13): syncd/console/auth_pages.py
    "SignInCode": _obj(
        {
            "code": STRING,
            "path": STRING,
            "base_path": STRING,
            "expires_at": {**STRING, "pattern": TIME_PATTERN},
            "expires_in_seconds": INTEGER,
        }
    ),
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"type": "string", "const": "3.1.0"}},
    },
}

# the detail of one sync: its summary and more
SCHEMAS["SyncDetail"] = copy.deepcopy(SCHEMAS["SyncSummary"])
SCHEMAS["SyncDetail"]["properties"].update(
    {
        "initial": STRING,
        "winner": STRING,
        "deletions": STRING,
        "match": STRING,
        "full_every_seconds": NULLABLE_NUMBER,
        "counts": COUNTS,
        "issues": COUNTS,
        "links": INTEGER,
        "initialized_at": NULLABLE_TIME,
        "cursor_age_seconds": NULLABLE_NUMBER,
        "cursors": _obj({"a": _ref("Cursor"), "b": _ref("Cursor")}),
    }
)
SCHEMAS["SyncDetail"]["required"] = list(SCHEMAS["SyncDetail"]["properties"])
SCHEMAS.update(openapi_insight.SCHEMAS)  # health, retry, explain

ERROR_WHEN = {
    "400": "A bad request: a query parameter the path does not take, a body that is not a JSON "
    "object, an unknown key, a flag that is not true/false, a bad `limit`",
    "401": "No token, a wrong one, or a scheme other than Bearer",
    "404": "No sync by that name in the running config",
    "405": "Not a method of this path",
    "409": "The sync is already running, in the daemon or in another process",
    "413": "The body is larger than the API accepts",
    "422": "The config is invalid; the previous config keeps running",
    "500": "A bug: the daemon's log has the details",
    "503": "The daemon is stopping",
}

RESPONSES: dict[str, Any] = {
    status: {
        "description": text,
        "content": {"application/json": {"schema": _ref("Error")}},
        **(
            {
                "headers": {
                    "WWW-Authenticate": {
                        "description": 'Always `Bearer realm="syncd"`',
                        "schema": STRING,
                    }
                }
            }
            if status == "401"
            else {}
        ),
    }
    for status, text in ERROR_WHEN.items()
}

NO_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NoBody"}}},
}

NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The sync's name (its file in `syncs/`, without `.toml`)",
    "schema": STRING,
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: str) -> dict[str, Any]:
    # every operation can answer 400 (a query parameter it does not take), 401 (the token is
    # checked first) and 500 (a bug)
    every = {"400", "401", "500", *statuses}
    return {s: {"$ref": f"#/components/responses/{s}"} for s in sorted(every)}


def _op(
    operation_id: str, summary: str, ok: dict[str, dict[str, Any]], *errors: str, **more: Any
) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "responses": {**ok, **_errors(*errors)},
        **more,
    }


def _links(*targets: str) -> dict[str, Any]:
    """Links from a list of syncs to the operations that take a sync's name."""
    return {
        target: {"operationId": target, "parameters": {"name": "$response.body#/syncs/0/name"}}
        for target in targets
    }


SYNC_OPERATIONS = (
    "getSync",
    "listRuns",
    "listErrors",
    "triggerSync",
    "pauseSync",
    "resumeSync",
    "getSyncHealth",
    "retryRecords",
)


def _paths() -> dict[str, Any]:
    return openapi_insight.paths() | {
        "/healthz": {
            "get": _op(
                "health",
                "Whether the daemon works (the only path without a token)",
                {
                    "200": _json("Health", "Healthy"),
                    "503": _json("Health", "A check failed (named in `checks`)"),
                },
                security=[],
                responses_without_401=True,
            )
        },
        "/api/v1/openapi.json": {
            "get": _op(
                "openapi",
                "This document",
                {"200": _json("OpenApiDocument", "The OpenAPI 3.1 document of the API")},
            )
        },
        "/api/v1/status": {
            "get": _op(
                "getStatus",
                "The daemon and one entry per sync",
                {
                    "200": {
                        **_json("Status", "The daemon's status"),
                        "links": _links(*SYNC_OPERATIONS),
                    }
                },
            )
        },
        "/api/v1/syncs": {
            "get": _op(
                "listSyncs",
                "One entry per sync",
                {"200": {**_json("SyncList", "The syncs"), "links": _links(*SYNC_OPERATIONS)}},
            )
        },
        "/api/v1/syncs/{name}": {
            "parameters": [NAME],
            "get": _op(
                "getSync", "A sync and its detail", {"200": _json("SyncDetail", "The sync")}, "404"
            ),
        },
        "/api/v1/syncs/{name}/runs": {
            "parameters": [NAME],
            "get": _op(
                "listRuns",
                "The sync's runs, newest first",
                {"200": _json("RunList", "The runs")},
                "400",
                "404",
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": f"How many runs, 1 to {RUNS_LIMIT_MAX} "
                        f"(default {RUNS_LIMIT_DEFAULT})",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": RUNS_LIMIT_MAX,
                            "default": RUNS_LIMIT_DEFAULT,
                        },
                    }
                ],
            ),
        },
        "/api/v1/syncs/{name}/errors": {
            "parameters": [NAME],
            "get": _op(
                "listErrors",
                "Records that did not sync, and why",
                {"200": _json("IssueList", "The failing records")},
                "404",
            ),
        },
        "/api/v1/syncs/{name}/trigger": {
            "parameters": [NAME],
            "post": _op(
                "triggerSync",
                "Run the sync now",
                {
                    "202": {
                        **_json("Triggered", "The run started"),
                        "headers": {
                            "Location": {
                                "description": "Where to follow the run",
                                "schema": STRING,
                            }
                        },
                    }
                },
                "400",
                "404",
                "409",
                "413",
                "503",
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": _ref("TriggerRequest")}},
                },
            ),
        },
        "/api/v1/syncs/{name}/pause": {
            "parameters": [NAME],
            "post": _op(
                "pauseSync",
                "Stop scheduling the sync (kept across restarts)",
                {"200": _json("SyncSummary", "The sync, paused")},
                "404",
                "413",
                requestBody=NO_BODY,
            ),
        },
        "/api/v1/syncs/{name}/resume": {
            "parameters": [NAME],
            "post": _op(
                "resumeSync",
                "Schedule the sync again",
                {"200": _json("SyncSummary", "The sync, scheduled")},
                "404",
                "413",
                requestBody=NO_BODY,
            ),
        },
        "/api/v1/reload": {
            "post": _op(
                "reload",
                "Read the config directory again (as SIGHUP)",
                {"200": _json("Reloaded", "What changed")},
                "413",
                "422",
                requestBody=NO_BODY,
            )
        },
        "/api/v1/plugins": {
            "get": _op(
                "listPlugins",
                "Installed plugins",
                {"200": _json("Plugins", "The plugins and their problems")},
            )
        },
        "/hooks/{connector}/{account}": {
            "post": {
                "operationId": "receiveWebhook",
                "summary": "A vendor's webhook delivery (authenticated by its signature, not "
                "the token; Xero: /hooks/xero/<client_id>)",
                "security": [],
                "parameters": [
                    {
                        "name": "connector",
                        "in": "path",
                        "required": True,
                        "description": "The connector (`xero`)",
                        "schema": STRING,
                    },
                    {
                        "name": "account",
                        "in": "path",
                        "required": True,
                        "description": "The account (Xero: the app's client id)",
                        "schema": STRING,
                    },
                ],
                "requestBody": {
                    "required": False,
                    "description": "The vendor's payload, signed over its exact bytes",
                    "content": {"application/json": {"schema": {}}},
                },
                "responses": {
                    "200": {
                        "description": "Taken (no body): the changed records are queued",
                        "content": {"application/octet-stream": {"schema": EMPTY_TEXT}},
                    },
                    "401": {
                        "description": "The signature is missing or wrong (no body)",
                        "content": {"application/octet-stream": {"schema": EMPTY_TEXT}},
                    },
                    "400": {"$ref": "#/components/responses/400"},
                    "404": {
                        "description": "No such path (also: no sync uses that account)",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                    "405": {"$ref": "#/components/responses/405"},
                    "413": {"$ref": "#/components/responses/413"},
                    "500": {"$ref": "#/components/responses/500"},
                },
            }
        },
        # the web console's (issue 13): syncd/console/stream.py, syncd/console/auth_pages.py
        "/api/v1/events": {
            "get": _op(
                "streamEvents",
                "Server-Sent Events: runs started, their progress, their end, state changes, "
                "errors (docs/api.md lists them). Also taken with a console's session cookie",
                {
                    "200": {
                        "description": "An endless text/event-stream (a `hello` event first)",
                        "content": {"text/event-stream": {"schema": STRING}},
                    }
                },
                parameters=[
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "required": False,
                        "description": "Replay the kept events after this id (as the "
                        "Last-Event-ID header does)",
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
        "/api/v1/console/codes": {
            "post": _op(
                "issueSignInCode",
                "A one-time code to sign a browser in to the console (`syncd console`)",
                {"201": _json("SignInCode", "The code, good for one sign-in, for two minutes")},
                "413",
                requestBody=NO_BODY,
            )
        },
        "/metrics": {
            "get": _op(
                "metrics",
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": STRING}},
                    }
                },
            )
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    paths = {**_paths(), **_history_paths()}
    for item in paths.values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.pop("responses_without_401", False):
                operation["responses"].pop("401")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "syncd local API",
            "version": __version__,
            "description": "Status and control of a running `syncd run` (docs/api.md). Every "
            "path but `/healthz` needs `Authorization: Bearer <token>`. Errors are "
            '`{"error": {"code": ..., "message": ...}}`. Times are RFC 3339 in UTC, to the '
            "second (`2026-03-01T09:30:00Z`).",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`[api] token` in syncd.toml, or the state directory's "
                    "`api-token` file",
                }
            },
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": copy.deepcopy(RESPONSES),
        },
    }


# --- the change journal, undo, the review queue (issue 15; syncd/daemon/history_api.py) ------

ANY: dict[str, Any] = {}
SIDE = {"type": "string", "enum": ["a", "b"]}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
UNDO_ITEM = _obj(
    {
        "side": SIDE,
        "record_id": NULLABLE_STRING,
        "email": NULLABLE_STRING,
        "action": {"type": "string", "enum": ["restore", "archive", "recreate", "skip"]},
        "field": NULLABLE_STRING,
        "now": ANY,
        "restored": ANY,
        "reason": STRING,
    }
)
SCHEMAS.update(
    {
        "ChangeField": _obj(
            {
                "field": STRING,
                "app_field": STRING,
                "before": ANY,
                "sent": ANY,
                "stored": ANY,
                "reason": NULLABLE_STRING,
            },
            required=["field", "app_field", "before", "sent", "reason"],
        ),
        "Change": _obj(
            {
                "id": INTEGER,
                "run_id": NULLABLE_INTEGER,
                "at": NULLABLE_TIME,
                "side": SIDE,
                "kind": {"type": "string", "enum": ["create", "update", "archive"]},
                "record_id": NULLABLE_STRING,
                "source_id": NULLABLE_STRING,
                "email": NULLABLE_STRING,
                "reason": NULLABLE_STRING,
                "outcome": {
                    "type": "string",
                    "enum": ["pending", "confirmed", "failed", "refused", "superseded"],
                },
                "settled_at": NULLABLE_TIME,
                "fields": {"type": "array", "items": _ref("ChangeField")},
            }
        ),
        "ChangeList": _obj(
            {
                "sync": STRING,
                "total": INTEGER,
                "limit": INTEGER,
                "offset": INTEGER,
                "changes": {"type": "array", "items": _ref("Change")},
            }
        ),
        "UndoRequest": {
            "type": "object",
            "properties": {
                "run_id": {"type": "integer", "minimum": 1, "maximum": 2**62 - 1},
                "record": {"type": "string", "minLength": 1, "maxLength": 320},
                "dry_run": BOOLEAN,
                "force": BOOLEAN,
            },
            "required": ["run_id"],
            "additionalProperties": False,
        },
        "UndoResult": _obj(
            {
                "sync": STRING,
                "undone_run": INTEGER,
                "run_id": NULLABLE_INTEGER,
                "dry_run": BOOLEAN,
                "outcome": {"type": "string", "enum": OUTCOMES},
                "message": NULLABLE_STRING,
                "counts": COUNTS,
                "restored": {"type": "array", "items": UNDO_ITEM},
                "archived": {"type": "array", "items": UNDO_ITEM},
                "recreated": {"type": "array", "items": UNDO_ITEM},
                "skipped": {"type": "array", "items": UNDO_ITEM},
            }
        ),
        "HeldDeletion": _obj(
            {
                "id": INTEGER,
                "email": NULLABLE_STRING,
                "deleted_side": SIDE,
                "deleted_id": NULLABLE_STRING,
                "survivor_side": SIDE,
                "survivor_id": NULLABLE_STRING,
                "action": {"type": "string", "enum": ["archive", "tag", "forget"]},
                "why": STRING,
                "detected_at": NULLABLE_TIME,
                "run_id": NULLABLE_INTEGER,
            }
        ),
        "ReviewList": _obj(
            {"sync": STRING, "held": {"type": "array", "items": _ref("HeldDeletion")}}
        ),
        "ReviewRequest": {
            "type": "object",
            "properties": {
                key: {
                    "anyOf": [
                        {"type": "string", "const": "all"},
                        {
                            "type": "array",
                            "items": {"type": "integer", "minimum": 1, "maximum": 2**31},
                            "minItems": 1,
                            "maxItems": 100,
                        },
                    ]
                }
                for key in ("approve", "reject")
            },
            "minProperties": 1,
            "additionalProperties": False,
        },
        "ReviewDecision": _obj(
            {
                "sync": STRING,
                "run_id": NULLABLE_INTEGER,
                "approved": {"type": "array", "items": {"type": "object"}},
                "rejected": {"type": "array", "items": {"type": "object"}},
                "failed": {"type": "array", "items": {"type": "object"}},
            }
        ),
    }
)


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _history_paths() -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": _ref("UndoRequest")}}}
    review_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("ReviewRequest")}},
    }
    return {
        "/api/v1/syncs/{name}/changes": {
            "parameters": [NAME],
            "get": _op(
                "listChanges",
                "What syncd wrote, per write and field, oldest first (paged)",
                {"200": _json("ChangeList", "A page of journaled writes")},
                "400",
                "404",
                parameters=[
                    _query(
                        "run",
                        "Only this run's writes",
                        {"type": "integer", "minimum": 1, "maximum": 2**62},
                    ),
                    _query(
                        "record",
                        "Only this record: its email or its id on either side",
                        {"type": "string", "minLength": 1, "maxLength": 320},
                    ),
                    _query(
                        "since",
                        "Only writes younger than this many seconds",
                        {"type": "integer", "minimum": 1, "maximum": 10 * 366 * 86400},
                    ),
                    _query(
                        "limit",
                        "How many writes, 1 to 1000 (default 100)",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    ),
                    _query(
                        "offset",
                        "How many matching writes to skip (default 0)",
                        {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
                    ),
                ],
            ),
        },
        "/api/v1/syncs/{name}/undo": {
            "parameters": [NAME],
            "post": _op(
                "undoRun",
                "Undo what a run wrote, where the records still hold it (or show it: dry_run)",
                {"200": _json("UndoResult", "What was restored, archived, made again, skipped")},
                "400",
                "404",
                "409",
                "413",
                requestBody=body,
            ),
        },
        "/api/v1/syncs/{name}/review": {
            "parameters": [NAME],
            "get": _op(
                "listHeldDeletions",
                "Deletions held for review",
                {"200": _json("ReviewList", "The held deletions")},
                "404",
            ),
            "post": _op(
                "decideHeldDeletions",
                "Approve or reject held deletions",
                {"200": _json("ReviewDecision", "What was approved and rejected")},
                "400",
                "404",
                "409",
                "413",
                requestBody=review_body,
            ),
        },
    }

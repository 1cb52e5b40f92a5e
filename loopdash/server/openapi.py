"""The API as an OpenAPI 3.1 document: schemas as data, one builder.

The document describes what the daemon really answers (the contract of
dashboard-api.md plus the fields we add), so tests validate real responses
against it and schemathesis fuzzes the daemon from it. Objects whose shape we
own are closed (``additionalProperties: false``): a field added in code but
not here fails those tests, so the document cannot drift. Pure data, no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from loopdash import API_VERSION
from loopdash.derive.notify import KINDS as NOTIFICATION_KINDS
from loopdash.server.notify import MAX_NOTIFICATION_PAGE

JSONSchema = dict[str, Any]

RUN_ID_REGEX = r"^[0-9]{8}_[0-9]{6}$"
#: ISO-8601 UTC to the second with a ``Z``, as the contract writes times.
TIMESTAMP_REGEX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
TIMESTAMP: JSONSchema = {"type": "string", "format": "date-time", "pattern": TIMESTAMP_REGEX}
NULLABLE_TIMESTAMP: JSONSchema = {
    "type": ["string", "null"],
    "format": "date-time",
    "pattern": TIMESTAMP_REGEX,
}
COUNT: JSONSchema = {"type": "integer", "minimum": 0}
STRINGS: JSONSchema = {"type": "array", "items": {"type": "string"}}


def _ref(name: str) -> JSONSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _closed(properties: dict[str, JSONSchema], optional: tuple[str, ...] = ()) -> JSONSchema:
    """An object with exactly these properties, all required but ``optional``."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


NULLABLE_STRING: JSONSchema = {"type": ["string", "null"]}

RUN_ROW_TOTALS: dict[str, JSONSchema] = {
    "total_cost": {"type": "number"},
    "total_iterations": {"type": "integer"},
    "success_count": {"type": "integer"},
    "failure_count": {"type": "integer"},
    "elapsed_time_s": {"type": "number"},
}

#: The data models, under ``components.schemas``.
SCHEMAS: dict[str, JSONSchema] = {
    "Error": _closed({"error": {"type": "string", "minLength": 1}}),
    "Health": _closed(
        {
            "status": {"const": "ok"},
            "timestamp": TIMESTAMP,
            "version": {"type": "string", "description": "The API contract's version."},
            "server_version": {"type": "string", "description": "loopdash's own version (an addition)."},
        }
    ),
    "CurrentStory": _closed(
        {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "elapsed_ms": COUNT,
            "title": {"type": "string", "description": "An addition: the story's title, when known."},
        },
        optional=("title",),
    ),
    "ExecutionStatus": _closed(
        {
            "is_running": {"type": "boolean"},
            "run_id": {"type": ["string", "null"], "pattern": RUN_ID_REGEX},
            "current_story": {"oneOf": [_ref("CurrentStory"), {"type": "null"}]},
            "progress_pct": {"type": "number", "minimum": 0, "maximum": 100},
            "completed_stories": COUNT,
            "total_stories": COUNT,
            "elapsed_time": {"type": "integer"},
            "estimated_remaining": {"type": ["integer", "null"]},
            "cost_so_far": {"type": "number"},
            "last_update": TIMESTAMP,
        }
    ),
    "Story": _closed(
        {
            "id": {"type": "string", "minLength": 1},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "priority": {"type": ["number", "null"]},
            "status": {"enum": ["completed", "pending"]},
            "notes": {"type": "string"},
            "estimatedComplexity": {
                "type": ["string", "null"],
                "description": "As written in prd.json (the contract names simple, medium, complex).",
            },
            "dependencies": STRINGS,
            "acceptanceCriteria": {**STRINGS, "description": "An addition, from prd.json."},
            "state": {
                "enum": ["completed", "pending", "in_progress", "blocked"],
                "description": "An addition: status, or in_progress/blocked when the plan's status word says so.",
            },
            "priorityLabel": {
                "type": ["string", "null"],
                "description": "An addition: a priority written as a word (high), as written; null for numbers.",
            },
        }
    ),
    "StoryList": _closed(
        {
            "stories": {"type": "array", "items": _ref("Story")},
            "total": COUNT,
            "completed": COUNT,
            "pending": COUNT,
        }
    ),
    "LogEntry": _closed({"timestamp": {"type": "string"}, "lines": STRINGS}),
    "LogPage": {},  # filled in by build_openapi: its limit has the server's bound
    "Iteration": {
        "type": "object",
        "description": "The contract's fields; a real loop's extra fields (story_title, model, ...) pass through.",
        "properties": {
            "story_id": {"type": ["string", "null"]},
            "status": {
                "type": "string",
                "description": "success or failure; another word the loop wrote is passed through.",
            },
            "elapsed_ms": COUNT,
            "tokens_in": COUNT,
            "tokens_out": COUNT,
            "cost": {"type": "number"},
            "agents_used": STRINGS,
        },
        "required": ["story_id", "status", "elapsed_ms", "tokens_in", "tokens_out", "cost", "agents_used"],
        "additionalProperties": True,
    },
    "Metrics": _closed(
        {
            "run_id": {
                "type": "string",
                "pattern": RUN_ID_REGEX,
                "description": "An addition: the run these are.",
            },
            **RUN_ROW_TOTALS,
            "last_update": NULLABLE_TIMESTAMP,
            "iterations": {"type": "array", "items": _ref("Iteration")},
        }
    ),
    "RunRow": _closed(
        {
            "run_id": {"type": "string", "pattern": RUN_ID_REGEX},
            "timestamp": {"type": "string", "pattern": RUN_ID_REGEX},
            **RUN_ROW_TOTALS,
        }
    ),
    "RunList": {"type": "array", "items": _ref("RunRow")},
    "HistoryPage": {},  # filled in by build_openapi
    "RunDetail": _closed(
        {
            "run_id": {"type": "string", "pattern": RUN_ID_REGEX},
            "timestamp": {"type": "string", "pattern": RUN_ID_REGEX},
            "summary": _closed(dict(RUN_ROW_TOTALS)),
            "metrics": {
                "type": "object",
                "description": "iterations, last_update, and metrics.json's own blocks (cache, parallel, model_usage, ...).",
                "properties": {
                    "iterations": {"type": "array", "items": _ref("Iteration")},
                    "last_update": NULLABLE_TIMESTAMP,
                },
                "required": ["iterations"],
                "additionalProperties": True,
            },
        }
    ),
    "StreamTicket": _closed(
        {"ticket": {"type": "string", "minLength": 16}, "expires_in": {"type": "integer", "minimum": 1}}
    ),
    "StreamEvent": {},  # filled in by build_openapi from STREAM_EVENT_DATA
    "Notification": _closed(
        {
            "id": {"type": "integer", "minimum": 1, "description": "Unique in this daemon's history."},
            "kind": {
                "enum": list(NOTIFICATION_KINDS),
                "description": "What happened (see docs/notifications.md).",
            },
            "severity": {"enum": ["info", "success", "warning", "failure"]},
            "title": {"type": "string"},
            "message": {"type": "string"},
            "project": NULLABLE_STRING,
            "run_id": {"type": ["string", "null"], "pattern": RUN_ID_REGEX},
            "story_id": NULLABLE_STRING,
            "story_title": NULLABLE_STRING,
            "cost": {"type": "number", "description": "The run's cost in USD when it fired."},
            "time": {"type": "string", "format": "date-time"},
            "link": {
                "type": ["string", "null"],
                "description": "The dashboard page, when its address is known.",
            },
        }
    ),
    "NotificationSettings": {
        "type": "object",
        "properties": {
            "kinds": {"type": "array", "items": {"enum": list(NOTIFICATION_KINDS)}},
            "budget_usd": {"type": ["number", "null"]},
            "failure_streak": {"type": "integer", "minimum": 1},
            "stall_after": {"type": ["number", "null"]},
            "targets": {"type": "integer", "minimum": 0},
        },
        "required": ["kinds", "budget_usd", "stall_after"],
        "additionalProperties": True,
    },
    "NotificationPage": {},  # filled in by build_openapi
}

#: The ``data`` of each stream event type (the JSON of one ``data:`` line).
STREAM_EVENT_DATA: dict[str, JSONSchema] = {
    "connected": _closed({"server_version": {"type": "string"}, "api_version": {"type": "string"}}),
    "status_update": _ref("ExecutionStatus"),
    "story_updated": _ref("Story"),
    "iteration_added": {
        "allOf": [_ref("Iteration")],
        "properties": {"run_id": {"type": "string", "pattern": RUN_ID_REGEX}},
        "required": ["run_id"],
    },
    "log_appended": {
        "type": "object",
        "properties": {"timestamp": {"type": "string"}, "lines": STRINGS, "index": COUNT},
        "required": ["timestamp", "lines", "index"],
        "additionalProperties": False,
    },
    "run_started": _ref("RunRow"),
    "run_finished": _ref("RunRow"),
    "notification": _ref("Notification"),
}


def _stream_event_schema() -> JSONSchema:
    return {
        "type": "object",
        "description": "The JSON of one event's data line; `gap` marks a status sent after events were lost.",
        "properties": {
            "type": {"enum": list(STREAM_EVENT_DATA)},
            "data": {},
            "timestamp": NULLABLE_TIMESTAMP,
            "gap": {"const": True},
        },
        "required": ["type", "data", "timestamp"],
        "additionalProperties": False,
        "allOf": [
            {
                "if": {"properties": {"type": {"const": kind}}},
                "then": {"properties": {"data": schema}},
            }
            for kind, schema in STREAM_EVENT_DATA.items()
        ],
    }


def _page(items_key: str, item: JSONSchema, max_limit: int) -> JSONSchema:
    return _closed(
        {
            items_key: {"type": "array", "items": item, "maxItems": max_limit},
            "total": COUNT,
            "limit": {
                **COUNT,
                "maximum": max_limit,
                "description": "The limit applied (requests above the maximum are capped).",
            },
            "offset": COUNT,
        }
    )


# -- parameters and responses ----------------------------------------------------


def _query(name: str, schema: JSONSchema, description: str) -> JSONSchema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


RUN_ID_QUERY = _query(
    "run_id",
    {"type": "string", "pattern": RUN_ID_REGEX},
    "A run id (YYYYMMDD_HHMMSS); an unknown run is 404.",
)


def _count_parameter(default: int) -> JSONSchema:
    # An empty value (`?limit=`) means the default, as if the parameter were absent.
    return {
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[ \t]*$"}],
        "default": default,
    }


def _limit(default: int, maximum: int) -> JSONSchema:
    return _query(
        "limit",
        _count_parameter(default),
        f"Largest number of items to return; values above {maximum} are capped at {maximum}.",
    )


OFFSET = _query("offset", _count_parameter(0), "Items to skip.")


def _json(schema: JSONSchema, description: str, headers: dict[str, JSONSchema] | None = None) -> JSONSchema:
    response: JSONSchema = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, JSONSchema] | None = None) -> JSONSchema:
    return _json(_ref("Error"), description, headers)


ERRORS: dict[str, JSONSchema] = {
    "BadRequest": _error("A malformed query value."),
    "Unauthorized": _error(
        "Missing or malformed Authorization header (or two of them).",
        {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    ),
    "Forbidden": _error("A wrong token (or an invalid or expired stream ticket)."),
    "NotFound": _error("No such run, file or path."),
    "TooManyRequests": _error(
        "Too many failed authentications from this address; valid credentials are still served.",
        {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True}},
    ),
    "InternalError": _error("A bug (logged with its traceback); never caused by the loop's files."),
    "MisdirectedRequest": _error(
        "The Host header (or an absolute-form target's authority) names a host this daemon does not "
        "answer to (DNS rebinding protection; see --allowed-host). Checked before any route."
    ),
    "BadRequestHead": _error("A malformed request head: no Host on HTTP/1.1, two Hosts, an invalid Host."),
    "RequestTimeout": _error(
        "The request's head (and body) did not arrive within the request deadline; the connection is closed."
    ),
    "UriTooLong": _error("The request line is over 16 KB; the connection is closed."),
    "RequestHeaderFieldsTooLarge": _error(
        "A header line over 16 KB, a head over 16 KB, or over 500 header lines; the connection is closed."
    ),
    "ServiceUnavailable": _error(
        "The daemon holds its maximum of open connections (event streams included); the connection is closed.",
        {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True}},
    ),
    "PayloadTooLarge": _error("A request body over 64 KB; answered before any 100 Continue, then closed."),
}

#: Answers of the edge, before any route runs: every operation can get them.
EDGE_RESPONSES = {
    "400": "BadRequestHead",
    "408": "RequestTimeout",
    "414": "UriTooLong",
    "421": "MisdirectedRequest",
    "431": "RequestHeaderFieldsTooLarge",
    "503": "ServiceUnavailable",
}


def _responses(ok: JSONSchema, *errors: str, authenticated: bool = True) -> JSONSchema:
    out: JSONSchema = {"200": ok}
    codes = {"BadRequest": "400", "NotFound": "404"}
    for name in errors:
        out[codes[name]] = {"$ref": f"#/components/responses/{name}"}
    if authenticated:
        out["401"] = {"$ref": "#/components/responses/Unauthorized"}
        out["403"] = {"$ref": "#/components/responses/Forbidden"}
        out["429"] = {"$ref": "#/components/responses/TooManyRequests"}
    out["500"] = {"$ref": "#/components/responses/InternalError"}
    return out


def _get(
    operation_id: str,
    summary: str,
    ok: JSONSchema,
    *errors: str,
    parameters: list[JSONSchema] | None = None,
    public: bool = False,
) -> JSONSchema:
    operation: JSONSchema = {
        "operationId": operation_id,
        "summary": summary,
        "responses": _responses(ok, *errors, authenticated=not public),
    }
    if parameters:
        operation["parameters"] = parameters
    if public:
        operation["security"] = []
    return operation


def build_openapi(max_log_page: int, max_history_page: int, server_version: str) -> JSONSchema:
    """The whole document, with the server's page bounds filled in."""
    schemas = copy.deepcopy(SCHEMAS)
    schemas["LogPage"] = _page("logs", _ref("LogEntry"), max_log_page)
    schemas["HistoryPage"] = _page("runs", _ref("RunRow"), max_history_page)
    schemas["StreamEvent"] = _stream_event_schema()
    page = _page("notifications", _ref("Notification"), MAX_NOTIFICATION_PAGE)
    page["properties"]["settings"] = _ref("NotificationSettings")
    page["required"].append("settings")
    schemas["NotificationPage"] = page
    paths: JSONSchema = {
        "/api/health": {
            "get": _get(
                "health", "Liveness (no authentication).", _json(_ref("Health"), "Alive."), public=True
            )
        },
        "/api/openapi.json": {
            "get": _get(
                "openapi",
                "This document (no authentication).",
                _json({"type": "object", "required": ["openapi", "paths"]}, "The OpenAPI document."),
                public=True,
            )
        },
        "/api/status": {
            "get": _get(
                "status",
                "The execution status, derived from the loop's files.",
                _json(_ref("ExecutionStatus"), "The status."),
            )
        },
        "/api/stories": {
            "get": _get(
                "stories",
                "The stories of prd.json.",
                _json(_ref("StoryList"), "The stories."),
                "NotFound",
                parameters=[RUN_ID_QUERY],
            )
        },
        "/api/logs": {
            "get": _get(
                "logs",
                "progress.txt entries, oldest first.",
                _json(_ref("LogPage"), "A page of entries."),
                "BadRequest",
                "NotFound",
                parameters=[RUN_ID_QUERY, _limit(100, max_log_page), OFFSET],
            )
        },
        "/api/metrics": {
            "get": _get(
                "metrics",
                "The newest (or the named) run's metrics.",
                _json(_ref("Metrics"), "The run's metrics."),
                "NotFound",
                parameters=[RUN_ID_QUERY],
            )
        },
        "/api/history": {
            "get": _get(
                "history",
                "Run rows, newest first.",
                _json(_ref("HistoryPage"), "A page of runs."),
                "BadRequest",
                parameters=[_limit(20, max_history_page), OFFSET],
            )
        },
        "/api/notifications": {
            "get": _get(
                "notifications",
                "Recent notifications, newest first, and the rules' settings (budget, kinds).",
                _json(_ref("NotificationPage"), "A page of notifications."),
                "BadRequest",
                parameters=[_limit(50, MAX_NOTIFICATION_PAGE), OFFSET],
            )
        },
        "/api/runs": {
            "get": _get("runs", "Every run row, newest first.", _json(_ref("RunList"), "The runs."))
        },
        "/api/runs/{run_id}": {
            "get": _get(
                "run",
                "One run: its totals and its metrics.",
                _json(_ref("RunDetail"), "The run."),
                "NotFound",
                parameters=[
                    {
                        "name": "run_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": RUN_ID_REGEX},
                    }
                ],
            )
        },
        "/api/stream": {
            "get": {
                "operationId": "stream",
                "summary": "The live event stream (Server-Sent Events).",
                "description": (
                    "Messages are `id: <boot>-<seq>` plus one `data:` line holding a StreamEvent; "
                    "`: keepalive` comments keep the connection alive. Resume with Last-Event-ID."
                ),
                "security": [{"bearerAuth": []}, {"streamTicket": []}, {"streamToken": []}],
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    _query("last_event_id", {"type": "string"}, "Last-Event-ID for a fresh EventSource."),
                ],
                "responses": {
                    "200": {
                        "description": "The stream; each data line is a StreamEvent.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "429": {"$ref": "#/components/responses/TooManyRequests"},
                    "500": {"$ref": "#/components/responses/InternalError"},
                },
            }
        },
        "/api/stream/ticket": {
            "post": {
                "operationId": "streamTicket",
                "summary": "A single-use credential for EventSource, which cannot send headers.",
                "responses": _responses(_json(_ref("StreamTicket"), "A ticket.")),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "prometheusMetrics",
                "summary": "Prometheus metrics of the loop and the daemon.",
                "description": "Needs the token unless the daemon runs with --metrics-public; 404 when metrics are off.",
                "responses": {
                    "200": {
                        "description": "The exposition, in the format the Accept header asks for.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "429": {"$ref": "#/components/responses/TooManyRequests"},
                    "500": {"$ref": "#/components/responses/InternalError"},
                },
            }
        },
    }
    for operations in paths.values():
        for operation in operations.values():
            responses = operation["responses"]
            for code, name in EDGE_RESPONSES.items():
                # A route's own 400 (a malformed query value) keeps its description.
                responses.setdefault(code, {"$ref": f"#/components/responses/{name}"})
    paths["/api/stream/ticket"]["post"]["responses"]["413"] = {
        "$ref": "#/components/responses/PayloadTooLarge"
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "loopdash",
            "version": API_VERSION,
            "description": f"The dashboard API of an autonomous coding loop (loopdash {server_version}).",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": ERRORS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token of .claude-loop/dashboard/auth_token.txt.",
                },
                "streamTicket": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "ticket",
                    "description": "From POST /api/stream/ticket; accepted once, within its lifetime.",
                },
                "streamToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": (
                        "The API token itself, on /api/stream only, for pages that open "
                        "EventSource('/api/stream?token=...'). A ticket is safer: a URL ends up in "
                        "histories and proxies' logs, and a ticket is worth one stream for 30 s."
                    ),
                },
            },
        },
    }

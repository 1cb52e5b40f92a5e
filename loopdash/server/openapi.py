"""The API as an OpenAPI 3.1 document: routes, parameters and errors as data, one builder.

The document describes what the daemon really answers (the contract of
dashboard-api.md plus the fields we add), so tests validate real responses
against it and schemathesis fuzzes the daemon from it. Its schemas are not
written here: msgspec generates them from the classes the server answers with
(:mod:`loopdash.contract.shapes`), which are closed (``additionalProperties:
false``), so a field cannot be sent without being documented. Pure data, no I/O.
"""

from __future__ import annotations

from typing import Any

from loopdash import API_VERSION
from loopdash.contract.codec import schema_components
from loopdash.contract.shapes import (
    RUN_ID_REGEX,
    CommitDetailAnswer,
    CommitPageAnswer,
    ErrorAnswer,
    Event,
    ExecutionStatusAnswer,
    HealthAnswer,
    HistoryPageAnswer,
    LogPageAnswer,
    MetricsAnswer,
    NotificationPageAnswer,
    ProjectListAnswer,
    RunDetailAnswer,
    RunRowAnswer,
    StoryListAnswer,
    StreamEventAnswer,
    StreamTicketAnswer,
)
from loopdash.derive.notify import KINDS as NOTIFICATION_KINDS
from loopdash.server.notify import MAX_NOTIFICATION_PAGE

JSONSchema = dict[str, Any]

PREFIX = "#/components/schemas/"

#: The document's components: the schema of each class the server answers with
#: (named without ``Answer``) and of the classes they hold. The run list and the
#: stream's events are unions: named here.
ANSWERS: dict[str, Any] = {
    "Error": ErrorAnswer,
    "Health": HealthAnswer,
    "ExecutionStatus": ExecutionStatusAnswer,
    "StoryList": StoryListAnswer,
    "LogPage": LogPageAnswer,
    "Metrics": MetricsAnswer,
    "RunList": tuple[RunRowAnswer, ...],
    "HistoryPage": HistoryPageAnswer,
    "RunDetail": RunDetailAnswer,
    "StreamTicket": StreamTicketAnswer,
    "StreamEvent": StreamEventAnswer,
    "NotificationPage": NotificationPageAnswer,
    "CommitPage": CommitPageAnswer,
    "CommitDetail": CommitDetailAnswer,
    "ProjectList": ProjectListAnswer,
}

#: The routes also served per project, as ``/api/projects/{project_id}/...`` (docs/projects.md).
PER_PROJECT = (
    "/api/status",
    "/api/stories",
    "/api/logs",
    "/api/metrics",
    "/api/history",
    "/api/runs",
    "/api/runs/{run_id}",
    "/api/commits",
    "/api/commits/{sha}",
    "/api/notifications",
    "/api/stream",
)

PROJECT_ID_PARAMETER: JSONSchema = {
    "name": "project_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9._~-]+$"},
    "description": "A project's id, as GET /api/projects lists it; an unknown id is 404.",
}


def per_project_paths(paths: JSONSchema) -> JSONSchema:
    """Each route of :data:`PER_PROJECT` again under ``/api/projects/{project_id}``: the same
    answers, for that project, and 404 for an unknown project."""
    out: JSONSchema = {}
    for path in PER_PROJECT:
        operation = dict(paths[path]["get"])
        operation["operationId"] = (
            "project" + operation["operationId"][0].upper() + operation["operationId"][1:]
        )
        operation["summary"] = operation["summary"] + " For one project."
        operation["parameters"] = [PROJECT_ID_PARAMETER, *operation.get("parameters", [])]
        operation["responses"] = {
            **operation["responses"],
            "404": {"$ref": "#/components/responses/NotFound"},
        }
        out["/api/projects/{project_id}" + path.removeprefix("/api")] = {"get": operation}
    return out


#: ``since`` of /api/commits: a run id, a commit sha (or prefix), or blank (as if absent).
SINCE_REGEX = r"^([0-9]{8}_[0-9]{6}|[0-9a-f]{4,40}|[ \t]*)$"
#: The largest page of /api/commits (the API's bound, repeated in the document).
DEFAULT_MAX_COMMIT_PAGE = 200


def _ref(name: str) -> JSONSchema:
    return {"$ref": PREFIX + name}


def component_schemas(
    max_log_page: int, max_history_page: int, max_commit_page: int = DEFAULT_MAX_COMMIT_PAGE
) -> dict[str, JSONSchema]:
    """``components.schemas``: generated from loopdash.contract, with the server's page bounds."""
    schemas, components = schema_components(ANSWERS.values(), PREFIX)
    for name, schema in zip(ANSWERS, schemas, strict=True):
        if schema != _ref(name):
            components[name] = schema
    components["StreamEvent"]["description"] = Event.__doc__
    pages = (
        ("LogPage", "logs", max_log_page),
        ("HistoryPage", "runs", max_history_page),
        ("NotificationPage", "notifications", MAX_NOTIFICATION_PAGE),
        ("CommitPage", "commits", max_commit_page),
    )
    for name, items, bound in pages:
        properties = components[name]["properties"]
        properties[items]["maxItems"] = bound
        properties["limit"]["maximum"] = bound
    # The rules' kinds are derive's (a layer above the contract): named here.
    components["Notification"]["properties"]["kind"]["enum"] = list(NOTIFICATION_KINDS)
    components["NotificationSettings"]["properties"]["kinds"]["items"]["enum"] = list(NOTIFICATION_KINDS)
    return dict(sorted(components.items()))


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
    "NotFound": _error("No such run, file, project or path."),
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


#: On every JSON answer (issue 15): the stream event the answer is as new as.
EVENT_ID_HEADER: dict[str, JSONSchema] = {
    "X-Loopdash-Event-Id": {
        "description": (
            "The id of the last stream event published when this answer was made: the answer "
            "shows every change up to it. Apply only later events to it; resume the stream "
            "(last_event_id) from the oldest such id to miss nothing in between."
        ),
        "schema": {"type": "string", "pattern": "^[0-9a-f]+-[0-9]+$"},
        "required": True,
    }
}


def _get(
    operation_id: str,
    summary: str,
    ok: JSONSchema,
    *errors: str,
    parameters: list[JSONSchema] | None = None,
    public: bool = False,
) -> JSONSchema:
    if "application/json" in ok.get("content", {}):
        ok = {**ok, "headers": {**ok.get("headers", {}), **EVENT_ID_HEADER}}
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


def build_openapi(
    max_log_page: int,
    max_history_page: int,
    server_version: str,
    max_commit_page: int = DEFAULT_MAX_COMMIT_PAGE,
) -> JSONSchema:
    """The whole document, with the server's page bounds filled in."""
    schemas = component_schemas(max_log_page, max_history_page, max_commit_page)
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
        "/api/projects": {
            "get": _get(
                "projects",
                "Every project the daemon serves, at a glance, and the default one (docs/projects.md).",
                _json(_ref("ProjectList"), "The projects."),
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
        "/api/commits": {
            "get": _get(
                "commits",
                "Commits of the project's current branch, newest first (empty, with `git` saying why, "
                "when there is no repository, no commit yet, a shallow clone or a rebase in progress).",
                _json(_ref("CommitPage"), "A page of commits."),
                "BadRequest",
                "NotFound",
                parameters=[
                    _limit(20, max_commit_page),
                    OFFSET,
                    _query(
                        "since",
                        {"type": "string", "pattern": SINCE_REGEX},
                        "A run id (commits made since it started) or a commit sha (commits after it); "
                        "an unknown run or commit is 404.",
                    ),
                ],
            )
        },
        "/api/commits/{sha}": {
            "get": _get(
                "commit",
                "One commit with per-file stats and unified diffs (each file's diff capped, `truncated` "
                "when cut; binary files named, not shown).",
                _json(_ref("CommitDetail"), "The commit."),
                "BadRequest",
                "NotFound",
                parameters=[
                    {
                        "name": "sha",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{4,40}$"},
                        "description": "4 to 40 lower-case hex digits; anything else is 400.",
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
    paths.update(per_project_paths(paths))
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

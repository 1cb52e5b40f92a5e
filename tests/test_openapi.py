"""The OpenAPI document: valid OpenAPI 3.1, complete, and true of real answers.

Every endpoint's real answers (successes and errors, on a sample project, an
empty one and a live simulated loop) are validated against the document the
daemon serves, so neither can change without the other.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_twisted
import schemathesis
from jsonschema import Draft202012Validator

from loopdash.cli.sample import RealRun, progress_entry, write_prd
from loopdash.cli.simulator import LoopSimulator
from loopdash.derive.changes import MAX_ITEM_EVENTS
from loopdash.server.api import MAX_HISTORY_PAGE, MAX_LOG_PAGE, DashboardAPI
from tests.conftest import DaemonFactory
from tests.contract import Contract, the_document
from tests.support import RunningDaemon, open_stream


def test_the_document_is_valid_openapi_3_1_with_valid_json_schemas() -> None:
    document = the_document()
    assert document["openapi"] == "3.1.0"
    # schemathesis validates against the OpenAPI 3.1 meta-schema.
    schemathesis.openapi.from_dict(document).validate()
    for _name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)


def test_every_route_of_the_app_is_documented_with_its_methods() -> None:
    document = the_document()
    routed: dict[str, set[str]] = {}
    for rule in DashboardAPI.app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        # HEAD comes with GET (werkzeug adds it); OPTIONS is answered in front of the app.
        routed[path] = {m.lower() for m in rule.methods or ()} - {"head", "options"}
    documented = {path: set(item) for path, item in document["paths"].items()}
    assert routed == documented


def test_page_bounds_are_the_servers_own() -> None:
    schemas = the_document()["components"]["schemas"]
    assert schemas["LogPage"]["properties"]["limit"]["maximum"] == MAX_LOG_PAGE
    assert schemas["HistoryPage"]["properties"]["limit"]["maximum"] == MAX_HISTORY_PAGE


def test_every_authenticated_operation_declares_the_bearer_scheme_and_auth_errors() -> None:
    document = the_document()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The token of .claude-loop/dashboard/auth_token.txt.",
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            public = operation.get("security") == []
            assert public == (path in ("/api/health", "/api/openapi.json")), (path, method)
            if not public:
                assert {"401", "403", "429"} <= set(operation["responses"]), (path, method)


@pytest_twisted.ensureDeferred
async def test_the_document_is_served_without_authentication(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/openapi.json", authenticated=False)
    assert answer.code == 200
    assert answer.json() == the_document()
    Contract(the_document()).check("/api/openapi.json", "GET", answer.code, answer.headers, answer.body)


async def _check(
    daemon: RunningDaemon, contract: Contract, path: str, url: str, method: str = "GET", **kwargs: Any
) -> Any:
    answer = await daemon.request(method, url, **kwargs)
    value = contract.check(path, method, answer.code, answer.headers, answer.body)
    return answer.code, value


@pytest_twisted.ensureDeferred
async def test_every_endpoints_answers_on_a_sample_project_match_the_document(
    sample_daemon: RunningDaemon,
) -> None:
    contract = Contract(the_document())
    d = sample_daemon
    runs = (await _check(d, contract, "/api/runs", "/api/runs"))[1]
    assert len(runs) == 3
    seen: list[tuple[str, int]] = []
    for path, url in [
        ("/api/health", "/api/health"),
        ("/api/status", "/api/status"),
        ("/api/stories", "/api/stories"),
        ("/api/stories", f"/api/stories?run_id={runs[0]['run_id']}"),
        ("/api/stories", "/api/stories?run_id=20000101_000000"),
        ("/api/stories", "/api/stories?run_id=..%2F..%2Fetc"),
        ("/api/logs", "/api/logs"),
        ("/api/logs", "/api/logs?limit=2&offset=1"),
        ("/api/logs", f"/api/logs?limit={MAX_LOG_PAGE * 10}"),
        ("/api/logs", "/api/logs?limit=abc"),
        ("/api/logs", "/api/logs?offset=-1"),
        ("/api/logs", "/api/logs?run_id=19990101_000000"),
        ("/api/metrics", "/api/metrics"),
        ("/api/metrics", f"/api/metrics?run_id={runs[-1]['run_id']}"),
        ("/api/metrics", "/api/metrics?run_id=20000101_000000"),
        ("/api/history", "/api/history"),
        ("/api/history", f"/api/history?limit={MAX_HISTORY_PAGE + 1}&offset=0"),
        ("/api/history", "/api/history?offset=2"),
        ("/api/history", "/api/history?limit=1.5"),
        ("/api/runs/{run_id}", "/api/runs/20000101_000000"),
        ("/api/runs/{run_id}", "/api/runs/not-a-run"),
    ] + [("/api/runs/{run_id}", f"/api/runs/{row['run_id']}") for row in runs]:
        code, _ = await _check(d, contract, path, url)
        seen.append((url, code))
    codes = dict(seen)
    assert codes["/api/logs?limit=abc"] == codes["/api/logs?offset=-1"] == 400
    assert codes["/api/runs/not-a-run"] == codes["/api/metrics?run_id=20000101_000000"] == 404
    assert codes[f"/api/logs?limit={MAX_LOG_PAGE * 10}"] == 200
    for accept in (b"text/plain", b"application/openmetrics-text; version=1.0.0", b"*/*"):
        code, _ = await _check(d, contract, "/metrics", "/metrics", headers={b"Accept": [accept]})
        assert code == 200
    code, ticket = await _check(d, contract, "/api/stream/ticket", "/api/stream/ticket", method="POST")
    assert code == 200 and ticket["expires_in"] > 0


@pytest_twisted.ensureDeferred
async def test_auth_errors_match_the_document_on_every_authenticated_operation(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    contract = Contract(the_document())
    # Two failures per operation from one address: more than the default throttle
    # allows (30) since the API has more than 15 authenticated operations (issue 19).
    daemon = await daemon_factory(sample_root, auth_failure_burst=1000)
    for path, item in contract.document["paths"].items():
        url = path.replace("{run_id}", "20000101_000000").replace("{project_id}", "project")
        for method, operation in item.items():
            if operation.get("security") == []:
                continue
            code, body = await _check(daemon, contract, path, url, method.upper(), authenticated=False)
            assert code == 401 and body["error"]
            code, body = await _check(daemon, contract, path, url, method.upper(), token="wrong-token")
            assert code == 403 and body["error"]


@pytest_twisted.ensureDeferred
async def test_an_empty_project_answers_match_the_document(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    contract = Contract(the_document())
    d = await daemon_factory(empty_root)
    for path, url, expected in [
        ("/api/status", "/api/status", 200),
        ("/api/stories", "/api/stories", 200),
        ("/api/logs", "/api/logs", 200),
        ("/api/metrics", "/api/metrics", 404),
        ("/api/history", "/api/history", 200),
        ("/api/runs", "/api/runs", 200),
    ]:
        code, _ = await _check(d, contract, path, url)
        assert code == expected, url


@pytest_twisted.ensureDeferred
async def test_stream_headers_and_every_event_of_a_live_run_match_the_document(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    from twisted.internet import reactor

    contract = Contract(the_document())
    event = contract.schema_validator("#/components/schemas/StreamEvent")
    root = os.path.join(str(tmp_path), "live")
    os.makedirs(root)
    simulator = LoopSimulator(root, reactor, speed=40.0)
    simulator.start()
    try:
        daemon = await daemon_factory(root, poll_interval=0.1, keepalive=60.0)
        stream = await open_stream(daemon)
        await stream.next_of_type("run_finished", timeout=20)
        await stream.next_of_type("run_started", timeout=20)
    finally:
        simulator.stop()
    stream.close()
    contract.check("/api/stream", "GET", stream.response.code, stream.response.headers, b"")
    events = [m.data for m in stream.messages if m.comment is None and m.data is not None]
    for data in events:
        event.validate(data)
    kinds = {data["type"] for data in events}
    assert kinds == {
        "connected",
        "status_update",
        "story_updated",
        "iteration_added",
        "log_appended",
        "run_started",
        "run_finished",
        # The finished run is also told as a notification (docs/notifications.md).
        "notification",
    }


def test_the_event_schema_rejects_what_the_stream_must_never_send() -> None:
    event = Contract(the_document()).schema_validator("#/components/schemas/StreamEvent")
    row = {
        "run_id": "20260113_200000",
        "timestamp": "20260113_200000",
        "total_cost": 1.0,
        "total_iterations": 1,
        "success_count": 1,
        "failure_count": 0,
        "elapsed_time_s": 3.0,
        "state": "running",
        "last_activity": "2026-01-13T20:00:00Z",
    }
    good = {"type": "run_started", "data": row, "timestamp": "2026-01-13T20:00:00Z"}
    assert event.is_valid(good)
    assert not event.is_valid({**good, "type": "keepalive"})
    assert not event.is_valid({**good, "timestamp": "2026-01-13 20:00:00"})
    assert not event.is_valid({**good, "data": {**row, "run_id": "../etc"}})
    assert not event.is_valid({**good, "gap": False})
    assert not event.is_valid({**good, "event": "run_started"})
    assert not event.is_valid({**good, "data": {**row, "state": "alive"}})
    stalled = {**row, "quiet_for": 420}
    assert event.is_valid({**good, "type": "run_stalled", "data": stalled})
    assert not event.is_valid({**good, "type": "run_stalled", "data": row})  # quiet_for is required
    assert event.is_valid({**good, "type": "log_reset", "data": {"total": 1}})


@pytest_twisted.ensureDeferred
async def test_the_reset_events_of_a_large_change_match_the_document(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    event = Contract(the_document()).schema_validator("#/components/schemas/StreamEvent")
    count = MAX_ITEM_EVENTS + 20
    root = os.path.join(str(tmp_path), "big")
    stories = [
        {"id": f"US-{n:04d}", "title": f"Story {n}", "priority": 1, "passes": False} for n in range(count)
    ]
    os.makedirs(root)
    write_prd(root, stories)
    entry = progress_entry("2026-12-01 10:00", "US-0000", "Story 0", "Complete", ["ok"])
    with open(os.path.join(root, "progress.txt"), "w") as f:
        f.write("# progress\n\n" + entry)
    now = datetime.now(UTC)
    run = RealRun(root, now - timedelta(minutes=5))
    run.start()
    run.add_iteration("US-0000", "Story 0", now - timedelta(minutes=4), 60000)
    run.write_metrics(now - timedelta(minutes=4))

    daemon = await daemon_factory(root, poll_interval=0.05, keepalive=60.0)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    write_prd(root, [{**story, "passes": True} for story in stories])
    await stream.next_of_type("stories_reset")
    # Appends are sent whole, 100 per poll; a replaced log of more than 100 entries is a reset.
    with open(os.path.join(root, "progress.new"), "w") as f:
        f.write("# progress\n\n" + entry * count)
    os.replace(os.path.join(root, "progress.new"), os.path.join(root, "progress.txt"))
    await stream.next_of_type("logs_reset")
    for n in range(count):
        run.add_iteration("US-0001", "Story 1", now - timedelta(seconds=60 - n * 0.1), 100)
    run.write_metrics(now)
    await stream.next_of_type("iterations_reset")
    stream.close()
    events = [m.data for m in stream.messages if m.comment is None and m.data is not None]
    for data in events:
        event.validate(data)
    assert {"stories_reset", "logs_reset", "iterations_reset"} <= {data["type"] for data in events}

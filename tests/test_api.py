"""The REST API of dashboard-api.md and issue 2, one promise per test, through
treq (or raw bytes where the exact request matters) over a real socket."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import provider

from loopdash.cli.sample import append_progress, progress_entry, write_in_place
from loopdash.local.token import write_token
from loopdash.server import api
from loopdash.server.accesslog import redact_uri
from tests.conftest import DaemonFactory
from tests.support import Answer, RunningDaemon

ISO_Z = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
MISSING = {"error": "Missing or invalid Authorization header"}
INVALID = {"error": "Invalid authentication token"}
PROTECTED = [
    "/api/status",
    "/api/stories",
    "/api/logs",
    "/api/metrics",
    "/api/history",
    "/api/runs",
    "/api/runs/20260113_200000",
]


def run_ids(root: str) -> list[str]:
    """The sample's run directories, oldest first."""
    return sorted(os.listdir(os.path.join(root, ".claude-loop", "runs")))


def run_file(root: str, run_id: str, name: str) -> str:
    return os.path.join(root, ".claude-loop", "runs", run_id, name)


def load(root: str, run_id: str, name: str) -> Any:
    with open(run_file(root, run_id, name)) as f:
        return json.load(f)


def assert_json_error(answer: Answer, code: int) -> str:
    assert answer.code == code
    assert (answer.header("Content-Type") or "").startswith("application/json")
    body = answer.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    message: str = body["error"]
    return message


def bump_mtime(path: str, seconds: int) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


class _Collect(Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(self.data)


async def raw_request(daemon: RunningDaemon, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send exactly these request bytes (no client-side normalisation); read to close."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    port = int(daemon.url.rsplit(":", 1)[1])
    done: Deferred[bytes] = Deferred()
    protocol = _Collect(done)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), protocol)
    assert protocol.transport is not None
    protocol.transport.write(head)
    data = await done.addTimeout(10, reactor)
    header_bytes, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = header_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return int(status_line.split()[1]), headers, body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def raw_get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


# -- /api/health ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_health_is_public_and_names_the_contract_version(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/health", authenticated=False)
    assert answer.code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["version"] == "1.0.0"
    assert ISO_Z.match(body["timestamp"])


# -- /api/status -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_status_fields_and_types(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/status")
    assert answer.code == 200
    s = answer.json()
    assert isinstance(s["is_running"], bool)
    assert s["run_id"] == run_ids(sample_daemon.root)[-1]
    story = s["current_story"]
    assert isinstance(story["id"], str) and isinstance(story["status"], str)
    assert isinstance(story["elapsed_ms"], int)
    assert isinstance(s["progress_pct"], float)
    assert (s["completed_stories"], s["total_stories"], s["progress_pct"]) == (6, 8, 75.0)
    assert isinstance(s["elapsed_time"], int) and s["elapsed_time"] >= 0
    assert s["estimated_remaining"] is None or isinstance(s["estimated_remaining"], int)
    assert isinstance(s["cost_so_far"], (int, float))
    assert ISO_Z.match(s["last_update"])


@pytest_twisted.ensureDeferred
async def test_status_of_a_loop_at_work_names_the_next_story(sample_daemon: RunningDaemon) -> None:
    # The sample was written just now: the current run (no summary) is live.
    s = (await sample_daemon.get("/api/status")).json()
    assert s["is_running"] is True
    # US-005 is the first pending story by priority whose dependencies all pass.
    assert s["current_story"]["id"] == "US-005" and s["current_story"]["status"] == "in_progress"
    metrics = load(sample_daemon.root, s["run_id"], "metrics.json")
    assert s["cost_so_far"] == pytest.approx(metrics["totals"]["cost_usd"])


@pytest_twisted.ensureDeferred
async def test_status_honours_the_configured_staleness_window(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    two_minutes_ago = time.time() - 120
    for folder, _, files in os.walk(sample_root):
        for name in files:
            os.utime(os.path.join(folder, name), (two_minutes_ago, two_minutes_ago))
    patient = await daemon_factory(sample_root)  # the default window, 10 minutes
    assert (await patient.get("/api/status")).json()["is_running"] is True
    strict = await daemon_factory(sample_root, stale_after=60.0)
    s = (await strict.get("/api/status")).json()
    assert s["is_running"] is False
    # Not running: the last iteration's own story and status, not the next one.
    assert s["current_story"]["id"] == "US-007" and s["current_story"]["status"] == "success"


@pytest_twisted.ensureDeferred
async def test_status_on_an_empty_project(daemon_factory: DaemonFactory, empty_root: str) -> None:
    daemon = await daemon_factory(empty_root)
    answer = await daemon.get("/api/status")
    assert answer.code == 200
    s = answer.json()
    assert (s["is_running"], s["run_id"], s["current_story"], s["progress_pct"]) == (False, None, None, 0.0)
    assert (s["total_stories"], s["cost_so_far"], s["estimated_remaining"]) == (0, 0.0, None)


# -- /api/stories -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_stories_fields_and_counts(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/stories")
    assert answer.code == 200
    body = answer.json()
    with open(os.path.join(sample_daemon.root, "prd.json")) as f:
        prd = json.load(f)["userStories"]
    assert [s["id"] for s in body["stories"]] == [s["id"] for s in prd]
    for story, raw in zip(body["stories"], prd, strict=False):
        assert story["title"] == raw["title"] and story["description"] == raw["description"]
        assert story["priority"] == raw["priority"] and isinstance(story["priority"], int)
        assert story["status"] == ("completed" if raw["passes"] else "pending")
        assert story["notes"] == raw["notes"]
        assert story["estimatedComplexity"] == raw["estimatedComplexity"]
        assert story["dependencies"] == raw["dependencies"]
    assert (body["total"], body["completed"], body["pending"]) == (8, 6, 2)


@pytest_twisted.ensureDeferred
async def test_stories_with_a_known_run_id_and_an_unknown_one(sample_daemon: RunningDaemon) -> None:
    plain = await sample_daemon.get("/api/stories")
    known = await sample_daemon.get(f"/api/stories?run_id={run_ids(sample_daemon.root)[0]}")
    assert known.code == 200 and known.json() == plain.json()
    assert_json_error(await sample_daemon.get("/api/stories?run_id=20990101_000000"), 404)


@pytest_twisted.ensureDeferred
async def test_half_written_prd_serves_the_last_good_stories(sample_daemon: RunningDaemon) -> None:
    path = os.path.join(sample_daemon.root, "prd.json")
    good = (await sample_daemon.get("/api/stories")).json()
    with open(path) as f:
        text = f.read()
    write_in_place(path, text[: len(text) // 3])
    bump_mtime(path, 1)
    answer = await sample_daemon.get("/api/stories")
    assert answer.code == 200 and answer.json() == good


# -- /api/logs ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_logs_defaults_are_100_and_0(sample_daemon: RunningDaemon) -> None:
    body = (await sample_daemon.get("/api/logs")).json()
    assert (body["limit"], body["offset"], body["total"]) == (100, 0, 7)
    assert len(body["logs"]) == 7
    first = body["logs"][0]
    assert set(first) == {"timestamp", "lines"}
    assert isinstance(first["timestamp"], str) and first["timestamp"].endswith(("AM", "PM"))
    assert first["lines"][0].startswith("**Story**: US-001")
    assert all(line != "---" for entry in body["logs"] for line in entry["lines"])


@pytest_twisted.ensureDeferred
async def test_logs_pages_by_limit_and_offset(sample_daemon: RunningDaemon) -> None:
    whole = (await sample_daemon.get("/api/logs")).json()["logs"]
    page = (await sample_daemon.get("/api/logs?limit=2&offset=1")).json()
    assert page["logs"] == whole[1:3]
    assert (page["limit"], page["offset"], page["total"]) == (2, 1, 7)
    last = (await sample_daemon.get("/api/logs?limit=5&offset=5")).json()
    assert last["logs"] == whole[5:]


@pytest_twisted.ensureDeferred
async def test_logs_page_edges(sample_daemon: RunningDaemon) -> None:
    past = (await sample_daemon.get("/api/logs?offset=7")).json()
    assert past["logs"] == [] and past["total"] == 7 and past["offset"] == 7
    far = (await sample_daemon.get("/api/logs?offset=99999999999999999999")).json()
    assert far["logs"] == [] and far["total"] == 7
    none = (await sample_daemon.get("/api/logs?limit=0")).json()
    assert none["logs"] == [] and none["limit"] == 0 and none["total"] == 7
    empty_value = (await sample_daemon.get("/api/logs?limit=&offset=")).json()
    assert (empty_value["limit"], empty_value["offset"]) == (100, 0)


@pytest_twisted.ensureDeferred
async def test_logs_limit_is_capped_at_the_documented_maximum(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    append_progress(
        empty_root,
        "# progress\n\n"
        + "".join(
            progress_entry(f"2026-01-24 {n}", f"US-{n}", "t", "Complete", ["x"])
            for n in range(api.MAX_LOG_PAGE + 5)
        ),
    )
    daemon = await daemon_factory(empty_root)
    body = (await daemon.get("/api/logs?limit=1000000000")).json()
    assert body["limit"] == api.MAX_LOG_PAGE
    assert len(body["logs"]) == api.MAX_LOG_PAGE
    assert body["total"] == api.MAX_LOG_PAGE + 5
    assert body["logs"][-1]["timestamp"] == f"2026-01-24 {api.MAX_LOG_PAGE - 1}"


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=-1", "offset=abc", "offset=-5", "limit=1.5", "limit=0x10"]
)
@pytest_twisted.ensureDeferred
async def test_logs_bad_query_values_are_400_json(sample_daemon: RunningDaemon, query: str) -> None:
    message = assert_json_error(await sample_daemon.get(f"/api/logs?{query}"), 400)
    assert query.split("=")[0] in message


@pytest_twisted.ensureDeferred
async def test_logs_of_an_unknown_run_are_404(sample_daemon: RunningDaemon) -> None:
    assert_json_error(await sample_daemon.get("/api/logs?run_id=../../etc"), 404)


@pytest_twisted.ensureDeferred
async def test_logs_follow_appends(sample_daemon: RunningDaemon) -> None:
    append_progress(
        sample_daemon.root, progress_entry("2026-01-25 09:00", "US-005", "Pool", "Complete", ["new"])
    )
    body = (await sample_daemon.get("/api/logs?offset=7")).json()
    assert body["total"] == 8
    assert body["logs"] == [
        {
            "timestamp": "2026-01-25 09:00",
            "lines": [
                "**Story**: US-005 - Pool",
                "**Status**: Complete",
                "",
                "**What was implemented**:",
                "- new",
            ],
        }
    ]


# -- /api/metrics --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_metrics_default_to_the_newest_run_in_the_documented_shape(
    sample_daemon: RunningDaemon,
) -> None:
    newest = run_ids(sample_daemon.root)[-1]
    raw = load(sample_daemon.root, newest, "metrics.json")
    answer = await sample_daemon.get("/api/metrics")
    assert answer.code == 200
    m = answer.json()
    assert m["total_cost"] == pytest.approx(raw["totals"]["cost_usd"])
    assert m["elapsed_time_s"] == raw["totals"]["wall_duration_ms"] / 1000
    assert m["total_iterations"] == raw["totals"]["iterations"]
    assert (m["success_count"], m["failure_count"]) == (2, 0)
    assert m["last_update"] == raw["updated_at"]
    for it, raw_it in zip(m["iterations"], raw["iterations"], strict=True):
        assert it["story_id"] == raw_it["story_id"]
        assert it["status"] == "success"
        assert it["elapsed_ms"] == raw_it["duration_ms"] and isinstance(it["elapsed_ms"], int)
        assert it["cost"] == raw_it["cost_usd"]
        assert (it["tokens_in"], it["tokens_out"]) == (raw_it["tokens_in"], raw_it["tokens_out"])
        assert it["agents_used"] == raw_it["agents_used"]
        # The real loop's extra fields are what a dashboard shows.
        assert (it["story_title"], it["model"], it["timestamp"]) == (
            raw_it["story_title"],
            raw_it["model"],
            raw_it["timestamp"],
        )


@pytest_twisted.ensureDeferred
async def test_metrics_of_a_flat_shape_run_by_run_id(sample_daemon: RunningDaemon) -> None:
    oldest = run_ids(sample_daemon.root)[0]
    raw = load(sample_daemon.root, oldest, "metrics.json")
    m = (await sample_daemon.get(f"/api/metrics?run_id={oldest}")).json()
    for key in ("elapsed_time_s", "total_iterations", "success_count", "failure_count", "last_update"):
        assert m[key] == raw[key]
    assert m["total_cost"] == pytest.approx(raw["total_cost"])
    assert [i["status"] for i in m["iterations"]] == ["success", "failure"]
    # Written as a comma-separated string on disk, always a list in the answer.
    assert m["iterations"][1]["agents_used"] == ["backend-architect", "test-engineer"]


@pytest_twisted.ensureDeferred
async def test_metrics_on_an_empty_project_are_404(daemon_factory: DaemonFactory, empty_root: str) -> None:
    daemon = await daemon_factory(empty_root)
    answer = await daemon.get("/api/metrics")
    assert answer.code == 404 and answer.json() == {"error": "Metrics file not found"}


@pytest.mark.parametrize(
    "run_id", ["../../etc", "..%2F..%2Fetc", "20990101_000000", "20260113_200000/../x", "%00"]
)
@pytest_twisted.ensureDeferred
async def test_metrics_of_an_unknown_or_malformed_run_id_are_404(
    sample_daemon: RunningDaemon, run_id: str
) -> None:
    assert_json_error(await sample_daemon.get(f"/api/metrics?run_id={run_id}"), 404)


@pytest_twisted.ensureDeferred
async def test_half_written_metrics_serve_the_last_good_values(sample_daemon: RunningDaemon) -> None:
    newest = run_ids(sample_daemon.root)[-1]
    path = run_file(sample_daemon.root, newest, "metrics.json")
    good = await sample_daemon.get("/api/metrics")
    assert good.code == 200
    with open(path) as f:
        text = f.read()
    write_in_place(path, text[: len(text) // 2])
    bump_mtime(path, 1)
    again = await sample_daemon.get("/api/metrics")
    assert again.code == 200
    assert again.json() == good.json()
    # The run's row, first computed now, says the same and not zeros.
    run = (await sample_daemon.get(f"/api/runs/{newest}")).json()
    assert run["summary"]["total_cost"] == good.json()["total_cost"]
    assert run["summary"]["total_iterations"] == good.json()["total_iterations"]
    history = (await sample_daemon.get("/api/history?limit=1")).json()["runs"][0]
    assert history["total_cost"] == good.json()["total_cost"]


@pytest_twisted.ensureDeferred
async def test_metrics_that_never_parsed_are_treated_as_missing(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    newest = run_ids(sample_root)[-1]
    write_in_place(run_file(sample_root, newest, "metrics.json"), '{"session_id": "2026')
    daemon = await daemon_factory(sample_root)
    answer = await daemon.get("/api/metrics")
    assert answer.code == 404 and answer.json() == {"error": "Metrics file not found"}
    for path in ("/api/status", "/api/history", "/api/runs", f"/api/runs/{newest}"):
        assert (await daemon.get(path)).code == 200, path
    status = (await daemon.get("/api/status")).json()
    assert status["cost_so_far"] == 0.0


# -- /api/history and /api/runs ----------------------------------------------------------------


ROW_KEYS = {
    "run_id",
    "timestamp",
    "total_cost",
    "total_iterations",
    "success_count",
    "failure_count",
    "elapsed_time_s",
    # Issue 15: each run's state and last sign of life.
    "state",
    "last_activity",
}


@pytest_twisted.ensureDeferred
async def test_history_is_newest_first_with_defaults_20_and_0(sample_daemon: RunningDaemon) -> None:
    body = (await sample_daemon.get("/api/history")).json()
    assert (body["limit"], body["offset"], body["total"]) == (20, 0, 3)
    assert [r["run_id"] for r in body["runs"]] == run_ids(sample_daemon.root)[::-1]
    for row in body["runs"]:
        assert set(row) == ROW_KEYS and row["timestamp"] == row["run_id"]
        assert isinstance(row["total_iterations"], int) and isinstance(row["total_cost"], (int, float))


@pytest_twisted.ensureDeferred
async def test_history_rows_come_from_summary_else_metrics(sample_daemon: RunningDaemon) -> None:
    root = sample_daemon.root
    oldest, finished, current = run_ids(root)
    rows = {r["run_id"]: r for r in (await sample_daemon.get("/api/history")).json()["runs"]}
    flat = load(root, oldest, "summary.json")
    assert {k: rows[oldest][k] for k in flat} == pytest.approx(flat)
    real = load(root, finished, "summary.json")
    assert rows[finished]["total_cost"] == pytest.approx(real["cost"]["total_usd"])
    assert rows[finished]["total_iterations"] == real["stories"]["total"]
    assert rows[finished]["success_count"] == real["stories"]["completed"]
    assert rows[finished]["failure_count"] == real["stories"]["failed"]
    assert rows[finished]["elapsed_time_s"] == real["duration"]["wall_ms"] / 1000
    # Still running: no summary.json, a full row all the same, from metrics.json.
    live = load(root, current, "metrics.json")
    assert rows[current]["total_cost"] == pytest.approx(live["totals"]["cost_usd"])
    assert rows[current]["total_iterations"] == live["totals"]["iterations"]
    assert rows[current]["elapsed_time_s"] == live["totals"]["wall_duration_ms"] / 1000


@pytest_twisted.ensureDeferred
async def test_history_pagination_edges(sample_daemon: RunningDaemon) -> None:
    ids = run_ids(sample_daemon.root)[::-1]
    middle = (await sample_daemon.get("/api/history?limit=1&offset=1")).json()
    assert [r["run_id"] for r in middle["runs"]] == [ids[1]] and middle["total"] == 3
    assert (await sample_daemon.get("/api/history?offset=3")).json()["runs"] == []
    assert (await sample_daemon.get("/api/history?offset=50&limit=5")).json()["runs"] == []
    assert (await sample_daemon.get("/api/history?limit=0")).json()["runs"] == []
    capped = (await sample_daemon.get("/api/history?limit=99999999999")).json()
    assert capped["limit"] == api.MAX_HISTORY_PAGE and len(capped["runs"]) == 3


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "offset=x"])
@pytest_twisted.ensureDeferred
async def test_history_bad_query_values_are_400_json(sample_daemon: RunningDaemon, query: str) -> None:
    assert_json_error(await sample_daemon.get(f"/api/history?{query}"), 400)


@pytest_twisted.ensureDeferred
async def test_runs_is_a_json_array_of_history_rows(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/runs")
    assert answer.code == 200
    runs = answer.json()
    assert isinstance(runs, list)
    history = (await sample_daemon.get("/api/history")).json()["runs"]
    assert runs == history


@pytest_twisted.ensureDeferred
async def test_runs_ignores_files_and_non_run_directories(sample_daemon: RunningDaemon) -> None:
    runs_dir = os.path.join(sample_daemon.root, ".claude-loop", "runs")
    real = run_ids(sample_daemon.root)
    os.mkdir(os.path.join(runs_dir, "not-a-run"))
    write_in_place(os.path.join(runs_dir, "20990101_000000"), "a file, not a directory")
    outside = os.path.join(os.path.dirname(sample_daemon.root), "outside")
    os.makedirs(outside)
    os.symlink(outside, os.path.join(runs_dir, "20990202_000000"))
    runs = (await sample_daemon.get("/api/runs")).json()
    assert [r["run_id"] for r in runs] == real[::-1]
    for name in ("not-a-run", "20990101_000000", "20990202_000000"):
        assert_json_error(await sample_daemon.get(f"/api/runs/{name}"), 404)


# -- /api/runs/<run_id> -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_run_detail_of_a_real_shape_run(sample_daemon: RunningDaemon) -> None:
    finished = run_ids(sample_daemon.root)[1]
    answer = await sample_daemon.get(f"/api/runs/{finished}")
    assert answer.code == 200
    body = answer.json()
    assert body["run_id"] == body["timestamp"] == finished
    assert set(body["summary"]) == ROW_KEYS - {"run_id", "timestamp", "state", "last_activity"}
    raw = load(sample_daemon.root, finished, "metrics.json")
    metrics = body["metrics"]
    assert metrics["cache"] == raw["cache"]
    assert metrics["parallel"] == raw["parallel"]
    assert metrics["model_usage"] == raw["model_usage"]
    assert [i["story_id"] for i in metrics["iterations"]] == [i["story_id"] for i in raw["iterations"]]
    assert [i["status"] for i in metrics["iterations"]] == ["success", "success", "failure", "success"]


@pytest_twisted.ensureDeferred
async def test_run_detail_of_a_flat_shape_run(sample_daemon: RunningDaemon) -> None:
    oldest = run_ids(sample_daemon.root)[0]
    body = (await sample_daemon.get(f"/api/runs/{oldest}")).json()
    assert body["summary"]["elapsed_time_s"] == 600
    assert len(body["metrics"]["iterations"]) == 2


@pytest_twisted.ensureDeferred
async def test_run_detail_of_an_unknown_run_is_404(sample_daemon: RunningDaemon) -> None:
    assert_json_error(await sample_daemon.get("/api/runs/20990101_000000"), 404)
    assert_json_error(await sample_daemon.get("/api/runs/latest"), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/..%2F..%2Fetc",
        "/api/runs/..%2f..%2f..%2fetc%2fpasswd",
        "/api/runs/../../etc/passwd",
        "/api/runs/%2e%2e",
        "/api/runs/..",
        "/api/runs/20260113_200000%2F..%2F..%2F..",
        "/api/metrics?run_id=../../etc",
        "/api/metrics?run_id=..%2F..%2Fetc",
        "/api/stories?run_id=/etc",
    ],
)
@pytest_twisted.ensureDeferred
async def test_traversal_attempts_are_404_json(sample_daemon: RunningDaemon, path: str) -> None:
    code, headers, body = await raw_request(
        sample_daemon, raw_get(path, f"Authorization: Bearer {sample_daemon.token}")
    )
    assert code == 404
    assert headers["content-type"].startswith("application/json")
    assert list(json.loads(body)) == ["error"]
    assert b"root:" not in body


# -- unknown paths, wrong methods, real bugs ------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/nope", "/api/", "/api/status/extra", "/api/runs/a/b"])
@pytest_twisted.ensureDeferred
async def test_unknown_api_path_is_404_json(sample_daemon: RunningDaemon, path: str) -> None:
    assert_json_error(await sample_daemon.get(path), 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest_twisted.ensureDeferred
async def test_wrong_method_is_405_json_with_allow(sample_daemon: RunningDaemon, method: str) -> None:
    answer = await sample_daemon.request(method, "/api/status")
    assert_json_error(answer, 405)
    allow = [m.strip() for m in (answer.header("Allow") or "").split(",")]
    assert "GET" in allow and method not in allow


@pytest_twisted.ensureDeferred
async def test_a_real_bug_is_500_json_and_logged_with_its_traceback(sample_daemon: RunningDaemon) -> None:
    events: list[dict[str, Any]] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        events.append(event)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the status code")

    sample_daemon.dashboard.project.snapshot = broken  # type: ignore[method-assign]
    sample_daemon.dashboard.api.live.invalidate()  # requests share a snapshot: take a new one
    globalLogPublisher.addObserver(observe)
    try:
        answer = await sample_daemon.get("/api/status")
    finally:
        globalLogPublisher.removeObserver(observe)
    assert answer.code == 500 and answer.json() == {"error": "Internal server error"}
    assert b"a bug in the status code" not in answer.body
    failures = [e["log_failure"] for e in events if "log_failure" in e]
    assert any(f.check(RuntimeError) and "a bug in the status code" in f.getTraceback() for f in failures)


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PROTECTED)
@pytest_twisted.ensureDeferred
async def test_every_route_but_health_needs_the_token(sample_daemon: RunningDaemon, path: str) -> None:
    answer = await sample_daemon.get(path, authenticated=False)
    assert answer.code == 401 and answer.json() == MISSING


@pytest.mark.parametrize(
    "value",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer"],
)
@pytest_twisted.ensureDeferred
async def test_non_bearer_or_empty_header_is_401(sample_daemon: RunningDaemon, value: str) -> None:
    answer = await sample_daemon.get(
        "/api/status", authenticated=False, headers={b"Authorization": [value.encode()]}
    )
    assert answer.code == 401 and answer.json() == MISSING


@pytest_twisted.ensureDeferred
async def test_wrong_token_is_403_with_json_error(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/status", token="not-the-token")
    assert answer.code == 403 and answer.json() == INVALID
    prefix = await sample_daemon.get("/api/status", token=sample_daemon.token[:-1])
    assert prefix.code == 403 and prefix.json() == INVALID


@pytest_twisted.ensureDeferred
async def test_scheme_is_case_insensitive(sample_daemon: RunningDaemon) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        answer = await sample_daemon.get(
            "/api/status",
            authenticated=False,
            headers={b"Authorization": [f"{scheme} {sample_daemon.token}".encode()]},
        )
        assert answer.code == 200, scheme


@pytest_twisted.ensureDeferred
async def test_two_authorization_headers_are_refused(sample_daemon: RunningDaemon) -> None:
    good = f"Bearer {sample_daemon.token}"
    code, _, body = await raw_request(
        sample_daemon, raw_get("/api/status", f"Authorization: {good}", f"Authorization: {good}")
    )
    assert code == 401 and json.loads(body) == MISSING
    code, _, body = await raw_request(
        sample_daemon, raw_get("/api/status", "Authorization: Bearer wrong", f"Authorization: {good}")
    )
    assert code == 401 and json.loads(body) == MISSING


@pytest_twisted.ensureDeferred
async def test_token_rotated_on_disk_is_honoured_without_restart(sample_daemon: RunningDaemon) -> None:
    old = sample_daemon.token
    assert (await sample_daemon.get("/api/status", token=old)).code == 200
    new = write_token(sample_daemon.dashboard.config.token_path)
    assert new != old
    assert (await sample_daemon.get("/api/status", token=old)).code == 403
    assert (await sample_daemon.get("/api/status", token=new)).code == 200
    # Rewritten in place by an editor, too.
    write_in_place(sample_daemon.dashboard.config.token_path, "edited-by-hand-0123456789\n")
    bump_mtime(sample_daemon.dashboard.config.token_path, 1)
    assert (await sample_daemon.get("/api/status", token=new)).code == 403
    assert (await sample_daemon.get("/api/status", token="edited-by-hand-0123456789")).code == 200


@pytest_twisted.ensureDeferred
async def test_a_token_file_rotated_readable_by_others_is_refused_until_made_private(
    sample_daemon: RunningDaemon,
) -> None:
    path = sample_daemon.dashboard.config.token_path
    warnings: list[str] = []

    @provider(ILogObserver)
    def keep(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "loopdash" and "problem" in event:
            warnings.append(event["problem"])

    globalLogPublisher.addObserver(keep)
    try:
        # What `echo ... > auth_token.txt` makes under the usual umask.
        os.replace(path, path + ".old")
        with open(path, "w") as f:
            f.write("shared-with-everyone-0123456789\n")
        os.chmod(path, 0o644)
        refused = await sample_daemon.get("/api/status", token="shared-with-everyone-0123456789")
        again = await sample_daemon.get("/api/status", token="shared-with-everyone-0123456789")
        os.chmod(path, 0o600)
        accepted = await sample_daemon.get("/api/status", token="shared-with-everyone-0123456789")
    finally:
        globalLogPublisher.removeObserver(keep)

    assert (refused.code, again.code) == (403, 403)
    assert refused.json() == {"error": "Invalid authentication token"}
    assert len(warnings) == 1  # once for that version of the file, not once per request
    assert "accessible to other users (mode 0644)" in warnings[0]
    assert accepted.code == 200


@pytest_twisted.ensureDeferred
async def test_token_file_is_created_on_first_start_private(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    path = os.path.join(empty_root, ".claude-loop", "dashboard", "auth_token.txt")
    assert not os.path.exists(path)
    daemon = await daemon_factory(empty_root)
    assert daemon.dashboard.config.token_path == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    token = daemon.token
    assert len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert (await daemon.get("/api/status", token=token)).code == 200


@pytest_twisted.ensureDeferred
async def test_tokens_differ_between_projects(daemon_factory: DaemonFactory, tmp_path: Any) -> None:
    tokens = set()
    for name in ("a", "b"):
        root = os.path.join(str(tmp_path), name)
        os.makedirs(root)
        tokens.add((await daemon_factory(root)).token)
    assert len(tokens) == 2


@pytest_twisted.ensureDeferred
async def test_existing_token_file_is_used_as_is(daemon_factory: DaemonFactory, empty_root: str) -> None:
    path = os.path.join(empty_root, ".claude-loop", "dashboard", "auth_token.txt")
    write_in_place(path, "my-own-chosen-token\n")
    os.chmod(path, 0o600)  # one readable by others is refused (tests/test_security_headers.py)
    before = os.stat(path)
    daemon = await daemon_factory(empty_root)
    with open(path) as f:
        assert f.read() == "my-own-chosen-token\n"
    assert os.stat(path).st_ino == before.st_ino
    assert (await daemon.get("/api/status", token="my-own-chosen-token")).code == 200


# -- CORS ---------------------------------------------------------------------------------------------


ORIGIN = {b"Origin": [b"http://dashboard.example"]}


@pytest_twisted.ensureDeferred
async def test_all_origins_are_allowed_by_default(sample_daemon: RunningDaemon) -> None:
    for path, authenticated in (
        ("/api/status", True),
        ("/api/health", False),
        ("/api/status", False),
        ("/api/nope", True),
    ):
        answer = await sample_daemon.get(path, authenticated=authenticated, headers=ORIGIN)
        # Errors too: a browser can only read a 401's JSON with the header.
        assert answer.header("Access-Control-Allow-Origin") == "*", path


@pytest_twisted.ensureDeferred
async def test_preflight_is_204_and_allows_the_authorization_header(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.request(
        "OPTIONS",
        "/api/status",
        authenticated=False,
        headers={
            **ORIGIN,
            b"Access-Control-Request-Method": [b"GET"],
            b"Access-Control-Request-Headers": [b"authorization"],
        },
    )
    assert answer.code == 204
    assert answer.body == b""
    allowed_headers = [
        h.strip().lower() for h in (answer.header("Access-Control-Allow-Headers") or "").split(",")
    ]
    assert "authorization" in allowed_headers
    allowed_methods = [m.strip() for m in (answer.header("Access-Control-Allow-Methods") or "").split(",")]
    assert "GET" in allowed_methods
    assert answer.header("Access-Control-Allow-Origin") == "*"


@pytest_twisted.ensureDeferred
async def test_cors_origins_restrict_who_may_read(daemon_factory: DaemonFactory, sample_root: str) -> None:
    daemon = await daemon_factory(sample_root, cors_origins=("http://a.example",))
    allowed = await daemon.get("/api/status", headers={b"Origin": [b"http://a.example"]})
    assert allowed.code == 200
    assert allowed.header("Access-Control-Allow-Origin") == "http://a.example"
    assert "Origin" in (allowed.header("Vary") or "")
    other = await daemon.get("/api/status", headers={b"Origin": [b"http://b.example"]})
    assert other.header("Access-Control-Allow-Origin") is None
    preflight = await daemon.request(
        "OPTIONS",
        "/api/status",
        authenticated=False,
        headers={b"Origin": [b"http://b.example"], b"Access-Control-Request-Method": [b"GET"]},
    )
    assert preflight.header("Access-Control-Allow-Origin") is None


# -- the access log --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (b"/api/stream?ticket=s3cr3t", b"/api/stream?ticket=REDACTED"),
        (b"/api/stream?last_event_id=a-1&ticket=s3cr3t", b"/api/stream?last_event_id=a-1&ticket=REDACTED"),
        (b"/api/status?token=abc&Token=def", b"/api/status?token=REDACTED&Token=REDACTED"),
        (b"/api/status?access_token=abc&auth=x", b"/api/status?access_token=REDACTED&auth=REDACTED"),
        (b"/api/logs?limit=10&offset=5", b"/api/logs?limit=10&offset=5"),
        (b"/api/status", b"/api/status"),
    ],
)
def test_access_log_redacts_secrets_in_query_strings(uri: bytes, expected: bytes) -> None:
    assert redact_uri(uri) == expected

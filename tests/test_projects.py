"""Many projects, one daemon (issue 19, docs/projects.md), over real sockets.

A daemon given one --root answers every route also under /api/projects/<id>/
exactly as the plain route; a daemon given several serves each project under
its id, the first by the plain routes, and tags every event with its project.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import pytest_twisted

from loopdash.cli.sample import SAMPLE_STORIES, create_sample_project, write_prd
from tests.conftest import DaemonFactory
from tests.contract import Contract, the_document
from tests.support import RunningDaemon, open_stream

#: Each per-project route, as the plain route's path and query.
ROUTES = (
    "/status",
    "/stories",
    "/logs",
    "/logs?limit=2&offset=1",
    "/logs?limit=abc",
    "/metrics",
    "/metrics?run_id=20000101_000000",
    "/history",
    "/history?limit=1",
    "/runs",
    "/runs/20000101_000000",
    "/commits",
    "/commits/zzzz",
    "/notifications",
)

FAST = {"poll_interval": 0.05, "use_git": False}


def stories(*titles: str, passed: int = 0) -> list[dict[str, Any]]:
    base = dict(SAMPLE_STORIES[0])
    return [
        dict(base, id=f"US-{n + 1:03}", title=title, priority=n + 1, passes=n < passed, notes="")
        for n, title in enumerate(titles)
    ]


@pytest.fixture
def two_roots(tmp_path: Any) -> tuple[str, str]:
    """Two projects: ``alpha`` (the sample project) and ``beta`` (a plan of two stories, one passed)."""
    alpha = os.path.join(str(tmp_path), "alpha")
    beta = os.path.join(str(tmp_path), "Beta Project")
    create_sample_project(alpha)
    os.makedirs(beta)
    write_prd(beta, stories("Second loop's first", "Second loop's second", passed=1), project="Beta loop")
    return alpha, beta


async def same_answer(daemon: RunningDaemon, plain: str, scoped: str) -> None:
    """``scoped`` answers as ``plain``: the same status and body (one of two plain answers
    around it, in case a second ticked over between them)."""
    before = await daemon.get(plain)
    answer = await daemon.get(scoped)
    after = await daemon.get(plain)
    assert answer.code in (before.code, after.code), scoped
    assert answer.body in (before.body, after.body), scoped


# -- a single-project daemon ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_single_project_daemon_answers_each_route_under_its_id_as_the_plain_route(
    sample_daemon: RunningDaemon,
) -> None:
    listing = (await sample_daemon.get("/api/projects")).json()
    ident = listing["default"]
    assert ident == "project"  # the folder's name
    for route in ROUTES:
        await same_answer(sample_daemon, "/api" + route, f"/api/projects/{ident}{route}")


@pytest_twisted.ensureDeferred
async def test_a_single_project_daemon_lists_its_one_project_as_its_status_says(
    sample_daemon: RunningDaemon,
) -> None:
    answer = await sample_daemon.get("/api/projects")
    Contract(the_document()).check("/api/projects", "GET", answer.code, answer.headers, answer.body)
    listing = answer.json()
    assert listing["total"] == 1 and listing["default"] == "project"
    (row,) = listing["projects"]
    status = (await sample_daemon.get("/api/status")).json()
    assert row["id"] == "project" and row["name"] == "claude-loop-p2-features"
    assert row["path"] == sample_daemon.root and row["family"] == "claude-loop"
    assert row["machine"] is None and row["reachable"] is True
    for name in ("state", "is_running", "progress_pct", "completed_stories", "total_stories", "cost_so_far"):
        assert row[name] == status[name], name
    assert row["failed_iterations"] >= 0


@pytest_twisted.ensureDeferred
async def test_an_unknown_project_is_404_and_only_after_the_token_is_checked(
    sample_daemon: RunningDaemon,
) -> None:
    answer = await sample_daemon.get("/api/projects/nope/status")
    assert answer.code == 404 and answer.json() == {"error": "Project not found: nope"}
    answer = await sample_daemon.get("/api/projects/nope/stream")
    assert answer.code == 404 and answer.json() == {"error": "Project not found: nope"}
    assert (await sample_daemon.get("/api/projects/nope/status", authenticated=False)).code == 401
    assert (await sample_daemon.get("/api/projects", authenticated=False)).code == 401


@pytest_twisted.ensureDeferred
async def test_a_single_project_daemon_streams_without_a_project_field_on_either_stream(
    sample_daemon: RunningDaemon,
) -> None:
    combined = await open_stream(sample_daemon)
    scoped = await open_stream(sample_daemon, path="/api/projects/project/stream")
    for stream in (combined, scoped):
        await stream.next_of_type("connected")
        status = await stream.next()
        assert status.type == "status_update" and "project" not in status.data
    sample_daemon.dashboard.hub.publish("story_updated", {"id": "US-001"})
    for stream in (combined, scoped):
        # The sample's watcher may publish a status meanwhile (seen once in CI);
        # every event, that one too, must be without a project field.
        event = await stream.next()
        for _ in range(3):
            if event.type == "story_updated":
                break
            assert event.type == "status_update" and "project" not in event.data
            event = await stream.next()
        assert event.type == "story_updated" and "project" not in event.data
        stream.close()


# -- a daemon of two --root projects ---------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_two_roots_are_served_each_under_its_id_the_first_by_the_plain_routes(
    daemon_factory: DaemonFactory, two_roots: tuple[str, str]
) -> None:
    alpha, beta = two_roots
    daemon = await daemon_factory(alpha, more_roots=(beta,), **FAST)
    answer = await daemon.get("/api/projects")
    Contract(the_document()).check("/api/projects", "GET", answer.code, answer.headers, answer.body)
    listing = answer.json()
    assert listing["default"] == "alpha" and listing["total"] == 2
    rows = {row["id"]: row for row in listing["projects"]}
    assert sorted(rows) == ["alpha", "beta_project"]
    assert rows["beta_project"]["name"] == "Beta loop"
    assert rows["beta_project"]["path"] == beta
    assert (rows["beta_project"]["completed_stories"], rows["beta_project"]["total_stories"]) == (1, 2)
    assert rows["beta_project"]["progress_pct"] == 50.0
    beta_stories = (await daemon.get("/api/projects/beta_project/stories")).json()
    assert [s["title"] for s in beta_stories["stories"]] == ["Second loop's first", "Second loop's second"]
    alpha_stories = (await daemon.get("/api/projects/alpha/stories")).json()
    assert len(alpha_stories["stories"]) == len(SAMPLE_STORIES)
    for route in ROUTES:
        await same_answer(daemon, "/api" + route, "/api/projects/alpha" + route)
    status = (await daemon.get("/api/projects/beta_project/status")).json()
    assert (status["completed_stories"], status["total_stories"]) == (1, 2)


@pytest_twisted.ensureDeferred
async def test_the_combined_stream_tags_each_event_with_its_project(
    daemon_factory: DaemonFactory, two_roots: tuple[str, str]
) -> None:
    alpha, beta = two_roots
    daemon = await daemon_factory(alpha, more_roots=(beta,), **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("connected")
    status = await stream.next()
    assert status.type == "status_update" and status.data["project"] == "alpha"
    write_prd(beta, stories("Second loop's first", "Second loop's second", passed=2), project="Beta loop")
    updated = await stream.next_of_type("story_updated")
    assert updated.data["project"] == "beta_project" and updated.data["data"]["id"] == "US-002"
    row = await stream.next_of_type("project_updated")
    assert row.data["project"] == "beta_project"
    assert row.data["data"]["id"] == "beta_project" and row.data["data"]["completed_stories"] == 2
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_project_stream_carries_its_project_only_and_resumes_within_it(
    daemon_factory: DaemonFactory, two_roots: tuple[str, str]
) -> None:
    alpha, beta = two_roots
    daemon = await daemon_factory(alpha, more_roots=(beta,), **FAST)
    hub = daemon.dashboard.hub
    scoped = await open_stream(daemon, path="/api/projects/beta_project/stream")
    await scoped.next_of_type("connected")
    status = await scoped.next()
    assert status.data["project"] == "beta_project" and status.data["data"]["total_stories"] == 2
    hub.publish("story_updated", {"n": 1}, project="alpha")
    hub.publish("story_updated", {"n": 2}, project="beta_project")
    hub.publish("project_updated", {"n": 3}, project="beta_project", combined_only=True)
    hub.publish("story_updated", {"n": 4}, project="beta_project")
    first = await scoped.next()
    assert first.data["data"] == {"n": 2} and first.data["project"] == "beta_project"
    second = await scoped.next()
    assert second.data["data"] == {"n": 4}
    scoped.close()
    # A resume from the first replays the project's later events only.
    resumed = await open_stream(
        daemon,
        path="/api/projects/beta_project/stream",
        headers={**daemon.auth(), b"Last-Event-ID": [first.id]},
    )
    await resumed.next_of_type("connected")
    replayed = await resumed.next()
    assert replayed.id == second.id and replayed.data["data"] == {"n": 4}
    resumed.close()


# -- a daemon scanning a folder ----------------------------------------------------------


@pytest.fixture
def scan_root(tmp_path: Any) -> str:
    """A folder of loops: ``alpha`` (the sample project), ``team/beta`` (a plan only), and
    ``node_modules/gamma`` (never entered)."""
    root = os.path.join(str(tmp_path), "work")
    create_sample_project(os.path.join(root, "alpha"))
    beta = os.path.join(root, "team", "beta")
    os.makedirs(beta)
    write_prd(beta, stories("Beta's only story"), project="Beta loop")
    gamma = os.path.join(root, "node_modules", "gamma")
    os.makedirs(gamma)
    write_prd(gamma, stories("Never served"))
    return root


async def scanning_daemon(daemon_factory: DaemonFactory, scan_root: str, **config: Any) -> RunningDaemon:
    return await daemon_factory(scan_root, root_given=False, scan=(scan_root,), **FAST, **config)


@pytest_twisted.ensureDeferred
async def test_a_scanning_daemon_serves_every_project_below_its_folder(
    daemon_factory: DaemonFactory, scan_root: str
) -> None:
    daemon = await scanning_daemon(daemon_factory, scan_root)
    assert daemon.dashboard.config.token_path == os.path.join(scan_root, ".loopdash", "auth_token.txt")
    listing = (await daemon.get("/api/projects")).json()
    rows = {row["id"]: row for row in listing["projects"]}
    assert sorted(rows) == ["alpha", "team--beta"] and listing["default"] == "alpha"
    assert rows["team--beta"]["path"] == "team/beta" and rows["team--beta"]["name"] == "Beta loop"
    assert rows["alpha"]["family"] == "claude-loop"
    beta = (await daemon.get("/api/projects/team--beta/stories")).json()
    assert [s["title"] for s in beta["stories"]] == ["Beta's only story"]
    await same_answer(daemon, "/api/status", "/api/projects/alpha/status")


@pytest_twisted.ensureDeferred
async def test_a_project_created_or_removed_under_the_scan_folder_is_announced_on_the_stream(
    daemon_factory: DaemonFactory, scan_root: str
) -> None:
    # A fallback scan far away: what is announced was heard through inotify.
    daemon = await scanning_daemon(daemon_factory, scan_root, scan_interval=3600.0)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    delta = os.path.join(scan_root, "team", "delta")
    os.makedirs(delta)
    write_prd(delta, stories("Delta's first", "Delta's second", passed=1), project="Delta loop")
    added = await stream.next_of_type("project_added", timeout=3.0)
    assert added.data["project"] == "team--delta"
    assert added.data["data"]["id"] == "team--delta" and added.data["data"]["completed_stories"] == 1
    listing = (await daemon.get("/api/projects")).json()
    assert [row["id"] for row in listing["projects"]] == ["alpha", "team--beta", "team--delta"]
    status = (await daemon.get("/api/projects/team--delta/status")).json()
    assert status["total_stories"] == 2
    # The new project's own events are on the combined stream, tagged.
    write_prd(delta, stories("Delta's first", "Delta's second", passed=2), project="Delta loop")
    story = await stream.next_of_type("story_updated", timeout=3.0)
    assert story.data["project"] == "team--delta"
    import shutil

    shutil.rmtree(delta)
    removed = await stream.next_of_type("project_removed", timeout=3.0)
    assert removed.data["data"] == {"id": "team--delta"}
    assert (await daemon.get("/api/projects/team--delta/status")).code == 404
    listing = (await daemon.get("/api/projects")).json()
    assert [row["id"] for row in listing["projects"]] == ["alpha", "team--beta"]
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_scanning_daemon_with_no_project_yet_says_so_on_the_plain_routes(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    empty = os.path.join(str(tmp_path), "nothing")
    os.makedirs(empty)
    daemon = await scanning_daemon(daemon_factory, empty)
    listing = (await daemon.get("/api/projects")).json()
    assert listing == {"projects": [], "total": 0, "default": None}
    answer = await daemon.get("/api/status")
    assert answer.code == 404 and answer.json() == {"error": "No project found"}
    assert (await daemon.get("/api/health", authenticated=False)).code == 200


def test_the_plugin_takes_several_roots_and_scan_folders(tmp_path: Any) -> None:
    from loopdash.server.tap import Options

    a, b, scan = (os.path.join(str(tmp_path), name) for name in ("a", "b", "scan"))
    for folder in (a, b, scan):
        os.makedirs(folder)
    options = Options()
    options.parseOptions(["--root", a, "--root", b, "--scan-depth", "5"])
    config = options.config()
    assert config.roots == (a, b) and config.multi and config.scan_depth == 5
    assert config.token_path == os.path.join(a, ".claude-loop", "dashboard", "auth_token.txt")
    options = Options()
    options.parseOptions(["--scan", scan, "--scan-interval", "30"])
    config = options.config()
    assert config.roots == () and config.scan == (scan,) and config.multi and config.scan_interval == 30
    assert config.token_path == os.path.join(scan, ".loopdash", "auth_token.txt")
    options = Options()
    options.parseOptions(["--root", a])
    assert options.config().roots == (a,) and not options.config().multi


@pytest_twisted.ensureDeferred
async def test_without_inotify_the_interval_scan_finds_a_new_project(
    daemon_factory: DaemonFactory, scan_root: str
) -> None:
    daemon = await scanning_daemon(daemon_factory, scan_root, use_inotify=False, scan_interval=0.2)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    scanner = daemon.dashboard.scanner
    assert scanner is not None
    ticks, scans = scanner.ticks, scanner.scans
    delta = os.path.join(scan_root, "delta")
    os.makedirs(delta)
    write_prd(delta, stories("Delta's first"))
    added = await stream.next_of_type("project_added", timeout=5.0)
    assert added.data["data"]["id"] == "delta"
    assert scanner.ticks > ticks and scanner.scans > scans
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_multi_project_daemon_polls_projects_at_rest_less_often(
    daemon_factory: DaemonFactory, two_roots: tuple[str, str]
) -> None:
    alpha, beta = two_roots
    daemon = await daemon_factory(alpha, more_roots=(beta,), use_git=False)
    at_rest = daemon.dashboard.projects.get("beta_project")
    live = daemon.dashboard.projects.get("alpha")
    assert at_rest is not None and live is not None
    assert at_rest.watcher.last is not None and not at_rest.watcher.last.status["is_running"]
    assert live.watcher.last is not None and live.watcher.last.status["is_running"]
    assert at_rest.watcher.watching_all and live.watcher.watching_all
    assert at_rest.watcher.period() == 60.0
    # A live run: polled when its quiet time reaches the stall threshold (300 s), at most a
    # minute apart (tests/test_liveness.py follows one through stalled and stopped).
    quiet = live.watcher.last.status["quiet_for"]
    assert isinstance(quiet, int) and 0 <= quiet < 240
    assert live.watcher.period() == 60.0
    single = await daemon_factory(beta, use_git=False)
    assert single.dashboard.watcher.ended_interval is None


@pytest_twisted.ensureDeferred
async def test_projects_share_one_inotify_that_outlives_a_folder_deleted_in_one_of_them(
    daemon_factory: DaemonFactory, two_roots: tuple[str, str]
) -> None:
    import shutil

    alpha, beta = two_roots
    daemon = await daemon_factory(alpha, more_roots=(beta,), use_git=False)
    projects = daemon.dashboard.projects
    views = [bundle.watcher._notifier for bundle in projects.bundles()]
    assert all(view is not None for view in views)
    assert len({id(view.notifier) for view in views}) == 1  # one inotify instance for both
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    # Folders alpha's watcher watches go away (Twisted's own notifier would stop for good).
    shutil.rmtree(os.path.join(alpha, ".claude-loop"))
    await stream.next_of_type("status_update", timeout=5.0)
    # beta is at rest (a 60 s safety poll): an event within seconds came through inotify.
    write_prd(beta, stories("Second loop's first", "Second loop's second", passed=2), project="Beta loop")
    story = await stream.next_of_type("story_updated", timeout=3.0)
    assert story.data["project"] == "beta_project"
    stream.close()


def test_a_scanning_twistd_keeps_its_pidfile_in_the_scan_folder(tmp_path: Any, scan_root: str) -> None:
    import subprocess

    from tests.processes import TWISTD, free_port, stop_process, wait_until_healthy

    port = free_port()
    elsewhere = os.path.join(str(tmp_path), "elsewhere")
    os.makedirs(elsewhere)
    log_path = os.path.join(str(tmp_path), "twistd.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*TWISTD, "-n", "loopdash", "--port", str(port), "--scan", scan_root],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=elsewhere,
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, lambda: open(log_path).read())
        pidfile = os.path.join(scan_root, ".loopdash", "dashboard.pid")
        with open(pidfile) as f:
            assert int(f.read().strip()) == process.pid
        assert not os.path.exists(os.path.join(elsewhere, "twistd.pid"))
        assert not os.path.exists(os.path.join(elsewhere, ".claude-loop"))
    finally:
        stop_process(process)

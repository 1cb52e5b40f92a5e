"""The filesystem misbehaving under a running daemon: it logs the cause once and keeps serving.

Files replaced by directories or FIFOs, unreadable files (by a daemon that
dropped root, since root reads anything), the runs directory deleted and
recreated under an open stream, a run directory that is a symlink out of the
root, the root itself removed; and hostile content (deep nesting, a 10 MB
line, NUL bytes) served through the API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import globalLogPublisher

from loopdash.cli.sample import RealRun, create_sample_project
from loopdash.local.token import write_token
from loopdash.server.service import once_per_cause
from tests.conftest import DaemonFactory
from tests.processes import free_port
from tests.support import RunningDaemon, open_stream, settle

ROUTES = ("/api/status", "/api/stories", "/api/logs", "/api/history", "/api/runs", "/api/health")


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def reports_about(events: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("path") == path and "Cannot read" in str(e.get("log_format", ""))]


async def no_server_errors(daemon: RunningDaemon, times: int = 3) -> dict[str, Any]:
    """Every route, a few times: never a 5xx; the last answers by route."""
    answers: dict[str, Any] = {}
    for _ in range(times):
        for route in ROUTES:
            answer = await daemon.get(route)
            assert answer.code < 500, (route, answer.body[:200])
            answers[route] = answer
    return answers


def newest_run_dir(root: str) -> str:
    runs = os.path.join(root, ".claude-loop", "runs")
    return os.path.join(runs, sorted(os.listdir(runs))[-1])


@pytest_twisted.ensureDeferred
async def test_a_metrics_file_replaced_by_a_directory_keeps_its_last_good_reading(
    sample_daemon: RunningDaemon,
) -> None:
    before = (await sample_daemon.get("/api/metrics")).json()
    path = os.path.join(newest_run_dir(sample_daemon.root), "metrics.json")
    os.remove(path)
    os.mkdir(path)
    await no_server_errors(sample_daemon)
    after = await sample_daemon.get("/api/metrics")
    # The cache forgets a path that is gone, and a directory is not a file: honest 404.
    assert after.code in (200, 404)
    if after.code == 200:
        assert after.json() == before


@pytest.mark.parametrize("kind", ["directory", "fifo"])
@pytest_twisted.ensureDeferred
async def test_a_file_that_is_not_a_regular_file_is_reported_once_and_never_blocks(
    daemon_factory: DaemonFactory, sample_root: str, log_events: list[dict[str, Any]], kind: str
) -> None:
    from twisted.internet import reactor

    path = os.path.join(sample_root, "prd.json")
    os.remove(path)
    if kind == "directory":
        os.mkdir(path)
    else:
        os.mkfifo(path)  # opening a FIFO without a writer would block a careless reader forever
    daemon = await daemon_factory(sample_root, poll_interval=0.05)
    for _ in range(3):
        await no_server_errors(daemon)
        await settle(reactor, 0.1)
    stories = (await daemon.get("/api/stories")).json()
    assert stories["total"] == 0 and stories["stories"] == []
    reports = reports_about(log_events, path)
    assert len(reports) == 1 and reports[0]["reason"] == "not a regular file"


@pytest_twisted.ensureDeferred
async def test_a_progress_log_replaced_by_a_directory_serves_an_empty_log(
    sample_daemon: RunningDaemon,
) -> None:
    path = os.path.join(sample_daemon.root, "progress.txt")
    os.remove(path)
    os.mkdir(path)
    answers = await no_server_errors(sample_daemon)
    assert answers["/api/logs"].code == 200
    assert answers["/api/logs"].json()["logs"] == []


@pytest_twisted.ensureDeferred
async def test_the_runs_directory_deleted_and_recreated_under_an_open_stream(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    daemon = await daemon_factory(sample_root, poll_interval=0.05, keepalive=60.0)
    stream = await open_stream(daemon)
    first = await stream.next_of_type("status_update")
    assert first.data["data"]["run_id"] is not None
    runs = os.path.join(sample_root, ".claude-loop", "runs")
    shutil.rmtree(runs)
    # rmtree removes file by file: a poll may see the run's files go before the
    # directory does (a status with the run still there).
    gone = await stream.next_status_where(lambda s: s.data["data"]["run_id"] is None)
    assert gone.data["data"]["run_id"] is None
    answers = await no_server_errors(daemon)
    assert answers["/api/runs"].json() == []
    assert (await daemon.get("/api/metrics")).code == 404
    os.makedirs(runs)
    run = RealRun(sample_root, datetime.now(UTC))
    run.start()
    run.write_metrics(datetime.now(UTC))
    started = await stream.next_of_type("run_started", timeout=10)
    assert started.data["data"]["run_id"] == run.run_id
    assert [r["run_id"] for r in (await daemon.get("/api/runs")).json()] == [run.run_id]
    assert not stream.ended.called
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_run_directory_symlinked_outside_the_root_is_not_followed(
    daemon_factory: DaemonFactory, sample_root: str, tmp_path: Any
) -> None:
    outside = os.path.join(str(tmp_path), "outside")
    os.makedirs(outside)
    secret = RealRun(outside, datetime.now(UTC) + timedelta(days=400))
    secret.start()
    secret.write_metrics(datetime.now(UTC))
    daemon = await daemon_factory(sample_root, poll_interval=0.05, keepalive=60.0)
    before = (await daemon.get("/api/runs")).json()
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    link = os.path.join(sample_root, ".claude-loop", "runs", secret.run_id)
    os.symlink(secret.directory, link)
    await no_server_errors(daemon)
    assert (await daemon.get("/api/runs")).json() == before
    assert (await daemon.get(f"/api/runs/{secret.run_id}")).code == 404
    assert (await daemon.get(f"/api/metrics?run_id={secret.run_id}")).code == 404
    assert (await daemon.get("/api/status")).json()["run_id"] != secret.run_id
    with pytest.raises(TimeoutError):
        await stream.next_of_type("run_started", timeout=0.5)
    stream.close()


@pytest_twisted.ensureDeferred
async def test_the_root_removed_serves_an_empty_project_and_says_so_once(
    daemon_factory: DaemonFactory, tmp_path: Any, log_events: list[dict[str, Any]]
) -> None:
    from twisted.internet import reactor

    root = os.path.join(str(tmp_path), "doomed")
    create_sample_project(root)
    daemon = await daemon_factory(root, poll_interval=0.05, keepalive=60.0)
    token = daemon.token  # the token file goes with the root: remember it
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    shutil.rmtree(root)
    gone = await stream.next_of_type("status_update")
    assert gone.data["data"]["run_id"] is None and gone.data["data"]["total_stories"] == 0
    for _ in range(5):
        await settle(reactor, 0.05)
        assert (await daemon.get("/api/health", authenticated=False)).code == 200
    # The token file went with the root: every token is refused, and nothing is a 500.
    assert (await daemon.get("/api/status", token=token)).code == 403
    messages = [e for e in log_events if e.get("root") == root and "gone" in str(e.get("log_format", ""))]
    assert len(messages) == 1
    # It comes back: the daemon serves it again without a restart.
    create_sample_project(root)
    write_token(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt"), token)
    back = await stream.next_of_type("run_started", timeout=10)
    assert back.data["data"]["run_id"]
    assert (await daemon.get("/api/status", token=token)).json()["total_stories"] == 8
    assert not stream.ended.called
    stream.close()


# -- hostile content, through the API --------------------------------------------------------


@pytest.mark.parametrize("depth", [50, 900, 5_000, 200_000])
@pytest_twisted.ensureDeferred
async def test_deeply_nested_json_in_a_run_never_makes_a_500(
    sample_daemon: RunningDaemon, depth: int
) -> None:
    directory = newest_run_dir(sample_daemon.root)
    run_id = os.path.basename(directory)
    nested = "[" * depth + "]" * depth
    document = '{"iterations": [], "cache": {"deep": ' + nested + "}, " + '"extra": ' + nested + "}"
    with open(os.path.join(directory, "metrics.json"), "w") as f:
        f.write(document)
    for route in (f"/api/runs/{run_id}", "/api/metrics", "/api/status", "/api/history"):
        answer = await sample_daemon.get(route)
        assert answer.code in (200, 404), (route, answer.body[:200])
        json.loads(answer.body)


@pytest_twisted.ensureDeferred
async def test_a_10_mb_single_line_progress_entry_is_served_whole(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    line = "x" * (10 * 1024 * 1024)
    with open(os.path.join(empty_root, "progress.txt"), "w") as f:
        f.write(
            "# progress\n\n### Iteration: 2026-01-24 10:00:00\n"
            + line
            + "\n\n### Iteration: 2026-01-24 11:00:00\nshort\n"
        )
    # Served whole when the entry cap allows it (--max-entry-bytes; the default
    # 64 KB cut, with its truncated flag, is tested in test_limits.py).
    daemon = await daemon_factory(empty_root, max_entry_bytes=16 * 1024 * 1024)
    logs = (await daemon.get("/api/logs")).json()
    assert logs["total"] == 2
    assert max(len(x) for x in logs["logs"][0]["lines"]) == len(line)
    assert logs["logs"][1]["lines"][0] == "short"
    assert (await daemon.get("/api/logs?offset=1")).json()["logs"][0]["lines"] == ["short"]


@pytest_twisted.ensureDeferred
async def test_nul_bytes_and_control_characters_in_the_loops_files_are_escaped_json(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    prd = {
        "project": "p\x00",
        "userStories": [
            {
                "id": "US-\x00",
                "title": "t\x00\x1b[31m",
                "description": "\u2028\u2029",
                "passes": False,
                "priority": 1,
            }
        ],
    }
    with open(os.path.join(empty_root, "prd.json"), "w") as f:
        json.dump(prd, f)
    with open(os.path.join(empty_root, "progress.txt"), "wb") as f:
        f.write(b"### Iteration: 2026-01-24 10:00:00\nnul \x00 here\nbad utf-8 \xff\xfe\n")
    daemon = await daemon_factory(empty_root)
    stories = await daemon.get("/api/stories")
    assert b"\x00" not in stories.body
    assert stories.json()["stories"][0]["title"] == "t\x00\x1b[31m"
    logs = await daemon.get("/api/logs")
    assert b"\x00" not in logs.body
    lines = logs.json()["logs"][0]["lines"]
    assert lines[0] == "nul \x00 here" and lines[1].startswith("bad utf-8 ")
    status = await daemon.get("/api/status")
    assert status.code == 200


def test_the_same_cause_for_the_same_file_is_reported_once_per_window() -> None:
    reports: list[tuple[str, str]] = []
    now = [0.0]
    report = once_per_cause(
        lambda path, reason: reports.append((path, reason)), window=60.0, clock=lambda: now[0]
    )
    for _ in range(3):
        report("/p/metrics.json", "Permission denied")
    report("/p/prd.json", "Permission denied")
    report("/p/metrics.json", "not a regular file")  # a new cause is news
    now[0] = 61.0
    report("/p/metrics.json", "not a regular file")  # still bad a minute later: said again
    assert reports == [
        ("/p/metrics.json", "Permission denied"),
        ("/p/prd.json", "Permission denied"),
        ("/p/metrics.json", "not a regular file"),
        ("/p/metrics.json", "not a regular file"),
    ]


# -- unreadable files: a daemon that is not root ------------------------------------------------

NOBODY = 65534


def nobody_can_run_the_daemon() -> None:
    """Check the preconditions (and fail loudly, never skip): root, a nobody user."""
    assert os.geteuid() == 0, "this test drops root privileges; it runs as root here"


def test_an_unreadable_file_is_reported_once_and_the_daemon_keeps_serving() -> None:
    nobody_can_run_the_daemon()
    base = tempfile.mkdtemp(prefix="loopdash-nobody-")
    try:
        os.chmod(base, 0o755)
        root = os.path.join(base, "project")
        create_sample_project(root)
        token_path = os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")
        token = write_token(token_path)
        for directory, _, files in os.walk(root):
            os.chown(directory, NOBODY, NOBODY)
            for name in files:
                os.chown(os.path.join(directory, name), NOBODY, NOBODY)
        metrics = os.path.join(newest_run_dir(root), "metrics.json")
        os.chown(metrics, 0, 0)
        os.chmod(metrics, 0o600)  # root's, private: the daemon (nobody) cannot read it
        os.chmod(os.path.join(root, "prd.json"), 0o000)
        log_path = os.path.join(base, "daemon.log")
        port = free_port()
        # The interpreter lives under /root (0700): import what the daemon needs
        # while still root, then drop to nobody before twistd reads any option.
        drop_and_run = (
            "import os, sys, _strptime, warnings, json, secrets, hmac, socket, signal, re, ipaddress, "
            "email.utils, encodings.idna, encodings.latin_1, urllib.parse, tempfile, zlib, pdb, "
            "twisted.scripts.twistd, twisted.scripts._twistd_unix, twisted.application.app, "
            "twisted.internet.inotify, twisted.internet.endpoints, twisted.logger, "
            "twisted.python.logfile, twisted.plugin, twisted.plugins, twisted.web.server, "
            "loopdash.server.tap, loopdash.server.service, loopdash.metrics.prometheus; "
            "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin)); "
            "from twisted.internet import reactor; "
            "from loopdash.server.service import DashboardConfig, build_dashboard; "
            f"build_dashboard(DashboardConfig(root={root!r}, listen='tcp:0:interface=127.0.0.1'), reactor); "
            "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
            "sys.argv[0] = 'twistd'; twisted.scripts.twistd.run()"
        )
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    drop_and_run,
                    "-n",
                    "--pidfile=",
                    "loopdash",
                    "--port",
                    str(port),
                    "--root",
                    root,
                    "--poll-interval",
                    "0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,
            )
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_for(process, base_url + "/api/health", log_path)
            for _ in range(3):
                for route in ROUTES + ("/api/metrics",):
                    code, _ = _get(base_url + route, token)
                    assert code < 500, (route, _tail(log_path))
                time.sleep(0.3)  # several watcher polls in between
            code, stories = _get(base_url + "/api/stories", token)
            assert code == 200 and stories["total"] == 0
            code, _ = _get(base_url + "/api/metrics", token)
            assert code == 404  # never readable, so never parsed: missing, honestly
            code, runs = _get(base_url + "/api/runs", token)
            assert code == 200 and len(runs) == 3
        finally:
            process.terminate()
            process.wait(timeout=10)
        with open(log_path, encoding="utf-8", errors="replace") as f:
            output = f.read()
        # Once, though two readers cache metrics.json (the full metrics and the history row).
        assert output.count(f"Cannot read {metrics}: Permission denied") == 1, output[-3000:]
        assert output.count(f"Cannot read {os.path.join(root, 'prd.json')}: Permission denied") == 1
        assert "Traceback" not in output
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _tail(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()[-4000:]


def _get(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait_for(process: subprocess.Popen[bytes], url: str, log_path: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                raise AssertionError(f"the daemon exited with {process.returncode}: {f.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the daemon did not answer in time")

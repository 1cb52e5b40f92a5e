"""The simulated loop and `loopdash demo`: files written as a loop writes them, served live."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from loopdash.cli.sample import SAMPLE_STORIES
from loopdash.cli.simulator import BASE_ITERATION_SECONDS, BASE_PAUSE_SECONDS, HALF_WRITE_GAP, LoopSimulator
from loopdash.loop.parsing import ParseError, parse_log_entries, parse_metrics, parse_prd, parse_summary
from tests.conftest import DaemonFactory
from tests.processes import free_port
from tests.support import open_stream


def read(root: str, *parts: str) -> bytes:
    with open(os.path.join(root, *parts), "rb") as f:
        return f.read()


def runs(root: str) -> list[str]:
    return sorted(os.listdir(os.path.join(root, ".claude-loop", "runs")))


@pytest.fixture
def simulated(tmp_path: Any) -> tuple[str, Clock, LoopSimulator]:
    root = str(tmp_path)
    clock = Clock()
    clock.advance(1_790_000_000)
    simulator = LoopSimulator(root, clock, speed=1.0)
    simulator.start()
    return root, clock, simulator


def test_a_run_starts_with_every_story_pending_and_empty_metrics(simulated: Any) -> None:
    root, clock, simulator = simulated
    prd = parse_prd(read(root, "prd.json"))
    assert [s.id for s in prd.stories] == [s["id"] for s in SAMPLE_STORIES]
    assert not any(s.passes for s in prd.stories)
    (run_id,) = runs(root)
    metrics = parse_metrics(read(root, ".claude-loop", "runs", run_id, "metrics.json"))
    assert metrics.iterations == () and metrics.started_at is not None


def test_an_iteration_rewrites_metrics_in_two_writes_flips_the_story_and_logs_it(simulated: Any) -> None:
    root, clock, simulator = simulated
    (run_id,) = runs(root)
    metrics_path = (".claude-loop", "runs", run_id, "metrics.json")
    clock.advance(BASE_ITERATION_SECONDS)
    # Between the two writes a reader sees half a file, as with the real `cat >`.
    with pytest.raises(ParseError):
        parse_metrics(read(root, *metrics_path))
    clock.advance(HALF_WRITE_GAP)
    metrics = parse_metrics(read(root, *metrics_path))
    assert [i.story_id for i in metrics.iterations] == ["US-001"]
    assert metrics.iterations[0].status == "success"
    assert metrics.iterations[0].extra["story_title"] == SAMPLE_STORIES[0]["title"]
    assert parse_prd(read(root, "prd.json")).stories[0].passes is True
    (entry,) = parse_log_entries(read(root, "progress.txt").decode())
    assert entry.lines[0] == f"**Story**: US-001 - {SAMPLE_STORIES[0]['title']}"


def test_a_whole_run_ends_with_a_summary_and_a_new_run_follows(simulated: Any) -> None:
    root, clock, simulator = simulated
    first_run = runs(root)[0]
    for _ in range(40):
        clock.advance(BASE_ITERATION_SECONDS / 2)
        if os.path.exists(os.path.join(root, ".claude-loop", "runs", first_run, "summary.json")):
            break
    summary = parse_summary(read(root, ".claude-loop", "runs", first_run, "summary.json"))
    metrics = parse_metrics(read(root, ".claude-loop", "runs", first_run, "metrics.json"))
    assert all(s.passes for s in parse_prd(read(root, "prd.json")).stories)
    assert metrics.failure_count >= 1  # a failed iteration was retried
    assert summary.success_count == len(SAMPLE_STORIES)
    assert summary.total_iterations == len(metrics.iterations)
    assert summary.total_cost == pytest.approx(metrics.total_cost)

    clock.advance(BASE_PAUSE_SECONDS + 1)
    assert len(runs(root)) == 2
    assert not any(s.passes for s in parse_prd(read(root, "prd.json")).stories)


@pytest_twisted.ensureDeferred
async def test_a_daemon_watching_the_simulator_streams_a_whole_run(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    from twisted.internet import reactor

    root = str(tmp_path)
    simulator = LoopSimulator(root, reactor, speed=40.0)
    simulator.start()
    try:
        daemon = await daemon_factory(root, poll_interval=0.1, keepalive=60.0)
        stream = await open_stream(daemon)
        finished = await stream.next_of_type("run_finished", timeout=20)
        started = await stream.next_of_type("run_started", timeout=20)
    finally:
        simulator.stop()
    kinds = [m.type for m in stream.messages if m.type]
    assert finished.data["data"]["success_count"] == len(SAMPLE_STORIES)
    assert started.data["data"]["run_id"] > finished.data["data"]["run_id"]
    assert kinds.count("story_updated") >= len(SAMPLE_STORIES) - 1
    assert "iteration_added" in kinds and "log_appended" in kinds and "status_update" in kinds
    stream.close()


def test_loopdash_demo_serves_a_live_project_and_stops_on_ctrl_c() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "loopdash.cli", "demo", "--port", str(port), "--speed", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = ""
        deadline = time.monotonic() + 20
        while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            banner += line
        match = re.search(r"#token=(\S+)", banner)
        assert match, banner + (process.stderr.read() if process.poll() is not None else "")  # type: ignore[union-attr]
        token = match.group(1)
        root = re.search(r"working in (\S+)", banner).group(1)  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}/#token=" in banner

        health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5))
        assert health["status"] == "ok"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"Bearer {token}"}
        )
        status = json.load(urllib.request.urlopen(request, timeout=5))
        assert status["is_running"] is True and status["total_stories"] == len(SAMPLE_STORIES)

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert not os.path.exists(root)  # the temporary project is cleaned up
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

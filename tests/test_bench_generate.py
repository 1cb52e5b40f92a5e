"""The benchmark's generator makes a project the daemon reads, and its loop writer
makes changes the daemon sees (small sizes; nothing here is timed)."""

from __future__ import annotations

import os
from typing import Any

import pytest_twisted

from bench.generate import generate
from bench.loopwriter import LoopWriter
from tests.conftest import DaemonFactory


@pytest_twisted.ensureDeferred
async def test_a_generated_project_is_served_in_both_metrics_shapes(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    root = os.path.join(str(tmp_path), "project")
    made = generate(root, runs=12, iterations=6, stories_count=15, log_mb=0.02, flat_every=4)
    assert made.flat_runs == 2
    daemon = await daemon_factory(root)

    status = (await daemon.get("/api/status")).json()
    assert status["is_running"] is True
    assert status["run_id"] == made.current_run
    assert status["total_stories"] == 15

    history = (await daemon.get("/api/history?limit=20")).json()
    assert history["total"] == 12
    rows = {row["run_id"]: row for row in history["runs"]}
    # The running run has half its iterations; a finished real-shape run all of them.
    assert rows[made.current_run]["total_iterations"] == 3
    assert all(row["total_iterations"] == 6 for run_id, row in rows.items() if run_id != made.current_run)

    runs_dir = os.path.join(root, ".claude-loop", "runs")
    run_ids = sorted(os.listdir(runs_dir))
    flat = run_ids[3]  # every 4th run, counting from 1
    assert "totals" not in open(os.path.join(runs_dir, flat, "metrics.json")).read()
    detail = (await daemon.get(f"/api/runs/{flat}")).json()
    assert detail["run_id"] == flat
    assert detail["summary"]["total_iterations"] == 6
    assert len(detail["metrics"]["iterations"]) == 6
    middle = (await daemon.get(f"/api/runs/{made.middle_run}")).json()
    assert len(middle["metrics"]["iterations"]) == 6
    assert middle["metrics"]["cache"]["hits"] + middle["metrics"]["cache"]["misses"] == 6

    logs = (await daemon.get("/api/logs?limit=10")).json()
    assert logs["total"] == made.log_entries
    assert os.path.getsize(os.path.join(root, "progress.txt")) == made.log_bytes
    assert made.log_bytes >= 0.02 * 1024 * 1024

    stories = (await daemon.get("/api/stories")).json()["stories"]
    assert len(stories) == 15
    assert {s["status"] for s in stories} == {"completed", "pending"}


@pytest_twisted.ensureDeferred
async def test_the_loop_writer_changes_are_what_the_daemon_serves(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    root = os.path.join(str(tmp_path), "project")
    made = generate(root, runs=3, iterations=4, stories_count=5, log_mb=0.01)
    writer = LoopWriter(root)
    assert writer.run_id == made.current_run
    daemon = await daemon_factory(root)

    kind, marker, _ = writer.change(0)
    assert kind == "progress.txt append"
    logs = (await daemon.get(f"/api/logs?limit=1&offset={made.log_entries}")).json()
    assert logs["total"] == made.log_entries + 1
    assert marker.decode() in "\n".join(logs["logs"][0]["lines"])

    kind, marker, _ = writer.change(1)
    assert kind == "metrics.json rewrite"
    metrics = (await daemon.get("/api/metrics")).json()
    assert metrics["run_id"] == made.current_run
    assert metrics["total_iterations"] == 3
    assert metrics["iterations"][-1]["story_title"] == marker.decode()

"""Execution status derived from real loop files (written with loopdash.cli.sample)
in temp directories, with `now` passed explicitly and file mtimes set by hand."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopdash.cli.sample import (
    SAMPLE_STORIES,
    RealRun,
    append_progress,
    create_sample_project,
    progress_entry,
    write_flat_run,
    write_in_place,
    write_prd,
)
from loopdash.derive.status import execution_status, next_story
from loopdash.loop.parsing import parse_prd
from loopdash.loop.project import Project

UTC = UTC
# Whole seconds, so that run ids (to the second) name the start exactly.
NOW = datetime(2026, 1, 24, 12, 0, 0, tzinfo=UTC)
STALE_AFTER = 600.0
ISO_Z = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def stories(done: int = 0, count: int = 8) -> list[dict[str, Any]]:
    """The sample plan with its first ``done`` stories passing."""
    return [dict(s, passes=i < done, notes="") for i, s in enumerate(SAMPLE_STORIES[:count])]


def set_mtime(path: str, moment: datetime) -> None:
    t = moment.timestamp()
    os.utime(path, (t, t))


def age_files(root: str, moment: datetime) -> None:
    """Make every activity file (prd, progress, every run file) last written at ``moment``."""
    for name in ("prd.json", "progress.txt"):
        path = os.path.join(root, name)
        if os.path.exists(path):
            set_mtime(path, moment)
    runs = os.path.join(root, ".claude-loop", "runs")
    if os.path.isdir(runs):
        for run_id in os.listdir(runs):
            for name in os.listdir(os.path.join(runs, run_id)):
                set_mtime(os.path.join(runs, run_id, name), moment)


def status(root: str, now: datetime = NOW, stale_after: float = STALE_AFTER) -> dict[str, Any]:
    return execution_status(Project(root).snapshot(), now.timestamp(), stale_after)


def real_run(root: str, started: datetime, results: Iterable[tuple[str, str]], minutes: int = 5) -> RealRun:
    """A real-shape run with one iteration per (story id, status), ``minutes`` apart."""
    run = RealRun(root, started)
    run.start()
    moment = started
    titles = {s["id"]: s["title"] for s in SAMPLE_STORIES}
    for story_id, result in results:
        moment += timedelta(minutes=minutes)
        run.add_iteration(story_id, titles[story_id], moment, minutes * 60000, result)
        append_progress(
            root,
            progress_entry(
                moment.strftime("%Y-%m-%d %H:%M:%S"), story_id, titles[story_id], result, ["did it"]
            ),
        )
        run.write_metrics(moment)
    return run


@pytest.fixture
def root(tmp_path: Any) -> str:
    path = os.path.join(str(tmp_path), "project")
    os.makedirs(path)
    return path


# -- running, stale, finished ---------------------------------------------------------


def test_running_with_fresh_activity_and_no_summary(root: str) -> None:
    started = NOW - timedelta(minutes=30)
    run = real_run(root, started, [("US-001", "complete"), ("US-002", "complete")])
    write_prd(root, stories(done=2))
    age_files(root, NOW - timedelta(minutes=1))
    s = status(root)
    assert s["is_running"] is True
    assert s["run_id"] == run.run_id
    assert s["elapsed_time"] == 30 * 60  # since the run started
    # US-003 (priority 2, depends on US-002) comes before US-004 (priority 2, later in the file).
    assert s["current_story"]["id"] == "US-003"
    assert s["current_story"]["status"] == "in_progress"
    # Since the last iteration ended (started + 10 min), i.e. 20 minutes.
    assert s["current_story"]["elapsed_ms"] == 20 * 60 * 1000
    assert (s["completed_stories"], s["total_stories"], s["progress_pct"]) == (2, 8, 25.0)
    # Two stories completed in 30 min: 15 min each, 6 left.
    assert s["estimated_remaining"] == 15 * 60 * 6
    assert s["cost_so_far"] == pytest.approx(run.metrics_document(NOW)["totals"]["cost_usd"])
    assert s["last_update"] == "2026-01-24T11:59:00Z"


def test_stale_when_activity_is_older_than_the_window(root: str) -> None:
    started = NOW - timedelta(hours=2)
    real_run(root, started, [("US-001", "complete"), ("US-002", "failed")])
    write_prd(root, stories(done=1))
    age_files(root, NOW - timedelta(seconds=STALE_AFTER + 1))
    s = status(root)
    assert s["is_running"] is False
    # Not running: the last iteration's own story, status and duration.
    assert s["current_story"]["id"] == "US-002"
    assert s["current_story"]["status"] == "failure"
    assert s["current_story"]["elapsed_ms"] == 5 * 60 * 1000
    assert s["current_story"]["title"] == SAMPLE_STORIES[1]["title"]
    assert s["last_update"] == "2026-01-24T11:49:59Z"


def test_activity_just_inside_the_window_is_running(root: str) -> None:
    real_run(root, NOW - timedelta(hours=2), [("US-001", "complete")])
    write_prd(root, stories(done=1))
    age_files(root, NOW - timedelta(seconds=STALE_AFTER - 1))
    assert status(root)["is_running"] is True
    assert status(root, stale_after=60.0)["is_running"] is False


def test_any_one_fresh_file_of_the_run_is_activity(root: str) -> None:
    run = real_run(root, NOW - timedelta(hours=2), [("US-001", "complete")])
    write_prd(root, stories(done=1))
    age_files(root, NOW - timedelta(hours=1))
    assert status(root)["is_running"] is False
    # The run's own evidence: its metrics.json, and log entries written since it started.
    # (prd.json is the plan, edited by people too: see the test below, issue 15.)
    for path in (
        os.path.join(root, "progress.txt"),
        os.path.join(run.directory, "metrics.json"),
    ):
        set_mtime(path, NOW - timedelta(seconds=10))
        assert status(root)["is_running"] is True
        set_mtime(path, NOW - timedelta(hours=1))
        assert status(root)["is_running"] is False


def test_finished_when_summary_is_present_even_with_fresh_activity(root: str) -> None:
    started = NOW - timedelta(minutes=40)
    run = real_run(root, started, [("US-001", "complete"), ("US-002", "complete")])
    run.write_summary(started + timedelta(minutes=12))
    write_prd(root, stories(done=2))
    age_files(root, NOW - timedelta(seconds=5))
    s = status(root)
    assert s["is_running"] is False
    assert s["elapsed_time"] == 12 * 60  # the run's wall duration, not time since start
    assert s["current_story"]["id"] == "US-002" and s["current_story"]["status"] == "success"


def test_summary_being_written_means_the_run_ended(root: str) -> None:
    run = real_run(root, NOW - timedelta(minutes=40), [("US-001", "complete")])
    write_prd(root, stories(done=1))
    write_in_place(os.path.join(run.directory, "summary.json"), '{"session_id": "2026')
    age_files(root, NOW - timedelta(seconds=5))
    s = status(root)
    assert s["is_running"] is False
    assert s["cost_so_far"] == pytest.approx(run.metrics_document(NOW)["totals"]["cost_usd"])


def test_only_the_newest_run_counts(root: str) -> None:
    older = real_run(root, NOW - timedelta(days=1), [("US-001", "complete")])
    newer = real_run(root, NOW - timedelta(minutes=20), [("US-002", "complete")])
    newer.write_summary(NOW - timedelta(minutes=5))
    write_prd(root, stories(done=2))
    age_files(root, NOW - timedelta(seconds=5))
    s = status(root)
    assert s["run_id"] == newer.run_id != older.run_id
    assert s["is_running"] is False  # the older run's missing summary does not matter


def test_running_before_the_first_metrics_uses_the_run_id_as_start(root: str) -> None:
    run = RealRun(root, NOW - timedelta(minutes=3))
    run.start()
    write_prd(root, stories(done=0))
    append_progress(root, "# claude-loop progress\n")
    age_files(root, NOW - timedelta(seconds=30))
    s = status(root)
    assert s["is_running"] is True and s["run_id"] == run.run_id
    assert s["elapsed_time"] == 180
    assert s["current_story"]["id"] == "US-001"
    assert s["current_story"]["elapsed_ms"] == 180_000  # since the run started
    assert s["estimated_remaining"] is None
    assert s["cost_so_far"] == 0.0


# -- no runs, no prd ------------------------------------------------------------------


def test_no_runs(root: str) -> None:
    write_prd(root, stories(done=3))
    age_files(root, NOW - timedelta(seconds=5))
    s = status(root)
    assert s["is_running"] is False
    assert s["run_id"] is None and s["current_story"] is None
    assert (s["completed_stories"], s["total_stories"], s["progress_pct"]) == (3, 8, 37.5)
    assert s["elapsed_time"] == 0 and s["estimated_remaining"] is None and s["cost_so_far"] == 0.0
    assert s["last_update"] == "2026-01-24T11:59:55Z"


def test_no_prd(root: str) -> None:
    real_run(root, NOW - timedelta(minutes=10), [("US-001", "complete")])
    age_files(root, NOW - timedelta(seconds=5))
    s = status(root)
    assert s["is_running"] is True
    assert (s["completed_stories"], s["total_stories"], s["progress_pct"]) == (0, 0, 0.0)
    assert isinstance(s["progress_pct"], float)
    assert s["current_story"] is None  # nothing to say which story is next


def test_empty_directory(root: str) -> None:
    s = status(root)
    assert s == {
        "is_running": False,
        "run_id": None,
        "current_story": None,
        "progress_pct": 0.0,
        "completed_stories": 0,
        "total_stories": 0,
        "elapsed_time": 0,
        "estimated_remaining": None,
        "cost_so_far": 0.0,
        "last_update": s["last_update"],
        "state": "idle",
        "quiet_for": None,
        "last_activity": None,
    }
    assert ISO_Z.match(s["last_update"])


def test_half_written_prd_keeps_nothing_false(root: str) -> None:
    write_prd(root, stories(done=2))
    project = Project(root)
    first = execution_status(project.snapshot(), NOW.timestamp(), STALE_AFTER)
    with open(os.path.join(root, "prd.json")) as f:
        text = f.read()
    write_in_place(os.path.join(root, "prd.json"), text[: len(text) // 2])
    st = os.stat(os.path.join(root, "prd.json"))
    os.utime(os.path.join(root, "prd.json"), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = execution_status(project.snapshot(), NOW.timestamp(), STALE_AFTER)
    assert (again["completed_stories"], again["total_stories"]) == (first["completed_stories"], 8)


# -- the current story -----------------------------------------------------------------


def plan(*entries: dict[str, Any]) -> Any:
    return parse_prd(json.dumps({"userStories": list(entries)}).encode())


def test_next_story_by_priority_then_file_order() -> None:
    prd = plan({"id": "B", "priority": 2}, {"id": "A", "priority": 1}, {"id": "C", "priority": 1})
    assert next_story(prd).id == "A"  # type: ignore[union-attr]


def test_next_story_skips_stories_whose_dependencies_do_not_pass() -> None:
    prd = plan(
        {"id": "A", "priority": 1, "passes": False, "dependencies": ["Z"]},
        {"id": "Z", "priority": 3, "passes": False},
        {"id": "B", "priority": 2, "passes": False, "dependencies": ["Y"]},
        {"id": "Y", "priority": 9, "passes": True},
    )
    assert next_story(prd).id == "B"  # type: ignore[union-attr]


def test_next_story_unknown_dependencies_do_not_block() -> None:
    prd = plan({"id": "A", "priority": 1, "dependencies": ["US-999"]}, {"id": "B", "priority": 2})
    assert next_story(prd).id == "A"  # type: ignore[union-attr]


def test_next_story_without_priority_comes_last() -> None:
    prd = plan({"id": "A"}, {"id": "B", "priority": "high"}, {"id": "C", "priority": 7})
    assert next_story(prd).id == "C"  # type: ignore[union-attr]


def test_next_story_none_when_all_pass_or_all_blocked() -> None:
    assert next_story(plan({"id": "A", "passes": True})) is None
    assert next_story(plan({"id": "A", "dependencies": ["B"]}, {"id": "B", "dependencies": ["A"]})) is None


def test_running_current_story_follows_the_plan_on_disk(root: str) -> None:
    real_run(root, NOW - timedelta(minutes=20), [("US-001", "complete")])
    plan_ = stories(done=1)
    plan_[3]["priority"] = 0  # US-004 (no dependencies) jumps the queue
    write_prd(root, plan_)
    age_files(root, NOW - timedelta(seconds=5))
    assert status(root)["current_story"]["id"] == "US-004"
    plan_[3]["dependencies"] = ["US-002"]  # now blocked until US-002 passes
    write_prd(root, plan_)
    age_files(root, NOW - timedelta(seconds=5))
    assert status(root)["current_story"]["id"] == "US-002"


def test_running_with_every_story_done_has_no_current_story(root: str) -> None:
    real_run(root, NOW - timedelta(minutes=20), [("US-001", "complete")])
    write_prd(root, stories(done=8))
    age_files(root, NOW - timedelta(seconds=5))
    s = status(root)
    assert s["is_running"] is True and s["current_story"] is None
    assert s["progress_pct"] == 100.0 and s["estimated_remaining"] == 0


# -- estimate, progress, cost, last update ------------------------------------------------


def test_estimate_is_null_until_a_story_completes_in_this_run(root: str) -> None:
    # Stories done in an earlier run do not count towards this run's pace.
    old = real_run(root, NOW - timedelta(days=1), [("US-001", "complete")])
    old.write_summary(NOW - timedelta(days=1) + timedelta(minutes=6))
    run = real_run(root, NOW - timedelta(minutes=30), [("US-002", "failed"), ("US-002", "error")])
    write_prd(root, stories(done=1))
    age_files(root, NOW - timedelta(seconds=5))
    assert status(root)["estimated_remaining"] is None
    run.add_iteration("US-002", "Metrics", NOW - timedelta(minutes=10), 300000, "complete")
    run.write_metrics(NOW - timedelta(minutes=10))
    write_prd(root, stories(done=2))
    age_files(root, NOW - timedelta(seconds=5))
    # One story in 30 minutes, six left.
    assert status(root)["estimated_remaining"] == 30 * 60 * 6


def test_estimate_counts_distinct_stories_not_iterations(root: str) -> None:
    real_run(root, NOW - timedelta(minutes=40), [("US-001", "complete"), ("US-001", "done")])
    write_prd(root, stories(done=1))
    age_files(root, NOW - timedelta(seconds=5))
    assert status(root)["estimated_remaining"] == 40 * 60 * 7


@pytest.mark.parametrize(
    ("done", "count", "expected"),
    [(1, 3, 33.3), (2, 3, 66.7), (1, 8, 12.5), (3, 7, 42.9), (7, 7, 100.0), (0, 5, 0.0)],
)
def test_progress_is_rounded_to_one_decimal(root: str, done: int, count: int, expected: float) -> None:
    write_prd(root, stories(done=done, count=count))
    s = status(root)
    assert s["progress_pct"] == expected
    assert (s["completed_stories"], s["total_stories"]) == (done, count)


def test_zero_of_zero_is_zero_progress(root: str) -> None:
    write_prd(root, [])
    s = status(root)
    assert s["progress_pct"] == 0.0 and isinstance(s["progress_pct"], float)
    assert (s["completed_stories"], s["total_stories"]) == (0, 0)


def test_cost_comes_from_the_summary_when_there_is_one(root: str) -> None:
    # A flat run whose summary's total differs from the sum of its iterations.
    run_id = "20260124_113000"
    write_flat_run(
        root,
        run_id,
        [
            {
                "story_id": "US-001",
                "status": "success",
                "elapsed_ms": 1000,
                "tokens_in": 1,
                "tokens_out": 1,
                "cost": 0.25,
                "agents_used": [],
            }
        ],
        elapsed_s=90,
        last_update="2026-01-24T11:31:30Z",
    )
    summary_path = os.path.join(root, ".claude-loop", "runs", run_id, "summary.json")
    with open(summary_path) as f:
        summary = json.load(f)
    summary["total_cost"] = 1.75
    write_in_place(summary_path, json.dumps(summary))
    write_prd(root, stories(done=1))
    s = status(root)
    assert s["run_id"] == run_id and s["cost_so_far"] == 1.75 and s["elapsed_time"] == 90


def test_cost_comes_from_metrics_while_there_is_no_summary(root: str) -> None:
    run = real_run(root, NOW - timedelta(minutes=20), [("US-001", "complete"), ("US-002", "failed")])
    write_prd(root, stories(done=1))
    totals = run.metrics_document(NOW)["totals"]
    assert status(root)["cost_so_far"] == pytest.approx(totals["cost_usd"])


def test_last_update_is_the_newest_activity_in_utc_with_z(root: str) -> None:
    run = real_run(root, NOW - timedelta(minutes=20), [("US-001", "complete")])
    write_prd(root, stories(done=1))
    age_files(root, NOW - timedelta(hours=3))
    set_mtime(
        os.path.join(run.directory, "metrics.json"), datetime(2026, 1, 24, 9, 15, 42, 700000, tzinfo=UTC)
    )
    s = status(root)
    assert s["last_update"] == "2026-01-24T09:15:42Z"
    assert ISO_Z.match(s["last_update"])


def test_sample_project_status_is_consistent(tmp_path: Any) -> None:
    root = os.path.join(str(tmp_path), "sample")
    create_sample_project(root, now=NOW)
    # Written just now, but with `now` two hours on, the current run has gone quiet.
    later = datetime.fromtimestamp(os.stat(os.path.join(root, "prd.json")).st_mtime, UTC) + timedelta(hours=2)
    s = status(root, now=later)
    assert s["is_running"] is False
    assert (s["completed_stories"], s["total_stories"], s["progress_pct"]) == (6, 8, 75.0)
    assert s["current_story"]["id"] == "US-007" and s["current_story"]["status"] == "success"
    assert ISO_Z.match(s["last_update"])
    json.dumps(s, allow_nan=False)


def test_absurd_durations_on_disk_never_break_the_status(root: str) -> None:
    run_id = "20260124_113000"
    write_flat_run(
        root,
        run_id,
        [
            {
                "story_id": "US-001",
                "status": "success",
                "elapsed_ms": 1000,
                "tokens_in": 1,
                "tokens_out": 1,
                "cost": 0.25,
                "agents_used": [],
            }
        ],
        elapsed_s=1e308,
        last_update="2026-01-24T11:31:30Z",
    )
    write_prd(root, stories(done=1))
    s = status(root)
    json.dumps(s, allow_nan=False)
    assert s["estimated_remaining"] is None or isinstance(s["estimated_remaining"], int)


def test_without_a_prd_there_is_no_estimate_even_after_a_success(tmp_path: Any) -> None:
    root = str(tmp_path)
    run = RealRun(root, datetime.now(UTC) - timedelta(minutes=10))
    run.start()
    run.add_iteration("US-001", "A story", run.started_at + timedelta(minutes=5), 300000)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    assert not os.path.exists(os.path.join(root, "prd.json"))
    status = execution_status(Project(root).snapshot(), datetime.now(UTC).timestamp(), 600.0)
    assert status["total_stories"] == 0
    assert status["estimated_remaining"] is None

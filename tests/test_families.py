"""Loop families: found from what is on disk, forced with --layout, shown in /api/health,
and the running rules of families without run directories. Invented files in each layout."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
import pytest_twisted

from loopdash.derive.status import execution_status
from loopdash.loop.formats import detect
from loopdash.loop.project import Project
from tests.conftest import DaemonFactory

PLAN = {
    "project": "demo",
    "userStories": [
        {"id": "US-1", "title": "One", "priority": 1, "passes": True},
        {"id": "US-2", "title": "Two", "priority": 2, "passes": False},
    ],
}
LOG = "## 2026-01-10 - US-001\n- did it\n"


def put(root: str, relative: str, content: str | dict[str, Any]) -> str:
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    ("files", "family", "prd", "progress"),
    [
        ((), "claude-loop", "prd.json", "progress.txt"),
        (("prd.json", "progress.txt"), "claude-loop", "prd.json", "progress.txt"),
        (
            ("scripts/ralph/prd.json", "scripts/ralph/progress.txt"),
            "ralph",
            "scripts/ralph/prd.json",
            "scripts/ralph/progress.txt",
        ),
        (("tasks/prd.json",), "ralph", "tasks/prd.json", "tasks/progress.txt"),
        (("ralph/progress.txt",), "ralph", "ralph/prd.json", "ralph/progress.txt"),
        ((".ralph/prd.json", ".ralph/progress.md"), "ralph-dir", ".ralph/prd.json", ".ralph/progress.md"),
        (
            (".ralph-tui/progress.md", "tasks/prd.json"),
            "ralph-tui",
            "tasks/prd.json",
            ".ralph-tui/progress.md",
        ),
        ((".agents/tasks/prd.json",), "agents", ".agents/tasks/prd.json", ".agents/tasks/progress.txt"),
        (
            ("docs/archive/progress.txt", "plans/prd-v2.json"),
            "generic",
            "plans/prd-v2.json",
            "docs/archive/progress.txt",
        ),
    ],
)
def test_family_is_detected_from_what_is_on_disk(
    tmp_path: Any, files: tuple[str, ...], family: str, prd: str, progress: str
) -> None:
    root = str(tmp_path)
    for name in files:
        put(root, name, PLAN if name.endswith(".json") else LOG)
    source = detect(root)
    assert (
        source.family,
        os.path.relpath(source.prd_path, root),
        os.path.relpath(source.progress_path, root),
    ) == (
        family,
        prd,
        progress,
    )


def test_run_directories_win_over_every_other_layout(tmp_path: Any) -> None:
    root = str(tmp_path)
    put(root, ".ralph/prd.json", PLAN)
    os.makedirs(os.path.join(root, ".claude-loop", "runs"))
    assert detect(root).family == "claude-loop"


def test_ralph_cli_plan_folders_give_the_run_id_and_status_files(tmp_path: Any) -> None:
    root = str(tmp_path)
    for n in (3, 12):
        put(root, f".ralph/PRD-{n}/prd.json", PLAN)
        put(root, f".ralph/PRD-{n}/progress.md", LOG)
    source = detect(root)
    assert (source.family, source.run_id) == ("ralph-dir", "PRD-12")
    assert source.status_path == os.path.join(root, ".ralph", "PRD-12", ".status.json")
    assert source.metrics_path == os.path.join(root, ".ralph", "PRD-12", "runs", "metrics.jsonl")


def test_forced_layout_and_paths(tmp_path: Any) -> None:
    root = str(tmp_path)
    put(root, "prd.json", PLAN)
    assert detect(root, layout="ralph").family == "ralph"
    source = detect(root, prd="deep/a/b/c/plan.json", progress="notes/log.md")
    assert source.prd_path == os.path.join(root, "deep/a/b/c/plan.json")
    assert source.progress_path == os.path.join(root, "notes/log.md")


def test_a_loop_started_after_the_daemon_is_found(tmp_path: Any) -> None:
    root = str(tmp_path)
    now = [0.0]
    project = Project(root, clock=lambda: now[0])
    assert project.snapshot().source is not None and project.source.family == "claude-loop"
    put(root, "scripts/ralph/progress.txt", LOG)
    now[0] = 5.0
    snapshot = project.snapshot()
    assert snapshot.source is not None and snapshot.source.family == "ralph"
    assert snapshot.log.total == 1


def test_family_without_runs_is_running_while_its_files_move(tmp_path: Any) -> None:
    root = str(tmp_path)
    put(root, "scripts/ralph/prd.json", PLAN)
    put(root, "scripts/ralph/progress.txt", LOG)
    project = Project(root)
    now = time.time()
    status = execution_status(project.snapshot(), now, 600.0)
    assert status["is_running"] is True
    assert status["run_id"] is None
    assert status["current_story"]["id"] == "US-2" and status["current_story"]["status"] == "in_progress"
    assert (status["completed_stories"], status["total_stories"], status["progress_pct"]) == (1, 2, 50.0)
    later = execution_status(project.snapshot(), now + 601, 600.0)
    assert later["is_running"] is False and later["current_story"] is None


def test_ralph_cli_status_file_names_the_story_and_metrics_give_the_cost(tmp_path: Any) -> None:
    root = str(tmp_path)
    put(root, ".ralph/PRD-7/prd.json", PLAN)
    put(root, ".ralph/PRD-7/.status.json", {"phase": "executing", "story_id": "US-9", "story_title": "Nine"})
    put(
        root,
        ".ralph/PRD-7/runs/metrics.jsonl",
        '{"cost": 0.5, "tokens_in": 100, "tokens_out": 10}\n{"cost": 0.25, "input_tokens": 50}}\n{"cost_usd": 0.25}\n',
    )
    status = execution_status(Project(root).snapshot(), time.time(), 600.0)
    assert status["run_id"] == "PRD-7"
    assert status["current_story"]["id"] == "US-9" and status["current_story"]["title"] == "Nine"
    assert (status["cost_so_far"], status["tokens_in"], status["tokens_out"]) == (0.75, 100, 10)


def test_a_finished_phase_is_not_running(tmp_path: Any) -> None:
    root = str(tmp_path)
    put(root, ".ralph/PRD-1/.status.json", {"phase": "complete", "story_id": "US-1"})
    assert execution_status(Project(root).snapshot(), time.time(), 600.0)["is_running"] is False


def test_root_files_keep_claude_loop_rules(tmp_path: Any) -> None:
    root = str(tmp_path)
    put(root, "prd.json", PLAN)
    status = execution_status(Project(root).snapshot(), time.time(), 600.0)
    assert status["is_running"] is False and "tokens_in" not in status


@pytest_twisted.ensureDeferred
async def test_health_names_the_family_and_the_files_read(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    root = str(tmp_path)
    put(root, "tasks/prd.json", PLAN)
    daemon = await daemon_factory(root)
    body = (await daemon.get("/api/health", authenticated=False)).json()
    assert body["source"] == {
        "family": "ralph",
        "prd": "tasks/prd.json",
        "progress": "tasks/progress.txt",
        "status": None,
        "metrics": None,
        "run_id": None,
        "found": ["tasks/prd.json"],
    }
    stories = (await daemon.get("/api/stories")).json()
    assert stories["total"] == 2


@pytest_twisted.ensureDeferred
async def test_layout_and_paths_options_reach_the_project(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    root = str(tmp_path)
    put(root, "odd/place/plan.json", PLAN)
    put(root, "odd/log.md", LOG)
    daemon = await daemon_factory(root, layout="ralph", prd="odd/place/plan.json", progress="odd/log.md")
    body = (await daemon.get("/api/health", authenticated=False)).json()
    assert (body["source"]["family"], body["source"]["prd"], body["source"]["progress"]) == (
        "ralph",
        "odd/place/plan.json",
        "odd/log.md",
    )
    logs = (await daemon.get("/api/logs")).json()
    assert logs["total"] == 1 and logs["logs"][0]["story_ids"] == ["US-001"]

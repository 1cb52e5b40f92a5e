"""Writing loop files the way real loops write them.

Used by the sample project (what a newcomer sees), by the demo simulator and
by the tests, so all three exercise the same on-disk shapes: prd.json and
metrics.json rewritten in place with a plain truncating write (as
``cat > metrics.json`` does), progress.txt appended to, summary.json written
once at the end, and the flat shape of older tools alongside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SAMPLE_STORIES: tuple[dict[str, Any], ...] = (
    {
        "id": "US-001",
        "title": "Always log tokens to provider_usage.jsonl",
        "description": "Every provider call appends one JSON line with tokens and cost.",
        "acceptanceCriteria": ["A line per call", "Tokens in and out recorded", "Tests pass"],
        "priority": 1,
        "estimatedComplexity": "simple",
        "dependencies": [],
    },
    {
        "id": "US-002",
        "title": "Per-iteration metrics in metrics.json",
        "description": "Rewrite metrics.json after each iteration with totals and per-iteration rows.",
        "acceptanceCriteria": ["Totals match the iterations", "Cost in USD per iteration"],
        "priority": 1,
        "estimatedComplexity": "medium",
        "dependencies": ["US-001"],
    },
    {
        "id": "US-003",
        "title": "Run summary on completion",
        "description": "Write summary.json when a run ends, with stories, tokens, cost and duration.",
        "acceptanceCriteria": ["Written exactly once", "Includes wall and API durations"],
        "priority": 2,
        "estimatedComplexity": "simple",
        "dependencies": ["US-002"],
    },
    {
        "id": "US-004",
        "title": "Skills architecture: core framework",
        "description": "Progressive disclosure of skills with a three-layer architecture.",
        "acceptanceCriteria": ["Skills load lazily", "Metadata cached"],
        "priority": 2,
        "estimatedComplexity": "complex",
        "dependencies": [],
    },
    {
        "id": "US-005",
        "title": "Parallel worker pool",
        "description": "Run independent stories in parallel workers with a shared budget.",
        "acceptanceCriteria": ["Bounded workers", "Speedup reported in metrics"],
        "priority": 3,
        "estimatedComplexity": "high",
        "dependencies": ["US-002", "US-004"],
    },
    {
        "id": "US-006",
        "title": "Prompt cache statistics",
        "description": "Count cache hits and misses and estimate the tokens saved.",
        "acceptanceCriteria": ["Hit rate in metrics.json"],
        "priority": 3,
        "estimatedComplexity": "medium",
        "dependencies": ["US-002"],
    },
    {
        "id": "US-007",
        "title": "Visual progress dashboard: backend API",
        "description": "REST endpoints and a live event stream over the loop's files.",
        "acceptanceCriteria": ["Bearer auth", "SSE stream", "History of runs"],
        "priority": 4,
        "estimatedComplexity": "high",
        "dependencies": ["US-003"],
    },
    {
        "id": "US-008",
        "title": "Visual progress dashboard: frontend",
        "description": "A web page showing the loop at a glance, live.",
        "acceptanceCriteria": ["Live progress", "Cost charts"],
        "priority": 5,
        "estimatedComplexity": "medium",
        "dependencies": ["US-007"],
    },
)

AGENTS = ("backend-architect", "test-engineer", "code-reviewer", "docs-writer")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_id_for(moment: datetime) -> str:
    """A run id: the run's local start time, as claude-loop names its directories."""
    return moment.astimezone().strftime("%Y%m%d_%H%M%S")


def write_in_place(path: str, data: str) -> None:
    """Truncate and rewrite, like ``cat > file``: a reader can see it half-written."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)


def write_prd(root: str, stories: Iterable[dict[str, Any]], project: str = "claude-loop-p2-features") -> None:
    document = {
        "project": project,
        "branchName": "feature/p2-dashboard",
        "description": "Observability and dashboard features for claude-loop.",
        "userStories": list(stories),
    }
    write_in_place(os.path.join(root, "prd.json"), json.dumps(document, indent=2) + "\n")


def progress_entry(when: str, story_id: str, title: str, status: str, bullets: Sequence[str]) -> str:
    lines = [
        f"### Iteration: {when}",
        f"**Story**: {story_id} - {title}",
        f"**Status**: {status}",
        "",
        "**What was implemented**:",
        *[f"- {b}" for b in bullets],
        "",
        "---",
        "",
    ]
    return "\n".join(lines) + "\n"


def append_progress(root: str, text: str) -> None:
    with open(os.path.join(root, "progress.txt"), "a", encoding="utf-8") as f:
        f.write(text)


@dataclass
class RealRun:
    """A run as claude-loop's monitoring code records it (the real shape)."""

    root: str
    started_at: datetime
    iterations: list[dict[str, Any]] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def run_id(self) -> str:
        return run_id_for(self.started_at)

    @property
    def directory(self) -> str:
        return os.path.join(self.root, ".claude-loop", "runs", self.run_id)

    def start(self) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def add_iteration(
        self,
        story_id: str,
        story_title: str,
        ended_at: datetime,
        duration_ms: int,
        status: str = "complete",
        tokens_in: int = 8000,
        tokens_out: int = 2000,
        model: str = "sonnet",
        agents: Sequence[str] = ("backend-architect",),
    ) -> dict[str, Any]:
        cost = round(tokens_in * 3.0 / 1e6 + tokens_out * 15.0 / 1e6, 6)
        iteration = {
            "iteration": len(self.iterations) + 1,
            "story_id": story_id,
            "story_title": story_title,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": cost,
            "opus_baseline_cost_usd": round(cost * 5, 6),
            "model": model,
            "duration_ms": duration_ms,
            "status": status,
            "agents_used": list(agents),
            "agents_used_count": len(agents),
            "timestamp": iso(ended_at),
        }
        self.iterations.append(iteration)
        self.cache_hits += 1 if len(self.iterations) % 3 else 0
        self.cache_misses += 0 if len(self.iterations) % 3 else 1
        return iteration

    def metrics_document(self, updated_at: datetime) -> dict[str, Any]:
        its = self.iterations
        lookups = self.cache_hits + self.cache_misses
        models: dict[str, int] = {"haiku": 0, "sonnet": 0, "opus": 0}
        for it in its:
            models[it["model"]] = models.get(it["model"], 0) + 1
        return {
            "session_id": self.run_id,
            "started_at": iso(self.started_at),
            "updated_at": iso(updated_at),
            "pricing": {"sonnet": {"input_per_m_usd": 3.0, "output_per_m_usd": 15.0}},
            "model_usage": models,
            "cache": {
                "hits": self.cache_hits,
                "misses": self.cache_misses,
                "hit_rate": round(100.0 * self.cache_hits / lookups, 1) if lookups else 0.0,
                "saved_tokens_estimate": 4000 * self.cache_hits,
            },
            "parallel": {
                "enabled": False,
                "batches": 0,
                "workers_used": 0,
                "max_concurrent": 0,
                "parallel_time_ms": 0,
                "sequential_estimate_ms": 0,
                "time_saved_ms": 0,
                "speedup_factor": 1.0,
            },
            "totals": {
                "iterations": len(its),
                "tokens_in": sum(i["tokens_in"] for i in its),
                "tokens_out": sum(i["tokens_out"] for i in its),
                "cost_usd": round(sum(i["cost_usd"] for i in its), 6),
                "api_duration_ms": sum(i["duration_ms"] for i in its) // 3,
                "wall_duration_ms": int((updated_at - self.started_at).total_seconds() * 1000),
            },
            "iterations": its,
        }

    def write_metrics(self, updated_at: datetime) -> str:
        """Rewrite metrics.json in place; returns what was written."""
        text = json.dumps(self.metrics_document(updated_at), indent=2) + "\n"
        write_in_place(os.path.join(self.directory, "metrics.json"), text)
        return text

    def write_summary(self, completed_at: datetime, status: str = "complete") -> None:
        its = self.iterations
        done = len({i["story_id"] for i in its if i["status"] == "complete"})
        failed = sum(1 for i in its if i["status"] != "complete")
        wall_ms = int((completed_at - self.started_at).total_seconds() * 1000)
        document = {
            "session_id": self.run_id,
            "started_at": iso(self.started_at),
            "completed_at": iso(completed_at),
            "status": status,
            "stories": {"total": len(its), "completed": done, "failed": failed},
            "tokens": {
                "input": sum(i["tokens_in"] for i in its),
                "output": sum(i["tokens_out"] for i in its),
                "total": sum(i["tokens_in"] + i["tokens_out"] for i in its),
            },
            "cost": {
                "total_usd": round(sum(i["cost_usd"] for i in its), 6),
                "opus_baseline_usd": round(sum(i["opus_baseline_cost_usd"] for i in its), 6),
            },
            "duration": {"api_ms": wall_ms // 3, "wall_ms": wall_ms},
            "model_usage": self.metrics_document(completed_at)["model_usage"],
            "cache": self.metrics_document(completed_at)["cache"],
            "parallel": self.metrics_document(completed_at)["parallel"],
        }
        write_in_place(os.path.join(self.directory, "summary.json"), json.dumps(document, indent=2) + "\n")


def write_flat_run(
    root: str, run_id: str, iterations: Sequence[dict[str, Any]], elapsed_s: float, last_update: str
) -> None:
    """A finished run in the flat shape the API document shows (older tools write it)."""
    directory = os.path.join(root, ".claude-loop", "runs", run_id)
    os.makedirs(directory, exist_ok=True)
    successes = sum(1 for i in iterations if i["status"] == "success")
    totals = {
        "elapsed_time_s": elapsed_s,
        "total_cost": round(sum(i["cost"] for i in iterations), 6),
        "total_iterations": len(iterations),
        "success_count": successes,
        "failure_count": len(iterations) - successes,
    }
    metrics = dict(totals, last_update=last_update, iterations=list(iterations))
    write_in_place(os.path.join(directory, "metrics.json"), json.dumps(metrics, indent=2))
    write_in_place(os.path.join(directory, "summary.json"), json.dumps(totals, indent=2))


def create_sample_project(root: str, now: datetime | None = None) -> None:
    """A finished project history: an old flat-shape run, a real-shape finished
    run, and a current real-shape run that stopped mid-way (no summary)."""
    now = now or datetime.now(UTC)
    os.makedirs(root, exist_ok=True)
    stories = [dict(s, passes=False, notes="") for s in SAMPLE_STORIES]
    progress_path = os.path.join(root, "progress.txt")
    write_in_place(progress_path, "# claude-loop progress\n\nProject: claude-loop-p2-features\n\n")

    # 1. An old run, written by an older tool in the flat shape.
    old_start = now - timedelta(days=2)
    write_flat_run(
        root,
        run_id_for(old_start),
        [
            {
                "story_id": "US-001",
                "status": "success",
                "elapsed_ms": 180000,
                "tokens_in": 5000,
                "tokens_out": 2000,
                "cost": 0.045,
                "agents_used": ["backend-architect"],
            },
            {
                "story_id": "US-002",
                "status": "failure",
                "elapsed_ms": 240000,
                "tokens_in": 9000,
                "tokens_out": 3000,
                "cost": 0.072,
                "agents_used": "backend-architect, test-engineer",
            },
        ],
        elapsed_s=600,
        last_update=iso(old_start + timedelta(minutes=10)),
    )
    stories[0].update(passes=True, notes="Implemented in commit 6d02b70")
    append_progress(
        root,
        progress_entry(
            (old_start + timedelta(minutes=3)).strftime("%Y-%m-%d %I:%M %p"),
            "US-001",
            stories[0]["title"],
            "Complete",
            ["Added `log_provider_usage_jsonl()`", "Tests in tests/test_usage.py"],
        ),
    )

    # 2. A finished run in the real shape, with a summary.
    run = RealRun(root, now - timedelta(days=1))
    run.start()
    moment = run.started_at
    for index, (story_index, status) in enumerate(
        [(1, "complete"), (2, "complete"), (3, "failed"), (3, "complete")]
    ):
        moment += timedelta(minutes=4 + index)
        story = stories[story_index]
        run.add_iteration(
            story["id"],
            story["title"],
            moment,
            (4 + index) * 60000,
            status,
            tokens_in=8000 + 1500 * index,
            tokens_out=2000 + 400 * index,
            agents=AGENTS[: 1 + index % 3],
        )
        if status == "complete":
            story.update(passes=True, notes=f"Implemented in commit {1000 + index:x}a7c")
        append_progress(
            root,
            progress_entry(
                moment.strftime("%Y-%m-%d %H:%M:%S"),
                story["id"],
                story["title"],
                "Complete" if status == "complete" else "Failed",
                [f"Worked on {story['title'].lower()}", "Ran the test suite"],
            ),
        )
        run.write_metrics(moment)
    run.write_summary(moment + timedelta(seconds=30))

    # 3. The current run: two iterations, then the loop went quiet.
    current = RealRun(root, now - timedelta(hours=2))
    current.start()
    moment = current.started_at
    for index, story_index in enumerate((5, 6)):
        moment += timedelta(minutes=6)
        story = stories[story_index]
        current.add_iteration(
            story["id"],
            story["title"],
            moment,
            6 * 60000,
            "complete",
            tokens_in=12000,
            tokens_out=3500,
            model="opus" if index else "sonnet",
        )
        story.update(passes=True, notes="Implemented; see progress.txt")
        append_progress(
            root,
            progress_entry(
                moment.strftime("%Y-%m-%d %H:%M:%S"),
                story["id"],
                story["title"],
                "Complete",
                ["Implemented the change", "Added tests"],
            ),
        )
        current.write_metrics(moment)
    write_prd(root, stories)

"""Generate a claude-loop project of a chosen size, for the benchmarks.

    python -m bench.generate DIR --size large          # 200 stories, 5,000 runs x 50 iterations, 50 MB log
    python -m bench.generate DIR --size small          # 500 runs, the same shape, a 5 MB log
    python -m bench.generate DIR --runs N --iterations M --stories S --log-mb X

Most runs are in the real claude-loop shape (metrics.json + a real summary.json),
every ``--flat-every``-th one in the flat shape of older tools. Every run but the
newest is finished (it has a summary); the newest is running: half its
iterations done, no summary, files written just now. progress.txt holds one
entry per iteration, newest last, sized to ``--log-mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loopdash.cli.sample import (
    AGENTS,
    RealRun,
    progress_entry,
    run_id_for,
    write_flat_run,
    write_in_place,
    write_prd,
)

SIZES: dict[str, dict[str, float]] = {
    "small": {"runs": 500, "iterations": 50, "stories": 200, "log_mb": 5.0},
    "large": {"runs": 5000, "iterations": 50, "stories": 200, "log_mb": 50.0},
}

#: Runs start this far apart, so a run of 50 iterations (at most 5 minutes
#: each) never overlaps the next one and run ids never collide.
RUN_SPACING = timedelta(hours=5)

PROGRESS_PREAMBLE = "# claude-loop progress\n\nProject: bench\n\n"


@dataclass(frozen=True)
class GeneratedProject:
    """What the benchmarks need to know about a generated project."""

    root: str
    runs: int
    flat_runs: int
    iterations_per_run: int
    stories: int
    current_run: str
    middle_run: str
    log_entries: int
    log_bytes: int
    seconds: float


def make_stories(count: int) -> list[dict[str, Any]]:
    """``count`` stories of about 420 bytes each in prd.json (200 make an 85 KB /api/stories)."""
    stories = []
    for n in range(1, count + 1):
        stories.append(
            {
                "id": f"US-{n:03d}",
                "title": f"Story {n}: make the loop observable, part {n % 17}",
                "description": (
                    f"As a loop operator I want feature {n} so that the dashboard shows "
                    "what the loop does while it runs, without reading raw files."
                ),
                "acceptanceCriteria": [
                    f"Criterion {n}.1 holds on the real files",
                    f"Criterion {n}.2 is covered by a test",
                ],
                "priority": 1 + n // 10,
                "passes": False,
                "notes": "",
                "estimatedComplexity": ("simple", "medium", "complex", "high")[n % 4],
                "dependencies": [f"US-{n - 1:03d}"] if n % 5 == 0 and n > 1 else [],
            }
        )
    return stories


def iteration_plan(
    run_index: int, iterations: int, stories: list[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], str, int]]:
    """(story, status, duration in ms) for each iteration of a run: deterministic, varied."""
    for k in range(iterations):
        story = stories[(run_index * 7 + k) % len(stories)]
        status = "failed" if (run_index + k) % 9 == 0 else "complete"
        duration_ms = 60_000 + ((run_index * 31 + k * 17) % 240) * 1000
        yield story, status, duration_ms


def entry_bullets(extra: int, seed: int) -> list[str]:
    bullets = [f"Worked on change {seed}", "Ran the test suite"]
    bullets += [f"Detail {seed}.{j}: adjusted the implementation and its tests" for j in range(extra)]
    return bullets


def generate(
    root: str,
    runs: int,
    iterations: int,
    stories_count: int,
    log_mb: float,
    flat_every: int = 10,
    now: datetime | None = None,
) -> GeneratedProject:
    """Write the project under ``root`` (which must not exist or be empty)."""
    began = time.monotonic()
    if runs < 1 or iterations < 2 or stories_count < 1:
        raise ValueError("need at least one run, two iterations and one story")
    now = now or datetime.now(UTC)
    os.makedirs(os.path.join(root, ".claude-loop", "runs"), exist_ok=True)
    stories = make_stories(stories_count)

    current_start = now - timedelta(minutes=1) - timedelta(seconds=300 * (iterations // 2))
    starts = [current_start - RUN_SPACING * (runs - 1 - i) for i in range(runs)]
    run_ids: list[str] = []
    # (when, story, status) of every iteration, oldest first: the log's material.
    log_items: list[tuple[datetime, dict[str, Any], str]] = []
    flat_runs = 0
    for index, started in enumerate(starts):
        is_current = index == runs - 1
        count = iterations // 2 if is_current else iterations
        moment = started
        plan = list(iteration_plan(index, count, stories))
        if not is_current and flat_every > 0 and index % flat_every == flat_every - 1:
            rows = []
            for story, status, duration_ms in plan:
                moment += timedelta(milliseconds=duration_ms)
                rows.append(
                    {
                        "story_id": story["id"],
                        "status": "success" if status == "complete" else "failure",
                        "elapsed_ms": duration_ms,
                        "tokens_in": 5000 + duration_ms // 100,
                        "tokens_out": 2000,
                        "cost": round(0.045 + duration_ms / 1e8, 6),
                        "agents_used": ", ".join(AGENTS[: 1 + index % 3]),
                    }
                )
                log_items.append((moment, story, status))
            run_id = run_id_for(started)
            write_flat_run(
                root, run_id, rows, (moment - started).total_seconds(), moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
            flat_runs += 1
        else:
            run = RealRun(root, started)
            run.start()
            run_id = run.run_id
            for story, status, duration_ms in plan:
                moment += timedelta(milliseconds=duration_ms)
                run.add_iteration(
                    story["id"],
                    story["title"],
                    moment,
                    duration_ms,
                    status,
                    tokens_in=8000 + duration_ms // 50,
                    tokens_out=2000 + duration_ms // 200,
                    model=("sonnet", "opus", "haiku")[index % 3],
                    agents=AGENTS[: 1 + index % 3],
                )
                log_items.append((moment, story, status))
            run.write_metrics(now if is_current else moment)
            if not is_current:
                run.write_summary(moment + timedelta(seconds=20))
        if run_ids and run_id <= run_ids[-1]:
            raise RuntimeError(f"run ids out of order: {run_id} after {run_ids[-1]}")
        run_ids.append(run_id)

    # The plan reflects the history: a story that ever completed passes.
    done = {story["id"] for _, story, status in log_items if status == "complete"}
    # Leave work for the running loop: the last tenth of the stories is still pending.
    pending_from = stories_count - max(1, stories_count // 10)
    for n, story in enumerate(stories):
        if story["id"] in done and n < pending_from:
            story.update(passes=True, notes=f"Implemented in commit {n:04x}a7c")
    write_prd(root, stories, project="bench")

    entries, log_bytes = write_progress(root, log_items, int(log_mb * 1024 * 1024))
    middle = run_ids[len(run_ids) // 2]
    return GeneratedProject(
        root=os.path.abspath(root),
        runs=runs,
        flat_runs=flat_runs,
        iterations_per_run=iterations,
        stories=stories_count,
        current_run=run_ids[-1],
        middle_run=middle,
        log_entries=entries,
        log_bytes=log_bytes,
        seconds=round(time.monotonic() - began, 1),
    )


def write_progress(
    root: str, items: list[tuple[datetime, dict[str, Any], str]], target: int
) -> tuple[int, int]:
    """progress.txt of about ``target`` bytes: the newest iterations' entries, padded
    with more bullets when there are too few iterations to reach the size."""
    sample = progress_entry("2026-01-13 14:40:00", "US-001", "x" * 40, "Complete", entry_bullets(0, 0))
    per_entry = max(target // max(len(items), 1), 1)
    extra = max(0, -(-(per_entry - len(sample)) // 55))
    chunks: list[str] = []
    size = 0
    for seed, (moment, story, status) in enumerate(reversed(items)):
        if size >= target:
            break
        text = progress_entry(
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            story["id"],
            story["title"],
            "Complete" if status == "complete" else "Failed",
            entry_bullets(extra, seed),
        )
        chunks.append(text)
        size += len(text)
    chunks.append(PROGRESS_PREAMBLE)
    chunks.reverse()
    data = "".join(chunks)
    write_in_place(os.path.join(root, "progress.txt"), data)
    return len(chunks) - 1, len(data.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", help="directory to create (must not exist, unless --force)")
    parser.add_argument("--size", choices=sorted(SIZES), help="a preset; explicit options override it")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--stories", type=int)
    parser.add_argument("--log-mb", type=float)
    parser.add_argument(
        "--flat-every", type=int, default=10, help="every Nth run in the flat shape (0: none)"
    )
    parser.add_argument("--force", action="store_true", help="delete ROOT first if it exists")
    args = parser.parse_args(argv)
    preset = SIZES[args.size or "small"]
    if os.path.exists(args.root):
        if not args.force:
            parser.error(f"{args.root} exists (use --force to replace it)")
        shutil.rmtree(args.root)
    project = generate(
        args.root,
        runs=args.runs if args.runs is not None else int(preset["runs"]),
        iterations=args.iterations if args.iterations is not None else int(preset["iterations"]),
        stories_count=args.stories if args.stories is not None else int(preset["stories"]),
        log_mb=args.log_mb if args.log_mb is not None else preset["log_mb"],
        flat_every=args.flat_every,
    )
    json.dump(asdict(project), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One discovery pass over a big folder tree, as a ratio to a bare listing of the same folders.

    python -m bench.discovery [--projects 100] [--areas 15] [--repeat 5]

Writes a tree to a temporary directory: ``--projects`` loop projects of every
family under ``team-<k>/`` (each with source folders of its own, which
discovery must not enter), and ``--areas`` cubed plain folders three levels
deep (``area-<a>/pkg-<b>/mod-<c>/`` with a few files and a fourth level below),
plus ``node_modules`` and hidden folders. Then times, best of ``--repeat``:

- the floor: one ``os.scandir`` of every folder discovery enters, nothing else;
- a cold ``discover()`` (a new plan cache, every plan parsed);
- a warm ``discover()`` (the plan cache of the previous pass: what the daemon's
  rescan every few seconds costs).

It prints milliseconds, folders entered and the ratios to the floor measured in
the same run. Run by hand: nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable

from loopdash.loop.discovery import SKIP, discover, new_plan_cache

PLAN = {
    "project": "bench",
    "userStories": [{"id": f"US-{i}", "title": "t", "passes": i % 2 == 0} for i in range(20)],
}
LOG = "## 2026-01-10 - US-1\n- did it\n" * 50

#: One project's files per family, relative to the project's folder.
SHAPES: tuple[tuple[str, ...], ...] = (
    ("prd.json", "progress.txt", ".claude-loop/runs/20260101_000000/metrics.json"),
    ("scripts/ralph/prd.json", "scripts/ralph/progress.txt"),
    (".ralph/PRD-3/prd.json", ".ralph/PRD-3/progress.md"),
    (".ralph-tui/progress.md", "tasks/prd.json"),
    (".agents/tasks/prd.json",),
    ("plan-prd.json", "progress-notes.md"),
)


def put(path: str, content: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content)


def generate(root: str, projects: int, areas: int) -> None:
    for i in range(projects):
        project = os.path.join(root, f"team-{i % 10}", f"project-{i}")
        for name in SHAPES[i % len(SHAPES)]:
            put(os.path.join(project, name), json.dumps(PLAN) if name.endswith(".json") else LOG)
        for sub in ("src/app", "src/lib", "tests", "docs"):
            put(os.path.join(project, sub, "file.py"), "x = 1\n")
    for a in range(areas):
        for b in range(areas):
            for c in range(areas):
                mod = os.path.join(root, f"area-{a}", f"pkg-{b}", f"mod-{c}")
                put(os.path.join(mod, "deeper", "leaf.py"), "x = 1\n")
                for name in ("a.py", "b.py", "README.md"):
                    put(os.path.join(mod, name), "x = 1\n")
        put(os.path.join(root, f"area-{a}", "node_modules", "dep", "index.js"), "1\n")
        put(os.path.join(root, f"area-{a}", ".cache", "x"), "1\n")


def floor(root: str, depth: int, projects: set[str]) -> int:
    """List every folder discovery enters, and nothing more: the cost of the walk alone."""
    stack, entered = [(root, 0)], 0
    while stack:
        folder, level = stack.pop()
        with os.scandir(folder) as it:
            entries = list(it)
        entered += 1
        if folder in projects or level >= depth:
            continue
        for e in entries:
            if not e.name.startswith(".") and e.name not in SKIP and e.is_dir(follow_symlinks=False):
                stack.append((e.path, level + 1))
    return entered


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--areas", type=int, default=15)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        generate(root, args.projects, args.areas)
        folders = sum(len(dirs) for _, dirs, _ in os.walk(root))
        found = discover(root, args.depth)
        paths = {p.path for p in found}
        entered = floor(root, args.depth, paths)
        floor_ms = best(args.repeat, lambda: floor(root, args.depth, paths))
        cold_ms = best(args.repeat, lambda: discover(root, args.depth))
        cache = new_plan_cache()
        discover(root, args.depth, cache)
        warm_ms = best(args.repeat, lambda: discover(root, args.depth, cache))
        print(
            json.dumps(
                {
                    "folders_in_tree": folders,
                    "folders_entered": entered,
                    "projects_found": len(found),
                    "families": sorted({p.family for p in found}),
                    "floor_ms": round(floor_ms, 1),
                    "cold_ms": round(cold_ms, 1),
                    "warm_ms": round(warm_ms, 1),
                    "cold_over_floor": round(cold_ms / floor_ms, 2),
                    "warm_over_floor": round(warm_ms / floor_ms, 2),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

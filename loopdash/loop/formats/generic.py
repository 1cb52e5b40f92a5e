"""The fallback: any ``*prd*.json`` and ``progress*.txt|md`` found below the root.

For loops of no known layout (``ralph/prds/prd-markdownforge.json``,
``docs/archive/progress.txt``, ``.ody/progress.txt``, ``examples/audit/prd.json``).
Directories are searched breadth first, shallowest first and by name, never
into ``.git``, ``node_modules`` or virtual environments, and at most
:data:`MAX_DIRECTORIES` of them: a plan and a log in the same directory win,
else the shallowest of each. Checked against shared/realdata 05, 08, 13, 14,
25, 27, 37 and 51.
"""

from __future__ import annotations

import os

from loopdash.loop.formats import Family, Source

MAX_DEPTH = 10
MAX_DIRECTORIES = 400
SKIP = frozenset(
    {".git", "node_modules", ".venv", "venv", "__pycache__", ".claude-loop", "dist", "build", "target"}
)


def is_plan(name: str) -> bool:
    """Whether a file name is a plan's: ``*prd*.json``, any case.

    Spelled out rather than with fnmatch: discovery asks it of every name in
    thousands of folders, and this is several times faster."""
    lowered = name.lower()
    return lowered.endswith(".json") and "prd" in lowered[:-5]


def is_log(name: str) -> bool:
    """Whether a file name is a log's: ``progress*.txt`` or ``progress*.md``, any case."""
    lowered = name.lower()
    return lowered.startswith("progress") and lowered.endswith((".txt", ".md"))


def find(root: str) -> Source | None:
    plan: str | None = None
    log: str | None = None
    queue = [(root, 0)]
    visited = 0
    while queue and visited < MAX_DIRECTORIES:
        directory, depth = queue.pop(0)
        visited += 1
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        here_plan = next((e.path for e in entries if is_plan(e.name) and e.is_file()), None)
        here_log = next((e.path for e in entries if is_log(e.name) and e.is_file()), None)
        if here_plan and here_log:
            return Source("generic", here_plan, here_log)
        plan, log = plan or here_plan, log or here_log
        if depth < MAX_DEPTH:
            queue.extend(
                (e.path, depth + 1) for e in entries if e.name not in SKIP and e.is_dir(follow_symlinks=False)
            )
    if plan is None and log is None:
        return None
    return Source(
        "generic",
        plan or os.path.join(os.path.dirname(log or root), "prd.json"),
        log or os.path.join(os.path.dirname(plan or root), "progress.txt"),
    )


def layout(root: str) -> Source:
    return find(root) or Source("generic", os.path.join(root, "prd.json"), os.path.join(root, "progress.txt"))


FAMILY = Family("generic", find, layout)

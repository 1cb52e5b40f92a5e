"""claude-loop: ``prd.json`` and ``progress.txt`` at the root, runs under ``.claude-loop/runs/``.

Shapes: the plan's ``userStories`` and ``### Iteration: <timestamp>`` log
entries of ``loop-data.md``; runs are ``.claude-loop/runs/<YYYYMMDD_HHMMSS>/``
with ``metrics.json`` and ``summary.json``. Checked against wjlgatech/epiloop's
committed files (shared/realdata 01-03, 29-32). Plan and log files at the
root are read as claude-loop's, with its run rules (no run directory, no run),
whatever wrote them: ``--layout ralph`` reads them with the activity rules of
the ralph family instead.
"""

from __future__ import annotations

import os

from loopdash.loop.formats import Family, Source


def layout(root: str) -> Source:
    return Source(
        "claude-loop",
        os.path.join(root, "prd.json"),
        os.path.join(root, "progress.txt"),
        run_directories=True,
    )


def find_runs(root: str) -> Source | None:
    return layout(root) if os.path.isdir(os.path.join(root, ".claude-loop", "runs")) else None


def find(root: str) -> Source | None:
    source = layout(root)
    return source if os.path.isfile(source.prd_path) or os.path.isfile(source.progress_path) else None


RUNS_FAMILY = Family("claude-loop", find_runs, layout, frozenset({".claude-loop"}))
FAMILY = Family("claude-loop", find, layout, frozenset({"prd.json", "progress.txt"}))

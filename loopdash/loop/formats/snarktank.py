"""The snarktank ralph layout: ``prd.json`` + ``progress.txt`` in ``scripts/ralph/``, ``ralph/`` or ``tasks/``.

Shapes: the plan's ``userStories`` (id, title, priority, passes), the log's
``## <date> - <story id>`` entries after a ``## Codebase Patterns`` section;
finished runs are moved to ``archive/<date>-<branch>/`` beside the files.
Checked against shared/realdata 04, 05, 09, 33, 35, 44 (0xfauzi/rlm-rs,
anthropics/claude-agent-sdk-python, ShepAlderson/github-issues-tui,
BB-fat/ralph-cli). The loop writes no run directory: its run is the files'
activity (docs/loop-families.md), and ``run_id`` is null, since the archive
holds finished runs, not the current one.
"""

from __future__ import annotations

import os

from loopdash.loop.formats import Family, Source

DIRECTORIES = ("scripts/ralph", "ralph", "tasks")


def _source(directory: str) -> Source:
    return Source("ralph", os.path.join(directory, "prd.json"), os.path.join(directory, "progress.txt"))


def find(root: str) -> Source | None:
    for name in DIRECTORIES:
        source = _source(os.path.join(root, name))
        if os.path.isfile(source.prd_path) or os.path.isfile(source.progress_path):
            return source
    return None


def layout(root: str) -> Source:
    """Forced: the first of the directories that exists, else the root itself."""
    for name in DIRECTORIES:
        if os.path.isdir(os.path.join(root, name)):
            return _source(os.path.join(root, name))
    return _source(root)


FAMILY = Family("ralph", find, layout, frozenset(d.split("/")[0] for d in DIRECTORIES))

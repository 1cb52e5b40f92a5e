"""``.agents/tasks/``: ``prd.json`` (and a ``progress.txt|md`` beside it or in ``.agents/``).

Shapes: the snarktank plan (``userStories``) written by agent-skill loops that
keep their tasks under ``.agents/``; the log as dated headers. Checked against
the layout that shared/realdata's INDEX names for it (no committed example of
the log was found; the reader takes any shape).
"""

from __future__ import annotations

import os

from loopdash.loop.formats import Family, Source, first_file

LOGS = ("progress.txt", "progress.md")


def layout(root: str) -> Source:
    tasks = os.path.join(root, ".agents", "tasks")
    log = first_file(tasks, LOGS) or first_file(os.path.join(root, ".agents"), LOGS)
    return Source("agents", os.path.join(tasks, "prd.json"), log or os.path.join(tasks, "progress.txt"))


def find(root: str) -> Source | None:
    source = layout(root)
    return source if os.path.isfile(source.prd_path) else None


FAMILY = Family("agents", find, layout, frozenset({".agents"}))

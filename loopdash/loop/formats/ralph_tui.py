"""ralph-tui: ``.ralph-tui/progress.md``, its plan in ``tasks/prd.json`` or ``.ralph-tui/prd.json``.

Shapes: a preamble, ``## Codebase Patterns (Study These First)``, then
``## <date> - US-00x`` entries; the JSON tracker's plan names the project
``name`` and lists ``dependsOn``. Checked against shared/realdata 56
(ananthintk-lab/jiraloopscript) and 09 (ShepAlderson/github-issues-tui).
"""

from __future__ import annotations

import os

from loopdash.loop.formats import Family, Source, first_file


def layout(root: str) -> Source:
    base = os.path.join(root, ".ralph-tui")
    plan = first_file(base, ("prd.json",)) or first_file(os.path.join(root, "tasks"), ("prd.json",))
    log = first_file(base, ("progress.md", "progress.txt")) or os.path.join(base, "progress.md")
    return Source("ralph-tui", plan or os.path.join(base, "prd.json"), log)


def find(root: str) -> Source | None:
    if not os.path.isdir(os.path.join(root, ".ralph-tui")):
        return None
    source = layout(root)
    return source if os.path.isfile(source.prd_path) or os.path.isfile(source.progress_path) else None


FAMILY = Family("ralph-tui", find, layout, frozenset({".ralph-tui"}))

"""``.ralph/`` layouts: ``.ralph/prd.json``, ``.ralph/progress.txt|md``, and ``.ralph/PRD-N/`` runs.

Shapes: plans under ``stories``, ``tasks`` or ``features`` (ids or none),
logs as dated headers, dated lines (``- [20260119T115317Z] iter 48 ...``) or a
state document; ralph-cli keeps one folder per plan, ``.ralph/PRD-N/``, with
``prd.json``, ``progress.md``, ``runs/metrics.jsonl`` and a live
``.status.json`` (``{phase, story_id, iteration, updated_at}``): the newest N is
the current run and ``PRD-N`` its ``run_id``. Checked against shared/realdata
15, 18, 20, 22, 28, 45, 46, 48-50, 53, 54 and 59 (AskTinNguyen/ralph-cli).
"""

from __future__ import annotations

import os
import re

from loopdash.loop.formats import Family, Source, first_file

_PRD_DIR = re.compile(r"\APRD-(\d{1,9})\Z")
PLANS = ("prd.json",)
LOGS = ("progress.txt", "progress.md")


def newest_prd_dir(base: str) -> tuple[str, str] | None:
    """(path, name) of the ``PRD-N`` folder with the greatest N, if any."""
    best: tuple[int, str] | None = None
    try:
        with os.scandir(base) as it:
            for entry in it:
                match = _PRD_DIR.match(entry.name)
                if match and entry.is_dir(follow_symlinks=False):
                    number = int(match.group(1))
                    if best is None or number > best[0]:
                        best = (number, entry.name)
    except OSError:
        return None
    return None if best is None else (os.path.join(base, best[1]), best[1])


def _source(root: str) -> Source:
    base = os.path.join(root, ".ralph")
    newest = newest_prd_dir(base)
    if newest is not None:
        folder, name = newest
        plan = first_file(folder, PLANS) or first_file(base, PLANS) or os.path.join(folder, "prd.json")
        log = first_file(folder, LOGS) or first_file(base, LOGS) or os.path.join(folder, "progress.md")
        return Source(
            "ralph-dir",
            plan,
            log,
            status_path=os.path.join(folder, ".status.json"),
            metrics_path=os.path.join(folder, "runs", "metrics.jsonl"),
            run_id=name,
        )
    return Source(
        "ralph-dir",
        first_file(base, PLANS) or os.path.join(base, "prd.json"),
        first_file(base, LOGS) or os.path.join(base, "progress.txt"),
    )


def find(root: str) -> Source | None:
    base = os.path.join(root, ".ralph")
    if not os.path.isdir(base):
        return None
    source = _source(root)
    return source if any(os.path.isfile(p) for p in source.paths()) else None


FAMILY = Family("ralph-dir", find, _source, frozenset({".ralph"}))

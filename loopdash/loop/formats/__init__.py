"""Loop families: where each kind of loop keeps its plan and its log.

One module per family, each with a ``FAMILY`` whose ``find(root)`` answers a
:class:`Source` when the family's files are on disk (None otherwise) and whose
``layout(root)`` answers the paths it would read when forced with
``--layout NAME``. :func:`detect` asks them in :data:`ORDER` and falls back to
claude-loop's own paths, so an empty directory reads as today. What a family
wrote was checked against the corpus of real files in shared/realdata (see
docs/loop-families.md); the shapes of the files themselves are read by
:mod:`loopdash.loop.parsing` (plans) and :mod:`loopdash.loop.logformats` (logs),
whatever the family.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """What one project's loop files are, and where (absolute paths)."""

    family: str
    prd_path: str
    progress_path: str
    #: A live status file the family rewrites while it works (``.ralph/PRD-N/.status.json``).
    status_path: str | None = None
    #: Per-iteration metrics as JSON lines (``.ralph/PRD-N/runs/metrics.jsonl``).
    metrics_path: str | None = None
    #: The family's own name for the current run (``PRD-67``), else None.
    run_id: str | None = None
    #: Whether run directories (``.claude-loop/runs/``) say what runs: claude-loop only.
    run_directories: bool = False

    def paths(self) -> tuple[str, ...]:
        """Every file this source reads, plan and log first."""
        extra = (p for p in (self.status_path, self.metrics_path) if p is not None)
        return (self.prd_path, self.progress_path, *extra)

    def describe(self, root: str) -> dict[str, object]:
        """The ``source`` object of /api/health: the family and the paths read, relative to the root."""

        def rel(path: str | None) -> str | None:
            return None if path is None else os.path.relpath(path, root)

        return {
            "family": self.family,
            "prd": rel(self.prd_path),
            "progress": rel(self.progress_path),
            "status": rel(self.status_path),
            "metrics": rel(self.metrics_path),
            "run_id": self.run_id,
            "found": [rel(p) for p in self.paths() if os.path.isfile(p)],
        }


@dataclass(frozen=True)
class Family:
    """A kind of loop: its name, how to find its files, and its paths when forced."""

    name: str
    find: Callable[[str], Source | None]
    layout: Callable[[str], Source]
    #: Names of which at least one is an entry of the root whenever ``find``
    #: answers a Source, so a walk over many folders (discovery) asks ``find``
    #: only where one is listed; None makes no such promise (always asked).
    markers: frozenset[str] | None = None


def first_file(directory: str, names: Sequence[str]) -> str | None:
    """The first of ``names`` that is a file in ``directory``."""
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _families() -> tuple[Family, ...]:
    from loopdash.loop.formats import agents, claude_loop, dot_ralph, generic, ralph_tui, snarktank

    return (
        claude_loop.RUNS_FAMILY,
        claude_loop.FAMILY,
        dot_ralph.FAMILY,
        ralph_tui.FAMILY,
        agents.FAMILY,
        snarktank.FAMILY,
        generic.FAMILY,
    )


def in_order() -> tuple[Family, ...]:
    """Every family in the order :func:`detect` asks them: claude-loop first, generic last."""
    return _families()


def families() -> dict[str, Family]:
    """The families by name, for ``--layout``."""
    return {f.name: f for f in _families()}


def detect(
    root: str, layout: str | None = None, prd: str | None = None, progress: str | None = None
) -> Source:
    """The source of a project: the forced ``layout`` or the first family found on
    disk (claude-loop's paths when none is), with ``prd``/``progress`` (relative to
    the root) in place of the family's own paths when given."""
    root = os.path.abspath(root)
    source: Source | None = None
    if layout is not None:
        source = families()[layout].layout(root)
    else:
        for family in _families():
            source = family.find(root)
            if source is not None:
                break
    if source is None:
        from loopdash.loop.formats import claude_loop

        source = claude_loop.FAMILY.layout(root)
    if prd is not None or progress is not None:
        source = Source(
            source.family,
            os.path.join(root, prd) if prd is not None else source.prd_path,
            os.path.join(root, progress) if progress is not None else source.progress_path,
            source.status_path,
            source.metrics_path,
            source.run_id,
            source.run_directories,
        )
    return source


def layout_names() -> tuple[str, ...]:
    return tuple(sorted(families()))

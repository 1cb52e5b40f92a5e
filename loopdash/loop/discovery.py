"""Discovery: every loop project below a folder, and the ids they are served under.

A folder below the scan root (at most ``depth`` levels, the root itself being
level 0) is a project when a loop family of :mod:`loopdash.loop.formats` finds
its files there. A project's own subfolders are not searched further; hidden
folders, dependency and build folders are never entered and symlinks to folders
are never followed, so the walk has no cycles and counts no project twice.
Folders that cannot be read, or vanish while the walk runs, are skipped.

The generic family is asked differently: its ``find`` searches a whole subtree,
so it would claim every folder above any loop. Discovery counts a folder as a
generic project only when a plan (``*prd*.json``) and a log (``progress*.txt|md``)
lie together in the folder itself, the generic family's own strongest sign.

Ids follow docs/projects.md: the relative path's segments joined with ``--``,
every character outside ``[A-Za-z0-9._-]`` replaced by ``_``, lower-cased; a
clash is settled in sorted path order with ``-2``, ``-3``... Pure Python and
the ``os`` module: no reactor here, so the server calls it from its poll.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from loopdash.loop import formats
from loopdash.loop.filecache import FileCache, Reading
from loopdash.loop.formats import generic
from loopdash.loop.models import Prd
from loopdash.loop.parsing import parse_prd

DEFAULT_DEPTH = 3

#: Folders never entered, besides every hidden one (``.git``, ``.venv``...):
#: dependencies, virtual environments and build output hold no loop of their own.
SKIP = frozenset({"node_modules", "venv", "__pycache__", "dist", "build", "target"})

#: The relative path of the scan root itself.
ROOT = "."

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SEPARATOR = "--"


@dataclass(frozen=True)
class FoundProject:
    """One project found below a scan root."""

    #: Stable and URL-safe: ``[a-z0-9._-]+``, never ``.`` or ``..``, unique within one scan.
    id: str
    #: The project's folder, absolute.
    path: str
    #: The folder relative to the scan root, ``/``-separated; ``"."`` for the root itself.
    relative: str
    #: The loop family whose files were found (``claude-loop``, ``ralph``, ``ralph-dir``...).
    family: str
    #: The plan's ``project`` (or ``name``) when the plan parses, else the folder's name.
    name: str
    #: The plan's path and the reading the name came from, so that whoever serves the
    #: project starts from it instead of parsing the file again (not compared).
    plan: tuple[str, Reading[Prd]] | None = field(default=None, compare=False, repr=False)


def project_id(relative: str, root_name: str = "") -> str:
    """The id of the project at ``relative`` (a ``/``-separated path below the
    scan root), before clashes are settled: segments joined with ``--``, each
    character outside ``[A-Za-z0-9._-]`` replaced by ``_``, lower-cased.

    ``relative`` ``"."`` (or empty) is the scan root itself, which takes
    ``root_name`` (its folder's name); a ``--root`` project passes its folder's
    name as ``relative``. The answer is never empty and never ``.`` or ``..``
    (an id made only of dots has them replaced by ``_``), so it is always one
    safe URL path segment; it never holds ``~``, which marks remote ids.
    """
    segments = [s for s in relative.replace(os.sep, "/").split("/") if s not in ("", ".")]
    if not segments:
        segments = [root_name]
    ident = _SEPARATOR.join(_UNSAFE.sub("_", s) for s in segments).lower()
    if ident.strip(".") == "":
        # "", "." and ".." would not name a path segment of their own.
        ident = "_" * max(len(ident), 1)
    return ident


def unique_ids(ids: Sequence[str]) -> list[str]:
    """``ids`` (one per project, in sorted path order) with clashes settled: the
    first holder of an id keeps it, each later one takes the first of
    ``-2``, ``-3``... that no other project holds or would hold by itself."""
    natural = set(ids)
    taken: set[str] = set()
    answer = []
    for ident in ids:
        chosen = ident
        if chosen in taken:
            n = 2
            while f"{ident}-{n}" in taken or f"{ident}-{n}" in natural:
                n += 1
            chosen = f"{ident}-{n}"
        taken.add(chosen)
        answer.append(chosen)
    return answer


def _generic_pair(folder: str, entries: list[os.DirEntry[str]]) -> formats.Source | None:
    """The generic family's plan and log when both lie in ``folder`` itself
    (the first of each by name, as the family's own ``find`` picks them)."""
    plans, logs = [], []
    for entry in entries:
        if generic.is_plan(entry.name):
            plans.append(entry)
        elif generic.is_log(entry.name):
            logs.append(entry)
    if not (plans and logs):
        return None
    plan = min((e.name for e in plans if _is_file(e)), default=None)
    log = min((e.name for e in logs if _is_file(e)), default=None)
    if plan is None or log is None:
        return None
    return formats.Source(generic.FAMILY.name, os.path.join(folder, plan), os.path.join(folder, log))


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _source_of(
    folder: str, entries: list[os.DirEntry[str]], families: Sequence[formats.Family]
) -> formats.Source | None:
    """The loop files in ``folder``, asking ``families`` in turn (see :func:`formats.in_order`)."""
    names = {e.name for e in entries}
    for family in families:
        if family.name == generic.FAMILY.name:
            return _generic_pair(folder, entries)
        if family.markers is not None and names.isdisjoint(family.markers):
            continue
        try:
            source = family.find(folder)
        except OSError:
            # The folder went away between its listing and this look.
            return None
        if source is not None:
            return source
    return None


def _subfolders(entries: list[os.DirEntry[str]]) -> list[str]:
    found = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name in SKIP:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                found.append(entry.path)
        except OSError:
            continue
    return found


def _walk(scan_root: str, depth: int) -> list[tuple[str, formats.Source]]:
    """(folder, source) of every project below ``scan_root``, one listing per folder entered."""
    found = []
    families = formats.in_order()
    stack = [(scan_root, 0)]
    while stack:
        folder, level = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            # Unreadable (EACCES), gone (ENOENT) or no longer a folder (ENOTDIR).
            continue
        source = _source_of(folder, entries, families)
        if source is not None:
            found.append((folder, source))
        elif level < depth:
            stack.extend((sub, level + 1) for sub in _subfolders(entries))
    return found


def _found(
    ident: str, folder: str, relative: str, source: formats.Source, plans: FileCache[Prd]
) -> FoundProject:
    reading = plans.read(source.prd_path)
    prd = reading.value
    name = prd.project if prd is not None and prd.project else (os.path.basename(folder) or folder)
    return FoundProject(ident, folder, relative, source.family, name, (source.prd_path, reading))


def new_plan_cache(max_entries: int = 1024) -> FileCache[Prd]:
    """A cache of parsed plans to hand to every :func:`discover` of one scan
    root, so a plan is parsed again only when it changes (bounded reads:
    :data:`loopdash.loop.filecache.MAX_JSON_BYTES`)."""
    return FileCache(parse_prd, max_entries=max_entries)


def discover(
    scan_root: str, depth: int = DEFAULT_DEPTH, plans: FileCache[Prd] | None = None
) -> tuple[FoundProject, ...]:
    """Every loop project at most ``depth`` levels below ``scan_root``, sorted by id.

    ``plans`` caches parsed plans between calls (see :func:`new_plan_cache`);
    without it each call parses every project's plan afresh. A ``scan_root``
    that is missing or unreadable has no projects; nothing here raises for
    what is on disk.
    """
    scan_root = os.path.abspath(scan_root)
    plans = plans if plans is not None else new_plan_cache()
    found = sorted(
        (os.path.relpath(folder, scan_root).replace(os.sep, "/"), folder, source)
        for folder, source in _walk(scan_root, depth)
    )
    root_name = os.path.basename(scan_root)
    ids = unique_ids([project_id(relative, root_name) for relative, _, _ in found])
    projects = (
        _found(ident, folder, relative, source, plans)
        for ident, (relative, folder, source) in zip(ids, found, strict=True)
    )
    return tuple(sorted(projects, key=lambda p: p.id))

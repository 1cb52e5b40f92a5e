"""Live discovery: the projects below each ``--scan`` folder, kept in step with the disk.

:class:`Scanner` calls :func:`loopdash.loop.discovery.discover` (the walk is
discovery's, pure) on each scan folder, and turns what changed since the last
scan into bundles added to or removed from the
:class:`~loopdash.server.projects.ProjectRegistry` (which publishes
``project_added`` / ``project_removed``). It scans again when inotify hears a
folder created, deleted or moved in a scanned folder, or a file written there
(a new project's plan), coalesced into one scan per burst; and every
``--scan-interval`` seconds as the fallback (no inotify, a full queue, a
folder that could not be watched).

A project keeps the id it was first served under for as long as it is
served, whatever is discovered beside it later (a client's links stay valid).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from loopdash.loop.discovery import SKIP, FoundProject, discover, new_plan_cache, unique_ids
from loopdash.loop.filecache import FileCache
from loopdash.loop.models import Prd
from loopdash.server.projects import ProjectBundle, ProjectRegistry

#: Seconds an inotify wake-up waits before scanning, so one burst (mkdir, write
#: the plan, write the log) costs one scan.
SCAN_DELAY = 0.05

#: Every this many ``--scan-interval`` ticks, a full scan even when no watched folder changed
#: (a loop family's files deleted inside a project's subfolder change no folder we stat).
FULL_SCAN_EVERY = 30

#: What a scan makes of a found project (the project, its id, its scan root): its bundle, not started.
MakeBundle = Callable[[FoundProject, str, str], ProjectBundle]


@dataclass(frozen=True)
class Scanned:
    """A served project that discovery found: where, and under which id."""

    id: str
    path: str
    scan_root: str


def watched_folders(scan_root: str, depth: int, projects: Sequence[str]) -> list[str]:
    """The folders whose entries can make or unmake a project: the scan root and
    every folder discovery enters below it that is not a project (not hidden
    nor skipped, at most ``depth`` levels down).

    Projects' own folders are not watched: a loop writes there all the time
    (its watcher listens), and a project folder deleted or moved away is an
    event of its parent's. A listing of folders only, bounded like discovery's walk.
    """
    inside = set(projects)
    found: list[str] = []
    stack = [(scan_root, 0)]
    while stack:
        folder, level = stack.pop()
        if folder in inside:
            continue
        found.append(folder)
        if level >= depth:
            continue
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or entry.name in SKIP:
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((entry.path, level + 1))
                    except OSError:
                        continue
        except OSError:
            continue
    return found


class Scanner(Service):
    """Keeps the registry's scanned projects in step with each scan folder."""

    log = Logger(namespace="loopdash.server.scanner")

    def __init__(
        self,
        scan_roots: Sequence[str],
        depth: int,
        interval: float,
        registry: ProjectRegistry,
        make: MakeBundle,
        clock: Any,
        use_inotify: bool = True,
    ) -> None:
        self.scan_roots = [os.path.abspath(root) for root in scan_roots]
        self.depth = depth
        self.interval = interval
        self.registry = registry
        self.make = make
        self.clock = clock
        self.use_inotify = use_inotify
        #: Each served scanned project by its folder.
        self.served: dict[str, Scanned] = {}
        self._plans: dict[str, FileCache[Prd]] = {root: new_plan_cache() for root in self.scan_roots}
        self._loop: LoopingCall | None = None
        self._notifier: Any = None
        self._watched: set[str] = set()
        self._pending: Any = None
        self.scans = 0
        self.ticks = 0
        #: The folders watched (or stat-ed, without inotify) since the last scan.
        self.folders: list[str] = []
        self._fingerprint: tuple[tuple[str, int, int], ...] = ()
        #: Seconds the last scan took (wall time), for the log and tests.
        self.last_duration = 0.0

    # -- scanning --------------------------------------------------------------------

    def scan(self) -> None:
        """Discover again; add the projects found, remove those gone. Never raises."""
        started = time.perf_counter()
        self.scans += 1
        try:
            self._scan()
        except Exception:
            self.log.failure("Scanning for projects failed; will try again")
        self.last_duration = time.perf_counter() - started

    def _scan(self) -> None:
        found: dict[str, tuple[FoundProject, str]] = {}
        for root in self.scan_roots:
            for project in discover(root, self.depth, self._plans[root]):
                found.setdefault(project.path, (project, root))
        # Served as a --root already: not again.
        roots = {b.root for b in self.registry.bundles() if b.root not in self.served}
        for path in [path for path in found if path in roots]:
            del found[path]
        for path, scanned in list(self.served.items()):
            if path not in found:
                del self.served[path]
                self.registry.remove(scanned.id)
                self.log.info("Project {id} is gone ({path})", id=scanned.id, path=path)
        new = sorted(
            (path for path in found if path not in self.served),
            key=lambda p: (self.scan_roots.index(found[p][1]), found[p][0].relative),
        )
        if new:
            taken = self.registry.ids
            wanted = unique_ids([*taken, *(found[path][0].id for path in new)])[len(taken) :]
            for path, ident in zip(new, wanted, strict=True):
                project, root = found[path]
                try:
                    bundle = self.make(project, ident, root)
                except Exception:
                    self.log.failure("Cannot serve the project in {path}", path=path)
                    continue
                self.served[path] = Scanned(ident, path, root)
                self.registry.add(bundle)
                self.log.info("Serving project {id} ({path})", id=ident, path=path)
        self.folders = self._wanted_folders()
        self._fingerprint = self.fingerprint()
        if self.running:
            self._keep_watching()

    def _wanted_folders(self) -> list[str]:
        wanted: list[str] = []
        for root in self.scan_roots:
            projects = [path for path, s in self.served.items() if s.scan_root == root]
            wanted.extend(watched_folders(root, self.depth, projects))
        return wanted

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Each watched folder's inode and modification time, and each project folder's
        inode: what a project created, moved or deleted changes (about a hundred stats)."""
        marks = []
        for path in self.folders:
            try:
                st = os.stat(path)
                marks.append((path, st.st_ino, st.st_mtime_ns))
            except OSError:
                marks.append((path, -1, -1))
        for path in self.served:
            try:
                marks.append((path, os.stat(path).st_ino, 0))
            except OSError:
                marks.append((path, -1, -1))
        return tuple(marks)

    def tick(self) -> None:
        """The ``--scan-interval`` fallback: a scan when a watched folder changed (a stat of
        each, not discovery's walk: tens of ms for a hundred projects), and every
        FULL_SCAN_EVERY ticks whatever the stats say."""
        self.ticks += 1
        try:
            changed = self.fingerprint() != self._fingerprint
        except Exception:
            changed = True
        if changed or self.ticks % FULL_SCAN_EVERY == 0:
            self.scan()

    # -- the service -----------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        if self.use_inotify:
            self._start_inotify()
        self._keep_watching()
        loop = LoopingCall(self.tick)
        loop.clock = self.clock
        loop.start(self.interval, now=False).addErrback(lambda f: self.log.failure("The scanner stopped", f))
        self._loop = loop

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._stop_inotify()

    # -- inotify ---------------------------------------------------------------------

    def _start_inotify(self) -> None:
        try:
            from twisted.internet import inotify

            notifier = inotify.INotify(self.clock)
            notifier.startReading()
        except Exception as e:  # not Linux, or no inotify instance left
            self.log.info(
                "inotify unavailable for the scan folders ({reason}); rescanning every {s} s",
                reason=str(e),
                s=self.interval,
            )
            self.use_inotify = False
            return
        self._notifier = notifier

    def _stop_inotify(self) -> None:
        if self._notifier is not None and not self._notifier.disconnected:
            self._notifier.loseConnection()
        self._notifier = None
        self._watched.clear()

    def _keep_watching(self) -> None:
        """Watch the folders that matter now; a notifier that stopped (Twisted
        stops it when any watched folder is deleted) is started again."""
        if not self.use_inotify:
            return
        notifier = self._notifier
        if notifier is None or notifier.disconnected or notifier.disconnecting:
            self._stop_inotify()
            self._start_inotify()
            if self._notifier is None:
                return
        from twisted.internet import inotify

        wanted = set(self.folders)
        for path in self._watched - wanted:
            self._watched.discard(path)
            try:
                self._notifier.ignore(FilePath(path))
            except Exception:
                pass  # gone with its folder
        mask = (
            inotify.IN_CREATE
            | inotify.IN_DELETE
            | inotify.IN_MOVED_FROM
            | inotify.IN_MOVED_TO
            | inotify.IN_CLOSE_WRITE
            | inotify.IN_DELETE_SELF
            | inotify.IN_MOVE_SELF
        )
        for path in sorted(wanted - self._watched):
            try:
                self._notifier.watch(FilePath(path), mask=mask, callbacks=[self._on_inotify])
            except Exception:
                continue  # unreadable or gone: the interval's scan covers it
            self._watched.add(path)

    def _on_inotify(self, ignored: object, filepath: FilePath[Any], mask: int) -> None:
        # An exception here would disconnect the notifier for good: never raise.
        try:
            self.wake()
        except Exception:
            self.log.failure("inotify wake-up of the scanner failed")

    def wake(self) -> None:
        """Scan soon: once for a burst of changes."""
        if self.running and (self._pending is None or not self._pending.active()):
            self._pending = self.clock.callLater(SCAN_DELAY, self.scan)

"""The projects a daemon serves: one bundle of parts per project, and the registry of them.

A :class:`ProjectBundle` holds what one project needs to be served: its
:class:`~loopdash.loop.project.Project` (the files), its
:class:`~loopdash.server.live.LiveProject` (shared snapshots, encoded
answers), its :class:`~loopdash.server.watcher.Watcher`, its
:class:`~loopdash.server.gitlive.GitLive` and its
:class:`~loopdash.server.notify.NotificationCenter`, and a
:class:`ProjectChannel` through which all of them publish on the daemon's one
:class:`~loopdash.server.stream.StreamHub`.

The :class:`ProjectRegistry` holds the bundles by id, says which is the
default (what the plain ``/api/...`` routes serve), makes the rows of
``GET /api/projects`` and, on a multi-project daemon, publishes
``project_added`` / ``project_removed`` / ``project_updated`` (docs/projects.md).
A single-project daemon (one ``--root``, no ``--scan``) tags nothing: its
events and answers are exactly those of a daemon before issue 19.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from loopdash.derive.changes import Observation
from loopdash.loop.project import Project
from loopdash.server.encoding import encode_json
from loopdash.server.gitlive import GitLive
from loopdash.server.live import LiveProject
from loopdash.server.notify import NotificationCenter
from loopdash.server.stream import StreamHub
from loopdash.server.watcher import Watcher

#: Row fields that move with the clock alone: a change of them is no ``project_updated``.
CLOCK_FIELDS = ("quiet_for",)


class ProjectChannel:
    """One project's way onto the daemon's stream: its events tagged with its id.

    ``project_id`` None (a single-project daemon) tags nothing. Watcher and
    notification center publish here as they would on the hub; the hub itself
    is started and stopped once for the daemon (:class:`HubService`).
    """

    def __init__(self, hub: StreamHub, project_id: str | None) -> None:
        self.hub = hub
        self.project_id = project_id

    def publish(self, kind: str, data: object, gap: bool = False) -> None:
        if self.project_id is None:
            self.hub.publish(kind, data, gap)  # exactly as a single-project daemon always did
        else:
            self.hub.publish(kind, data, gap, project=self.project_id)

    def start(self) -> None:
        """The hub is the daemon's: :class:`HubService` starts it."""

    def stop(self) -> None:
        """The hub is the daemon's: :class:`HubService` stops it."""


class HubService(Service):
    """Starts the stream hub's keepalive timer; at the stop, ends every open stream."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub

    def startService(self) -> None:
        Service.startService(self)
        self.hub.start()

    def stopService(self) -> None:
        Service.stopService(self)
        self.hub.stop()


@dataclass(eq=False)
class ProjectBundle:
    """One served project and the parts that serve it."""

    #: The id in ``/api/projects/<id>/...`` (URL-safe).
    id: str
    #: The project's folder, absolute.
    root: str
    #: The folder as ``/api/projects`` shows it: relative to its scan root, or absolute.
    path: str
    project: Project
    live: LiveProject
    watcher: Watcher
    notifications: NotificationCenter
    channel: ProjectChannel
    git: GitLive | None = None
    #: The loop family discovery found (None: as the project's files say now).
    found_family: str | None = None
    #: The bundle's services (its git view, then its watcher): started and stopped together.
    service: MultiService = field(default_factory=MultiService)
    #: The last row published (or answered), and the clock second it was made at.
    row: dict[str, Any] | None = None
    row_made_at: float = 0.0

    @property
    def family(self) -> str:
        return self.found_family or self.project.source.family

    @property
    def name(self) -> str:
        """The plan's ``project`` field, else the folder's name."""
        prd = self.live.snapshot().prd.value
        if prd is not None and prd.project:
            return prd.project
        return os.path.basename(self.root) or self.root


def row_value(bundle: ProjectBundle, status: Mapping[str, Any], failed_iterations: int) -> dict[str, Any]:
    """The project's ``/api/projects`` row from its status: a
    :class:`~loopdash.contract.shapes.ProjectRowAnswer` as JSON builtins
    (made directly: a hundred projects' rows are made at every poll)."""
    story = status.get("current_story")
    current = None
    if isinstance(story, Mapping):
        title = story.get("title")
        current = {
            "id": str(story.get("id")),
            "status": str(story.get("status")),
            "title": title if isinstance(title, str) else None,
        }
    return {
        "id": bundle.id,
        "name": bundle.name,
        "path": bundle.path,
        "family": bundle.family,
        "machine": None,
        "reachable": True,
        "state": status.get("state"),
        "quiet_for": status.get("quiet_for"),
        "is_running": bool(status.get("is_running")),
        "progress_pct": float(status.get("progress_pct") or 0.0),
        "completed_stories": int(status.get("completed_stories") or 0),
        "total_stories": int(status.get("total_stories") or 0),
        "current_story": current,
        "cost_so_far": float(status.get("cost_so_far") or 0.0),
        "failed_iterations": failed_iterations,
        "last_update": str(status.get("last_update")),
        "url": None,
    }


def failed_iterations(live: LiveProject) -> int:
    """The current run's failed iterations."""
    metrics = live.snapshot().metrics.value
    return sum(1 for iteration in metrics.iterations if iteration.failed) if metrics is not None else 0


@runtime_checkable
class RemoteRows(Protocol):
    """What follows another daemon for the registry (``loopdash.client.remote.RemoteLink``)."""

    def rows(self) -> list[dict[str, Any]]:
        """Its projects' ``/api/projects`` rows, as this daemon lists them (``machine`` set)."""
        ...


class ProjectRegistry(MultiService):
    """The daemon's projects by id, the default one, and their rows.

    Each bundle's service is a child: started with the registry, or at once
    when added to a running registry; stopped when removed. ``multi`` is
    whether the daemon is a multi-project one (events tagged, project events
    published).
    """

    log = Logger(namespace="loopdash.server.projects")

    def __init__(self, hub: StreamHub, clock: Any, multi: bool, preferred_default: str | None = None) -> None:
        MultiService.__init__(self)
        self.hub = hub
        self.clock = clock
        self.multi = multi
        #: The first --root's id: the default while it is served.
        self.preferred_default = preferred_default
        self._bundles: dict[str, ProjectBundle] = {}
        #: Told of each bundle added and removed (the metrics, the scanner's watches, tests).
        self.on_change: list[Callable[[], object]] = []
        #: Bumped when a project is added or removed or a row changes (beyond quiet_for).
        self.version = 0
        #: The encoded /api/projects answer, and the (version, second) it was made for.
        self._list_body: tuple[tuple[int, int], bytes] | None = None
        #: Other machines' projects (``--remote``): listed after this machine's, never served here.
        self.remote_sources: list[RemoteRows] = []

    # -- lookup ----------------------------------------------------------------------

    # (Not __iter__ nor __len__: MultiService iterates over its child services.)

    def bundles(self) -> list[ProjectBundle]:
        """The bundles in id order."""
        return [self._bundles[ident] for ident in sorted(self._bundles)]

    def count(self) -> int:
        return len(self._bundles)

    def get(self, ident: str) -> ProjectBundle | None:
        return self._bundles.get(ident)

    @property
    def ids(self) -> list[str]:
        return sorted(self._bundles)

    def default(self) -> ProjectBundle | None:
        """The first ``--root``'s project while it is served, else the first in id order; None: no project."""
        if self.preferred_default is not None and self.preferred_default in self._bundles:
            return self._bundles[self.preferred_default]
        return self._bundles[min(self._bundles)] if self._bundles else None

    def tag(self, bundle: ProjectBundle) -> str | None:
        """The ``project`` field of the bundle's events: its id on a multi-project daemon, else None."""
        return bundle.id if self.multi else None

    # -- adding and removing -----------------------------------------------------------

    def add(self, bundle: ProjectBundle) -> None:
        """Serve ``bundle`` (started now if the registry runs); ``project_added`` on a multi-project daemon."""
        if bundle.id in self._bundles:
            raise ValueError(f"a project with id {bundle.id!r} is already served")
        self._bundles[bundle.id] = bundle
        bundle.watcher.observers.append(lambda observation: self._observed(bundle, observation))
        MultiService.addService(self, bundle.service)  # starts it when the registry is running
        if self.multi and self.running:
            self.hub.publish("project_added", self.row(bundle), project=bundle.id, combined_only=True)
        self._changed()

    def remove(self, ident: str) -> ProjectBundle | None:
        """Stop serving the project ``ident``; ``project_removed`` on a multi-project daemon."""
        bundle = self._bundles.pop(ident, None)
        if bundle is None:
            return None
        if bundle.service.parent is self:
            MultiService.removeService(self, bundle.service)  # stops it
        if self.multi and self.running:
            self.hub.publish("project_removed", {"id": ident}, project=ident, combined_only=True)
        self._changed()
        return bundle

    def _changed(self) -> None:
        self.version += 1
        for listener in self.on_change:
            try:
                listener()
            except Exception:
                self.log.failure("A listener of the project registry failed")

    # -- rows --------------------------------------------------------------------------

    def make_row(self, bundle: ProjectBundle) -> dict[str, Any]:
        """The bundle's row as of now (its status derived from the shared snapshot)."""
        return row_value(bundle, bundle.live.status(), failed_iterations(bundle.live))

    def row(self, bundle: ProjectBundle) -> dict[str, Any]:
        """The bundle's row: made at its last poll, with ``quiet_for`` moved on to now.

        A poll (every few seconds, and at once on a change thanks to inotify)
        keeps the row current; answering from it costs no snapshot per project.
        """
        now = self.clock.seconds()
        if bundle.row is None:
            bundle.row, bundle.row_made_at = self.make_row(bundle), now
        row = bundle.row
        quiet = row.get("quiet_for")
        if isinstance(quiet, int) and now > bundle.row_made_at:
            row = {**row, "quiet_for": quiet + int(now - bundle.row_made_at)}
        return row

    def _observed(self, bundle: ProjectBundle, observation: Observation) -> None:
        """After each poll of ``bundle``: its row again, from what the poll saw;
        ``project_updated`` when it changed."""
        if self._bundles.get(bundle.id) is not bundle:
            return  # removed meanwhile
        previous = bundle.row
        failed = sum(1 for iteration in observation.iterations if iteration.failed)
        row = row_value(bundle, observation.status, failed)
        bundle.row, bundle.row_made_at = row, self.clock.seconds()
        if previous is not None and _without_clock(previous) == _without_clock(row):
            return
        self.version += 1
        if previous is not None and self.multi:
            self.hub.publish("project_updated", row, project=bundle.id, combined_only=True)

    def rows(self) -> list[dict[str, Any]]:
        """This machine's rows in id order, then each remote's (docs/projects.md)."""
        return [self.row(bundle) for bundle in self.bundles()] + [
            row for source in self.remote_sources for row in source.rows()
        ]

    def publish_remote(self, kind: str, data: object, ident: str) -> None:
        """A remote project's ``project_added`` / ``_updated`` / ``_removed``, on the combined stream only."""
        self.version += 1  # the kept /api/projects answer is stale
        self.hub.publish(kind, data, project=ident, combined_only=True)

    def list_body(self) -> bytes:
        """``GET /api/projects``: encoded once per second while no row changes (quiet_for
        moves with the clock, whole seconds)."""
        key = (self.version, int(self.clock.seconds()))
        if self._list_body is not None and self._list_body[0] == key:
            return self._list_body[1]
        body = self._encode_list()
        self._list_body = (key, body)
        return body

    def _encode_list(self) -> bytes:
        default = self.default()
        rows = self.rows()
        # The rows are ProjectRowAnswer values already, as JSON builtins (see row_value).
        return encode_json({"projects": rows, "total": len(rows), "default": default.id if default else None})

    # -- the stream's status -----------------------------------------------------------

    def default_status(self) -> Mapping[str, Any]:
        """The status a stream of every event starts with: the default project's."""
        default = self.default()
        return default.live.status() if default is not None else {}

    def default_tag(self) -> str | None:
        default = self.default()
        return self.tag(default) if default is not None else None

    def project_status(self, ident: str) -> Mapping[str, Any] | None:
        bundle = self._bundles.get(ident)
        return bundle.live.status() if bundle is not None else None


def _without_clock(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in CLOCK_FIELDS}

"""Other machines' loops: the projects of a ``--remote NAME=URL`` daemon, read through the client.

A :class:`RemoteLink` follows one other loopdash daemon with the treq client
(:class:`~loopdash.client.DashboardClient`): its ``/api/projects`` and its
resumable stream. It keeps each remote project's last row as this daemon
shows it (id ``NAME~<remote id>``, ``machine`` NAME), publishes
``project_added`` / ``project_updated`` / ``project_removed`` on this
daemon's combined stream, and, while the other daemon cannot be read, keeps
the rows with ``reachable`` false and ``state`` ``"unknown"``, retrying with
a bounded backoff. The token is read from its file at each connection and
never logged.

It lives with the client, not the server: it is a client of another daemon,
and ``server`` may not import ``client`` (tests/test_layers.py). It holds no
server object: ``publish`` is how its events reach a hub, :meth:`RemoteLink.rows`
how a registry lists its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from loopdash.client.dashboard import (
    DashboardClient,
    DashboardError,
    Disconnected,
    ReconnectPolicy,
    read_token,
)
from loopdash.client.events import Connected, Gap, ProjectAdded, ProjectRemoved, ProjectUpdated, Reconnected
from loopdash.client.models import ProjectRow

#: ``~`` never appears in a local id: it separates the machine's name from the remote id.
SEPARATOR = "~"
#: Backoff between failed attempts to reach a remote (the stream's own reconnects use the same).
REMOTE_RECONNECT = ReconnectPolicy(initial=1.0, factor=2.0, maximum=30.0, jitter=0.25)
#: Seconds between two refetches of a single-project remote's list (its stream has no project events).
REFRESH_AT_MOST_EVERY = 1.0

#: The fields of a row this daemon answers (a newer remote's extra fields are not passed on).
ROW_FIELDS = tuple(name for name in ProjectRow.__struct_fields__ if name != "extra")

Publish = Callable[[str, Any, str], None]


def local_row(machine: str, row: ProjectRow, url: str | None = None) -> dict[str, Any]:
    """A remote row as this daemon lists it: ``machine~id``, ``machine`` set, reachable,
    ``url`` the remote daemon's address (where its page shows the project)."""
    value = row.to_json()
    shown = {name: value.get(name) for name in ROW_FIELDS}
    shown.update(id=f"{machine}{SEPARATOR}{row.id}", machine=machine, reachable=True, url=url)
    return shown


def without_userinfo(url: str) -> str:
    """``url`` without the ``user:password@`` part, for the log."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def unreachable(row: dict[str, Any]) -> dict[str, Any]:
    """The last known row of a remote project whose daemon cannot be read."""
    return {**row, "reachable": False, "state": "unknown"}


class RemoteLink(Service):
    """One ``--remote`` daemon followed for as long as the service runs.

    ``publish(kind, data, project_id)`` puts a project event on this daemon's
    combined stream. ``client_factory(url, token)`` makes the client (the
    treq client by default). ``rows()`` answers the remote projects' rows now.
    """

    log = Logger(namespace="loopdash.server.remote")

    def __init__(
        self,
        machine: str,
        url: str,
        token_path: str,
        publish: Publish,
        clock: Any,
        client_factory: Callable[[str, str], DashboardClient] | None = None,
        reconnect: ReconnectPolicy = REMOTE_RECONNECT,
    ) -> None:
        #: The --remote NAME: the rows' ``machine`` and their ids' prefix.
        self.machine = machine
        self.url = url
        #: The URL as logged: any ``user:password@`` in it left out.
        self.shown_url = without_userinfo(url)
        self.token_path = token_path
        self.publish = publish
        self.clock = clock
        self.reconnect = reconnect
        self.client_factory = client_factory or (
            lambda url, token: DashboardClient(url, token, reactor=clock, reconnect=reconnect)
        )
        #: Each remote project's row as shown here, by local id.
        self._rows: dict[str, dict[str, Any]] = {}
        self.reachable = False
        self._work: Deferred[None] | None = None
        self._refreshing = False
        self._refreshed_at = float("-inf")

    def rows(self) -> list[dict[str, Any]]:
        """The remote projects' rows, in id order."""
        return [self._rows[ident] for ident in sorted(self._rows)]

    def startService(self) -> None:
        Service.startService(self)
        self._work = Deferred.fromCoroutine(self._follow())
        self._work.addErrback(lambda f: f.trap(CancelledError))

    def stopService(self) -> None:
        Service.stopService(self)
        if self._work is not None:
            self._work.cancel()
            self._work = None

    # -- following ---------------------------------------------------------------------

    async def _follow(self) -> None:
        """Read the remote until cancelled: list, then stream; on any failure, mark down, wait, retry."""
        failures = 0
        while True:
            client: DashboardClient | None = None
            try:
                client = self.client_factory(self.url, read_token(self.token_path))
                async for item in client.stream():
                    if isinstance(item, Disconnected):
                        self._down(item.error)
                    elif isinstance(item, (Connected, Reconnected, Gap)):
                        # The stream brings changes only: the whole list when it (re)starts.
                        await self._replace(client)
                        failures = 0
                    elif isinstance(item, (ProjectAdded, ProjectUpdated)):
                        if item.row.machine is None:  # another daemon's remote: not followed on
                            self._put(local_row(self.machine, item.row, self.shown_url))
                    elif isinstance(item, ProjectRemoved):
                        self._drop(f"{self.machine}{SEPARATOR}{item.project_id}")
                    elif getattr(item, "project", None) is None:
                        # A single-project remote: its status moved, and no project_updated says so.
                        self._refresh_soon(client)
            except CancelledError:
                raise
            except DashboardError as e:
                # e.message is the server's or the network's words: never the token.
                failures += 1
                self._down(e.message)
            finally:
                if client is not None:
                    await client.close()
            delay = self.reconnect.delay(failures - 1, None, lambda: 0.5)
            await _sleep(self.clock, delay)

    async def _replace(self, client: DashboardClient) -> None:
        listed = await client.projects()
        fresh = {
            row["id"]: row
            for row in (
                local_row(self.machine, p, self.shown_url) for p in listed.projects if p.machine is None
            )
        }
        for ident in [ident for ident in self._rows if ident not in fresh]:
            self._drop(ident)
        for row in fresh.values():
            self._put(row)
        if not self.reachable:
            self.log.info(
                "Remote {machine} ({url}) is reachable: {count} projects",
                machine=self.machine,
                url=self.shown_url,
                count=len(fresh),
            )
        self.reachable = True
        self._refreshed_at = self.clock.seconds()

    def _refresh_soon(self, client: DashboardClient) -> None:
        if self._refreshing:
            return
        self._refreshing = True
        wait = max(self._refreshed_at + REFRESH_AT_MOST_EVERY - self.clock.seconds(), 0.0)

        async def refresh() -> None:
            try:
                await _sleep(self.clock, wait)
                await self._replace(client)
            finally:
                self._refreshing = False

        # A failed refresh leaves the rows as they were; the stream reports the trouble.
        Deferred.fromCoroutine(refresh()).addErrback(lambda _: None)

    def _put(self, row: dict[str, Any]) -> None:
        ident = row["id"]
        previous = self._rows.get(ident)
        self._rows[ident] = row
        if previous is None:
            self.publish("project_added", row, ident)
        elif _without_clock(previous) != _without_clock(row):
            self.publish("project_updated", row, ident)

    def _drop(self, ident: str) -> None:
        if self._rows.pop(ident, None) is not None:
            self.publish("project_removed", {"id": ident}, ident)

    def _down(self, reason: str) -> None:
        reason = reason.replace(self.url, self.shown_url)  # the client's words name the URL
        if self.reachable or any(row["reachable"] for row in self._rows.values()):
            self.log.warn(
                "Remote {machine} ({url}) is unreachable: {reason}",
                machine=self.machine,
                url=self.shown_url,
                reason=reason,
            )
        self.reachable = False
        for ident, row in list(self._rows.items()):
            if row["reachable"]:
                self._rows[ident] = unreachable(row)
                self.publish("project_updated", self._rows[ident], ident)


def _without_clock(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "quiet_for"}


def _sleep(clock: Any, seconds: float) -> Deferred[None]:
    waiting: Deferred[None] = Deferred(lambda _: call.cancel())
    call = clock.callLater(seconds, waiting.callback, None)
    return waiting


def remote_rows(links: Iterable[RemoteLink]) -> list[dict[str, Any]]:
    """Every link's rows, in link order."""
    return [row for link in links for row in link.rows()]

"""What a running daemon tells the outside: its state file, and the lines a person starts from.

Once the port is bound, :class:`RuntimeRecord` writes
``<root>/.claude-loop/dashboard/dashboard.json`` (pid, URL, root), so
``loopdash status``, ``stop`` and clients find a daemon however it was started
(``loopdash start``, or ``twistd -n loopdash`` with or without a pidfile),
and removes it on a clean stop. In the foreground it also prints the same
"open / token file / try" lines as ``loopdash start``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import IO, Any

from twisted.application.service import Service
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from loopdash.local.daemon import DaemonFiles, connect_url, read_state, remove_quietly, write_state
from loopdash.local.token import read_token

log = Logger(namespace="loopdash")


def start_lines(pid: int, url: str, token_file: str, token: str | None, logfile: str | None) -> list[str]:
    """The lines ``loopdash start`` and a foreground daemon print once the dashboard answers.

    ``token`` None leaves out the "open" link (which carries the token in the
    URL fragment, never sent to a server).
    """
    lines = [f"loopdash dashboard running (pid {pid}) at {url}"]
    if token:
        lines.append(f"  open:       {url}/#token={token}")
    lines.append(f"  token file: {token_file}")
    if logfile:
        lines.append(f"  log file:   {logfile}")
    lines.append(
        f'  try:        curl -H "Authorization: Bearer $(cat {shlex.quote(token_file)})" {url}/api/status'
    )
    return lines


def listening_url(port: IListeningPort, tls: bool) -> str:
    address: Any = port.getHost()
    return connect_url(str(address.host), int(address.port), "https" if tls else "http")


class RuntimeRecord(Service):
    """Writes the state file once ``when_listening`` fires, prints the start lines, removes it on stop.

    ``announce`` (foreground only) gets the start lines; ``show_token``
    decides whether they carry the token (only on a terminal: a journal or
    log file must not hold it).
    """

    def __init__(
        self,
        files: DaemonFiles,
        token_file: str,
        when_listening: Callable[[], Any],
        tls: bool,
        announce: IO[str] | None = None,
        show_token: bool = False,
    ) -> None:
        self.files = files
        self.token_file = token_file
        self.when_listening = when_listening
        self.tls = tls
        self.announce = announce
        self.show_token = show_token
        self.pid = os.getpid()

    def startService(self) -> None:
        Service.startService(self)
        # After twistd daemonised: the pid that serves.
        self.pid = os.getpid()
        self.when_listening().addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> None:
        url = listening_url(port, self.tls)
        try:
            os.makedirs(self.files.directory, mode=0o700, exist_ok=True)
            write_state(self.files, {"pid": self.pid, "url": url, "root": self.files.root})
        except OSError as e:
            log.warn(
                "Cannot write {path} ({reason}): `loopdash status` will not find this dashboard",
                path=self.files.statefile,
                reason=e.strerror or str(e),
            )
        if self.announce is not None:
            token = None
            if self.show_token:
                try:
                    token = read_token(self.token_file)
                except (OSError, ValueError):
                    token = None
            try:
                self.announce.write(
                    "\n".join(start_lines(self.pid, url, self.token_file, token, None)) + "\n"
                )
                self.announce.flush()
            except OSError:
                pass  # nobody reads our output any more; serving goes on

    def stopService(self) -> Any:
        Service.stopService(self)
        if read_state(self.files).get("pid") == self.pid:
            remove_quietly(self.files.statefile)
        return None

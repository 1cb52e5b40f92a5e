"""The dashboard daemon of a project, as the command line sees it from outside.

Where ``loopdash start`` keeps its files (pidfile, log, state file): under
``<root>/.claude-loop/dashboard/`` for one project, under ``<DIR>/.loopdash/``
for a daemon scanning ``DIR`` (``--scan``, docs/projects.md); whether the pid in the pidfile is really a
running dashboard, and how to stop one. The start, stop, status and logs
commands are thin layers over this module; other clients call
:func:`find_running`. Plain blocking code: it never runs inside the reactor.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from loopdash.local import procinfo
from loopdash.local.smallfile import PIDFILE_LIMIT, STATE_LIMIT, SmallFileError, read_small_file
from loopdash.local.token import SCAN_DIR, default_token_path, scan_token_path

DASHBOARD_DIR = os.path.join(".claude-loop", "dashboard")

RUNNING = "running"
STOPPED = "stopped"
#: A pidfile whose process is gone or is now another program.
DEAD = "dead"


@dataclass(frozen=True)
class DaemonFiles:
    """The files of one dashboard daemon: a project's, or a scan folder's."""

    #: The project directory, or the folder scanned (``scan``), absolute.
    root: str
    #: Whether the daemon scans ``root`` for projects (``--scan``) rather than serving it.
    scan: bool = False

    @classmethod
    def for_root(cls, root: str) -> DaemonFiles:
        return cls(os.path.abspath(root))

    @classmethod
    def for_scan(cls, scan_root: str) -> DaemonFiles:
        """A scanning daemon's files, in ``<scan root>/.loopdash/``."""
        return cls(os.path.abspath(scan_root), scan=True)

    @classmethod
    def for_daemon(cls, roots: Sequence[str], scans: Sequence[str]) -> DaemonFiles:
        """Where a daemon given these ``--root`` and ``--scan`` folders keeps its files:
        the first scan folder's, else the first root's, else the current directory's
        (docs/projects.md, "Token, pidfile and commands in scan mode")."""
        if scans:
            return cls.for_scan(scans[0])
        return cls.for_root(roots[0] if roots else ".")

    @property
    def directory(self) -> str:
        return os.path.join(self.root, SCAN_DIR if self.scan else DASHBOARD_DIR)

    @property
    def pidfile(self) -> str:
        return os.path.join(self.directory, "dashboard.pid")

    @property
    def logfile(self) -> str:
        return os.path.join(self.directory, "dashboard.log")

    @property
    def statefile(self) -> str:
        """JSON written by ``loopdash start``: the pid it started and the URL it serves."""
        return os.path.join(self.directory, "dashboard.json")

    @property
    def token_file(self) -> str:
        """The token the daemon reads unless ``--token-file`` names another."""
        return scan_token_path(self.root) if self.scan else default_token_path(self.root)


@dataclass(frozen=True)
class Inspection:
    """What the pidfile and /proc say about a project's daemon."""

    state: str  # RUNNING, STOPPED or DEAD
    pid: int | None = None
    url: str | None = None
    started_at: float | None = None
    reason: str = ""


class RunningDashboard(NamedTuple):
    pid: int
    url: str


def read_pidfile(path: str) -> int | None:
    """The pid in a pidfile; None when missing.

    Raises ValueError when it holds no pid, :class:`SmallFileError` (an
    OSError) when it is not a small regular file we can read: never blocks on a FIFO.
    """
    try:
        raw = read_small_file(path, PIDFILE_LIMIT)
    except FileNotFoundError:
        return None
    text = raw.removeprefix(b"\xef\xbb\xbf").decode("ascii", errors="replace").strip()
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"not a pid: {text[:20]!r}")
    return int(text)


def read_state(files: DaemonFiles) -> dict[str, Any]:
    """The state file's content, or an empty dict when missing, unreadable or not a JSON object."""
    try:
        value = json.loads(read_small_file(files.statefile, STATE_LIMIT))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def same_directory(one: str, other: str) -> bool:
    """Whether two paths name the same directory (symlinks and bind mounts included)."""
    try:
        return os.path.samefile(one, other)
    except OSError:
        return os.path.realpath(one) == os.path.realpath(other)


def whose_dashboard(files: DaemonFiles, pid: int, argv: list[str]) -> str | None:
    """None when the dashboard ``pid`` is the one whose files ``files`` are (it serves
    ``files.root``, or scans it first for a scan folder's files); else why it is not."""
    scanned = procinfo.scan_argument(argv)
    if files.scan:
        if scanned is None:
            return f"pid {pid} is a dashboard that scans no folder"
        served = procinfo.served_folder(pid, scanned)
    elif scanned is not None:
        return f"pid {pid} is a dashboard scanning {scanned}, not this project's"
    else:
        served = procinfo.served_root(pid, argv)
    if served is None:
        return f"pid {pid} is a dashboard of another user, or one whose project cannot be checked"
    if not same_directory(served, files.root):
        what = "scanning another folder" if files.scan else "the dashboard of another project"
        return f"pid {pid} is {what} ({served})"
    return None


def write_state(files: DaemonFiles, state: dict[str, Any]) -> None:
    temporary = f"{files.statefile}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(temporary, files.statefile)


def remove_quietly(path: str) -> bool:
    """Remove ``path`` if we can; whether it was removed (missing or not ours to remove: False)."""
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def inspect(files: DaemonFiles) -> Inspection:
    """Running (a live twistd serving loopdash for *this* root holds the pid), stopped, or dead.

    The pid comes from the pidfile; without one, from the state file the
    daemon writes once it listens (a foreground ``twistd -n --pidfile= loopdash``).
    A pid counts only while it is a loopdash dashboard whose ``--root`` is this
    project (whose first ``--scan`` is this folder, for a scan folder's files):
    a pidfile copied from another project (``cp -a``) is stale here.
    """
    try:
        pid = read_pidfile(files.pidfile)
    except SmallFileError as e:
        return Inspection(DEAD, reason=f"the pidfile {e}")
    except (OSError, ValueError) as e:
        return Inspection(DEAD, reason=f"the pidfile {files.pidfile} holds no pid ({e})")
    state = read_state(files)
    from_state = False
    if pid is None:
        recorded = state.get("pid")
        if not isinstance(recorded, int) or isinstance(recorded, bool) or recorded <= 0:
            return Inspection(STOPPED)
        pid, from_state = recorded, True
    problem = _not_our_dashboard(files, pid)
    if problem is not None:
        # A state file left by a daemon that is gone is not worth a warning.
        return Inspection(STOPPED) if from_state else Inspection(DEAD, pid, reason=problem)
    url = state.get("url") if state.get("pid") == pid else None
    return Inspection(
        RUNNING,
        pid,
        url if isinstance(url, str) else None,
        procinfo.start_time(pid),
    )


def _not_our_dashboard(files: DaemonFiles, pid: int) -> str | None:
    if not procinfo.is_alive(pid):
        return f"process {pid} has exited"
    argv = procinfo.command_line(pid)
    if not procinfo.is_dashboard_command(argv):
        program = os.path.basename(argv[0]) if argv else "?"
        return f"pid {pid} now belongs to another program ({program})"
    return whose_dashboard(files, pid, argv)


def find_running(root: str) -> RunningDashboard | None:
    """The dashboard that ``loopdash start`` runs for ``root``, as ``(pid, url)``, or None.

    None when no dashboard runs for that project, or when its pidfile is stale
    (the process is gone or the pid now belongs to another program), or when it
    was started without ``loopdash start`` (no state file, so no known URL).
    ``url`` is the base URL to connect to, e.g. ``http://127.0.0.1:8080``.
    """
    return _running(DaemonFiles.for_root(root))


def find_scanning(scan_root: str) -> RunningDashboard | None:
    """The dashboard ``loopdash start --scan`` runs for ``scan_root`` (files in
    ``<scan root>/.loopdash/``), as :func:`find_running` says it, or None."""
    return _running(DaemonFiles.for_scan(scan_root))


def _running(files: DaemonFiles) -> RunningDashboard | None:
    found = inspect(files)
    if found.state != RUNNING or found.pid is None or found.url is None:
        return None
    return RunningDashboard(found.pid, found.url)


def connect_url(host: str, port: int, scheme: str = "http") -> str:
    """The base URL a local client uses for a daemon listening on ``host:port``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class EndpointAddress(NamedTuple):
    url: str
    host: str
    port: int


def endpoint_address(description: str) -> EndpointAddress | None:
    """Where a client reaches a Twisted server endpoint string, or None when it cannot say.

    Understands ``tcp:``, ``tcp6:`` and ``ssl:`` with a port number other than 0
    (positional or ``port=``) and an optional ``interface=``; ``\\:`` escapes a
    colon, as in Twisted's own syntax. ``ssl:`` gives an ``https://`` URL.
    """
    fields = [field.replace("\\:", ":") for field in re.split(r"(?<!\\):", description)]
    kind = fields[0].strip().lower()
    if kind not in ("tcp", "tcp6", "ssl"):
        return None
    positional = [field for field in fields[1:] if "=" not in field]
    keywords = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
    port_text = keywords.get("port", positional[0] if positional else "")
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        return None
    host = keywords.get("interface", "::" if kind == "tcp6" else "0.0.0.0")
    port = int(port_text)
    return EndpointAddress(connect_url(host, port, "https" if kind == "ssl" else "http"), host, port)


def fetch_health(url: str, timeout: float) -> dict[str, Any]:
    """GET ``/api/health``; raises OSError (or ValueError for a non-JSON answer)."""
    # Over TLS this checks that our own local daemon answers, not who it is: the
    # certificate is often self-signed, and the token never travels here.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    with urllib.request.urlopen(f"{url}/api/health", timeout=timeout, context=context) as response:
        value = json.loads(response.read(65536))
    if not isinstance(value, dict):
        raise ValueError("/api/health did not answer a JSON object")
    return value


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = clock() + timeout
    while True:
        if condition():
            return True
        remaining = deadline - clock()
        if remaining <= 0:
            return False
        sleep(min(interval, remaining))


@dataclass(frozen=True)
class StopOutcome:
    killed: bool  # SIGKILL was needed
    exited: bool  # the process is gone (or a zombie) at the end
    denied: bool = False  # the process is another user's: no signal could be sent


#: How long to wait for the process to vanish after SIGKILL.
KILL_GRACE = 5.0


def stop_daemon(files: DaemonFiles, pid: int, timeout: float) -> StopOutcome:
    """SIGTERM, wait for twistd to remove its pidfile and exit, SIGKILL after ``timeout``.

    Waits on the pidfile and /proc, not ``kill -0``: an exited daemon can linger
    as a zombie. Leaves neither pidfile nor state file behind once the process is gone.
    """

    def shut_down() -> bool:
        # A zombie's cmdline is empty, so this also holds once it has exited.
        return not procinfo.is_dashboard_command(procinfo.command_line(pid))

    killed = False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        return StopOutcome(False, False, denied=True)
    exited = wait_until(shut_down, timeout)
    if not exited:
        killed = True
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            return StopOutcome(True, False, denied=True)
        exited = wait_until(lambda: not procinfo.is_alive(pid), KILL_GRACE)
    if exited:
        remove_quietly(files.pidfile)
        remove_quietly(files.statefile)
    return StopOutcome(killed, exited)

"""``loopdash start``: the dashboard as a daemon, through twistd's own daemonisation.

twistd writes the pidfile and the daemon its log and state file (its URL, for
``status``, ``stop`` and other clients); this command adds what neither can
know: refusals found before launching, whether the dashboard really answers,
and messages a person can act on. Every option of ``twistd loopdash`` is
accepted and passed through (:mod:`loopdash.server.options`). ``--scan DIR``
starts the dashboard of every loop project below ``DIR``, whose files are in
``DIR/.loopdash/`` (docs/projects.md).
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loopdash.cli.common import (
    add_root_argument,
    add_scan_argument,
    command_for,
    daemon_files,
    error,
    positive_seconds,
)
from loopdash.cli.logtail import last_lines
from loopdash.local import procinfo
from loopdash.local.daemon import (
    DEAD,
    RUNNING,
    DaemonFiles,
    connect_url,
    endpoint_address,
    fetch_health,
    inspect,
    read_pidfile,
    read_state,
    remove_quietly,
    stop_daemon,
)
from loopdash.local.token import read_token, token_file_problem
from loopdash.server.options import DAEMON_OPTIONS, FLAG, REPEAT, VALUE, DaemonOption, daemon_option
from loopdash.server.options import command_line as daemon_command_line
from loopdash.server.runtime import start_lines

#: twistd returns once the port is bound (about 0.3 s); allow for a loaded machine.
LAUNCH_TIMEOUT = 30.0
#: Log lines shown when the start fails.
FAILURE_LOG_LINES = 20
#: Seconds a dashboard that never answered gets to stop before SIGKILL.
FAILED_START_STOP_TIMEOUT = 5.0


def _argparse_type(option: DaemonOption) -> Callable[[str], Any]:
    """The option's converter, as argparse wants it (ArgumentTypeError carries the reason)."""

    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


#: Daemon options ``start`` declares itself: --root and --scan are every subcommand's
#: (they say where the daemon's files are).
OWN_OPTIONS = frozenset({"root", "scan"})


def add_daemon_arguments(parser: argparse.ArgumentParser) -> None:
    """One argument per row of the daemon's option table, each passed through to twistd.

    Defaults stay None (a flag False, a repeatable option unset), so only what
    the user typed reaches the daemon; the help states the daemon's default.
    """
    group = parser.add_argument_group("dashboard options (passed to `twistd loopdash`)")
    for option in DAEMON_OPTIONS:
        if option.name in OWN_OPTIONS:
            continue
        names = [option.flag] + ([f"-{option.short}"] if option.short else [])
        text = option.help
        if option.default is not None and option.kind == VALUE:
            text = f"{text} (default: {option.default})"
        text = text.replace("%", "%%")
        if option.kind == FLAG:
            group.add_argument(*names, dest=option.dest, action="store_true", help=text)
        elif option.kind == REPEAT:
            group.add_argument(
                *names,
                dest=option.dest,
                action="append",
                type=_argparse_type(option),
                metavar=option.metavar,
                help=text,
            )
        else:
            group.add_argument(
                *names, dest=option.dest, type=_argparse_type(option), metavar=option.metavar, help=text
            )


def daemon_choices(args: argparse.Namespace) -> dict[str, Any]:
    """The daemon options the user gave ``start``, by option name (None: not given)."""
    given: dict[str, Any] = {}
    for option in DAEMON_OPTIONS:
        if option.name in OWN_OPTIONS:
            continue
        value = getattr(args, option.dest, None)
        if option.is_path and value is not None:
            # twistd runs in the project directory, not here.
            value = [os.path.abspath(v) for v in value] if isinstance(value, list) else os.path.abspath(value)
        given[option.name] = value
    return given


def chosen(args: argparse.Namespace, name: str) -> Any:
    """The value of daemon option ``name``: as given, else the daemon's default."""
    value = getattr(args, daemon_option(name).dest, None)
    return daemon_option(name).default if value is None else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_argument(parser, repeatable=True)
    add_scan_argument(parser)
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        help="seconds to wait for /api/health to answer (default: 10)",
    )
    add_daemon_arguments(parser)


def twistd_program() -> list[str]:
    """twistd run by this interpreter, so the daemon sees the same installed loopdash."""
    beside = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.access(beside, os.X_OK):
        return [sys.executable, beside]
    return [
        sys.executable,
        "-c",
        "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
    ]


def twistd_command(files: DaemonFiles, given: dict[str, Any], more_roots: Sequence[str] = ()) -> list[str]:
    """twistd daemonising ``loopdash`` for ``files.root`` with the daemon options in ``given``:
    serving it as a project, or scanning it (``files.scan``), and serving ``more_roots`` too."""
    served = ["--scan" if files.scan else "--root", files.root]
    served += [part for root in more_roots for part in ("--root", root)]
    return [
        *twistd_program(),
        "--pidfile",
        files.pidfile,
        "--logfile",
        files.logfile,
        "loopdash",
        *served,
        *daemon_command_line(given),
    ]


def is_port_in_use(text: str) -> bool:
    """Whether twistd's output or log says the address is taken (its exception, or the plugin's line)."""
    listening = "CannotListenError" in text or "Couldn't listen on" in text
    return listening and ("Address already in use" in text or "Errno 98" in text)


def log_since(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:
        return ""


def wait_for_health(url: str, pid: int, timeout: float) -> str | None:
    """None once /api/health answers "ok"; else why it did not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    while True:
        if not procinfo.is_alive(pid):
            return f"the daemon (pid {pid}) exited"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"{url}/api/health did not answer within {timeout:g} s ({last_problem})"
        try:
            health = fetch_health(url, timeout=min(2.0, remaining))
        except (OSError, ValueError) as e:
            last_problem = str(e)
        else:
            if health.get("status") == "ok":
                return None
            last_problem = f"status {health.get('status')!r}"
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _show_log(lines: list[str]) -> None:
    if lines:
        print("Last lines of the log:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)


@dataclass(frozen=True)
class Address:
    """Where the daemon will listen, as ``start`` must know it to check /api/health."""

    url: str
    host: str
    port: int
    listen: str | None  # the --listen endpoint, when given


def address(args: argparse.Namespace) -> Address | str:
    """The address ``start`` will check, or why it cannot know it (a usage refusal)."""
    listen = chosen(args, "listen")
    if listen is not None:
        where = endpoint_address(listen)
        if where is None:
            return (
                f"--listen {listen!r}: `loopdash start` checks the dashboard over tcp:, tcp6: or ssl: "
                "with a port number; serve other endpoints with `twistd -n loopdash --listen ...`"
            )
        return Address(where.url, where.host, where.port, listen)
    host, port = chosen(args, "host"), chosen(args, "port")
    if port == 0:
        return "--port 0 (any free port) is for `twistd loopdash`; `loopdash start` needs a known port"
    return Address(connect_url(host, port), host, port, None)


#: How the plugin starts its one-line refusals (see loopdash.server.tap.exit_refusing).
PLUGIN_PREFIX = "twistd loopdash: "
EXIT_USAGE = 2


def _launch_failed(
    files: DaemonFiles, where: Address, output: str, log_offset: int, returncode: int = 1
) -> int:
    new_log = log_since(files.logfile, log_offset)
    # twistd removes its pidfile when the start fails; a leftover one is never ours to keep,
    # unless a concurrent start won the race and its dashboard now runs.
    if inspect(files).state != RUNNING:
        remove_quietly(files.pidfile)
        remove_quietly(files.statefile)
    if is_port_in_use(output + new_log):
        if where.listen is not None:
            error(f"the address of --listen {where.listen!r} is already in use; choose another port")
            return 1
        other = where.port + 1 if where.port < 65535 else 8080
        error(
            f"port {where.port} on {where.host} is already in use; "
            f"choose another with --port (e.g. --port {other})"
        )
        return 1
    for line in output.splitlines():
        if line.startswith(PLUGIN_PREFIX):
            # The plugin's own one-line refusal: it knows why, so say only that.
            reason = line[len(PLUGIN_PREFIX) :].replace("twistd loopdash --help", "loopdash start --help")
            error(reason)
            note_in_log(files, reason)
            return EXIT_USAGE if returncode == EXIT_USAGE else 1
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reason = lines[-1] if lines else "no message"
    error(f"twistd could not start the dashboard: {reason} (log: {files.logfile})")
    _show_log(new_log.splitlines()[-FAILURE_LOG_LINES:])
    return 1


def run(args: argparse.Namespace) -> int:
    for folder, option in [*((root, "--root") for root in args.root or []), (args.scan, "--scan")]:
        if folder is not None and not os.path.isdir(folder):
            error(f"{option} {folder}: not a directory")
            return 2
    files = daemon_files(args)
    roots = [os.path.abspath(root) for root in args.root or []]
    # The first --root is the files' own unless a --scan folder holds them.
    more_roots = roots if files.scan else roots[1:]
    where = address(args)
    if isinstance(where, str):
        error(where)
        return 2
    found = inspect(files)
    if found.state == RUNNING:
        at = found.url or "an unknown URL"
        error(
            f"the dashboard is already running (pid {found.pid}) at {at}; `{command_for(files, 'stop')}` stops it"
        )
        return 1
    if found.state == DEAD:
        print(f"Replacing a stale pidfile: {found.reason}.")
        remove_quietly(files.pidfile)
    remove_quietly(files.statefile)
    token_file = daemon_choices(args)["token-file"] or files.token_file
    refusal = _refusal(files, token_file)
    if refusal is not None:
        error(refusal)
        note_in_log(files, refusal)
        return 1
    log_offset = os.path.getsize(files.logfile) if os.path.isfile(files.logfile) else 0

    command = twistd_command(files, daemon_choices(args), more_roots)
    try:
        launched = subprocess.run(
            command,
            cwd=files.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=LAUNCH_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        message = f"twistd did not return within {LAUNCH_TIMEOUT:g} s"
        return _launch_failed(files, where, message, log_offset)
    output = launched.stdout.decode("utf-8", errors="replace")
    if launched.returncode != 0:
        return _launch_failed(files, where, output, log_offset, launched.returncode)
    try:
        pid = read_pidfile(files.pidfile)
    except (OSError, ValueError):
        pid = None
    if pid is None:
        error(f"twistd reported success but left no pid in {files.pidfile}")
        _show_log(last_lines(files.logfile, FAILURE_LOG_LINES))
        return 1

    # The daemon records the URL it really listens on in the state file.
    recorded = read_state(files)
    url = (
        recorded["url"] if recorded.get("pid") == pid and isinstance(recorded.get("url"), str) else where.url
    )
    problem = wait_for_health(url, pid, args.timeout)
    if problem is not None:
        error(f"the dashboard did not come up: {problem}")
        _show_log(log_since(files.logfile, log_offset).splitlines()[-FAILURE_LOG_LINES:])
        stop_daemon(files, pid, FAILED_START_STOP_TIMEOUT)
        remove_quietly(files.pidfile)
        remove_quietly(files.statefile)
        return 1

    try:
        token: str | None = read_token(token_file)
    except (OSError, ValueError):
        token = None
    # The token travels in the URL fragment, which browsers never send to a server.
    print("\n".join(start_lines(pid, url, token_file, token, files.logfile)))
    return 0


def note_in_log(files: DaemonFiles, reason: str) -> None:
    """Append why a start was refused to the daemon's log, in twistd's line format, if it can be.

    ``loopdash logs`` then says why the last start failed. Opened non-blocking:
    a FIFO in the log's place is skipped, never waited on.
    """
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} [loopdash.start#error] Not started: {reason}\n"
    try:
        fd = os.open(
            files.logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600
        )
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, line.encode("utf-8", errors="replace"))
    except OSError:
        pass
    finally:
        os.close(fd)


def _refusal(files: DaemonFiles, token_file: str) -> str | None:
    """Why the daemon would refuse to start, found before launching it (one line), or None."""
    what = "scanned folder" if files.scan else "project directory"
    if not os.access(files.root, os.R_OK | os.X_OK):
        return f"cannot read the {what} {files.root}: permission denied"
    try:
        os.makedirs(files.directory, mode=0o700, exist_ok=True)
    except OSError as e:
        return (
            f"cannot create {files.directory} ({e.strerror or e}): the dashboard keeps its "
            f"pidfile, log and token there; make the {what} writable"
        )
    if not os.access(files.directory, os.W_OK | os.X_OK):
        return f"cannot write in {files.directory}: the dashboard keeps its pidfile, log and token there"
    return token_file_problem(token_file)

"""``loopdash start``: the dashboard as a daemon, through twistd's own daemonisation.

twistd writes the pidfile and the log; this command adds what twistd cannot
know: whether the dashboard really answers, a state file with its URL (for
``status``, ``stop`` and other clients), and messages a person can act on.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

from loopdash.cli.common import add_root_argument, error, positive_seconds
from loopdash.cli.logtail import last_lines
from loopdash.local import procinfo
from loopdash.local.daemon import (
    DEAD,
    RUNNING,
    DaemonFiles,
    connect_url,
    fetch_health,
    inspect,
    read_pidfile,
    remove_quietly,
    stop_daemon,
    write_state,
)

#: twistd returns once the port is bound (about 0.3 s); allow for a loaded machine.
LAUNCH_TIMEOUT = 30.0
#: Log lines shown when the start fails.
FAILURE_LOG_LINES = 20
#: Seconds a dashboard that never answered gets to stop before SIGKILL.
FAILED_START_STOP_TIMEOUT = 5.0


def _port(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_argument(parser)
    parser.add_argument("--port", type=_port, default=8080, help="TCP port to listen on (default: 8080)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default: 127.0.0.1; 0.0.0.0 for every one)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        help="seconds to wait for /api/health to answer (default: 10)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="daemon log format: text, or JSON lines for log shippers (default: text)",
    )


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


def twistd_command(files: DaemonFiles, host: str, port: int, log_format: str) -> list[str]:
    return [
        *twistd_program(),
        "--pidfile",
        files.pidfile,
        "--logfile",
        files.logfile,
        "loopdash",
        "--root",
        files.root,
        "--host",
        host,
        "--port",
        str(port),
        "--log-format",
        log_format,
    ]


def is_port_in_use(text: str) -> bool:
    return "CannotListenError" in text and ("Address already in use" in text or "Errno 98" in text)


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


def _launch_failed(files: DaemonFiles, host: str, port: int, output: str, log_offset: int) -> int:
    new_log = log_since(files.logfile, log_offset)
    # twistd removes its pidfile when the start fails; a leftover one is never ours to keep,
    # unless a concurrent start won the race and its dashboard now runs.
    if inspect(files).state != RUNNING:
        remove_quietly(files.pidfile)
        remove_quietly(files.statefile)
    if is_port_in_use(output + new_log):
        other = port + 1 if port < 65535 else 8080
        error(f"port {port} on {host} is already in use; choose another with --port (e.g. --port {other})")
        return 1
    first_line = output.strip().splitlines()[0] if output.strip() else "no message"
    error(f"twistd could not start the dashboard: {first_line} (log: {files.logfile})")
    _show_log(new_log.splitlines()[-FAILURE_LOG_LINES:])
    return 1


def run(args: argparse.Namespace) -> int:
    files = DaemonFiles.for_root(args.root)
    if not os.path.isdir(files.root):
        error(f"--root {args.root}: not a directory")
        return 2
    found = inspect(files)
    if found.state == RUNNING:
        where = found.url or "an unknown URL (not started by `loopdash start`)"
        error(f"the dashboard is already running (pid {found.pid}) at {where}; `loopdash stop` stops it")
        return 1
    if found.state == DEAD:
        print(f"Replacing a stale pidfile: {found.reason}.")
        remove_quietly(files.pidfile)
    remove_quietly(files.statefile)
    os.makedirs(files.directory, mode=0o700, exist_ok=True)
    log_offset = os.path.getsize(files.logfile) if os.path.exists(files.logfile) else 0

    command = twistd_command(files, args.host, args.port, args.log_format)
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
        return _launch_failed(files, args.host, args.port, message, log_offset)
    output = launched.stdout.decode("utf-8", errors="replace")
    if launched.returncode != 0:
        return _launch_failed(files, args.host, args.port, output, log_offset)
    try:
        pid = read_pidfile(files.pidfile)
    except (OSError, ValueError):
        pid = None
    if pid is None:
        error(f"twistd reported success but left no pid in {files.pidfile}")
        _show_log(last_lines(files.logfile, FAILURE_LOG_LINES))
        return 1

    url = connect_url(args.host, args.port)
    write_state(
        files,
        {"pid": pid, "url": url, "host": args.host, "port": args.port, "log_format": args.log_format},
    )
    problem = wait_for_health(url, pid, args.timeout)
    if problem is not None:
        error(f"the dashboard did not come up: {problem}")
        _show_log(log_since(files.logfile, log_offset).splitlines()[-FAILURE_LOG_LINES:])
        stop_daemon(files, pid, FAILED_START_STOP_TIMEOUT)
        remove_quietly(files.pidfile)
        remove_quietly(files.statefile)
        return 1

    token_file = files.token_file
    print(f"loopdash dashboard running (pid {pid}) at {url}")
    token = _read_token(token_file)
    if token:
        # The token travels in the fragment, which browsers never send to a server.
        print(f"  open:       {url}/#token={token}")
    print(f"  token file: {token_file}")
    print(f"  log file:   {files.logfile}")
    print(f'  try:        curl -H "Authorization: Bearer $(cat {shlex.quote(token_file)})" {url}/api/status')
    return 0


def _read_token(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None

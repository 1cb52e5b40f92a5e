"""``loopdash stop``: SIGTERM, wait for twistd to shut down cleanly, SIGKILL after a timeout.

``--scan DIR`` stops the dashboard ``loopdash start --scan DIR`` started.
"""

from __future__ import annotations

import argparse

from loopdash.cli.common import add_root_argument, add_scan_argument, daemon_files, error, positive_seconds
from loopdash.local.daemon import DEAD, RUNNING, inspect, remove_quietly, stop_daemon


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_argument(parser)
    add_scan_argument(parser)
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        help="seconds to wait after SIGTERM before SIGKILL (default: 10)",
    )


def run(args: argparse.Namespace) -> int:
    files = daemon_files(args)
    found = inspect(files)
    if found.state != RUNNING or found.pid is None:
        if found.state == DEAD:
            # Only this project's own copy goes: the process it names is never signalled.
            removed = remove_quietly(files.pidfile)
            what = "removed a stale pidfile" if removed else f"a stale pidfile {files.pidfile} is left"
            print(
                f"loopdash dashboard: not running here ({what}: {found.reason}; that process was left alone)"
            )
        else:
            print("loopdash dashboard: not running")
        remove_quietly(files.statefile)
        return 0
    outcome = stop_daemon(files, found.pid, args.timeout)
    if outcome.denied:
        error(f"pid {found.pid} serves this project but belongs to another user: not allowed to stop it")
        return 1
    if outcome.killed:
        error(f"warning: pid {found.pid} did not exit within {args.timeout:g} s of SIGTERM; sent SIGKILL")
    if not outcome.exited:
        error(f"pid {found.pid} is still alive after SIGKILL")
        return 1
    print(f"loopdash dashboard stopped (pid {found.pid})")
    return 0

"""``loopdash logs``: the end of the daemon's log, and ``-f`` to follow it."""

from __future__ import annotations

import argparse
import sys
import time

from loopdash.cli.common import add_root_argument, add_scan_argument, command_for, daemon_files, error
from loopdash.cli.logtail import LogFollower, last_lines_across

FOLLOW_INTERVAL = 0.25


def _count(value: str) -> int:
    count = int(value)
    if count < 0:
        raise argparse.ArgumentTypeError("must be a non-negative number of lines")
    return count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_argument(parser)
    add_scan_argument(parser)
    parser.add_argument("-n", "--lines", type=_count, default=20, help="how many lines to show (default: 20)")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until interrupted"
    )


def run(args: argparse.Namespace) -> int:
    files = daemon_files(args)
    follower = LogFollower.at_end(files.logfile)
    lines = last_lines_across(files.logfile, args.lines, end=follower.offset)
    if not lines and follower.offset == 0 and not args.follow:
        error(f"no log yet at {files.logfile} (`{command_for(files, 'start')}` writes it)")
        return 1
    for line in lines:
        print(line)
    if not args.follow:
        return 0
    sys.stdout.flush()
    try:
        while True:
            lines = follower.poll()
            for line in lines:
                print(line)
            if lines:
                sys.stdout.flush()
            time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return 0

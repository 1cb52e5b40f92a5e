"""Argument helpers and error output shared by the subcommands."""

from __future__ import annotations

import argparse
import sys


def positive_seconds(value: str) -> float:
    """An argparse type: a positive number of seconds (for --timeout)."""
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return seconds


def add_root_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default=".",
        help="project directory holding prd.json and .claude-loop/ (default: the current directory)",
    )


def error(message: str) -> None:
    """One line on stderr, prefixed like every loopdash error."""
    print(f"loopdash: {message}", file=sys.stderr)

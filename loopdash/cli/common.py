"""Argument helpers and error output shared by the subcommands."""

from __future__ import annotations

import argparse
import shlex
import sys

from loopdash.local.daemon import DaemonFiles


def positive_seconds(value: str) -> float:
    """An argparse type: a positive number of seconds (for --timeout)."""
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return seconds


def add_root_argument(parser: argparse.ArgumentParser, repeatable: bool = False) -> None:
    """``--root DIR``: one directory (default "."), or with ``repeatable`` a list (default None)."""
    text = "project directory holding prd.json and .claude-loop/ (default: the current directory)"
    if repeatable:
        parser.add_argument(
            "--root",
            action="append",
            help=f"{text}; repeatable: one dashboard serves every one given, its files in the first's",
        )
    else:
        parser.add_argument("--root", default=".", help=text)


def add_scan_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scan",
        metavar="DIR",
        help="the dashboard serving every loop project below DIR (`loopdash start --scan DIR`), "
        "whose pidfile, log and token are in DIR/.loopdash/",
    )


def daemon_files(args: argparse.Namespace) -> DaemonFiles:
    """The files of the dashboard a command is about: the ``--scan`` folder's, else the ``--root`` project's."""
    scan: str | None = getattr(args, "scan", None)
    roots: str | list[str] | None = args.root
    return DaemonFiles.for_daemon([roots] if isinstance(roots, str) else roots or [], [scan] if scan else [])


def command_for(files: DaemonFiles, command: str) -> str:
    """How a person runs ``loopdash <command>`` for these files (``--scan DIR`` when it is needed)."""
    if files.scan:
        return f"loopdash {command} --scan {shlex.quote(files.root)}"
    return f"loopdash {command}"


def error(message: str) -> None:
    """One line on stderr, prefixed like every loopdash error."""
    print(f"loopdash: {message}", file=sys.stderr)

"""``loopdash generate-token``: a new API token, honoured at once by a running dashboard.

The daemon re-reads the token file whenever it changes (``auth.TokenFile``),
so writing it atomically is the whole rotation.
"""

from __future__ import annotations

import argparse
import os
import sys

from loopdash.cli.common import add_root_argument, add_scan_argument, daemon_files, error
from loopdash.local.token import write_token


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_argument(parser)
    add_scan_argument(parser)


def run(args: argparse.Namespace) -> int:
    files = daemon_files(args)
    if not os.path.isdir(files.root):
        given = f"--scan {args.scan}" if files.scan else f"--root {args.root}"
        error(f"{given}: not a directory")
        return 2
    try:
        token = write_token(files.token_file)
    except OSError as e:
        # A directory (or anything rename cannot replace) in its place, an unwritable .claude-loop/...
        hint = " (remove it first)" if os.path.isdir(files.token_file) else ""
        error(f"cannot write the token file {files.token_file}: {e.strerror or e}{hint}")
        return 1
    # The token alone on stdout, so `TOKEN=$(loopdash generate-token)` works.
    print(token)
    print(f"Wrote {files.token_file} (mode 0600); the old token no longer works.", file=sys.stderr)
    return 0

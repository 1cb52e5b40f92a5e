"""The ``loopdash`` command: one module per subcommand, dispatched here.

Each subcommand (:mod:`.start`, :mod:`.stop`, :mod:`.status`, :mod:`.logs`,
:mod:`.token`, :mod:`.demo`, and the client's :mod:`loopdash.client.watch`)
exposes ``add_arguments(parser)`` and ``run(args) -> int``, so this file stays
a table. The demo's simulated loop (:mod:`.simulator`, :mod:`.sample`) lives
here too. The top layer: it may import every other package; none imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Collection, Sequence
from typing import NoReturn

from loopdash import __version__

#: Exit status for bad usage (a bare ``loopdash`` too), as argparse uses.
EXIT_USAGE = 2

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("loopdash.cli.demo", "run a simulated loop in a temporary project and serve its dashboard"),
    "start": ("loopdash.cli.start", "start the dashboard daemon for a project (twistd, pidfile, log)"),
    "stop": ("loopdash.cli.stop", "stop the project's dashboard daemon (SIGTERM, SIGKILL after --timeout)"),
    "status": ("loopdash.cli.status", "is the dashboard running: pid, URL, uptime, version (LSB exit codes)"),
    "logs": ("loopdash.cli.logs", "show the dashboard daemon's log (-n N lines, -f to follow)"),
    "generate-token": ("loopdash.cli.token", "write a new API token; a running dashboard honours it at once"),
    "watch": ("loopdash.client.watch", "follow a loop live in the terminal (or print its status once)"),
}


class OneLineErrors(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (the reason, then where help is), exit 2.

    argparse's own answer puts a usage block of up to ten lines before the reason.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (`{self.prog} --help` lists the options)\n")


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``load`` names the subcommands whose modules are
    imported for their arguments (None: all of them).

    The others are listed from :data:`SUBCOMMANDS` alone: ``loopdash stop`` or
    ``--version`` need not import the server (Twisted, Klein, pygit2), which
    ``demo`` does, and answer in a tenth of the time.
    """
    parser = OneLineErrors(
        prog="loopdash", description="Watch an autonomous coding loop live: REST API, event stream, web page."
    )
    parser.add_argument("--version", action="version", version=f"loopdash {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if load is None or name in load:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


#: Exit status when the reader of our output went away (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    # The top-level options take no value, so the first word that is not an
    # option names the subcommand: only its module is imported.
    named = next((word for word in arguments if not word.startswith("-")), None)
    parser = build_parser(() if named is None else (named,))
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `loopdash start | head -1`: the reader has what it wanted. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return result


if __name__ == "__main__":
    sys.exit(main())

"""The ``loopdash`` command imports only the subcommand it runs.

``demo`` imports the whole server (Twisted, Klein, pygit2); ``stop``,
``status`` and ``--version`` must not pay for that on every call. Each case runs
in a fresh interpreter and reports which modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

from loopdash import __version__
from loopdash.cli import SUBCOMMANDS

HEAVY = ("twisted", "klein", "pygit2", "loopdash.server")

PROGRAM = """
import contextlib, io, json, sys
from loopdash.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = main({arguments!r})
    except SystemExit as exit:
        code = exit.code
print(json.dumps({{"code": code, "output": out.getvalue(), "modules": sorted(sys.modules)}}))
"""


def run_cli(*arguments: str) -> tuple[object, str, list[str]]:
    """Exit status, output and loaded module names of ``loopdash ARGUMENTS`` in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(arguments=list(arguments))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    return answer["code"], answer["output"], answer["modules"]


def heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in HEAVY or name.startswith(HEAVY)]


def test_version_imports_no_subcommand_and_no_server() -> None:
    code, output, modules = run_cli("--version")
    assert (code, output) == (0, f"loopdash {__version__}\n")
    assert heavy(modules) == []
    assert [name for name in modules if name in {m for m, _ in SUBCOMMANDS.values()}] == []


def test_a_subcommand_imports_its_own_module_only() -> None:
    code, output, modules = run_cli("stop", "--help")
    assert code == 0
    assert "--timeout" in output  # stop's own arguments are there
    loaded = sorted(name for name in modules if name in {m for m, _ in SUBCOMMANDS.values()})
    assert loaded == ["loopdash.cli.stop"]
    assert heavy(modules) == []


def test_the_demo_still_has_its_arguments_and_help_lists_every_command() -> None:
    code, output, _ = run_cli("demo", "--help")
    assert code == 0
    assert "--port" in output
    code, output, modules = run_cli("--help")
    assert code == 0
    for name, (_, help_text) in SUBCOMMANDS.items():
        assert name in output
        assert help_text.split()[0] in output
    assert heavy(modules) == []


def test_an_unknown_command_is_a_one_line_usage_error() -> None:
    code, output, _ = run_cli("bogus")
    assert code == 2
    assert output.count("\n") == 1
    assert "invalid choice: 'bogus'" in output

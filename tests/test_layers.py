"""The package layout is the architecture: imports run one way, down the layers.

``contract`` (the API's shapes) and ``loop`` (reading files) are at the bottom; ``derive`` and ``local`` sit on it;
``metrics`` above them; ``server`` and ``client`` side by side above that; ``cli``
on top. A module may import its own package and any package of a lower rank,
never one of its own rank or above. ``contract``, ``loop``, ``derive`` and ``local`` are plain
Python: they never import Twisted, Klein or treq. Checked over the source with
``ast``, imports inside functions included.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "loopdash"

RANK = {"contract": 0, "loop": 0, "derive": 1, "local": 1, "metrics": 2, "server": 3, "client": 3, "cli": 4}
NO_REACTOR = {"contract", "loop", "derive", "local"}
REACTOR_LIBRARIES = {"twisted", "klein", "treq"}
#: Deprecated aliases of the flat 0.1 layout: each re-exports one module.
ALIASES = {"client_models", "client_events", "daemonctl"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            # "from loopdash import procinfo" names a module in the import list.
            if node.module == "loopdash":
                found.update(f"loopdash.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the layer test reads absolute ones")
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "loopdash" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in RANK else None


def source_files() -> list[tuple[str, Path]]:
    files = []
    for directory, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = Path(directory) / name
                relative = path.relative_to(PACKAGE.parent).with_suffix("")
                files.append((".".join(relative.parts), path))
    return sorted(files)


def test_every_module_lives_in_a_layer() -> None:
    strays = [
        module
        for module, _ in source_files()
        if layer_of(module) is None
        and module not in {"loopdash", "loopdash.__init__"}
        and module.removeprefix("loopdash.") not in ALIASES
    ]
    assert strays == [], f"modules outside the layer packages: {strays}"


@pytest.mark.parametrize("module,path", source_files(), ids=lambda value: str(value))
def test_imports_run_down_the_layers(module: str, path: Path) -> None:
    own = layer_of(module)
    if own is None:
        return  # the package root and the deprecated aliases
    upward = []
    for name in imported_modules(path):
        target = layer_of(name)
        if target is None or target == own:
            continue
        if RANK[target] >= RANK[own]:
            upward.append(name)
    assert upward == [], f"{module} ({own}) imports {upward}, against the direction of the layers"
    if own in NO_REACTOR:
        reactor = sorted(n for n in imported_modules(path) if n.split(".")[0] in REACTOR_LIBRARIES)
        assert reactor == [], f"{module} is in {own}/, which never imports Twisted, Klein or treq: {reactor}"


def test_the_checker_sees_an_upward_and_a_twisted_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from loopdash.server.api import DashboardAPI\n    import twisted.internet\n"
        "from loopdash import api\n"
    )
    assert {"loopdash.server.api", "twisted.internet", "loopdash.api"} <= imported_modules(bad)
    assert layer_of("loopdash.server.api") == "server"

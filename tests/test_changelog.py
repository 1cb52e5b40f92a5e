"""The changelog: towncrier fragments in changelog.d/, built into CHANGELOG.md at a release.

Several people add fragments at once, so each is its own file; these tests hold
the promise that every fragment is named so towncrier can place it, and that the
draft and a release build with the project's own configuration and template.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAGMENTS = ROOT / "changelog.d"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["towncrier"]
TYPES = [kind["directory"] for kind in CONFIG["type"]]
#: ``<issue>.<type>.md``, or ``<issue>.<type>.<n>.md`` for a second one of the same issue and type.
FRAGMENT_NAME = re.compile(rf"(\d+)\.({'|'.join(TYPES)})(\.\d+)?\.md")


def towncrier(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "towncrier", "build", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def fragments() -> list[Path]:
    return sorted(p for p in FRAGMENTS.iterdir() if p.name not in CONFIG["ignore"])


def copy_of_the_project(tmp_path: Path) -> Path:
    """The changelog, its configuration and template, outside git, with no fragment yet."""
    project = tmp_path / "project"
    (project / "changelog.d").mkdir(parents=True)
    for name in ("pyproject.toml", "CHANGELOG.md", "changelog.d/template.md.jinja"):
        shutil.copy(ROOT / name, project / name)
    return project


def test_keep_a_changelog_types_in_their_order() -> None:
    assert TYPES == ["added", "changed", "deprecated", "removed", "fixed", "security"]


def test_every_fragment_is_named_issue_type_md_and_says_something() -> None:
    assert fragments(), "changelog.d/ holds the unreleased changes; it has none"
    for path in fragments():
        assert FRAGMENT_NAME.fullmatch(path.name), (
            f"changelog.d/{path.name}: name a fragment <issue>.<type>.md, type one of {TYPES}"
        )
        assert path.read_text(encoding="utf-8").strip(), f"changelog.d/{path.name} is empty"


def test_the_draft_builds_and_shows_every_fragment() -> None:
    built = towncrier("--draft", "--version", "Unreleased")
    assert built.returncode == 0, built.stderr
    for path in fragments():
        name = FRAGMENT_NAME.fullmatch(path.name)
        assert name, path.name
        issue, kind = name.group(1, 2)
        first_line = path.read_text(encoding="utf-8").strip().splitlines()[0]
        section = built.stdout.split(f"### {kind.capitalize()}\n", 1)
        assert len(section) == 2, f"no '### {kind.capitalize()}' for {path.name}:\n{built.stdout}"
        assert first_line in section[1].split("\n### ", 1)[0], f"{path.name} is missing:\n{built.stdout}"
        assert f"(#{issue})" in section[1]


def test_a_misnamed_fragment_fails_the_build(tmp_path: Path) -> None:
    project = copy_of_the_project(tmp_path)
    (project / "changelog.d" / "13.feature.md").write_text("- A new thing.\n", encoding="utf-8")
    built = towncrier("--draft", "--version", "Unreleased", cwd=project)
    assert built.returncode != 0
    assert "13.feature.md" in built.stdout + built.stderr


def test_a_release_goes_below_unreleased_in_keep_a_changelog_shape(tmp_path: Path) -> None:
    project = copy_of_the_project(tmp_path)
    (project / "changelog.d" / "99.fixed.md").write_text(
        "- One thing fixed.\n- Another, written\n  on two lines.\n", encoding="utf-8"
    )
    (project / "changelog.d" / "98.added.md").write_text("A sentence, not a list.\n", encoding="utf-8")
    built = towncrier("--version", "9.9.9", "--date", "2026-12-31", "--yes", cwd=project)
    assert built.returncode == 0, built.stderr
    changelog = (project / "CHANGELOG.md").read_text(encoding="utf-8")
    unreleased = changelog.index("## [Unreleased]")
    release = changelog.index("## [9.9.9] - 2026-12-31\n\n### ")
    assert unreleased < changelog.index(CONFIG["start_string"]) < release
    assert (
        "### Added\n\n- A sentence, not a list. (#98)\n\n"
        "### Fixed\n\n- One thing fixed. (#99)\n- Another, written\n  on two lines. (#99)\n"
    ) in changelog
    assert [p.name for p in (project / "changelog.d").iterdir()] == ["template.md.jinja"]

"""Discovery: the loop projects below a scan root, of every family, and their ids
(docs/projects.md, "Projects and their ids"). Invented files in each family's shape."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopdash.loop import formats
from loopdash.loop.discovery import FoundProject, discover, new_plan_cache, project_id, unique_ids
from loopdash.loop.formats import generic
from loopdash.loop.project import Project

LOG = "## 2026-01-10 - US-001\n- did it\n"


def plan(name: str | None = None) -> str:
    body: dict[str, Any] = {"userStories": [{"id": "US-1", "title": "One", "passes": False}]}
    if name is not None:
        body["project"] = name
    return json.dumps(body)


def put(root: Path, relative: str, content: str | None = None) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if content is not None else (plan() if relative.endswith(".json") else LOG))


def rows(found: tuple[FoundProject, ...]) -> list[tuple[str, str, str, str]]:
    return [(p.id, p.relative, p.family, p.name) for p in found]


#: One project per family, each in the family's own shape (relative to the project's folder).
FAMILY_FILES = {
    "claude-runs": (".claude-loop/runs/20260101_000000/metrics.json",),
    "claude": ("prd.json", "progress.txt"),
    "snark": ("scripts/ralph/prd.json", "scripts/ralph/progress.txt"),
    "tasks": ("tasks/prd.json",),
    "dotralph": (".ralph/PRD-2/prd.json", ".ralph/PRD-2/progress.md"),
    "tui": (".ralph-tui/progress.md",),
    "agents": (".agents/tasks/prd.json",),
    "generic": ("plan-prd.json", "progress-notes.md"),
}


def test_projects_of_every_family_are_found_with_ids_families_and_names(tmp_path: Path) -> None:
    for folder, files in FAMILY_FILES.items():
        for name in files:
            put(tmp_path / "work" / folder, name)
    put(tmp_path / "work" / "claude", "prd.json", plan("API server"))
    put(tmp_path / "work" / "tasks", "tasks/prd.json", json.dumps({"name": "Task board", "tasks": []}))

    found = discover(str(tmp_path))

    assert rows(found) == [
        ("work--agents", "work/agents", "agents", "agents"),
        ("work--claude", "work/claude", "claude-loop", "API server"),
        ("work--claude-runs", "work/claude-runs", "claude-loop", "claude-runs"),
        ("work--dotralph", "work/dotralph", "ralph-dir", "dotralph"),
        ("work--generic", "work/generic", "generic", "generic"),
        ("work--snark", "work/snark", "ralph", "snark"),
        ("work--tasks", "work/tasks", "ralph", "Task board"),
        ("work--tui", "work/tui", "ralph-tui", "tui"),
    ]
    assert all(p.path == str(tmp_path / p.relative) for p in found)


def test_a_plan_that_does_not_parse_leaves_the_folder_name(tmp_path: Path) -> None:
    put(tmp_path / "broken", "prd.json", '{"project": "half a fi')
    put(tmp_path / "unnamed", "prd.json", plan())

    assert [p.name for p in discover(str(tmp_path))] == ["broken", "unnamed"]


def test_the_plan_cache_rereads_a_renamed_project(tmp_path: Path) -> None:
    put(tmp_path / "a", "prd.json", plan("First"))
    cache = new_plan_cache()
    assert [p.name for p in discover(str(tmp_path), plans=cache)] == ["First"]

    put(tmp_path / "a", "prd.json", plan("Second name"))

    assert [p.name for p in discover(str(tmp_path), plans=cache)] == ["Second name"]


def test_a_served_project_starts_from_discoverys_plan_and_reads_a_new_version(tmp_path: Path) -> None:
    put(tmp_path / "a", "prd.json", plan("First"))
    (found,) = discover(str(tmp_path))
    assert found.plan is not None and found.plan[0] == str(tmp_path / "a" / "prd.json")

    project = Project(found.path, plan=found.plan)

    assert project.prd().value is found.plan[1].value  # the same parse, not a second one
    put(tmp_path / "a", "prd.json", plan("Second name"))
    os.utime(tmp_path / "a" / "prd.json", ns=(0, 10**18))  # a new version, even within a clock tick
    second = project.prd().value
    assert second is not None and second.project == "Second name"


def test_a_project_inside_a_project_is_listed_once_as_the_outer_one(tmp_path: Path) -> None:
    put(tmp_path / "outer", "prd.json")
    put(tmp_path / "outer" / "packages" / "inner", "prd.json")
    # The snarktank layout's own tasks/prd.json is not a project of its own either.
    put(tmp_path / "snark", "tasks/prd.json")

    assert [p.relative for p in discover(str(tmp_path))] == ["outer", "snark"]


def test_the_scan_root_itself_is_a_project_named_by_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "My Work"
    put(root, "progress.txt")
    put(root / "below", "prd.json")

    assert rows(discover(str(root))) == [("my_work", ".", "claude-loop", "My Work")]


def test_depth_counts_the_scan_root_as_level_zero(tmp_path: Path) -> None:
    for relative in ("one", "a/two", "a/b/three", "a/b/c/four"):
        put(tmp_path / relative, "prd.json")

    def found(depth: int) -> list[str]:
        return [p.relative for p in discover(str(tmp_path), depth)]

    assert found(0) == []
    assert found(1) == ["one"]
    assert found(3) == ["a/b/three", "a/two", "one"]
    assert found(4) == ["a/b/c/four", "a/b/three", "a/two", "one"]
    assert found(3) == [p.relative for p in discover(str(tmp_path))]


@pytest.mark.parametrize(
    "skipped", ["node_modules", ".git", ".hidden", "venv", ".venv", "__pycache__", "dist", "build", "target"]
)
def test_dependency_build_and_hidden_folders_are_never_entered(tmp_path: Path, skipped: str) -> None:
    put(tmp_path / skipped / "pkg", "prd.json")
    put(tmp_path / "a" / skipped, "prd.json")
    put(tmp_path / f"kept{skipped}", "prd.json")  # a near name is entered

    assert [p.relative for p in discover(str(tmp_path))] == [f"kept{skipped}"]


def test_symlinked_folders_are_not_followed_and_a_cycle_ends(tmp_path: Path) -> None:
    put(tmp_path / "a" / "project", "prd.json")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a cycle back to the scan root
    os.symlink(tmp_path / "a" / "project", tmp_path / "alias")  # the same project twice
    (tmp_path / "b").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "b" / "to-a", target_is_directory=True)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")

    assert [p.relative for p in discover(str(tmp_path), depth=10)] == ["a/project"]


def test_a_missing_scan_root_or_a_file_has_no_projects(tmp_path: Path) -> None:
    put(tmp_path, "file.txt")

    assert discover(str(tmp_path / "missing")) == ()
    assert discover(str(tmp_path / "file.txt")) == ()


def test_a_relative_scan_root_gives_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(tmp_path / "p", "prd.json")
    monkeypatch.chdir(tmp_path)

    assert [(p.path, p.relative) for p in discover(".")] == [(str(tmp_path / "p"), "p")]


UNREADABLE = """
import sys
from loopdash.loop.discovery import discover
print(",".join(p.relative for p in discover(sys.argv[1])))
"""


def test_an_unreadable_folder_is_skipped() -> None:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        root.chmod(0o755)
        put(root / "open", "prd.json")
        put(root / "locked" / "inside", "prd.json")
        put(root / "locked-project", "prd.json")
        (root / "locked").chmod(0)
        (root / "locked-project").chmod(0)
        for path in root.rglob("*"):
            if path.name not in ("locked", "locked-project"):
                path.chmod(0o755 if path.is_dir() else 0o644)
        # root reads every folder: drop to an unprivileged user to meet EACCES.
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        try:
            result = subprocess.run(
                [*prefix, sys.executable, "-c", UNREADABLE, name],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=Path(__file__).resolve().parent.parent,
            )
        finally:
            (root / "locked").chmod(0o755)
            (root / "locked-project").chmod(0o755)
        assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "open", "")


def test_folders_vanishing_while_the_walk_runs_never_raise(tmp_path: Path) -> None:
    for i in range(10):
        put(tmp_path / "stable" / f"p{i}", "prd.json")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            for i in range(20):
                put(tmp_path / "churn" / f"d{i}" / "x" / "y", "prd.json")
            shutil.rmtree(tmp_path / "churn", ignore_errors=True)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(100):
            found = discover(str(tmp_path), depth=4)
            assert [p.relative for p in found if p.relative.startswith("stable/")] == [
                f"stable/p{i}" for i in range(10)
            ]
    finally:
        stop.set()
        thread.join()


def test_ids_follow_the_documented_rule() -> None:
    assert project_id("work/API server") == "work--api_server"
    assert project_id("a/b/c") == "a--b--c"
    assert project_id("home~me/ü.x-y_z") == "home_me--_.x-y_z"
    assert project_id(".", "Scan Root") == "scan_root"
    assert project_id("My Project") == "my_project"
    assert project_id(".") == "_"
    assert project_id("..") == "__"
    assert project_id("a/..") == "a--.."


def test_clashing_ids_are_settled_in_sorted_path_order() -> None:
    assert unique_ids(["a", "a", "b", "a"]) == ["a", "a-2", "b", "a-3"]
    # A suffix never takes an id that another path holds by itself.
    assert unique_ids(["x", "x", "x-2"]) == ["x", "x-3", "x-2"]


def test_clashing_folders_get_suffixes_in_sorted_path_order(tmp_path: Path) -> None:
    for relative in ("API", "api", "a/b", "a--b", "x y", "x_y"):
        put(tmp_path / relative, "prd.json")

    assert [(p.relative, p.id) for p in sorted(discover(str(tmp_path)), key=lambda p: p.relative)] == [
        ("API", "api"),
        ("a--b", "a--b"),
        ("a/b", "a--b-2"),
        ("api", "api-2"),
        ("x y", "x_y"),
        ("x_y", "x_y-2"),
    ]


SAFE_ID = re.compile(r"\A[a-z0-9._-]+\Z")
segment = st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and "\x00" not in s)


@settings(max_examples=300)
@given(st.lists(st.lists(segment, min_size=1, max_size=4).map("/".join), max_size=20, unique=True))
def test_ids_are_url_safe_non_empty_and_unique_for_any_paths(paths: list[str]) -> None:
    ordered = sorted(paths)
    ids = unique_ids([project_id(p, "root") for p in ordered])

    assert len(set(ids)) == len(ids)
    for ident in ids:
        assert SAFE_ID.match(ident), ident
        assert ident not in (".", "..")
        assert "~" not in ident


@given(st.text(max_size=20))
def test_generic_names_match_the_family_patterns(name: str) -> None:
    lowered = name.lower()
    assert generic.is_plan(name) == fnmatch.fnmatchcase(lowered, "*prd*.json")
    assert generic.is_log(name) == (
        fnmatch.fnmatchcase(lowered, "progress*.txt") or fnmatch.fnmatchcase(lowered, "progress*.md")
    )


#: Every file any family looks for, relative to a project's root, and some near misses.
CANDIDATES = sorted(
    {name for files in FAMILY_FILES.values() for name in files}
    | {
        ".claude-loop/runs",
        ".ralph/prd.json",
        ".ralph/progress.txt",
        ".ralph-tui/prd.json",
        ".agents/progress.txt",
        "ralph/progress.txt",
        "ralph/prd.json",
        "tasks/progress.txt",
        "progress.md",
        "docs/prd-v2.json",
    }
)


@contextlib.contextmanager
def tree(files: list[str]) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as root:
        for name in files:
            if name.endswith("runs"):
                os.makedirs(os.path.join(root, name), exist_ok=True)
            else:
                put(Path(root), name)
        yield root


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(CANDIDATES), max_size=6, unique=True))
def test_a_family_finds_files_only_where_one_of_its_markers_is_listed(files: list[str]) -> None:
    with tree(files) as root:
        listed = set(os.listdir(root))
        for family in formats.in_order():
            if family.markers is not None and family.find(root) is not None:
                assert not listed.isdisjoint(family.markers), (family.name, files)


def test_every_family_but_the_generic_one_names_its_markers() -> None:
    assert [f.name for f in formats.in_order() if f.markers is None] == ["generic"]

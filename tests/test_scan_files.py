"""Where a scanning daemon keeps its files, and whose dashboard a pid is in scan mode
(docs/projects.md, "Token, pidfile and commands in scan mode")."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopdash.local import procinfo
from loopdash.local.daemon import DEAD, RUNNING, DaemonFiles, inspect, wait_until
from loopdash.local.token import scan_token_path


def test_a_scan_folders_files_are_in_its_dot_loopdash(tmp_path: Path) -> None:
    files = DaemonFiles.for_scan(str(tmp_path / "work" / ".." / "work"))
    here = str(tmp_path / "work" / ".loopdash")

    assert (files.root, files.scan) == (str(tmp_path / "work"), True)
    assert (files.directory, files.pidfile, files.logfile, files.statefile, files.token_file) == (
        here,
        f"{here}/dashboard.pid",
        f"{here}/dashboard.log",
        f"{here}/dashboard.json",
        f"{here}/auth_token.txt",
    )
    assert files.token_file == scan_token_path(str(tmp_path / "work"))


def test_a_projects_files_stay_where_they_were(tmp_path: Path) -> None:
    files = DaemonFiles.for_root(str(tmp_path))
    here = str(tmp_path / ".claude-loop" / "dashboard")

    assert (files.directory, files.pidfile, files.token_file) == (
        here,
        f"{here}/dashboard.pid",
        f"{here}/auth_token.txt",
    )


def test_a_daemons_files_follow_its_first_scan_else_its_first_root(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")

    assert DaemonFiles.for_daemon([a, b], [b, a]) == DaemonFiles.for_scan(b)
    assert DaemonFiles.for_daemon([a, b], []) == DaemonFiles.for_root(a)
    assert DaemonFiles.for_daemon([], []) == DaemonFiles.for_root(".")


@pytest.mark.parametrize(
    ("argv", "scan"),
    [
        (["twistd", "-n", "loopdash", "--root", "/p"], None),
        (["twistd", "loopdash", "--scan", "/w"], "/w"),
        (["twistd", "loopdash", "--scan=/w", "--scan", "/v"], "/w"),
        (["twistd", "loopdash", "--scan-depth", "4", "--scan", "rel"], "rel"),
        (["python", "--scan", "/not-the-plugins", "twistd", "loopdash"], None),
    ],
)
def test_the_folder_a_dashboard_command_line_scans(argv: list[str], scan: str | None) -> None:
    assert procinfo.scan_argument(argv) == scan


def fake_dashboard(cwd: str, *plugin_args: str) -> subprocess.Popen[bytes]:
    """A process whose command line is a scanning dashboard's (it only sleeps)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "twistd", "loopdash", *plugin_args], cwd=cwd
    )


@pytest.fixture
def scanning(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    work = tmp_path / "work"
    work.mkdir()
    process = fake_dashboard(str(tmp_path), "--scan", "work", "--scan-depth", "2")
    assert wait_until(lambda: "loopdash" in procinfo.command_line(process.pid), 10)
    try:
        yield process, work
    finally:
        process.kill()
        process.wait(timeout=10)


def claim(files: DaemonFiles, pid: int) -> None:
    os.makedirs(files.directory, exist_ok=True)
    Path(files.pidfile).write_text(f"{pid}\n")


def test_a_scanning_dashboard_is_running_for_its_scan_folder(
    scanning: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, work = scanning
    files = DaemonFiles.for_scan(str(work))
    claim(files, process.pid)

    found = inspect(files)

    assert (found.state, found.pid) == (RUNNING, process.pid)


def test_a_scanning_dashboards_pid_is_stale_for_another_folder_or_a_project(
    scanning: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    process, work = scanning
    other = DaemonFiles.for_scan(str(tmp_path / "other"))
    project = DaemonFiles.for_root(str(work))
    claim(other, process.pid)
    claim(project, process.pid)

    assert (inspect(other).state, inspect(other).reason) == (
        DEAD,
        f"pid {process.pid} is scanning another folder ({work})",
    )
    assert (inspect(project).state, inspect(project).reason) == (
        DEAD,
        f"pid {process.pid} is a dashboard scanning work, not this project's",
    )


def test_a_single_project_dashboards_pid_is_stale_for_a_scan_folder(tmp_path: Path) -> None:
    process = fake_dashboard(str(tmp_path), "--root", str(tmp_path))
    try:
        assert wait_until(lambda: "loopdash" in procinfo.command_line(process.pid), 10)
        files = DaemonFiles.for_scan(str(tmp_path))
        claim(files, process.pid)
        claim(DaemonFiles.for_root(str(tmp_path)), process.pid)

        assert (inspect(files).state, inspect(files).reason) == (
            DEAD,
            f"pid {process.pid} is a dashboard that scans no folder",
        )
        assert inspect(DaemonFiles.for_root(str(tmp_path))).state == RUNNING
    finally:
        process.kill()
        process.wait(timeout=10)

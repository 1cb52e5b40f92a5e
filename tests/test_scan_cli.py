"""``loopdash start/stop/status/logs/generate-token --scan DIR``: the real command in subprocesses,
its files in ``DIR/.loopdash/`` (docs/projects.md, "Token, pidfile and commands in scan mode")."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopdash.cli.sample import create_sample_project
from loopdash.cli.start import twistd_command
from loopdash.local import procinfo
from loopdash.local.daemon import DaemonFiles, read_pidfile, wait_until
from tests.processes import free_port
from tests.test_daemonctl_e2e import COMMAND_TIMEOUT, get, loopdash_command


def loopdash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*loopdash_command(), *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


def test_the_start_command_scans_the_folder_and_passes_a_given_root_on() -> None:
    files = DaemonFiles.for_scan("/work")

    argv = twistd_command(files, {"port": 8080}, ["/extra"])

    assert argv[argv.index("--pidfile") + 1] == "/work/.loopdash/dashboard.pid"
    assert argv[argv.index("--logfile") + 1] == "/work/.loopdash/dashboard.log"
    plugin = argv[argv.index("loopdash") + 1 :]
    assert plugin[:4] == ["--scan", "/work", "--root", "/extra"]
    assert procinfo.is_dashboard_command(argv)
    assert procinfo.scan_argument(argv) == "/work"
    assert "--root" not in twistd_command(files, {"port": 8080})


def test_the_start_command_for_several_roots_keeps_its_files_in_the_first() -> None:
    argv = twistd_command(DaemonFiles.for_root("/a"), {"port": 8080}, ["/b", "/c"])

    assert argv[argv.index("--pidfile") + 1] == "/a/.claude-loop/dashboard/dashboard.pid"
    assert argv[argv.index("loopdash") + 1 :][:6] == ["--root", "/a", "--root", "/b", "--root", "/c"]
    assert procinfo.root_argument(argv) == "/a"
    assert procinfo.scan_argument(argv) is None


def test_status_of_a_scan_folder_with_no_dashboard_is_stopped_with_its_files(tmp_path: Path) -> None:
    status = loopdash("status", "--scan", str(tmp_path), "--json")

    assert status.returncode == 3, status.stderr
    report = json.loads(status.stdout)
    assert (report["state"], report["scan"], report["pidfile"], report["log"]) == (
        "stopped",
        str(tmp_path),
        str(tmp_path / ".loopdash" / "dashboard.pid"),
        str(tmp_path / ".loopdash" / "dashboard.log"),
    )
    assert json.loads(loopdash("status", "--root", str(tmp_path), "--json").stdout)["scan"] is None


def test_stop_of_a_scan_folder_with_no_dashboard_says_so(tmp_path: Path) -> None:
    stopped = loopdash("stop", "--scan", str(tmp_path))

    assert (stopped.returncode, stopped.stdout) == (0, "loopdash dashboard: not running\n")


def test_start_refuses_a_scan_folder_that_is_not_one(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")

    refused = loopdash("start", "--scan", missing, "--port", "1")

    assert (refused.returncode, refused.stderr) == (2, f"loopdash: --scan {missing}: not a directory\n")
    assert not os.path.exists(missing)


def test_logs_of_a_scan_folder_name_its_start_command(tmp_path: Path) -> None:
    logs = loopdash("logs", "--scan", str(tmp_path))

    assert logs.returncode == 1
    assert logs.stderr == (
        f"loopdash: no log yet at {tmp_path}/.loopdash/dashboard.log "
        f"(`loopdash start --scan {tmp_path}` writes it)\n"
    )


def test_generate_token_for_a_scan_folder_writes_its_dot_loopdash_token(tmp_path: Path) -> None:
    made = loopdash("generate-token", "--scan", str(tmp_path))

    assert made.returncode == 0, made.stderr
    path = tmp_path / ".loopdash" / "auth_token.txt"
    assert path.read_text().strip() == made.stdout.strip()
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)


# -- a real scanning daemon ---------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """A folder of two loop projects (and one project's own dashboard files), stopped after the test."""
    root = tmp_path / "work"
    create_sample_project(str(root / "api"))
    (root / "tools" / "cli" / "scripts" / "ralph").mkdir(parents=True)
    (root / "tools" / "cli" / "scripts" / "ralph" / "prd.json").write_text(
        json.dumps({"project": "CLI", "userStories": [{"id": "US-1", "title": "One", "passes": True}]})
    )
    yield root
    for command in (["stop", "--scan", str(root)], ["stop", "--root", str(root / "api")]):
        stopped = loopdash(*command, "--timeout", "5")
        assert stopped.returncode == 0, stopped.stderr


def projects(url: str, token: str) -> list[tuple[str, str]]:
    """(id, name) of every project ``/api/projects`` lists, sorted."""
    code, body = get(f"{url}/api/projects", token)
    assert code == 200, body
    return sorted((p["id"], p["name"]) for p in json.loads(body)["projects"])


def test_start_status_and_stop_of_a_scanning_dashboard_use_its_dot_loopdash(work: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    files = DaemonFiles.for_scan(str(work))

    started = loopdash("start", "--scan", str(work), "--scan-depth", "3", "--port", str(port))

    assert started.returncode == 0, started.stderr
    pid = read_pidfile(files.pidfile)
    assert pid is not None and f"running (pid {pid}) at {url}" in started.stdout
    assert files.token_file in started.stdout
    token = Path(files.token_file).read_text().strip()
    assert os.stat(files.token_file).st_mode & 0o777 == 0o600
    expected = [("api", "claude-loop-p2-features"), ("tools--cli", "CLI")]
    # Discovery may finish after /api/health answers: wait for it, bounded.
    assert wait_until(lambda: projects(url, token) == expected, 10), projects(url, token)
    argv = procinfo.command_line(pid)
    assert argv[argv.index("--scan-depth") + 1] == "3"
    # `loopdash watch --all` in the scanned folder finds this dashboard (its URL and token
    # in .loopdash/), though it listens on a port of its own, not the default 8080.
    watched = loopdash("watch", "--all", "--once", "--json", "--root", str(work))
    assert watched.returncode == 0, watched.stderr
    assert sorted(p["id"] for p in json.loads(watched.stdout)["projects"]) == ["api", "tools--cli"]

    status = loopdash("status", "--scan", str(work), "--json")
    assert status.returncode == 0, status.stdout
    report = json.loads(status.stdout)
    assert (report["state"], report["pid"], report["url"], report["scan"]) == ("running", pid, url, str(work))
    # The scanning dashboard is not the project's own: nothing runs for it, nothing is stopped.
    assert loopdash("status", "--root", str(work / "api")).returncode == 3
    assert loopdash("stop", "--root", str(work)).stdout == "loopdash dashboard: not running\n"
    again = loopdash("start", "--scan", str(work), "--port", str(free_port()))
    assert again.returncode == 1
    assert f"`loopdash stop --scan {work}` stops it" in again.stderr

    stopped = loopdash("stop", "--scan", str(work))

    assert (stopped.returncode, stopped.stdout) == (0, f"loopdash dashboard stopped (pid {pid})\n")
    assert not os.path.exists(files.pidfile)
    assert not os.path.exists(files.statefile)
    assert not procinfo.is_alive(pid)


def test_a_project_and_the_folder_scanning_it_each_have_their_dashboard(work: Path) -> None:
    scan_port, project_port = free_port(), free_port()
    assert loopdash("start", "--scan", str(work), "--port", str(scan_port)).returncode == 0
    project = loopdash("start", "--root", str(work / "api"), "--port", str(project_port))
    assert project.returncode == 0, project.stderr

    stopped = loopdash("stop", "--root", str(work / "api"))

    assert stopped.returncode == 0
    assert get(f"http://127.0.0.1:{scan_port}/api/health")[0] == 200
    assert loopdash("status", "--scan", str(work)).returncode == 0


def test_a_dashboard_of_several_roots_keeps_its_files_in_the_first(work: Path) -> None:
    port = free_port()
    first, second = work / "api", work / "tools" / "cli"
    files = DaemonFiles.for_root(str(first))

    started = loopdash("start", "--root", str(first), "--root", str(second), "--port", str(port))

    assert started.returncode == 0, started.stderr
    token = Path(files.token_file).read_text().strip()
    assert projects(f"http://127.0.0.1:{port}", token) == [("api", "claude-loop-p2-features"), ("cli", "CLI")]
    status = loopdash("status", "--root", str(first), "--json")
    assert (status.returncode, json.loads(status.stdout)["pid"]) == (0, read_pidfile(files.pidfile))
    assert loopdash("status", "--root", str(second)).returncode == 3

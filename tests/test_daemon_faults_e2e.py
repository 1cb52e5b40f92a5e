"""Issue 17's faults, each on real processes: the wrong daemon is never touched, every refusal is one line.

Sync tests with subprocesses, like ``test_daemonctl_e2e``; every wait is bounded
(a hang on a FIFO shows up as a ``TimeoutExpired`` failure, never a stuck run).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from loopdash.cli.sample import create_sample_project
from loopdash.local.daemon import DaemonFiles, read_pidfile, wait_until
from loopdash.local.procinfo import is_alive
from loopdash.local.token import write_token
from tests.processes import free_port, stop_process
from tests.test_daemonctl_e2e import COMMAND_TIMEOUT, Project, get, loopdash_command, project

__all__ = ["project"]  # the fixture, shared with test_daemonctl_e2e

#: A command that must not hang: a FIFO read would block it for ever.
QUICK = 30.0
NOBODY = 65534
TWISTD = [sys.executable, os.path.join(os.path.dirname(sys.executable), "twistd")]


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text and "Usage:" not in text
    return lines[0]


@pytest.fixture
def other(tmp_path: Any) -> Iterator[Project]:
    """A second project beside ``project``; its daemon is stopped at the end."""
    root = os.path.join(str(tmp_path), "other")
    create_sample_project(root)
    yield Project(root, DaemonFiles.for_root(root))
    subprocess.run([*loopdash_command(), "stop", "--root", root, "--timeout", "5"], timeout=COMMAND_TIMEOUT)


# -- 1. stop never touches another project's daemon --------------------------------------------


def test_stop_in_a_copied_project_leaves_the_original_daemon_alive(project: Project, tmp_path: Any) -> None:
    assert project.start(free_port()).returncode == 0
    pid = project.pid()
    copy = os.path.join(str(tmp_path), "copy")
    shutil.copytree(project.root, copy, symlinks=True)  # cp -a, pidfile and state file included
    copied = Project(copy, DaemonFiles.for_root(copy))

    status = copied.loopdash("status")
    assert status.returncode == 1
    assert f"pid {pid} is the dashboard of another project ({project.root})" in status.stdout

    stopped = copied.loopdash("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid} is the dashboard of another project ({project.root})" in stopped.stdout
    assert "that process was left alone" in stopped.stdout
    assert is_alive(pid)
    assert read_pidfile(project.files.pidfile) == pid
    assert os.path.exists(project.files.statefile)
    assert project.loopdash("status").returncode == 0
    assert copied.loopdash("status").returncode == 3

    # The copy starts its own dashboard, and stopping it stops only that one.
    assert copied.start(free_port()).returncode == 0
    copy_pid = copied.pid()
    assert copied.loopdash("stop").returncode == 0
    assert not is_alive(copy_pid)
    assert is_alive(pid)


def test_a_foreground_daemon_with_a_relative_root_belongs_to_its_own_directory(
    project: Project, other: Project
) -> None:
    port = free_port()
    daemon = subprocess.Popen(
        [*TWISTD, "-n", "loopdash", "--root", ".", "--port", str(port)],
        cwd=other.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: os.path.exists(other.files.statefile) or daemon.poll() is not None, QUICK)
        os.makedirs(project.files.directory, exist_ok=True)
        shutil.copy(other.files.pidfile, project.files.pidfile)
        status = project.loopdash("status")
        assert status.returncode == 1
        assert f"is the dashboard of another project ({other.root})" in status.stdout
        assert project.loopdash("stop").returncode == 0
        assert daemon.poll() is None
        assert other.loopdash("status").returncode == 0
    finally:
        stop_process(daemon)


def drop_to_nobody_and_run(arguments: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    """``loopdash ARGUMENTS`` as the user nobody (the interpreter under /root is loaded first)."""
    assert os.geteuid() == 0, "this test drops root privileges; it runs as root here"
    program = (
        "import os, sys, json, urllib.request, encodings.idna, loopdash.cli as cli; cli.build_parser(); "
        "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
        f"sys.exit(cli.main({arguments!r}))"
    )
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=cwd
    )


@pytest.fixture
def shared_directory() -> Iterator[str]:
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    base = tempfile.mkdtemp(prefix="loopdash-issue17-")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_stop_of_another_users_dashboard_for_this_root_is_one_line_not_a_traceback(
    shared_directory: str,
) -> None:
    root = os.path.join(shared_directory, "project")
    create_sample_project(root)
    files = DaemonFiles.for_root(root)
    os.makedirs(files.directory, exist_ok=True)
    # root's process, shaped like a dashboard serving this root (argv[0] "twistd"): nobody may not signal it.
    fake = subprocess.Popen(
        ["twistd", "-e", "sleep 120", "loopdash", "--root", root],
        executable="/usr/bin/perl",
    )
    try:
        assert wait_until(lambda: b"loopdash" in open(f"/proc/{fake.pid}/cmdline", "rb").read(), QUICK)
        with open(files.pidfile, "w") as f:
            f.write(f"{fake.pid}\n")
        os.chmod(files.pidfile, 0o644)
        for path in (root, os.path.dirname(files.directory), files.directory):
            os.chmod(path, 0o755)

        stopped = drop_to_nobody_and_run(["stop", "--root", root], shared_directory)

        assert stopped.returncode == 1
        assert one_line(stopped.stderr) == (
            f"loopdash: pid {fake.pid} serves this project but belongs to another user: not allowed to stop it"
        )
        assert fake.poll() is None
        assert os.path.exists(files.pidfile)
    finally:
        fake.kill()
        fake.wait(timeout=10)


# -- 2. refusals: one line, exit 2 for usage and 1 for a refusal ------------------------------------


def test_an_unsafe_token_file_is_one_line_from_start_and_from_twistd(project: Project) -> None:
    os.makedirs(project.files.directory, exist_ok=True)
    with open(project.files.token_file, "w") as f:
        f.write("token-known-to-others\n")
    os.chmod(project.files.token_file, 0o644)
    reason = (
        f"The token file {project.files.token_file} is accessible to other users (mode 0644), so its "
        "token may be known to them. Make a new one: `loopdash generate-token` "
        f"(or: chmod 600 {project.files.token_file} if you are sure nobody read it)."
    )

    started = project.start(free_port())
    assert started.returncode == 1
    assert one_line(started.stderr) == f"loopdash: {reason}"
    assert not os.path.exists(project.files.pidfile)
    logs = project.loopdash("logs")
    assert logs.stdout.endswith(f" [loopdash.start#error] Not started: {reason}\n")  # why, for later

    foreground = subprocess.run(
        [*TWISTD, "-n", "loopdash", "--root", project.root, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=QUICK,
        cwd=project.root,
    )
    assert foreground.returncode == 1
    assert foreground.stdout == ""
    assert one_line(foreground.stderr) == f"twistd loopdash: {reason}"


def test_a_bad_option_is_one_line_with_exit_2_from_twistd(project: Project) -> None:
    foreground = subprocess.run(
        [*TWISTD, "-n", "loopdash", "--root", project.root, "--keepalive", "never"],
        capture_output=True,
        text=True,
        timeout=QUICK,
    )
    assert foreground.returncode == 2
    assert one_line(foreground.stderr) == (
        "twistd loopdash: --keepalive must be a positive number of seconds, not 'never' "
        "(twistd loopdash --help lists the options)"
    )
    missing = subprocess.run(
        [*TWISTD, "-n", "loopdash", "--root", os.path.join(project.root, "nowhere")],
        capture_output=True,
        text=True,
        timeout=QUICK,
    )
    assert missing.returncode == 2
    assert "is not a directory" in one_line(missing.stderr)


def test_a_second_foreground_daemon_for_a_served_root_is_refused_in_one_line(project: Project) -> None:
    port = free_port()
    assert project.start(port).returncode == 0
    pid = project.pid()
    second = subprocess.run(
        [*TWISTD, "-n", "loopdash", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=QUICK,
        cwd=project.root,
    )
    assert second.returncode == 1
    assert one_line(second.stderr) == (
        f"twistd loopdash: a dashboard already serves {project.root} (pid {pid}) at "
        f"http://127.0.0.1:{port}; `loopdash stop` stops it"
    )
    assert is_alive(pid)
    assert not os.path.exists(os.path.join(project.root, "twistd.pid"))


# -- 3. the foreground daemon: start lines, pidfile where start keeps it, found by status/stop ------


def test_foreground_twistd_prints_the_start_lines_and_is_found_by_status_and_stop(project: Project) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    daemon = subprocess.Popen(
        [*TWISTD, "-n", "loopdash", "--port", str(port)],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_until(lambda: os.path.exists(project.files.statefile) or daemon.poll() is not None, QUICK)
        assert not os.path.exists(os.path.join(project.root, "twistd.pid"))
        assert read_pidfile(project.files.pidfile) == daemon.pid

        status = project.loopdash("status")
        assert status.returncode == 0, status.stdout
        assert f"running (pid {daemon.pid})" in status.stdout
        assert url in status.stdout

        stopped = project.loopdash("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped (pid {daemon.pid})" in stopped.stdout
        output, _ = daemon.communicate(timeout=QUICK)
    finally:
        stop_process(daemon)
    token_file = project.files.token_file
    assert f"loopdash dashboard running (pid {daemon.pid}) at {url}\n" in output
    assert f"  token file: {token_file}\n" in output
    assert f'  try:        curl -H "Authorization: Bearer $(cat {token_file})" {url}/api/status\n' in output
    # Not a terminal (a journal, a file): the token stays out of it.
    assert project.token not in output
    assert "Starting factory" not in output
    assert not os.path.exists(project.files.pidfile)
    assert not os.path.exists(project.files.statefile)


def test_a_foreground_daemon_without_a_pidfile_is_found_through_its_state_file(project: Project) -> None:
    port = free_port()
    daemon = subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", "loopdash", "--root", project.root, "--port", str(port)],
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: os.path.exists(project.files.statefile) or daemon.poll() is not None, QUICK)
        assert not os.path.exists(project.files.pidfile)
        status = project.loopdash("status")
        assert status.returncode == 0
        assert f"running (pid {daemon.pid})" in status.stdout
        assert project.loopdash("stop").returncode == 0
        assert daemon.wait(timeout=QUICK) == -signal.SIGTERM
    finally:
        stop_process(daemon)
    assert not os.path.exists(project.files.statefile)


# -- 5. FIFOs, huge files, unwritable directories ----------------------------------------------------


def test_a_fifo_pidfile_makes_nothing_hang(project: Project) -> None:
    os.makedirs(project.files.directory, exist_ok=True)
    os.mkfifo(project.files.pidfile)
    status = subprocess.run(
        [*loopdash_command(), "status", "--root", project.root], capture_output=True, text=True, timeout=QUICK
    )
    assert status.returncode == 1
    assert f"the pidfile {project.files.pidfile} is a FIFO, not a regular file" in status.stdout

    stopped = project.loopdash("stop")
    assert stopped.returncode == 0
    assert not os.path.exists(project.files.pidfile)

    os.mkfifo(project.files.pidfile)
    started = project.start(free_port())
    assert started.returncode == 0, started.stderr
    assert "Replacing a stale pidfile: the pidfile" in started.stdout
    assert stat.S_ISREG(os.stat(project.files.pidfile).st_mode)


@pytest.mark.parametrize("kind", ["fifo", "huge", "directory"])
def test_a_token_file_that_is_no_token_is_refused_in_one_line_without_hanging(
    project: Project, kind: str
) -> None:
    os.makedirs(project.files.directory, exist_ok=True)
    path = project.files.token_file
    if kind == "fifo":
        os.mkfifo(path, 0o600)
        reason = "is a FIFO, not a regular file"
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(1 << 30)  # sparse: 1 GB that costs no disk
        os.chmod(path, 0o600)
        reason = "is 1073741824 bytes, more than the 4096 it may hold"
    else:
        os.mkdir(path, 0o700)
        reason = "is a directory, not a regular file"

    started = subprocess.run(
        [*loopdash_command(), "start", "--root", project.root, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=QUICK,
    )
    assert started.returncode == 1
    assert one_line(started.stderr) == (
        f"loopdash: The token file {path} {reason}: make a new one with `loopdash generate-token`."
    )
    assert started.stdout == ""
    assert not os.path.exists(project.files.pidfile)


def test_generate_token_over_a_directory_is_one_line_and_leaves_nothing_behind(project: Project) -> None:
    os.makedirs(project.files.token_file)
    written = project.loopdash("generate-token")
    assert written.returncode == 1
    assert one_line(written.stderr) == (
        f"loopdash: cannot write the token file {project.files.token_file}: Is a directory (remove it first)"
    )
    assert sorted(os.listdir(project.files.directory)) == ["auth_token.txt"]


def test_an_unwritable_project_directory_is_one_line(shared_directory: str) -> None:
    root = os.path.join(shared_directory, "project")
    create_sample_project(root)
    shutil.rmtree(os.path.join(root, ".claude-loop", "dashboard"), ignore_errors=True)
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)  # root's: nobody may read, not write

    started = drop_to_nobody_and_run(["start", "--root", root, "--port", str(free_port())], shared_directory)

    assert started.returncode == 1
    directory = os.path.join(root, ".claude-loop", "dashboard")
    assert one_line(started.stderr) == (
        f"loopdash: cannot create {directory} (Permission denied): the dashboard keeps its "
        "pidfile, log and token there; make the project directory writable"
    )


# -- 8. rough edges ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["head -1", "true"])
def test_start_into_a_pipe_closed_early_ends_without_a_traceback(project: Project, reader: str) -> None:
    command = " ".join([*loopdash_command(), "start", "--root", project.root, "--port", str(free_port())])
    piped = subprocess.run(
        ["bash", "-c", f"{command} | {reader}; echo status=${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert "Traceback" not in piped.stderr
    assert "BrokenPipeError" not in piped.stderr
    if reader == "true":
        # `true` never reads: every write fails, as for a command killed by SIGPIPE.
        assert piped.stdout == "status=141\n"
    else:
        first, status = piped.stdout.splitlines()
        assert first.startswith("loopdash dashboard running (pid ")
        assert status in ("status=0", "status=141")  # whether head left before the rest came
    assert project.loopdash("status").returncode == 0  # the dashboard itself started


def test_a_bare_loopdash_prints_the_command_list() -> None:
    bare = subprocess.run(loopdash_command(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert bare.returncode == 2
    for command in ("start", "stop", "status", "logs", "generate-token", "watch", "demo"):
        assert f"\n    {command}" in bare.stderr
    assert "the following arguments are required" not in bare.stderr


# -- 6. a daemon that refuses every request says why, once per cause ---------------------------------


def test_a_daemon_without_a_usable_token_file_logs_each_cause_once(project: Project) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert project.start(port).returncode == 0
    token = project.token
    path = project.files.token_file

    def refused_three_times() -> None:
        for _ in range(3):
            assert get(f"{url}/api/status", token)[0] in (401, 403)

    os.unlink(path)
    refused_three_times()
    os.mkfifo(path, 0o600)
    refused_three_times()
    os.unlink(path)
    os.mkdir(path)
    refused_three_times()
    os.rmdir(path)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    assert get(f"{url}/api/status", token)[0] == 200
    assert project.loopdash("stop").returncode == 0

    with open(project.files.logfile, encoding="utf-8") as f:
        log = f.read()
    for cause in (
        f"The token file {path} is missing",
        f"The token file {path} is a FIFO, not a regular file",
        f"The token file {path} is a directory, not a regular file",
    ):
        assert log.count(cause) == 1, (cause, log[-3000:])
    assert log.count("Until then every request is refused.") == 3
    assert log.count("The token file holds a usable token again") == 1


def test_an_unreadable_runs_directory_is_said_once_not_every_poll(shared_directory: str) -> None:
    root = os.path.join(shared_directory, "project")
    create_sample_project(root)
    write_token(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt"))
    for directory, _, names in os.walk(root):
        os.chown(directory, NOBODY, NOBODY)
        for name in names:
            os.chown(os.path.join(directory, name), NOBODY, NOBODY)
    runs = os.path.join(root, ".claude-loop", "runs")
    os.chown(runs, 0, 0)
    os.chmod(runs, 0o000)  # the daemon (nobody) may neither list nor watch it
    log_path = os.path.join(shared_directory, "daemon.log")
    port = free_port()
    # The interpreter lives under /root (0700): import what the daemon needs while still root.
    program = (
        "import os, sys, _strptime, json, secrets, hmac, socket, signal, re, ipaddress, email.utils, "
        "encodings.idna, encodings.latin_1, urllib.parse, tempfile, zlib, "
        "twisted.scripts.twistd, twisted.scripts._twistd_unix, twisted.application.app, "
        "twisted.internet.inotify, twisted.internet.endpoints, twisted.logger, twisted.python.logfile, "
        "twisted.plugin, twisted.web.server, loopdash.server.tap, loopdash.server.service; "
        "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin)); "
        "from twisted.internet import reactor; "
        "from loopdash.server.service import DashboardConfig, build_dashboard; "
        f"build_dashboard(DashboardConfig(root={root!r}, listen='tcp:0:interface=127.0.0.1'), reactor); "
        "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
        "sys.argv[0] = 'twistd'; twisted.scripts.twistd.run()"
    )
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-c", program, "-n", "--pidfile=", "loopdash", "--root", root]
            + ["--port", str(port), "--poll-interval", "0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=shared_directory,
        )
    try:
        assert wait_until(
            lambda: daemon.poll() is not None or "loopdash dashboard running" in _read(log_path), QUICK
        )
        assert daemon.poll() is None, _read(log_path)
        # Twenty polls and more: each one tries to watch runs/ again.
        assert not wait_until(lambda: daemon.poll() is not None, 3.0)
    finally:
        stop_process(daemon)
    output = _read(log_path)
    assert output.count(f"Cannot watch {runs}") == 1, output[-3000:]
    assert "Traceback" not in output


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


# -- 7. logs: read back across rotations, a fixed number kept, nothing but what a user can act on -----


def test_logs_read_back_across_rotated_files_and_keep_only_log_keep_of_them(project: Project) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert project.start(port, "--log-keep", "2").returncode == 0
    pid = project.pid()
    for rotation in range(4):
        for request in range(10):
            get(f"{url}/api/health?rotation={rotation}&request={request}")
        os.kill(pid, signal.SIGUSR1)
        assert wait_until(
            lambda r=rotation: os.path.exists(f"{project.files.logfile}.{min(r + 1, 2)}"), QUICK
        )
    get(f"{url}/api/health?after=rotation")
    assert wait_until(lambda: "after=rotation" in _read(project.files.logfile), QUICK)

    logs = project.loopdash("logs", "-n", "15")
    assert logs.returncode == 0
    lines = logs.stdout.splitlines()
    assert len(lines) == 15
    assert "after=rotation" in lines[-1]
    assert any("rotation=3&request=9" in line for line in lines)  # from dashboard.log.1

    assert os.path.exists(f"{project.files.logfile}.1")
    assert os.path.exists(f"{project.files.logfile}.2")
    assert not os.path.exists(f"{project.files.logfile}.3")
    everything = "".join(
        _read(name)
        for name in (project.files.logfile, f"{project.files.logfile}.1", f"{project.files.logfile}.2")
    )
    assert "Starting factory" not in everything
    assert " object at 0x" not in everything


def test_a_start_on_a_port_in_use_leaves_one_line_in_the_log_not_a_traceback(project: Project) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = project.start(port)
    assert started.returncode == 1
    assert one_line(started.stderr) == (
        f"loopdash: port {port} on 127.0.0.1 is already in use; choose another with --port (e.g. --port {port + 1})"
    )
    logs = project.loopdash("logs", "-n", "50")
    assert "Traceback" not in logs.stdout
    assert (
        f"twistd loopdash: Couldn't listen on 127.0.0.1:{port}: [Errno 98] Address already in use."
        in logs.stdout
    )


def test_watch_outside_a_project_says_how_to_point_it_at_one(tmp_path: Any) -> None:
    empty = str(tmp_path)
    watched = subprocess.run(
        [*loopdash_command(), "watch", "--once"], capture_output=True, text=True, timeout=QUICK, cwd=empty
    )
    assert watched.returncode == 1
    token_path = os.path.join(empty, ".claude-loop", "dashboard", "auth_token.txt")
    assert one_line(watched.stderr) == (
        f"loopdash watch: no dashboard token at {token_path}: run this in the project directory, "
        "give --root DIR, or start the dashboard there with `loopdash start`"
    )


def test_an_unreadable_project_directory_is_a_one_line_refusal(shared_directory: str) -> None:
    root = os.path.join(shared_directory, "project")
    create_sample_project(root)
    os.chmod(root, 0o700)  # root's own: nobody may not enter it

    started = drop_to_nobody_and_run(["start", "--root", root, "--port", str(free_port())], shared_directory)

    assert started.returncode == 1
    assert (
        one_line(started.stderr) == f"loopdash: cannot read the project directory {root}: permission denied"
    )

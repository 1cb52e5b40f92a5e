"""End to end: the real ``loopdash`` command in subprocesses, a real daemon, real sockets.

Sync tests with plain subprocess and urllib: no server runs in this process,
so blocking calls freeze nothing. Every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from loopdash.cli.sample import create_sample_project
from loopdash.local import procinfo
from loopdash.local.daemon import DaemonFiles, find_running, read_pidfile, wait_until
from loopdash.local.procinfo import is_alive
from tests.processes import free_port

COMMAND_TIMEOUT = 60.0


def loopdash_command() -> list[str]:
    """The installed ``loopdash`` console script, run by this interpreter."""
    beside = os.path.join(os.path.dirname(sys.executable), "loopdash")
    script = beside if os.path.exists(beside) else shutil.which("loopdash")
    assert script, "the loopdash command is not installed"
    return [sys.executable, script]


@dataclass
class Project:
    root: str
    files: DaemonFiles

    def loopdash(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*loopdash_command(), args[0], "--root", self.root, *args[1:]]
        return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

    def start(self, port: int, *args: str) -> subprocess.CompletedProcess[str]:
        return self.loopdash("start", "--port", str(port), *args)

    @property
    def token(self) -> str:
        with open(self.files.token_file) as f:
            return f.read().strip()

    def pid(self) -> int:
        pid = read_pidfile(self.files.pidfile)
        assert pid is not None
        return pid


@pytest.fixture
def project(tmp_path: Any) -> Iterator[Project]:
    root = os.path.join(str(tmp_path), "project")
    create_sample_project(root)
    files = DaemonFiles.for_root(root)
    yield Project(root, files)
    # Never leave a daemon behind, whatever the test did.
    stopped = subprocess.run(
        [*loopdash_command(), "stop", "--root", root, "--timeout", "5"],
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert stopped.returncode == 0, stopped.stderr


def get(url: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_start_status_health_second_start_stop_status(project: Project) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    started = project.start(port)
    assert started.returncode == 0, started.stderr
    pid = project.pid()
    assert f"pid {pid}" in started.stdout
    assert url in started.stdout
    assert project.files.token_file in started.stdout
    with open(project.files.token_file) as f:
        assert f"{url}/#token={f.read().strip()}" in started.stdout  # a link the web page signs in from
    assert (
        f'curl -H "Authorization: Bearer $(cat {project.files.token_file})" {url}/api/status'
        in started.stdout
    )

    status = project.loopdash("status")
    assert status.returncode == 0, status.stdout
    assert f"running (pid {pid})" in status.stdout
    assert url in status.stdout

    code, body = get(f"{url}/api/health")
    assert code == 200
    assert json.loads(body)["status"] == "ok"
    assert find_running(project.root) == (pid, url)

    again = project.start(port)
    assert again.returncode != 0
    assert f"already running (pid {pid})" in again.stderr
    assert url in again.stderr
    assert project.pid() == pid

    stopped = project.loopdash("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {pid})" in stopped.stdout
    assert not os.path.exists(project.files.pidfile)
    assert not os.path.exists(project.files.statefile)
    assert not is_alive(pid)

    status = project.loopdash("status")
    assert status.returncode == 3
    assert "not running" in status.stdout
    assert find_running(project.root) is None

    again = project.loopdash("stop")
    assert again.returncode == 0
    assert "not running" in again.stdout


def get_with_headers(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def test_start_passes_the_daemons_own_options_through_to_twistd(project: Project) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = project.loopdash(
        "start",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        "--stale-after",
        "7.5",
        "--metrics-public",
        "--cors-origin",
        "https://ci.example.org",
    )
    assert started.returncode == 0, started.stderr
    assert f"at {url}" in started.stdout

    argv = procinfo.command_line(project.pid())
    assert argv[argv.index("--stale-after") + 1] == "7.5"
    assert get(f"{url}/metrics")[0] == 200  # --metrics-public: no token needed
    code, headers = get_with_headers(f"{url}/api/health", {"Origin": "https://ci.example.org"})
    assert code == 200
    assert headers["Access-Control-Allow-Origin"] == "https://ci.example.org"
    code, headers = get_with_headers(f"{url}/api/health", {"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in headers
    status = project.loopdash("status")
    assert url in status.stdout


def test_start_refuses_a_bad_daemon_option_as_usage_with_exit_2(project: Project) -> None:
    refused = project.loopdash("start", "--stale-after", "-1")
    assert refused.returncode == 2
    assert "argument --stale-after: must be a positive number of seconds, not '-1'" in refused.stderr
    assert not os.path.exists(project.files.pidfile)


def test_status_json_gives_pid_url_uptime_and_version(project: Project) -> None:
    port = free_port()
    assert project.start(port).returncode == 0

    status = project.loopdash("status", "--json")

    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["state"] == "running"
    assert report["pid"] == project.pid()
    assert report["url"] == f"http://127.0.0.1:{port}"
    assert report["version"] == "1.0.0"
    assert report["health"] == "ok"
    assert isinstance(report["uptime_s"], float) and report["uptime_s"] >= 0
    project.loopdash("stop")
    stopped = json.loads(project.loopdash("status", "--json").stdout)
    assert stopped["state"] == "stopped"
    assert stopped["pid"] is None


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait(timeout=10)
    return child.pid


def test_stale_pidfile_with_a_dead_pid_is_reported_and_replaced(project: Project) -> None:
    os.makedirs(project.files.directory, exist_ok=True)
    stale = dead_pid()
    with open(project.files.pidfile, "w") as f:
        f.write(f"{stale}\n")

    status = project.loopdash("status")
    assert status.returncode == 1
    assert f"process {stale} has exited" in status.stdout

    started = project.start(free_port())
    assert started.returncode == 0, started.stderr
    assert "stale pidfile" in started.stdout
    assert project.pid() != stale
    assert project.loopdash("status").returncode == 0


def test_pidfile_holding_the_pid_of_an_unrelated_program_is_replaced(project: Project) -> None:
    unrelated = subprocess.Popen(["sleep", "600"])  # outlives the test on a loaded machine
    try:
        os.makedirs(project.files.directory, exist_ok=True)
        with open(project.files.pidfile, "w") as f:
            f.write(f"{unrelated.pid}\n")

        status = project.loopdash("status")
        assert status.returncode == 1
        assert "another program (sleep)" in status.stdout

        started = project.start(free_port())
        assert started.returncode == 0, started.stderr
        assert project.pid() != unrelated.pid
        assert unrelated.poll() is None, "start must not signal the unrelated process"

        assert project.loopdash("stop").returncode == 0
        assert unrelated.poll() is None, "stop must not signal the unrelated process"
    finally:
        unrelated.kill()
        unrelated.wait(timeout=10)


def test_port_in_use_is_one_clear_line_and_leaves_no_pidfile(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        started = project.start(port)

    assert started.returncode != 0
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert f"port {port}" in lines[0]
    assert "already in use" in lines[0]
    assert "--port" in lines[0]
    assert not os.path.exists(project.files.pidfile)
    assert not os.path.exists(project.files.statefile)
    assert project.loopdash("status").returncode == 3


def test_generate_token_while_running_refuses_the_old_token_and_accepts_the_new(project: Project) -> None:
    port = free_port()
    assert project.start(port).returncode == 0
    url = f"http://127.0.0.1:{port}/api/status"
    old = project.token
    assert get(url, old)[0] == 200

    generated = project.loopdash("generate-token")

    assert generated.returncode == 0
    new = generated.stdout.strip()
    assert new and new != old
    assert project.token == new
    assert stat.S_IMODE(os.stat(project.files.token_file).st_mode) == 0o600
    code, body = get(url, old)
    assert code == 403
    assert json.loads(body) == {"error": "Invalid authentication token"}
    assert get(url, new)[0] == 200


def test_logs_n_shows_the_last_lines_with_one_line_per_request_and_no_secrets(project: Project) -> None:
    port = free_port()
    assert project.start(port).returncode == 0
    url = f"http://127.0.0.1:{port}"
    assert get(f"{url}/api/stories?token=hunter2&ticket=t0p", project.token)[0] == 200
    assert get(f"{url}/api/runs/nope", project.token)[0] == 404

    logs = project.loopdash("logs", "-n", "2")

    assert logs.returncode == 0
    lines = logs.stdout.splitlines()
    assert len(lines) == 2, logs.stdout
    assert " GET /api/stories?token=REDACTED&ticket=REDACTED 200 " in lines[0]
    assert "GET /api/runs/nope 404 " in lines[1]
    for line in lines:
        assert line.split()[-2].endswith("ms") and line.split()[-1] == "127.0.0.1"
    with open(project.files.logfile) as f:
        whole = f.read()
    assert "hunter2" not in whole and "t0p" not in whole


TWISTD_TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[[^\]]+\] .*")


def test_the_text_log_is_in_twistds_format_and_sigusr1_rotates_it(project: Project) -> None:
    port = free_port()
    assert project.start(port).returncode == 0
    url = f"http://127.0.0.1:{port}"
    assert get(f"{url}/api/health", project.token)[0] == 200
    pid = read_pidfile(project.files.pidfile)
    assert pid is not None
    logfile = project.files.logfile

    os.kill(pid, signal.SIGUSR1)  # what logrotate's postrotate sends to a twistd daemon

    assert wait_until(lambda: os.path.exists(logfile + ".1"), 10)
    assert get(f"{url}/api/status", project.token)[0] == 200

    def current_log() -> str:
        with open(logfile) as f:
            return f.read()

    assert wait_until(lambda: "GET /api/status 200 " in current_log(), 10)
    with open(logfile + ".1") as f:
        rotated = f.read()
    assert "GET /api/health 200 " in rotated and "GET /api/status" not in rotated
    for line in (rotated + current_log()).splitlines():
        assert TWISTD_TEXT_LINE.fullmatch(line), line


def test_logs_follow_prints_new_lines_until_interrupted(project: Project) -> None:
    port = free_port()
    assert project.start(port).returncode == 0
    follower = subprocess.Popen(
        [*loopdash_command(), "logs", "--root", project.root, "-f", "-n", "0"],
        stdout=subprocess.PIPE,
    )
    try:
        assert follower.stdout is not None
        output = follower.stdout.fileno()
        seen = b""
        deadline = time.monotonic() + 20
        while b"GET /api/metrics" not in seen and time.monotonic() < deadline:
            get(f"http://127.0.0.1:{port}/api/metrics", project.token)
            readable, _, _ = select.select([output], [], [], 0.5)
            if readable:
                seen += os.read(output, 65536)
        assert b"GET /api/metrics 200" in seen
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(timeout=10)


def read_first_event(response: http.client.HTTPResponse, max_lines: int = 20) -> Any:
    """The JSON of the first ``data:`` line of an event stream."""
    for _ in range(max_lines):
        line = response.readline()
        if line.startswith(b"data:"):
            return json.loads(line[len(b"data:") :])
    raise AssertionError(f"no data line in the first {max_lines} lines of the stream")


def test_stop_while_a_stream_is_open_ends_the_stream_and_the_daemon(project: Project) -> None:
    port = free_port()
    assert project.start(port).returncode == 0
    pid = project.pid()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(
            "GET",
            "/api/stream",
            headers={"Authorization": f"Bearer {project.token}", "Accept": "text/event-stream"},
        )
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        connected = read_first_event(response)
        assert connected["type"] == "connected"

        stopped = project.loopdash("stop")

        assert stopped.returncode == 0, stopped.stderr
        assert "SIGKILL" not in stopped.stderr
        # The client sees the stream end: the body ends (EOF) instead of timing out.
        rest = response.read()
        assert isinstance(rest, bytes)
        assert response.isclosed()
    finally:
        connection.close()
    assert not os.path.exists(project.files.pidfile)
    assert not is_alive(pid)
    assert project.loopdash("status").returncode == 3
    with open(project.files.logfile) as f:
        log = f.read()
    assert "Stream opened (1 open)" in log
    assert "Server Shut Down." in log


def test_stop_sends_sigkill_with_a_warning_when_sigterm_is_not_enough(project: Project) -> None:
    assert project.start(free_port()).returncode == 0
    pid = project.pid()
    # A stopped process cannot act on SIGTERM; SIGKILL still ends it.
    os.kill(pid, signal.SIGSTOP)

    stopped = project.loopdash("stop", "--timeout", "1")

    assert stopped.returncode == 0
    assert f"pid {pid} did not exit within 1 s of SIGTERM; sent SIGKILL" in stopped.stderr
    assert not is_alive(pid)
    assert not os.path.exists(project.files.pidfile)
    assert project.loopdash("status").returncode == 3


def test_log_format_json_writes_one_json_object_per_line(project: Project) -> None:
    port = free_port()
    assert project.start(port, "--log-format", "json").returncode == 0
    assert get(f"http://127.0.0.1:{port}/api/history?limit=1", project.token)[0] == 200
    project.loopdash("stop")

    with open(project.files.logfile) as f:
        events = [json.loads(line) for line in f if line.strip()]

    requests = [e for e in events if e.get("uri") == "/api/history?limit=1"]
    assert len(requests) == 1
    assert requests[0]["method"] == "GET"
    assert requests[0]["status"] == 200
    assert isinstance(requests[0]["duration_ms"], float)
    assert requests[0]["text"].startswith("GET /api/history?limit=1 200 ")
    assert any(e.get("log_format") == "Server Shut Down." for e in events)


def test_a_start_that_never_answers_in_time_shows_the_log_and_leaves_nothing_running(
    project: Project,
) -> None:
    # A microsecond is too short for any /api/health answer: the start must give up cleanly.
    started = project.start(free_port(), "--timeout", "0.000001")

    assert started.returncode == 1
    assert "the dashboard did not come up: " in started.stderr
    assert "did not answer within 1e-06 s" in started.stderr
    assert "Last lines of the log:" in started.stderr
    assert "starting up." in started.stderr
    assert not os.path.exists(project.files.pidfile)
    assert not os.path.exists(project.files.statefile)
    assert project.loopdash("status").returncode == 3


def test_status_is_4_when_the_daemon_runs_but_does_not_answer(project: Project) -> None:
    assert project.start(free_port()).returncode == 0
    pid = project.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        status = project.loopdash("status", "--json")
    finally:
        os.kill(pid, signal.SIGCONT)

    assert status.returncode == 4
    report = json.loads(status.stdout)
    assert report["state"] == "not answering"
    assert report["pid"] == pid
    assert "/api/health" in report["reason"]


def test_foreground_twistd_as_under_systemd_ends_open_streams_on_sigterm(project: Project) -> None:
    """The systemd unit of docs/commands.md: ``twistd -n --pidfile=`` writes no pidfile and exits 143 on SIGTERM."""
    port = free_port()
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    daemon = subprocess.Popen(
        [
            sys.executable,
            twistd,
            "-n",
            "--pidfile=",
            "--logfile=-",
            "loopdash",
            "--root",
            project.root,
            "--port",
            str(port),
        ],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_until(lambda: healthy(f"http://127.0.0.1:{port}") or daemon.poll() is not None, 30)
        assert daemon.poll() is None
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        connection.request("GET", "/api/stream", headers={"Authorization": f"Bearer {project.token}"})
        response = connection.getresponse()
        assert read_first_event(response)["type"] == "connected"

        daemon.send_signal(signal.SIGTERM)

        response.read()
        assert response.isclosed()
        connection.close()
        assert daemon.wait(timeout=15) == -signal.SIGTERM  # a shell sees 143
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
    assert daemon.stdout is not None
    output = daemon.stdout.read().decode()
    assert "Stream opened (1 open)" in output
    assert "Server Shut Down." in output
    assert not os.path.exists(os.path.join(project.root, "twistd.pid"))
    assert not os.path.exists(project.files.pidfile)


def healthy(url: str) -> bool:
    try:
        return get(f"{url}/api/health", timeout=2)[0] == 200
    except OSError:
        return False

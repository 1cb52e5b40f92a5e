"""The twistd plugin: discoverable, and the real `twistd -n loopdash` in a subprocess.

These are plain synchronous tests (subprocess + urllib): no server runs in
this process while they block. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins

from loopdash.cli.sample import create_sample_project
from tests.processes import TWISTD, free_port

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for_health(process: subprocess.Popen[bytes], base: str) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"twistd exited early with {process.returncode}")
        try:
            code, body = get(base + "/api/health")
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
            continue
        assert code == 200
        health: dict[str, Any] = body
        return health
    raise AssertionError(f"no /api/health answer within {START_TIMEOUT} s")


def port_is_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def project(tmp_path: Any) -> str:
    root = os.path.join(str(tmp_path), "project")
    create_sample_project(root)
    return root


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every twistd started by a test; killed afterwards if a test left one running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def start_twistd(processes: list[subprocess.Popen[bytes]], cwd: str, *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", "loopdash", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    processes.append(process)
    return process


# -- (a) the plugin is found ---------------------------------------------------------


def test_loopdash_is_among_the_twistd_plugins_with_a_description() -> None:
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert "loopdash" in makers
    maker = makers["loopdash"]
    assert maker.description.strip()
    assert maker.options is not None and callable(maker.makeService)


def test_twistd_loopdash_help_documents_every_option(tmp_path: Any) -> None:
    result = subprocess.run(
        [*TWISTD, "loopdash", "--help"], cwd=str(tmp_path), capture_output=True, timeout=30
    )
    text = result.stdout.decode()
    assert result.returncode == 0, text + result.stderr.decode()
    for option in (
        "--port",
        "--host",
        "--root",
        "--listen",
        "--token-file",
        "--stale-after",
        "--cors-origin",
    ):
        assert option in text, option


# -- (b) the real daemon, end to end ------------------------------------------------------


def test_twistd_serves_the_api_and_stops_on_sigterm(
    project: str, tmp_path: Any, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    token_path = os.path.join(project, ".claude-loop", "dashboard", "auth_token.txt")
    assert not os.path.exists(token_path)
    process = start_twistd(processes, str(tmp_path), "--port", str(port), "--root", project)
    base = f"http://127.0.0.1:{port}"
    health = wait_for_health(process, base)
    assert health["status"] == "ok" and health["version"] == "1.0.0"

    # The token was created on first start, private, and is the one to use.
    assert stat.S_IMODE(os.stat(token_path).st_mode) == 0o600
    with open(token_path) as f:
        token = f.read().strip()
    code, body = get(base + "/api/status")
    assert (code, body) == (401, {"error": "Missing or invalid Authorization header"})
    code, status = get(base + "/api/status", token)
    assert code == 200
    assert (status["total_stories"], status["completed_stories"]) == (8, 6)
    assert status["run_id"] == sorted(os.listdir(os.path.join(project, ".claude-loop", "runs")))[-1]
    code, runs = get(base + "/api/runs", token)
    assert code == 200 and len(runs) == 3

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode is not None
    assert process.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), output.decode()
    assert port_is_closed(port)
    assert not os.path.exists(os.path.join(str(tmp_path), "twistd.pid"))


def test_twistd_listens_on_an_endpoint_string(
    project: str, tmp_path: Any, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    token_file = os.path.join(str(tmp_path), "elsewhere", "token.txt")
    process = start_twistd(
        processes,
        str(tmp_path),
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        "--root",
        project,
        "--token-file",
        token_file,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_health(process, base)
    with open(token_file) as f:
        token = f.read().strip()
    assert get(base + "/api/stories", token)[0] == 200
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode is not None


# -- (c) a start that cannot work fails loudly ------------------------------------------------


def test_port_already_in_use_makes_twistd_exit_non_zero(
    project: str, tmp_path: Any, processes: list[subprocess.Popen[bytes]]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        process = start_twistd(processes, str(tmp_path), "--port", str(port), "--root", project)
        output, _ = process.communicate(timeout=START_TIMEOUT)
    assert process.returncode not in (0, None), output.decode()
    assert b"CannotListenError" in output or b"Address already in use" in output


def test_missing_root_directory_is_a_usage_error(
    tmp_path: Any, processes: list[subprocess.Popen[bytes]]
) -> None:
    missing = os.path.join(str(tmp_path), "no-such-project")
    process = start_twistd(processes, str(tmp_path), "--port", str(free_port()), "--root", missing)
    output, _ = process.communicate(timeout=START_TIMEOUT)
    assert process.returncode not in (0, None)
    assert b"no-such-project" in output
    assert not os.path.exists(missing)

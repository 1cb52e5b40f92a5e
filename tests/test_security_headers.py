"""Security headers on every answer, CORS without credentials, 405 and HEAD on every route,
and the token file refused when others can read it."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import pytest_twisted

from loopdash.local.token import UnsafeTokenFile, write_token
from loopdash.server.service import DashboardConfig, build_dashboard
from tests.conftest import DaemonFactory
from tests.contract import the_document
from tests.gitrepos import commit, init
from tests.processes import TWISTD
from tests.support import RunningDaemon, open_stream


def routes(run_id: str, sha: str = "0123abcd") -> dict[str, set[str]]:
    """Every documented route and its methods, ``{run_id}``, ``{sha}`` and ``{project_id}``
    (the sample project's: its folder's name) filled in."""
    return {
        path.replace("{run_id}", run_id).replace("{sha}", sha).replace("{project_id}", "project"): {
            m.upper() for m in item
        }
        for path, item in the_document()["paths"].items()
    }


async def sample_run(daemon: RunningDaemon) -> str:
    runs = (await daemon.get("/api/runs")).json()
    run_id: str = runs[0]["run_id"]
    return run_id


def assert_security_headers(answer: Any, what: str) -> None:
    assert answer.header("X-Content-Type-Options") == "nosniff", what
    assert answer.header("Referrer-Policy") == "no-referrer", what
    csp = answer.header("Content-Security-Policy") or ""
    assert "frame-ancestors 'none'" in csp, what
    assert answer.header("Access-Control-Allow-Credentials") is None, what


@pytest_twisted.ensureDeferred
async def test_every_answer_carries_the_security_headers(sample_daemon: RunningDaemon) -> None:
    run_id = await sample_run(sample_daemon)
    origin = {b"Origin": [b"https://elsewhere.example"]}
    checked = 0
    for path, methods in routes(run_id).items():
        if path == "/api/stream" or path.endswith("/stream"):
            continue  # below: the stream's headers are checked on an open stream
        for method in methods | {"DELETE", "OPTIONS"}:
            for authenticated in (True, False):
                answer = await sample_daemon.request(
                    method, path, authenticated=authenticated, headers=origin
                )
                assert_security_headers(answer, f"{method} {path} {answer.code}")
                checked += 1
    for path in ("/api/nope", "/", "/index.html", "/api/%ff"):
        assert_security_headers(await sample_daemon.get(path, headers=origin), path)
    stream = await open_stream(sample_daemon)
    response = stream.response
    stream.close()
    for name, value in (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")):
        assert response.headers.getRawHeaders(name) == [value]
    assert "frame-ancestors 'none'" in response.headers.getRawHeaders("Content-Security-Policy")[0]
    assert checked >= 40


@pytest_twisted.ensureDeferred
async def test_cors_never_combines_any_origin_with_credentials(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    open_daemon = await daemon_factory(sample_root)
    restricted = await daemon_factory(sample_root, cors_origins=("https://dash.example",))
    preflight = {
        b"Access-Control-Request-Method": [b"GET"],
        b"Access-Control-Request-Headers": [b"authorization"],
    }
    for origin in (b"https://dash.example", b"https://evil.example", b"null"):
        for daemon in (open_daemon, restricted):
            for method, headers in (("GET", {}), ("OPTIONS", preflight)):
                answer = await daemon.request(method, "/api/status", headers={b"Origin": [origin], **headers})
                assert answer.header("Access-Control-Allow-Credentials") is None
                allowed = answer.header("Access-Control-Allow-Origin")
                if daemon is open_daemon:
                    assert allowed == "*"
                else:
                    # Restricted: the origin echoed when listed, nothing otherwise; never "*".
                    assert allowed == (origin.decode() if origin == b"https://dash.example" else None)
                    assert "Origin" in (answer.header("Vary") or "")


@pytest_twisted.ensureDeferred
async def test_every_other_method_on_every_route_is_405_json_with_exact_allow(
    sample_daemon: RunningDaemon,
) -> None:
    run_id = await sample_run(sample_daemon)
    for path, methods in routes(run_id).items():
        allowed = methods | ({"HEAD"} if "GET" in methods else set()) | {"OPTIONS"}
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"):
            if method in methods:
                continue
            answer = await sample_daemon.request(method, path)
            assert answer.code == 405, (method, path)
            assert answer.json() == {"error": "Method not allowed"}
            assert {m.strip() for m in (answer.header("Allow") or "").split(",")} == allowed, path
        options = await sample_daemon.request("OPTIONS", path, authenticated=False)
        assert options.code == 204 and options.body == b""
        assert {m.strip() for m in (options.header("Allow") or "").split(",")} == allowed, path


@pytest_twisted.ensureDeferred
async def test_options_on_an_unknown_api_path_is_404_json(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.request("OPTIONS", "/api/nope", authenticated=False)
    assert answer.code == 404 and answer.json() == {"error": "Not found"}


@pytest_twisted.ensureDeferred
async def test_head_answers_like_get_without_a_body_on_every_get_route(sample_daemon: RunningDaemon) -> None:
    run_id = await sample_run(sample_daemon)
    # A commit to ask for: the project in a git repository (issue 21).
    init(sample_daemon.root)
    sha = commit(sample_daemon.root, "feat: US-001", {"a.txt": "a\n"})
    for path, methods in routes(run_id, sha).items():
        if "GET" not in methods:
            continue
        head = await sample_daemon.request("HEAD", path)
        assert head.code == 200, path
        assert head.body == b"", path
        if not path.endswith("/stream"):
            get = await sample_daemon.get(path)
            assert head.header("Content-Type") == get.header("Content-Type"), path
    # HEAD on the stream ends at once (it does not subscribe) and says what a GET would be.
    head = await sample_daemon.request("HEAD", "/api/stream")
    assert (head.header("Content-Type") or "").startswith("text/event-stream")
    assert not sample_daemon.dashboard.hub.subscribers
    assert (await sample_daemon.request("HEAD", "/api/status", authenticated=False)).code == 401


# -- the token file: others must not be able to read it --------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610])
def test_a_token_file_others_can_access_is_refused_with_a_clear_message(tmp_path: Any, mode: int) -> None:
    path = os.path.join(str(tmp_path), "token.txt")
    write_token(path, "secret-token-value")
    os.chmod(path, mode)
    config = DashboardConfig(root=str(tmp_path), listen="tcp:0:interface=127.0.0.1", token_file=path)
    from twisted.internet import reactor

    with pytest.raises(UnsafeTokenFile) as refused:
        build_dashboard(config, reactor)
    message = str(refused.value)
    assert path in message and f"{mode:04o}" in message and "generate-token" in message
    assert "secret-token-value" not in message
    assert os.stat(path).st_mode & 0o777 == mode  # refused, not silently changed


def test_twistd_refuses_a_readable_token_file_and_exits_1(tmp_path: Any) -> None:
    root = str(tmp_path)
    path = os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")
    write_token(path)
    os.chmod(path, 0o644)
    done = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "loopdash", "--port", "0", "--root", root],
        capture_output=True,
        timeout=60,
        text=True,
    )
    assert done.returncode == 1
    assert "accessible to other users (mode 0644)" in done.stdout + done.stderr
    assert "chmod 600" in done.stdout + done.stderr


@pytest_twisted.ensureDeferred
async def test_a_private_token_file_is_accepted_and_a_new_one_is_0600(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    root = os.path.join(str(tmp_path), "p")
    os.makedirs(root)
    daemon = await daemon_factory(root)
    assert os.stat(daemon.dashboard.config.token_path).st_mode & 0o777 == 0o600
    assert (await daemon.get("/api/status")).code == 200

"""``--remote NAME=URL``: another machine's daemon (a real twistd in a subprocess) listed here.

The local daemon runs in this process on port 0 and follows the remote one
through the client; the remote is killed and restarted on the same port.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.python import usage
from zope.interface import provider

from loopdash.cli.sample import create_sample_project
from loopdash.client.models import ProjectRow
from loopdash.client.remote import RemoteLink, local_row, unreachable, without_userinfo
from loopdash.contract.shapes import ProjectListAnswer
from loopdash.server.service import DashboardConfig, build_dashboard
from loopdash.server.tap import Options
from tests.client_support import within
from tests.processes import DaemonProcess
from tests.support import RunningDaemon, open_stream, settle
from tests.test_client_projects import ROW

# -- the pure parts ---------------------------------------------------------------------


def test_a_remote_row_is_named_for_its_machine_and_drops_fields_this_daemon_does_not_answer() -> None:
    row = ProjectRow.from_json(dict(ROW, id="api", newer_field=1))
    shown = local_row("box", row, "http://box.example:8080")
    assert shown["id"] == "box~api" and shown["machine"] == "box" and shown["reachable"] is True
    assert shown["url"] == "http://box.example:8080"
    assert "newer_field" not in shown and "extra" not in shown
    assert shown["total_stories"] == 10 and shown["current_story"]["id"] == "US-005"
    down = unreachable(shown)
    assert (down["reachable"], down["state"], down["total_stories"]) == (False, "unknown", 10)


def test_a_remotes_url_is_logged_without_its_credentials() -> None:
    assert without_userinfo("https://me:s3cret@box:8080/x") == "https://box:8080/x"
    assert without_userinfo("http://box:8080") == "http://box:8080"


def test_options_pair_every_remote_with_its_token_file(tmp_path: Any) -> None:
    root = str(tmp_path)
    options = Options()
    options.parseOptions(
        ["--root", root, "--remote", "box=http://box:8080/", "--remote-token-file", "box=box.token"]
    )
    config = options.config()
    assert config.remotes == (("box", "http://box:8080"),)
    assert config.remote_token_files == {"box": os.path.abspath("box.token")}
    assert config.multi
    with pytest.raises(usage.UsageError, match="--remote box needs --remote-token-file box=PATH"):
        Options().parseOptions(["--root", root, "--remote", "box=http://box:8080"])
    with pytest.raises(usage.UsageError, match="must start with http"):
        Options().parseOptions(["--root", root, "--remote", "box=ftp://box"])
    with pytest.raises(usage.UsageError, match="lower-case"):
        Options().parseOptions(["--root", root, "--remote", "Box~1=http://box"])
    with pytest.raises(usage.UsageError, match="names no --remote"):
        Options().parseOptions(["--root", root, "--remote-token-file", "box=t"])


def test_a_remote_without_a_follower_is_refused(tmp_path: Any) -> None:
    from twisted.internet import reactor

    config = DashboardConfig(
        root=str(tmp_path),
        listen="tcp:0:interface=127.0.0.1",
        remotes=(("box", "http://box"),),
        remote_token_files={"box": "t"},
    )
    with pytest.raises(ValueError, match="--remote needs a follower"):
        build_dashboard(config, reactor)


# -- a second real daemon -----------------------------------------------------------------


async def wait_for(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Poll ``check`` (an async callable) every 0.1 s until it answers something true."""
    from twisted.internet import reactor

    async def poll() -> Any:
        while True:
            found = await check()
            if found:
                return found
            await settle(reactor, 0.1)

    return await within(poll(), seconds)


@pytest_twisted.ensureDeferred
async def test_a_remote_daemon_is_listed_marked_down_when_killed_and_back_when_restarted(
    tmp_path: Any,
) -> None:
    from twisted.internet import reactor

    far = os.path.join(str(tmp_path), "far")
    create_sample_project(far)
    remote = DaemonProcess(far, os.path.join(str(tmp_path), "far.log"))
    remote.start()
    logged: list[str] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        logged.append(formatEvent(event) + repr(event.get("log_failure", "")))

    globalLogPublisher.addObserver(observe)
    local: RunningDaemon | None = None
    try:
        token_file = os.path.join(str(tmp_path), "far.token")
        with open(token_file, "w") as f:
            f.write(remote.token + "\n")
        near = os.path.join(str(tmp_path), "near")
        create_sample_project(near)
        config = DashboardConfig(
            root=near,
            listen="tcp:0:interface=127.0.0.1",
            remotes=(("box", remote.url),),
            remote_token_files={"box": token_file},
        )
        dashboard = build_dashboard(config, reactor, RemoteLink)
        dashboard.service.startService()
        port = await dashboard.web.when_listening()
        local = RunningDaemon(dashboard, f"http://127.0.0.1:{port.getHost().port}", near)

        async def remote_row() -> dict[str, Any] | None:
            rows = (await local.get("/api/projects")).json()["projects"]
            return next((r for r in rows if r["id"] == "box~far"), None)

        async def reachable_row() -> dict[str, Any] | None:
            row = await remote_row()
            return row if row is not None and row["reachable"] else None

        row = await wait_for(reachable_row)
        theirs = await remote_row_of(remote)
        # url: where the overview's card links to (the remote's own page).
        assert calm(row) == calm({**theirs, "id": "box~far", "machine": "box", "url": remote.url})
        assert row["total_stories"] == 8 and row["completed_stories"] == 6 and row["state"] != "unknown"
        listed = (await local.get("/api/projects")).json()
        assert [r["id"] for r in listed["projects"]] == ["near", "box~far"] and listed["default"] == "near"
        ProjectListAnswer.from_json(listed)  # the contract's answer, no field beyond it
        # Its own daemon serves a remote project's routes, not this one.
        answer = await local.get("/api/projects/box~far/status")
        assert answer.code == 404 and answer.json() == {"error": "Project not found: box~far"}

        stream = await open_stream(local)
        remote.stop()
        down = await next_update_of(stream, "box~far", 30)
        assert down.data["project"] == "box~far"
        # The last known row is kept, marked unreachable.
        assert calm(down.data["data"]) == calm({**row, "reachable": False, "state": "unknown"})
        kept = await remote_row()
        assert kept is not None and (kept["reachable"], kept["state"], kept["total_stories"]) == (
            False,
            "unknown",
            8,
        )
        ProjectListAnswer.from_json((await local.get("/api/projects")).json())

        remote.start()
        back = await next_update_of(stream, "box~far", 60)
        assert back.data["project"] == "box~far" and back.data["data"]["reachable"] is True
        assert back.data["data"]["state"] == row["state"]
        assert await wait_for(reachable_row)
        stream.close()
    finally:
        globalLogPublisher.removeObserver(observe)
        remote.stop()
        if local is not None:
            await local.stop()
    text = "\n".join(logged)
    assert "Remote box" in text and "unreachable" in text  # the link did log, and said why
    assert remote.token not in text


async def next_update_of(stream: Any, ident: str, seconds: float) -> Any:
    """The stream's next ``project_updated`` about ``ident`` (another project's are passed over)."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + seconds
    while True:
        message = await stream.next_of_type("project_updated", max(deadline - reactor.seconds(), 0.001))
        if message.data.get("project") == ident:
            return message


def calm(row: dict[str, Any]) -> dict[str, Any]:
    """A row without ``quiet_for``, which moves with the clock between two readings."""
    return {key: value for key, value in row.items() if key != "quiet_for"}


async def remote_row_of(remote: DaemonProcess) -> dict[str, Any]:
    import json

    import treq

    response = await treq.get(
        remote.url + "/api/projects", headers={b"Authorization": [f"Bearer {remote.token}".encode()]}
    )
    rows = json.loads(await treq.content(response))["projects"]
    assert len(rows) == 1
    return dict(rows[0])


def test_the_plugins_module_imports_the_client_only_for_a_remote() -> None:
    """treq and Twisted's web client are a tenth of a second of every start-up: not
    paid by a daemon without --remote (the test below follows a remote through them)."""
    import subprocess
    import sys

    probe = (
        "import sys, loopdash.cli.daemon; "
        "print(sorted(m for m in ('treq', 'twisted.web.client', 'loopdash.client') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_twistd_loopdash_follows_a_remote_given_on_its_command_line(tmp_path: Any) -> None:
    """The plugin's module (loopdash.cli.daemon) hands the server the client's follower."""
    import json
    import time
    import urllib.request

    far = os.path.join(str(tmp_path), "far")
    near = os.path.join(str(tmp_path), "near")
    create_sample_project(far)
    create_sample_project(near)
    remote = DaemonProcess(far, os.path.join(str(tmp_path), "far.log"))
    remote.start()
    token_file = os.path.join(str(tmp_path), "far.token")
    with open(token_file, "w") as f:
        f.write(remote.token + "\n")
    local = DaemonProcess(
        near,
        os.path.join(str(tmp_path), "near.log"),
        options=("--remote", f"box={remote.url}", "--remote-token-file", f"box={token_file}"),
    )
    try:
        local.start()
        deadline = time.monotonic() + 20
        ids: list[str] = []
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                local.url + "/api/projects", headers={"Authorization": f"Bearer {local.token}"}
            )
            with urllib.request.urlopen(request, timeout=5) as answer:
                rows = json.loads(answer.read())["projects"]
            ids = [row["id"] for row in rows if row["reachable"]]
            if "box~far" in ids:
                break
            time.sleep(0.1)
        assert ids == ["near", "box~far"], local.log()
        assert remote.token not in local.log(tail=None)
    finally:
        local.stop()
        remote.stop()


@pytest_twisted.ensureDeferred
async def test_a_multi_project_remotes_changes_arrive_as_project_events(
    daemon_factory: Any, tmp_path: Any
) -> None:
    from twisted.internet import reactor

    from tests.client_support import LiveLoop

    one = os.path.join(str(tmp_path), "one")
    create_sample_project(one)
    loop = LiveLoop.create(os.path.join(str(tmp_path), "two"))
    far = await daemon_factory(one, more_roots=(loop.root,), poll_interval=0.05)
    token_file = os.path.join(str(tmp_path), "far.token")
    with open(token_file, "w") as f:
        f.write(far.token + "\n")
    near = os.path.join(str(tmp_path), "near")
    create_sample_project(near)
    config = DashboardConfig(
        root=near,
        listen="tcp:0:interface=127.0.0.1",
        remotes=(("far", far.url),),
        remote_token_files={"far": token_file},
    )
    dashboard = build_dashboard(config, reactor, RemoteLink)
    dashboard.service.startService()
    port = await dashboard.web.when_listening()
    local = RunningDaemon(dashboard, f"http://127.0.0.1:{port.getHost().port}", near)
    try:

        async def ids() -> list[str] | None:
            rows = (await local.get("/api/projects")).json()["projects"]
            found = [r["id"] for r in rows]
            return found if "far~two" in found else None

        assert await wait_for(ids) == ["near", "far~one", "far~two"]
        stream = await open_stream(local)
        loop.pass_story(0)
        updated = await next_update_of(stream, "far~two", 15)
        assert updated.data["data"]["completed_stories"] == 1 and updated.data["data"]["machine"] == "far"
        far.dashboard.projects.remove("one")
        removed = await stream.next_of_type("project_removed", timeout=15)
        assert removed.data["project"] == "far~one" and removed.data["data"] == {"id": "far~one"}
        assert [r["id"] for r in (await local.get("/api/projects")).json()["projects"]] == ["near", "far~two"]
        stream.close()
    finally:
        await local.stop()

"""``loopdash watch``: the pure view, and the command in a pipe and in a pseudo-terminal against a real daemon."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

from loopdash.client import Disconnected
from loopdash.client.events import (
    Connected,
    Gap,
    IterationAdded,
    LogAppended,
    Reconnected,
    RunFinished,
    StatusUpdate,
    StoryUpdated,
)
from loopdash.client.models import ExecutionStatus, Iteration, LogEntry, RunRow, Story
from loopdash.client.watch import (
    View,
    apply,
    describe,
    duration,
    log_headline,
    money,
    progress_bar,
    render_screen,
)
from tests.client_support import STATUS, LiveLoop, within
from tests.support import RunningDaemon

# -- the pure view ---------------------------------------------------------------------


def test_durations_money_and_bar() -> None:
    assert [duration(s) for s in (None, 0, 59.9, 61, 3600, 7325)] == [
        "-",
        "0s",
        "59s",
        "1m01s",
        "1h00m00s",
        "2h02m05s",
    ]
    assert (money(0.177), money(2.5), money(1234.5)) == ("$0.177", "$2.50", "$1,234.50")
    assert progress_bar(0, 10) == "[..........]"
    assert progress_bar(60, 10) == "[######....]"
    assert progress_bar(100, 10) == "[##########]"
    assert progress_bar(250, 10) == "[##########]"


def test_log_headline_takes_the_story_and_its_outcome() -> None:
    entry = LogEntry(
        "2026-01-13 14:40:00", ("**Story**: US-201 - Skills", "**Status**: Complete", "", "- did it")
    )
    assert log_headline(entry) == "2026-01-13 14:40:00  US-201 - Skills [Complete]"
    free = LogEntry("2026-01-13 14:41:00", ("", "- Fixed the flaky test", "more"))
    assert log_headline(free) == "2026-01-13 14:41:00  Fixed the flaky test"
    assert log_headline(LogEntry("t", ())) == "t  (empty entry)"


def status_event(**changes: Any) -> StatusUpdate:
    return StatusUpdate(status=ExecutionStatus.from_json({**STATUS, **changes}), id="b-2")


def test_the_screen_shows_progress_story_elapsed_cost_eta_and_moves_with_the_clock() -> None:
    view = apply(View("http://d"), Connected(server_version="0.1.0", api_version="1.0.0"), now=100.0)
    view = apply(view, status_event(), now=100.0)
    screen = render_screen(view, now=100.0, width=120)
    assert screen[0] == "loopdash watch  http://d  running"
    assert screen[1] == f"{progress_bar(60.0)}  60.0%  6/10 stories"
    assert screen[2] == "Story    US-207 (in progress, 15s)"
    assert screen[3] == "Elapsed  1h00m00s   Cost $2.50   ETA 40m00s"
    # Between events the running clocks move on, the ETA counts down.
    later = render_screen(view, now=130.0, width=120)
    assert later[2] == "Story    US-207 (in progress, 45s)"
    assert later[3] == "Elapsed  1h00m30s   Cost $2.50   ETA 39m30s"
    # Cut to one less than the width, so that no line wraps and breaks the redraw.
    assert render_screen(view, now=130.0, width=20)[3] == "Elapsed  1h00m30s  "


def test_a_stopped_loop_does_not_tick() -> None:
    view = apply(View("http://d"), status_event(is_running=False, current_story=None), now=100.0)
    assert render_screen(view, 500.0, 120)[0].endswith("not running")
    assert render_screen(view, 500.0, 120)[3].startswith("Elapsed  1h00m00s ")


def test_the_screen_says_reconnecting_and_recovers() -> None:
    view = apply(View("http://d"), status_event(), now=0.0)
    view = apply(view, Disconnected("connection refused", attempts=1, retry_in=3.0), now=1.0)
    assert (
        render_screen(view, 1.0, 120)[0] == "loopdash watch  http://d  reconnecting... (connection refused)"
    )
    view = apply(view, Reconnected(1, 3.0, "b-2"), now=4.0)
    view = apply(view, Connected(server_version=None, api_version=None), now=4.0)
    assert render_screen(view, 4.0, 120)[0].endswith("  running")


def test_the_screen_keeps_the_newest_log_headlines_and_updates_a_grown_entry() -> None:
    view = View("http://d", headlines=2)
    for index in range(4):
        entry = LogEntry(f"t{index}", (f"**Story**: US-{index}",))
        view = apply(view, LogAppended(index=index, entry=entry), now=0.0)
    grown = LogEntry("t3", ("**Story**: US-3", "**Status**: Complete"))
    view = apply(view, LogAppended(index=3, entry=grown), now=0.0)
    screen = render_screen(view, 0.0, 120)
    at = screen.index("Recent log:")
    assert screen[at + 1 : at + 3] == ["  t2  US-2", "  t3  US-3 [Complete]"]


def test_one_line_per_event() -> None:
    story = Story("US-3", "Run summary", "", 2, "completed", "", "simple", ())
    iteration = Iteration("US-3", "success", 90000, 10, 20, 0.05, ("backend-architect",))
    run = RunRow("20260113_200000", "20260113_200000", 0.5, 4, 3, 1, 1350.0)
    assert describe(story_updated := StoryUpdated(story=story)) == "story US-3 completed: Run summary"
    assert story_updated.id is None
    assert (
        describe(IterationAdded(run_id="r1", iteration=iteration))
        == "iteration US-3 success in 1m30s, $0.050 (run r1)"
    )
    assert describe(RunFinished(run=run)) == (
        "run 20260113_200000 finished: 4 iterations (3 ok, 1 failed), $0.500, 22m30s"
    )
    assert describe(status_event()) == (
        "status running 60.0% (6/10 stories), story US-207 in progress, elapsed 1h00m00s, cost $2.50, ETA 40m00s"
    )
    assert describe(Disconnected("connection refused", 2, 6.0)) == (
        "disconnected: connection refused; reconnecting in 6.0 s..."
    )
    assert describe(Gap("lost")) == "gap: lost"


# -- the command in a subprocess -------------------------------------------------------------


class Child(ProcessProtocol):
    """A child process whose output we can wait on, bounded in time."""

    def __init__(self) -> None:
        self.output = b""
        self.stderr = b""
        self.code: int | None = None
        self.ended: Deferred[None] = Deferred()
        self._waiter: Deferred[None] | None = None

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.stderr += data
        else:
            self.output += data
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    def processEnded(self, reason: Any) -> None:
        self.code = reason.value.exitCode
        self.ended.callback(None)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    async def wait_for(self, pattern: bytes, start: int = 0, seconds: float = 15.0) -> int:
        """Where ``pattern`` (a regex) ends in the output after ``start``; fails after ``seconds``."""

        async def scan() -> int:
            while True:
                found = re.compile(pattern).search(self.output, start)
                if found:
                    return found.end()
                if self.ended.called:
                    raise AssertionError(f"exited before {pattern!r}: {self.output[-600:]!r} {self.stderr!r}")
                self._waiter = Deferred()
                await self._waiter

        return await within(scan(), seconds)

    async def exit_code(self, seconds: float = 10.0) -> int | None:
        await within(self.ended, seconds)
        return self.code


def spawn(args: list[str], tty: bool = False) -> Child:
    from twisted.internet import reactor

    child = Child()
    env = dict(os.environ, COLUMNS="100", LINES="30", TERM="xterm", PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "loopdash.cli", "watch", *args]
    reactor.spawnProcess(child, sys.executable, argv, env=env, usePTY=tty)
    return child


def daemon_args(daemon: RunningDaemon) -> list[str]:
    return ["--url", daemon.url, "--root", daemon.root]


@pytest_twisted.ensureDeferred
async def test_once_json_prints_the_status_the_daemon_serves(daemon_factory: Any, sample_root: str) -> None:
    # Stopped loop: nothing in the status moves between the two readings.
    daemon = await daemon_factory(sample_root, stale_after=0.001)
    child = spawn([*daemon_args(daemon), "--once", "--json"])
    assert await child.exit_code() == 0
    printed, served = json.loads(child.output), (await daemon.get("/api/status")).json()
    # quiet_for (issue 15) is the one field that moves with the clock for a stopped loop.
    assert 0 <= served.pop("quiet_for") - printed.pop("quiet_for") <= 5
    assert printed == served and served["state"] == "stopped"
    assert child.stderr == b""


@pytest_twisted.ensureDeferred
async def test_once_prints_a_readable_status(sample_daemon: RunningDaemon) -> None:
    child = spawn([*daemon_args(sample_daemon), "--once"])
    assert await child.exit_code() == 0
    text = child.output.decode()
    assert "75.0%  6/8 stories" in text and "Story    US-005 Parallel worker pool (in progress" in text
    assert "\x1b[" not in text  # no terminal codes into a pipe


@pytest_twisted.ensureDeferred
async def test_once_with_a_wrong_token_fails_with_the_servers_message(
    sample_daemon: RunningDaemon, tmp_path: Any
) -> None:
    wrong = os.path.join(str(tmp_path), "wrong-token")
    with open(wrong, "w") as f:
        f.write("nope\n")
    child = spawn([*daemon_args(sample_daemon), "--token-file", wrong, "--once", "--json"])
    assert await child.exit_code() == 1
    assert child.output == b""
    assert b"403: Invalid authentication token" in child.stderr


@pytest_twisted.ensureDeferred
async def test_without_a_token_file_it_says_where_it_looked(empty_root: str) -> None:
    child = spawn(["--root", empty_root, "--once"])
    assert await child.exit_code() == 1
    assert b"auth_token.txt" in child.stderr


@pytest_twisted.ensureDeferred
async def test_pipe_mode_prints_a_line_per_event_and_rides_out_a_daemon_restart(
    daemon_factory: Any, tmp_path: Any
) -> None:
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(loop.root, poll_interval=0.05)
    port = int(daemon.url.rsplit(":", 1)[1])
    child = spawn(daemon_args(daemon))
    at = await child.wait_for(rb"\S+Z status running 0\.0% \(0/8 stories\)[^\n]*\n")
    first = loop.pass_story(0)
    at = await child.wait_for(rb"Z story " + first.encode() + rb" completed: [^\n]+\n", at)

    await daemon.stop()
    at = await child.wait_for(
        rb"disconnected: the server ended the stream; reconnecting in \d+\.\d s\.\.\.\n", at
    )
    await daemon_factory(loop.root, poll_interval=0.05, listen=f"tcp:{port}:interface=127.0.0.1")
    at = await child.wait_for(rb"reconnected \(resuming after [0-9a-f]+-\d+\)\n", at)
    at = await child.wait_for(rb"gap: [^\n]+\n[^\n]*status running 12\.5% \(1/8 stories\)", at)
    second = loop.pass_story(1)
    await child.wait_for(rb"Z story " + second.encode() + rb" completed", at)

    child.transport.signalProcess("INT")  # type: ignore[union-attr]
    assert await child.exit_code() == 0
    assert b"\x1b[" not in child.output
    assert b"Traceback" not in child.stderr + child.output and b"Unhandled" not in child.stderr + child.output
    lines = child.output.decode().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S", line) for line in lines), lines


@pytest_twisted.ensureDeferred
async def test_following_survives_a_token_rotation(daemon_factory: Any, tmp_path: Any) -> None:
    from loopdash.local.token import write_token

    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(loop.root, poll_interval=0.05)
    child = spawn(daemon_args(daemon))
    at = await child.wait_for(rb"Z status running 0\.0%[^\n]*\n")
    write_token(daemon.dashboard.config.token_path)  # what `loopdash generate-token` does
    for subscriber in list(daemon.dashboard.hub.subscribers):
        subscriber.end()  # the stream drops; reconnecting with the old token gets 403
    at = await child.wait_for(
        rb"disconnected: the token was refused; using the new one from the token file", at
    )
    at = await child.wait_for(rb"Z connected ", at)
    story = loop.pass_story(0)
    await child.wait_for(rb"Z story " + story.encode() + rb" completed", at)
    child.transport.signalProcess("INT")  # type: ignore[union-attr]
    assert await child.exit_code() == 0


@pytest_twisted.ensureDeferred
async def test_following_with_a_wrong_token_exits_1(sample_daemon: RunningDaemon, tmp_path: Any) -> None:
    wrong = os.path.join(str(tmp_path), "wrong-token")
    with open(wrong, "w") as f:
        f.write("nope\n")
    child = spawn([*daemon_args(sample_daemon), "--token-file", wrong])
    assert await child.exit_code() == 1
    assert b"403: Invalid authentication token" in child.stderr


@pytest_twisted.ensureDeferred
async def test_tty_mode_redraws_in_place_and_exits_cleanly_on_ctrl_c(
    daemon_factory: Any, tmp_path: Any
) -> None:
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    loop.append_log(0)
    daemon = await daemon_factory(loop.root, poll_interval=0.05)
    child = spawn(daemon_args(daemon), tty=True)
    at = await child.wait_for(rb"0/8 stories[^\x1b]*Ctrl-C to quit")
    assert child.output.startswith(b"\x1b[?25l")  # cursor hidden while drawing
    screen = child.output[child.output.rindex(b"\x1b[J", 0, at) : at].decode(errors="replace")
    lines = screen[len("\x1b[J") :].split("\r\n")
    assert lines[0].endswith("  running")
    assert lines[1] == "[" + "." * 30 + "]   0.0%  0/8 stories"
    assert lines[2].startswith("Story    US-001 Always log tokens to provider_usage.jsonl (in progress, ")
    assert lines[3].startswith("Elapsed  5m") and "Cost $0.000" in lines[3]
    # The headline is fetched at start, since the stream only brings new entries.
    await child.wait_for(rb"\r\n  2026-11-28 10:20 AM  US-001 - Always log tokens[^\r]*\[Complete\]\r\n", 0)

    loop.pass_story(0)
    # Redrawn in place: the cursor goes back up to the block's first line and clears below.
    at = await child.wait_for(rb"\x1b\[\d+A\r\x1b\[J[^\x1b]*12\.5%  1/8 stories", at)

    child.transport.write(b"\x03")  # type: ignore[union-attr]  # Ctrl-C through the terminal
    assert await child.exit_code() == 0
    assert child.output.rstrip().endswith(b"\x1b[?25h")  # cursor shown again
    assert b"Traceback" not in child.output and b"Unhandled" not in child.output


# -- a daemon started by `loopdash start` (sync tests: everything runs in subprocesses) ---------

LOOPDASH = [sys.executable, "-m", "loopdash.cli"]


@pytest.fixture(scope="module")
def started_root(tmp_path_factory: Any) -> Iterator[str]:
    """A finished project (its current run has a summary) served by `loopdash start` on a free port."""
    from loopdash.cli.sample import create_sample_project

    root = str(tmp_path_factory.mktemp("started") / "project")
    create_sample_project(root)
    runs = os.path.join(root, ".claude-loop", "runs")
    newest = sorted(os.listdir(runs))[-1]
    totals = {
        "elapsed_time_s": 720,
        "total_cost": 0.177,
        "total_iterations": 2,
        "success_count": 2,
        "failure_count": 0,
    }
    with open(os.path.join(runs, newest, "summary.json"), "w") as f:
        json.dump(totals, f)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = subprocess.run(
        [*LOOPDASH, "start", "--root", root, "--port", str(port)], capture_output=True, text=True, timeout=30
    )
    assert started.returncode == 0, started.stderr
    try:
        yield root
    finally:
        stopped = subprocess.run(
            [*LOOPDASH, "stop", "--root", root, "--timeout", "5"], capture_output=True, timeout=30
        )
        assert stopped.returncode == 0, stopped.stderr


def test_without_url_it_finds_the_daemon_loopdash_start_runs(started_root: str, empty_root: str) -> None:
    from loopdash.client import DEFAULT_URL, DashboardClient, find_url

    assert find_url(empty_root) == DEFAULT_URL  # nothing started there
    with open(os.path.join(started_root, ".claude-loop", "dashboard", "dashboard.json")) as f:
        state = json.load(f)
    assert DashboardClient.from_project(started_root).base_url == state["url"]
    watched = subprocess.run(
        [*LOOPDASH, "watch", "--root", started_root, "--once", "--json"], capture_output=True, timeout=30
    )
    assert watched.returncode == 0, watched.stderr
    assert json.loads(watched.stdout)["total_stories"] == 8


def documented_examples() -> list[str]:
    """The Python examples of docs/client.md, the client's page."""
    page = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "client.md")
    with open(page, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_client_page_has_the_twisted_and_the_asyncio_example() -> None:
    examples = documented_examples()
    assert len(examples) == 2
    assert "react(" in examples[0] and "asyncioreactor.install" in examples[1]


@pytest.mark.parametrize("which", [0, 1], ids=["twisted", "asyncio"])
def test_documented_example_runs_against_the_started_daemon(
    started_root: str, which: int, tmp_path: Any
) -> None:
    script = os.path.join(str(tmp_path), "example.py")
    with open(script, "w") as f:
        f.write(documented_examples()[which])
    # Run from the project directory, as the examples say; they stop once the run is over.
    ran = subprocess.run(
        [sys.executable, script], cwd=started_root, capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 0, ran.stderr
    assert "75.0%" in ran.stdout, ran.stdout
    if which == 1:
        assert ran.stdout.startswith("6/8 stories\n")

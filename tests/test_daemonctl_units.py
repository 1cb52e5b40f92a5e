"""The parts under the daemon commands: /proc reads, pidfile inspection, log tailing, log formats."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.application.service import Application, MultiService
from twisted.internet.task import Clock
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    formatTime,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from loopdash.cli.logtail import LogFollower, last_lines
from loopdash.cli.start import is_port_in_use, twistd_command
from loopdash.cli.status import format_duration
from loopdash.local import procinfo
from loopdash.local.daemon import DEAD, STOPPED, DaemonFiles, connect_url, inspect, wait_until, write_state
from loopdash.server.accesslog import AccessLogSite
from loopdash.server.logformat import (
    DaemonLogging,
    PerSecondTimestamps,
    classic_text_formatter,
    twistd_log_target,
    twistd_writes_a_file,
)
from loopdash.server.tap import Options
from tests.conftest import DaemonFactory

# -- /proc -----------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait(timeout=10)
    return child.pid


def test_a_zombie_counts_as_dead_and_has_no_command_line() -> None:
    child = subprocess.Popen(["true"])
    try:
        # Not reaped yet: a zombie until wait(), exactly what daemonised twistd can linger as.
        assert wait_until(lambda: not procinfo.is_alive(child.pid), 10)
        assert os.path.exists(f"/proc/{child.pid}")
        assert procinfo.command_line(child.pid) == []
    finally:
        child.wait(timeout=10)


def test_this_process_is_alive_with_its_command_line_and_start_time() -> None:
    assert procinfo.is_alive(os.getpid())
    assert "python" in os.path.basename(procinfo.command_line(os.getpid())[0])
    started = procinfo.start_time(os.getpid())
    assert started is not None and started <= time.time()
    assert procinfo.start_time(dead_pid()) is None


def test_the_start_command_is_recognised_as_a_dashboard_and_other_programs_are_not() -> None:
    argv = twistd_command(DaemonFiles("/p"), {"host": "127.0.0.1", "port": 8080, "log-format": "text"})
    assert procinfo.is_dashboard_command(argv)
    assert procinfo.is_dashboard_command(["/usr/bin/twistd", "-n", "loopdash", "--port", "1"])
    assert not procinfo.is_dashboard_command(["sleep", "30"])
    assert not procinfo.is_dashboard_command(["/usr/bin/twistd", "-n", "web"])
    assert not procinfo.is_dashboard_command(["vim", "loopdash"])
    assert not procinfo.is_dashboard_command([])


# -- pidfile and state ------------------------------------------------------------


def test_a_missing_pidfile_is_stopped_and_one_without_a_pid_is_dead(tmp_path: Any) -> None:
    files = DaemonFiles.for_root(str(tmp_path))
    assert inspect(files).state == STOPPED
    os.makedirs(files.directory)
    with open(files.pidfile, "w") as f:
        f.write("garbage\n")
    found = inspect(files)
    assert found.state == DEAD
    assert "holds no pid" in found.reason


def test_the_state_file_url_counts_only_for_the_pid_that_wrote_it(tmp_path: Any) -> None:
    files = DaemonFiles.for_root(str(tmp_path))
    os.makedirs(files.directory)
    with open(files.pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    write_state(files, {"pid": os.getpid() + 1, "url": "http://127.0.0.1:1"})
    # This pytest process is no twistd: its pid in the pidfile is stale.
    assert inspect(files).state == DEAD


@pytest.mark.parametrize(
    "host, url",
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("::1", "http://[::1]:8080"),
        ("localhost", "http://localhost:8080"),
    ],
)
def test_connect_url(host: str, url: str) -> None:
    assert connect_url(host, 8080) == url


def test_wait_until_gives_up_after_its_timeout_on_its_clock() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    assert not wait_until(lambda: False, 2.0, interval=0.5, clock=lambda: now[0], sleep=sleep)
    assert now[0] == 2.0
    assert wait_until(lambda: now[0] >= 1.0, 5.0, interval=0.5, clock=lambda: now[0], sleep=sleep)


def test_port_in_use_is_recognised_from_twistds_message() -> None:
    message = "CannotListenError: Couldn't listen on 127.0.0.1:8080: [Errno 98] Address already in use."
    assert is_port_in_use(message)
    assert not is_port_in_use(
        "CannotListenError: Couldn't listen on 127.0.0.1:80: [Errno 13] Permission denied."
    )


@pytest.mark.parametrize(
    "seconds, text", [(0, "0s"), (59.9, "59s"), (60, "1m"), (3725, "1h 2m 5s"), (90061, "1d 1h 1m 1s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- log tailing -----------------------------------------------------------------


def write_lines(path: str, count: int, mode: str = "w") -> None:
    with open(path, mode) as f:
        f.writelines(f"line {i}\n" for i in range(count))


def test_last_lines_reads_across_blocks_and_up_to_an_offset(tmp_path: Any) -> None:
    path = str(tmp_path / "log")
    write_lines(path, 100)
    assert last_lines(path, 3, block=7) == ["line 97", "line 98", "line 99"]
    assert last_lines(path, 500, block=16) == [f"line {i}" for i in range(100)]
    assert last_lines(path, 2, end=len("line 0\nline 1\nline 2\n")) == ["line 1", "line 2"]
    assert last_lines(path, 0) == []
    assert last_lines(str(tmp_path / "missing"), 5) == []


def test_follower_returns_complete_lines_only(tmp_path: Any) -> None:
    path = str(tmp_path / "log")
    write_lines(path, 2)
    follower = LogFollower.at_end(path)
    assert follower.poll() == []
    with open(path, "a") as f:
        f.write("new one\nhalf")
    assert follower.poll() == ["new one"]
    with open(path, "a") as f:
        f.write(" done\n")
    assert follower.poll() == ["half done"]


def test_follower_starts_over_on_a_rotated_or_truncated_file(tmp_path: Any) -> None:
    path = str(tmp_path / "log")
    write_lines(path, 3)
    follower = LogFollower.at_end(path)
    os.rename(path, path + ".1")
    with open(path, "w") as f:
        f.write("after rotation\n")
    assert follower.poll() == ["after rotation"]
    with open(path, "w") as f:
        f.write("truncated\n")
    assert follower.poll() == ["truncated"]


def test_follower_waits_for_a_log_that_does_not_exist_yet(tmp_path: Any) -> None:
    path = str(tmp_path / "log")
    follower = LogFollower.at_end(path)
    assert follower.poll() == []
    write_lines(path, 2)
    assert follower.poll() == ["line 0", "line 1"]


# -- log formats -----------------------------------------------------------------


def test_twistd_log_target_follows_twistds_rules() -> None:
    assert twistd_log_target({"logfile": "/x/d.log", "nodaemon": False}) == "/x/d.log"
    assert twistd_log_target({"logfile": "-", "nodaemon": True}) is None
    assert twistd_log_target({"logfile": None, "nodaemon": True}) is None
    assert twistd_log_target({"logfile": None, "nodaemon": False}) == "twistd.log"


def test_our_observer_replaces_twistds_only_where_twistd_would_write_a_file() -> None:
    assert twistd_writes_a_file({"logfile": "/x/d.log", "nodaemon": False})
    assert twistd_writes_a_file({"logfile": None, "nodaemon": True})
    assert twistd_writes_a_file({"logfile": "-", "nodaemon": True})
    assert not twistd_writes_a_file({"logfile": None, "nodaemon": False, "syslog": True})
    assert not twistd_writes_a_file({"logfile": None, "nodaemon": True, "logger": "my.observer"})
    # twistd itself refuses a daemon logging to stdout; we leave that answer to it.
    assert not twistd_writes_a_file({"logfile": "-", "nodaemon": False})


def twistd_text_line(event: LogEvent) -> str | None:
    """What twistd's own text observer writes for ``event``."""
    written: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            written.append(text)

        def flush(self) -> None:
            pass

    textFileLogObserver(Out())(event)  # type: ignore[arg-type]
    return "".join(written) or None


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no")


def failure_event() -> LogEvent:
    try:
        1 / 0  # noqa: B018 (a real traceback is the point)
    except ZeroDivisionError:
        failure = Failure()
    return {
        "log_format": "boom {n}",
        "n": 3,
        "log_failure": failure,
        "log_time": 1795868751.5,
        "log_namespace": "loopdash.x",
        "log_level": LogLevel.error,
    }


@pytest.mark.parametrize(
    "event",
    [
        {
            "log_format": "{line}",
            "line": "GET /api/status 200 0.4ms 127.0.0.1",
            "log_time": 1795868751.999,
            "log_namespace": "loopdash.server.accesslog.AccessLogSite",
            "log_level": LogLevel.info,
        },
        {"log_format": "two\nlines {x!r}", "x": "y", "log_time": 0.0, "log_system": "-"},
        {"log_format": "no time", "log_namespace": "n", "log_level": LogLevel.warn},
        {"log_format": "{missing}", "log_time": -1.5, "log_system": 42},
        {"log_format": "", "log_time": 1.0},
        {"message": ("legacy", "event"), "log_time": 2.0, "log_system": "HTTPChannel,0,127.0.0.1"},
        {"log_format": "{line}", "line": "a\nb", "log_time": 12.9999999, "log_system": "sys"},
        {"log_format": "{line}", "line": "", "log_time": 3.0},
        {"log_format": "{line}", "line": 42, "log_time": 3.0, "log_level": LogLevel.debug},
        {"log_format": "{line}", "line": "x", "log_namespace": "n"},
        {"log_format": "{line}", "line": "x", "log_time": 5.0, "log_system": 7},
        {"log_format": "{line}", "line": "x", "log_flattened": {"line!:": "flat"}, "log_time": 5.0},
        {**failure_event(), "log_format": "{line}", "line": "request failed"},
        {"log_format": "{line}", "line": "x", "log_time": 5.0, "log_system": Unprintable()},
        failure_event(),
    ],
    ids=[
        "access",
        "multiline",
        "no-time",
        "unformattable",
        "empty",
        "legacy",
        "line-multiline",
        "line-empty",
        "line-not-str",
        "line-no-time",
        "line-int-system",
        "line-flattened",
        "line-failure",
        "line-unprintable-system",
        "failure",
    ],
)
def test_text_lines_are_twistds_own(event: LogEvent) -> None:
    assert classic_text_formatter()(event) == twistd_text_line(event)


near_a_second = st.builds(
    lambda second, offset: second + offset,
    st.integers(min_value=-(10**9), max_value=4 * 10**9),
    st.sampled_from([0.0, 1e-7, 4e-7, 5e-7, 6e-7, 0.5, 0.9999994, 0.9999995, 0.9999996, 0.999999, -1e-7]),
)


@given(st.lists(st.floats(min_value=-1e9, max_value=4e9) | near_a_second, min_size=1, max_size=20))
def test_a_timestamp_formatted_once_per_second_equals_formatting_each_time(times: list[float]) -> None:
    timestamps = PerSecondTimestamps()
    for when in times:
        assert timestamps(when) == formatTime(when)
    assert timestamps(None) == formatTime(None)


def test_text_logging_gives_the_application_twistds_lines(tmp_path: Any) -> None:
    path = str(tmp_path / "d.log")
    application = Application("loopdash")
    DaemonLogging(MultiService(), "text", path).setServiceParent(application)

    observer = application.getComponent(ILogObserver)
    log = Logger(namespace="test", observer=observer)
    log.info("GET {uri} {status}", uri="/api/health", status=200)
    observer._outFile.flush()

    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[test#info\] GET /api/health 200", lines[0]
    )


def test_json_logging_gives_the_application_a_json_lines_observer(tmp_path: Any) -> None:
    path = str(tmp_path / "d.log")
    application = Application("loopdash")
    DaemonLogging(MultiService(), "json", path).setServiceParent(application)

    observer = application.getComponent(ILogObserver)
    assert observer is not None
    log = Logger(namespace="test", observer=observer)
    log.info("GET {uri} {status}", uri="/api/health", status=200)
    log.warn("second")
    observer._outFile.flush()

    with open(path) as f:
        events = [json.loads(line) for line in f]
    assert [e["text"] for e in events] == ["GET /api/health 200", "second"]
    assert events[0]["uri"] == "/api/health" and events[0]["status"] == 200
    assert events[1]["log_level"]["name"] == "warn"


def test_the_plugin_refuses_an_unknown_log_format(tmp_path: Any) -> None:
    options = Options()
    with pytest.raises(usage.UsageError, match="--log-format"):
        options.parseOptions(["--root", str(tmp_path), "--log-format", "xml"])
    options = Options()
    options.parseOptions(["--root", str(tmp_path), "--log-format", "json"])
    assert options["log-format"] == "json"


# -- the access log, on a real socket ---------------------------------------------


def test_the_site_sets_no_timer_of_its_own() -> None:
    # HTTPFactory refreshes its Combined Log Format date every second, which
    # would wake an idle daemon for a log it does not write.
    clock = Clock()
    site = AccessLogSite(Resource(), clock)
    site.doStart()
    try:
        assert clock.getDelayedCalls() == []
    finally:
        site.doStop()


@pytest_twisted.ensureDeferred
async def test_each_request_logs_method_redacted_uri_status_and_duration(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    daemon = await daemon_factory(sample_root)
    events: list[LogEvent] = []

    def keep(event: LogEvent) -> None:
        if event.get("log_namespace", "").startswith("loopdash.server.accesslog"):
            events.append(event)

    globalLogPublisher.addObserver(keep)
    try:
        answer = await daemon.get("/api/stories?ticket=s3cret&x=1")
        missing = await daemon.get("/api/runs/nope", token="wrong")
    finally:
        globalLogPublisher.removeObserver(keep)

    assert (answer.code, missing.code) == (200, 403)
    assert [(e["method"], e["uri"], e["status"]) for e in events] == [
        ("GET", "/api/stories?ticket=REDACTED&x=1", 200),
        ("GET", "/api/runs/nope", 403),
    ]
    for event in events:
        assert isinstance(event["duration_ms"], float) and event["duration_ms"] >= 0
        assert event["client"] == "127.0.0.1"

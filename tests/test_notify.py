"""Notifications through a real daemon: the stream, the history, Apprise delivery.

The rules themselves are tested in test_notify_rules.py; here the daemon runs
in-process on port 0, a webhook stands in for a notification service (a real
Apprise ``json://`` URL pointing at 127.0.0.1), and a fake clock drives the
rules where time is the point.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.web import resource, server

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, write_prd
from loopdash.client import DashboardClient
from loopdash.derive.notify import KINDS, RuleConfig
from loopdash.loop.project import Project
from loopdash.server.notify import (
    AppriseSender,
    Burst,
    NotificationCenter,
    NotificationLog,
    digest,
    redact_url,
)
from loopdash.server.watcher import observe
from tests.support import open_stream, settle, start_daemon


class Webhook(resource.Resource):
    """A notification service on 127.0.0.1: records what Apprise posts to it."""

    isLeaf = True

    def __init__(self, delay: float = 0.0, code: int = 200) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []
        self.arrived: defer.Deferred[None] = defer.Deferred()
        self.delay = delay
        self.code = code

    def render_POST(self, request: Any) -> Any:
        self.received.append(json.loads(request.content.read()))
        if not self.arrived.called:
            self.arrived.callback(None)
        request.setResponseCode(self.code)
        if self.delay:
            from twisted.internet import reactor

            reactor.callLater(self.delay, lambda: request.channel and request.finish())
            return server.NOT_DONE_YET
        return b"{}"


def listen(hook: Webhook) -> Any:
    from twisted.internet import reactor

    return reactor.listenTCP(0, server.Site(hook), interface="127.0.0.1")


def project_with_run(root: str, started: datetime) -> RealRun:
    write_prd(root, SAMPLE_STORIES[:3])
    run = RealRun(root, started)
    run.start()
    run.add_iteration("US-001", "A story", started + timedelta(minutes=1), 60000)
    run.write_metrics(started + timedelta(minutes=1))
    return run


# -- the center on a fake clock --------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    def publish(self, kind: str, data: object) -> None:
        self.published.append((kind, data))

    def send(self, notification: dict[str, Any]) -> None:
        self.sent.append(notification)


def test_a_stall_on_the_fake_clock_fires_once_clears_on_activity_and_fires_again(tmp_path: Any) -> None:
    root = str(tmp_path)
    started = datetime.now(UTC).replace(microsecond=0)
    run = project_with_run(root, started)
    os.utime(
        os.path.join(run.directory, "metrics.json"), (started.timestamp() + 60, started.timestamp() + 60)
    )
    clock = Clock()
    clock.advance(started.timestamp() + 61)
    recorder = Recorder()
    center = NotificationCenter(
        RuleConfig(), NotificationLog(None), recorder, clock, [recorder], lambda: "demo", "http://x/", 300.0
    )
    project = Project(root)

    def look() -> list[str]:
        return [n["kind"] for n in center.observe(observe(project.snapshot(), clock.seconds(), 600.0))]

    assert look() == []  # baseline
    clock.advance(298)
    assert look() == []
    clock.advance(2)  # 300 s of quiet
    assert look() == ["run_stalled"]
    clock.advance(60)
    assert look() == []
    # The loop moves: a new iteration ends now, metrics.json rewritten.
    moment = datetime.fromtimestamp(clock.seconds(), UTC)
    run.add_iteration("US-002", "B story", moment, 60000)
    run.write_metrics(moment)
    os.utime(os.path.join(run.directory, "metrics.json"), (clock.seconds(), clock.seconds()))
    assert look() == []
    clock.advance(301)
    assert look() == ["run_stalled"]
    stalled = recorder.sent[-1]
    assert (stalled["project"], stalled["run_id"], stalled["link"]) == ("demo", run.run_id, "http://x/")
    assert [kind for kind, _ in recorder.published] == ["notification", "notification"]
    # Quiet past --stale-after with no summary: stopped without finishing.
    clock.advance(600)
    assert look() == ["run_stopped"]


# -- through a daemon --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_budget_passed_is_streamed_listed_and_kept_across_a_restart(tmp_path: Any) -> None:
    from twisted.internet import reactor

    root = str(tmp_path)
    started = datetime.now(UTC) - timedelta(minutes=5)
    run = project_with_run(root, started)
    daemon = await start_daemon(reactor, root, poll_interval=0.05, use_inotify=False, budget_usd=0.2)
    try:
        stream = await open_stream(daemon)
        await stream.next_of_type("status_update")
        for minute in (2, 3, 4, 5):  # 0.054 USD an iteration: 0.27 USD after five
            run.add_iteration("US-002", "B story", started + timedelta(minutes=minute), 60000)
        run.write_metrics(datetime.now(UTC))
        warning = await stream.next_of_type("notification")
        exceeded = await stream.next_of_type("notification")
        assert [warning.data["data"]["kind"], exceeded.data["data"]["kind"]] == [
            "budget_warning",
            "budget_exceeded",
        ]
        body = exceeded.data["data"]
        assert body["run_id"] == run.run_id
        assert body["cost"] == pytest.approx(0.27)
        assert body["severity"] == "failure"
        assert body["link"] is None  # port 0: no address worth linking to
        listed = (await daemon.get("/api/notifications")).json()
        assert [n["kind"] for n in listed["notifications"]] == ["budget_exceeded", "budget_warning"]
        assert listed["total"] == 2
        assert listed["settings"]["budget_usd"] == 0.2
        assert (await daemon.get("/api/notifications?limit=1&offset=1")).json()["notifications"][0][
            "kind"
        ] == "budget_warning"
        assert (await daemon.get("/api/notifications?limit=x")).code == 400
        client = DashboardClient(daemon.url, daemon.token, reactor=reactor)
        page = await client.notifications(limit=1)
        assert (page.total, page.notifications[0].kind, page.settings.budget_usd) == (
            2,
            "budget_exceeded",
            0.2,
        )
        assert page.notifications[0].run_id == run.run_id
        await client.close()
        stream.close()
    finally:
        await daemon.stop()
    path = os.path.join(root, ".claude-loop", "dashboard", "notifications.jsonl")
    assert os.stat(path).st_mode & 0o077 == 0
    again = await start_daemon(reactor, root, poll_interval=0.05, use_inotify=False, budget_usd=0.2)
    try:
        await settle(reactor, 0.2)
        kept = (await again.get("/api/notifications")).json()
        assert [n["kind"] for n in kept["notifications"]] == ["budget_exceeded", "budget_warning"]
        # A restart is a baseline: the budget already passed does not fire again.
        assert kept["total"] == 2
    finally:
        await again.stop()


@pytest_twisted.ensureDeferred
async def test_each_project_of_a_daemon_has_its_own_budget(tmp_path: Any) -> None:
    # Issue 20: per-project budgets in multi-project mode. "thrifty" has its own 0.2 USD
    # budget, "roomy" takes --budget's 5 USD; the same spending passes only the first's.
    from twisted.internet import reactor

    started = datetime.now(UTC) - timedelta(minutes=5)
    thrifty, roomy = (os.path.join(str(tmp_path), name) for name in ("thrifty", "roomy"))
    runs = [project_with_run(root, started) for root in (thrifty, roomy)]
    daemon = await start_daemon(
        reactor,
        thrifty,
        more_roots=(roomy,),
        poll_interval=0.05,
        use_inotify=False,
        use_git=False,
        budget_usd=5.0,
        project_budgets={"thrifty": 0.2},
    )
    try:
        stream = await open_stream(daemon)
        await stream.next_of_type("status_update")
        for run in runs:
            for minute in (2, 3, 4, 5):  # 0.27 USD after five iterations
                run.add_iteration("US-002", "B story", started + timedelta(minutes=minute), 60000)
            run.write_metrics(datetime.now(UTC))
        warning = await stream.next_of_type("notification")
        exceeded = await stream.next_of_type("notification")
        assert [(e.data["project"], e.data["data"]["kind"]) for e in (warning, exceeded)] == [
            ("thrifty", "budget_warning"),
            ("thrifty", "budget_exceeded"),
        ]
        own = (await daemon.get("/api/projects/thrifty/notifications")).json()
        other = (await daemon.get("/api/projects/roomy/notifications")).json()
        assert (own["settings"]["budget_usd"], own["total"]) == (0.2, 2)
        assert (other["settings"]["budget_usd"], other["total"]) == (5.0, 0)
        scraped = (await daemon.get("/metrics")).body.decode()
        budgets = sorted(
            line for line in scraped.splitlines() if line.startswith("loopdash_loop_budget_usd{")
        )
        assert [b.split("project_id=")[1].split(",")[0] for b in budgets] == ['"roomy"', '"thrifty"']
        assert [float(b.rsplit(" ", 1)[1]) for b in budgets] == [5.0, 0.2]
        stream.close()
    finally:
        await daemon.stop()


@pytest_twisted.ensureDeferred
async def test_apprise_delivers_to_a_json_webhook(tmp_path: Any) -> None:
    from twisted.internet import reactor

    hook = Webhook()
    port = listen(hook)
    root = str(tmp_path)
    started = datetime.now(UTC) - timedelta(minutes=5)
    run = project_with_run(root, started)
    daemon = await start_daemon(
        reactor,
        root,
        poll_interval=0.05,
        use_inotify=False,
        notify_urls=[f"json://127.0.0.1:{port.getHost().port}/hook"],
        notify_kinds=frozenset(KINDS),
        public_url="http://127.0.0.1:8080/",
    )
    try:
        await settle(reactor, 0.2)
        run.write_summary(datetime.now(UTC))
        await hook.arrived.addTimeout(10, reactor)
        posted = hook.received[0]
        assert posted["title"].endswith(": run finished")
        assert posted["message"] == f"Run {run.run_id} finished at $0.05.\nhttp://127.0.0.1:8080/"
        assert posted["type"] == "success"
        sender = daemon.dashboard.notifications.senders[0]
        assert isinstance(sender, AppriseSender)
        for _ in range(100):
            if sender.pending == 0:
                break
            await settle(reactor, 0.05)
        assert (sender.sent, sender.failed, sender.failing) == (1, 0, set())
    finally:
        await daemon.stop()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_slow_target_never_blocks_the_daemon_and_a_failing_one_is_logged_once(
    tmp_path: Any,
) -> None:
    from twisted.internet import reactor

    slow = Webhook(delay=3.0)
    slow_port = listen(slow)
    refused = listen(Webhook())
    refused_number = refused.getHost().port
    await refused.stopListening()  # nothing listens there any more: connection refused
    sender = AppriseSender(
        reactor,
        [
            f"json://127.0.0.1:{slow_port.getHost().port}/slow",
            f"json://127.0.0.1:{refused_number}/gone",
        ],
        timeout=1.0,
    )
    sender.startService()
    logged: list[str] = []
    from twisted.logger import globalLogPublisher

    def observer(event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith("loopdash.server.notify"):
            logged.append(event.get("log_format", ""))

    globalLogPublisher.addObserver(observer)
    try:
        note = {"title": "t", "message": "m", "severity": "warning", "link": None}
        sender.send(note)
        await slow.arrived.addTimeout(10, reactor)
        # The slow service holds its answer; the reactor is free meanwhile.
        assert sender.pending >= 1
        root = str(tmp_path)
        daemon = await start_daemon(reactor, root, poll_interval=0.05, use_inotify=False)
        try:
            health = await daemon.get("/api/health")
            assert health.code == 200
        finally:
            await daemon.stop()
        for _ in range(100):
            if sender.pending == 0:
                break
            await settle(reactor, 0.05)
        assert sender.pending == 0
        assert sender.failed == 2  # the slow one past its 1 s deadline, the refused one
        sender.send(note)
        for _ in range(100):
            if sender.pending == 0:
                break
            await settle(reactor, 0.05)
        failures = [line for line in logged if line.startswith("Notification to")]
        assert len(failures) == 2  # once per target, not once per send
    finally:
        globalLogPublisher.removeObserver(observer)
        sender.stopService()
        await slow_port.stopListening()


def test_urls_in_logs_keep_only_scheme_and_host() -> None:
    assert redact_url("slack://T000/B000/XXXXSECRET") == "slack://T000/…"
    assert redact_url("json://user:pass@hooks.example:8080/path?token=s") == "json://hooks.example:8080/…"
    assert redact_url("garbage") == "<notification URL>"


def test_the_history_file_is_cut_back_and_a_torn_line_is_skipped(tmp_path: Any) -> None:
    path = str(tmp_path / "n.jsonl")
    history = NotificationLog(path, keep=5, file_limit=400)
    for i in range(12):
        history.add({"kind": "run_stalled", "message": "x" * 20, "n": i})
    assert os.path.getsize(path) <= 400 + 200
    with open(path, "ab") as f:
        f.write(b'{"id": 99, "kind": "half')
    reloaded = NotificationLog(path, keep=5, file_limit=400)
    items, total = reloaded.page(0, 10)
    assert total == 5
    assert [item["n"] for item in items] == [11, 10, 9, 8, 7]
    assert reloaded.add({"kind": "k"})["id"] == 13


def test_options_build_the_rules_and_refuse_a_readable_config(tmp_path: Any) -> None:
    from twisted.python import usage

    from loopdash.server.tap import Options

    root = str(tmp_path)
    config_file = tmp_path / "notify.yml"
    config_file.write_text("urls:\n  - json://127.0.0.1:9/hook\n")
    config_file.chmod(0o600)
    options = Options()
    options.parseOptions(
        [
            "--root",
            root,
            "--budget",
            "$12.5",
            "--failure-streak",
            "4",
            "--notify-kinds",
            "run_stalled,story_completed",
            "--notify",
            "json://127.0.0.1:9/a",
            "--notify-config",
            str(config_file),
        ]
    )
    made = options.config()
    assert made.budget_usd == 12.5
    assert made.failure_streak == 4
    assert made.notify_kinds == frozenset({"run_stalled", "story_completed"})
    assert made.notify_urls == ("json://127.0.0.1:9/a",)
    assert made.notify_configs == (str(config_file),)
    everything = Options()
    everything.parseOptions(["--root", root, "--notify-kinds", "all"])
    assert everything.config().notify_kinds == frozenset(KINDS)

    config_file.chmod(0o644)
    with pytest.raises(usage.UsageError, match=r"accessible to other users \(mode 0644\).*chmod 600"):
        Options().parseOptions(["--root", root, "--notify-config", str(config_file)])
    with pytest.raises(usage.UsageError, match="--notify-kinds must be 'all' or"):
        Options().parseOptions(["--root", root, "--notify-kinds", "run_exploded"])
    with pytest.raises(usage.UsageError, match="--budget must be a positive amount"):
        Options().parseOptions(["--root", root, "--budget", "-3"])


def note(kind: str, n: int = 0, severity: str = "warning") -> dict[str, Any]:
    return {
        "kind": kind,
        "severity": severity,
        "title": f"demo: {kind}",
        "message": f"{kind} number {n}.",
        "project": "demo",
        "link": "http://127.0.0.1:8080/",
    }


def burst_of(failed: int) -> list[dict[str, Any]]:
    """``failed`` failed iterations and the streak they make, as the rules fire them."""
    return [note("failure_streak", severity="failure")] + [note("iteration_failed", i) for i in range(failed)]


async def until_idle(reactor: Any, sender: AppriseSender) -> None:
    for _ in range(200):
        if sender.pending == 0:
            return
        await settle(reactor, 0.05)
    raise AssertionError(f"still {sender.pending} deliveries pending")


def test_one_notification_is_sent_as_it_is() -> None:
    burst = Burst()
    burst.add(note("run_stalled"))
    assert digest(burst) == ("demo: run_stalled", "run_stalled number 0.\nhttp://127.0.0.1:8080/", "warning")


def test_a_burst_folds_per_kind_worst_first_and_stays_bounded() -> None:
    burst = Burst(max_kinds=3)
    for item in [note("run_finished", severity="success"), *burst_of(1000)]:
        burst.add(item)
    assert len(burst.latest) == 3  # a thousand notifications, three kinds held
    title, body, severity = digest(burst)
    assert (title, severity) == ("demo: 1002 notifications", "failure")
    assert body.splitlines() == [
        "failure_streak number 0.",
        "1000x iteration failed; the latest: iteration_failed number 999.",
        "run_finished number 0.",
        "http://127.0.0.1:8080/",
    ]
    for kind in ("run_stalled", "budget_warning"):  # kinds past max_kinds are only counted
        burst.add(note(kind))
    assert len(burst.latest) == 3
    assert (len(burst), burst.overflow) == (1004, 2)
    assert digest(burst)[1].splitlines()[-2] == "2 more of other kinds."


@pytest_twisted.ensureDeferred
async def test_a_burst_to_a_refusing_target_is_one_attempt_in_the_target_thread(tmp_path: Any) -> None:
    import threading

    from twisted.internet import reactor
    from twisted.logger import globalLogPublisher

    refused = listen(Webhook())
    number = refused.getHost().port
    await refused.stopListening()  # connection refused from now on
    sender = AppriseSender(reactor, [f"json://127.0.0.1:{number}/gone"])
    said: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith("loopdash.server.notify"):
            said.append(event.get("log_format", ""))

    globalLogPublisher.addObserver(observer)
    sender.startService()
    threads = {thread.ident for thread in threading.enumerate()}
    try:
        for item in burst_of(100):
            sender.send(item)
        assert (sender.pending, sender.notifications) == (1, 101)
        started: set[int | None] = set()
        for _ in range(200):
            started |= {thread.ident for thread in threading.enumerate()} - threads
            if sender.pending == 0:
                break
            await settle(reactor, 0.01)
        assert sender.pending == 0
        assert (sender.sent, sender.failed) == (0, 1)  # 101 notifications, one attempt
        assert started == set()  # delivered by the thread started with the service, not new ones
        assert [line for line in said if line.startswith("Notification to")] == [
            "Notification to {target} failed: {reason}"
        ]
    finally:
        globalLogPublisher.removeObserver(observer)
        sender.stopService()


@pytest_twisted.ensureDeferred
async def test_what_fires_during_a_delivery_leaves_as_the_next_message() -> None:
    from twisted.internet import reactor

    hook = Webhook(delay=0.5)
    port = listen(hook)
    sender = AppriseSender(reactor, [f"json://127.0.0.1:{port.getHost().port}/hook"])
    sender.startService()
    try:
        for item in burst_of(99):
            sender.send(item)
        await hook.arrived.addTimeout(10, reactor)
        for i in range(30):  # while the first message is in flight
            sender.send(note("iteration_failed", 100 + i))
        await until_idle(reactor, sender)
        assert [(posted["title"], posted["type"]) for posted in hook.received] == [
            ("demo: 100 notifications", "failure"),
            ("demo: 30 notifications", "warning"),
        ]
        assert hook.received[1]["message"] == (
            "30x iteration failed; the latest: iteration_failed number 129.\nhttp://127.0.0.1:8080/"
        )
        assert (sender.sent, sender.failed) == (2, 0)
    finally:
        sender.stopService()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_what_fires_before_the_sender_starts_leaves_when_it_does() -> None:
    from twisted.internet import reactor

    hook = Webhook()
    port = listen(hook)
    sender = AppriseSender(reactor, [f"json://127.0.0.1:{port.getHost().port}/hook"])
    try:
        sender.send(note("run_stalled"))
        sender.send(note("run_stopped"))
        await settle(reactor, 0.1)
        assert (hook.received, sender.pending) == ([], 1)
        sender.startService()
        await until_idle(reactor, sender)
        assert [posted["title"] for posted in hook.received] == ["demo: 2 notifications"]
    finally:
        sender.stopService()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_past_its_deadline_a_delivery_has_failed_and_the_target_waits_for_it() -> None:
    from twisted.internet import reactor

    hook = Webhook(delay=1.5)
    port = listen(hook)
    sender = AppriseSender(reactor, [f"json://127.0.0.1:{port.getHost().port}/hook"], timeout=0.3)
    sender.startService()
    try:
        sender.send(note("run_stalled"))
        await hook.arrived.addTimeout(10, reactor)
        await settle(reactor, 0.5)
        hook.delay = 0.0  # the next request is answered at once
        assert (sender.failed, sender.failing) == (1, {f"json://127.0.0.1:{port.getHost().port}/…"})
        sender.send(note("run_stopped"))
        sender.send(note("budget_warning"))
        await settle(reactor, 0.1)
        assert len(hook.received) == 1  # one delivery in flight per target, even past its deadline
        await until_idle(reactor, sender)
        assert [posted["title"] for posted in hook.received] == ["demo: run_stalled", "demo: 2 notifications"]
        assert (sender.sent, sender.failed, sender.failing) == (1, 1, set())
    finally:
        sender.stopService()
        await port.stopListening()


def test_a_burst_is_kept_in_one_write_and_a_removed_directory_comes_back(tmp_path: Any) -> None:
    path = str(tmp_path / "dashboard" / "n.jsonl")
    history = NotificationLog(path)
    items = history.add_all([note("iteration_failed", i) for i in range(3)])
    assert [item["id"] for item in items] == [1, 2, 3]
    os.remove(path)
    os.rmdir(os.path.dirname(path))
    history.add(note("run_stalled"))
    again = NotificationLog(path)
    assert [(item["id"], item["kind"]) for item in again.page(0, 10)[0]] == [(4, "run_stalled")]
    assert os.stat(path).st_mode & 0o777 == 0o600


BUILD_AND_COUNT = """
import gc, sys
from loopdash.server.tap import Options, makeService
options = Options()
options.parseOptions(["--root", sys.argv[1], "--notify", "json://127.0.0.1:9/hook", "--port", "0"])
if sys.argv[2] == "twistd":
    options.parent = {"pidfile": "", "nodaemon": True, "logfile": "-"}
makeService(options)
import apprise
print(gc.get_freeze_count(), any(o is apprise.Apprise for o in gc.get_objects()))
"""


@pytest.mark.parametrize(("under", "expected"), [("twistd", "frozen"), ("plain", "walked")])
def test_under_twistd_what_starting_made_is_left_out_of_full_collections(
    tmp_path: Any, under: str, expected: str
) -> None:
    # A full collection walked Apprise's 40,000 objects with the reactor waiting; a test
    # process (no twistd) builds many dashboards and must not keep them all, so it freezes nothing.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", BUILD_AND_COUNT, str(tmp_path), under],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    frozen, apprise_walked = int(out[0]), out[1] == "True"
    if expected == "frozen":
        assert frozen > 10_000 and not apprise_walked
    else:
        assert frozen == 0 and apprise_walked


def test_the_history_keeps_each_notification_as_its_json_line_and_stays_bounded(tmp_path: Any) -> None:
    """Kept compactly (the bytes served and written), never more than ``keep`` of them."""
    path = str(tmp_path / "n.jsonl")
    history = NotificationLog(path, keep=3)
    added = history.add_all([note("iteration_failed", i) for i in range(5)])
    lines, total = history.page_json(0, 10)
    assert total == 3 and len(history._items) == 3
    assert all(isinstance(line, bytes) for line in history._items)
    assert [json.loads(line) for line in lines] == added[:1:-1]
    assert history.page(1, 1) == ([added[3]], 3)
    with open(path, "rb") as f:
        assert f.read().splitlines()[-3:] == lines[::-1]  # the file's lines, as served
    assert history.page_json(2**62, 10) == ([], 3)

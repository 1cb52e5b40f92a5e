"""inotify as the watcher's way to hear of changes, and the poll as its safety net.

The daemons here poll every hour while inotify watches everything (and stale
after a day), so an event that arrives within seconds was delivered by inotify:
these tests fail if a watch is lost and only a poll could have found the change.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, append_progress, progress_entry, write_prd
from loopdash.loop.project import Project
from loopdash.server.stream import StreamHub
from loopdash.server.watcher import POLL_INTERVAL, WATCHED_POLL_INTERVAL, Watcher
from tests.conftest import DaemonFactory
from tests.support import RunningDaemon, open_stream, settle

#: Only inotify can deliver within a test's time.
INOTIFY_ONLY = {"watched_poll_interval": 3600.0, "stale_after": 86400.0, "keepalive": 600.0}


@pytest.fixture
def root(tmp_path: Any) -> str:
    """A loop at work: one run started five minutes ago."""
    path = os.path.join(str(tmp_path), "project")
    os.makedirs(path)
    write_prd(path, [dict(story, passes=False, notes="") for story in SAMPLE_STORIES])
    with open(os.path.join(path, "progress.txt"), "w") as f:
        f.write("# progress\n\n")
    run = RealRun(path, datetime.now(UTC) - timedelta(minutes=5))
    run.start()
    run.write_metrics(run.started_at)
    return path


def append_entry(root: str, title: str) -> None:
    append_progress(root, progress_entry("2026-11-28 10:20 AM", "US-001", title, "Complete", ["did it"]))


def watcher_of(daemon: RunningDaemon) -> Watcher:
    return daemon.dashboard.watcher


def next_poll_in(watcher: Watcher, reactor: Any) -> float:
    loop = watcher._loop
    assert loop is not None and loop.call is not None
    return float(loop.call.getTime() - reactor.seconds())


def expected_watches(root: str, run_id: str) -> set[str]:
    runs = os.path.join(root, ".claude-loop", "runs")
    return {root, os.path.join(root, ".claude-loop"), runs, os.path.join(runs, run_id)}


@pytest_twisted.ensureDeferred
async def test_while_inotify_watches_everything_the_poll_slows_to_a_safety_net(
    daemon_factory: DaemonFactory, root: str
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(root)
    watcher = watcher_of(daemon)

    assert watcher.watching_all
    assert watcher.period() == WATCHED_POLL_INTERVAL == 10.0
    assert POLL_INTERVAL < next_poll_in(watcher, reactor) <= WATCHED_POLL_INTERVAL


@pytest_twisted.ensureDeferred
async def test_the_watches_are_set_before_the_first_look_so_it_is_not_taken_twice(
    daemon_factory: DaemonFactory, root: str
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(root, **INOTIFY_ONLY)
    watcher = watcher_of(daemon)
    await settle(reactor, 0.3)  # a second look would have come within 10 ms
    (run_id,) = os.listdir(os.path.join(root, ".claude-loop", "runs"))

    assert set(watcher._watched) == expected_watches(root, run_id)  # the current run's too
    assert watcher.polls == 1
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    append_entry(root, "Written after the first look")
    message = await stream.next_of_type("log_appended", timeout=10.0)
    assert message.data["data"]["lines"][0] == "**Story**: US-001 - Written after the first look"
    stream.close()


@pytest_twisted.ensureDeferred
async def test_polling_alone_or_a_chosen_interval_keeps_its_period(
    daemon_factory: DaemonFactory, root: str
) -> None:
    polling = watcher_of(await daemon_factory(root, use_inotify=False))
    chosen = watcher_of(await daemon_factory(root, poll_interval=0.3))

    assert not polling.watching_all and polling.period() == POLL_INTERVAL
    assert chosen.watching_all and chosen.period() == 0.3


@pytest_twisted.ensureDeferred
async def test_a_short_staleness_window_keeps_the_safety_poll_short(
    daemon_factory: DaemonFactory, root: str
) -> None:
    watcher = watcher_of(await daemon_factory(root, stale_after=8.0))
    assert watcher.watching_all
    assert watcher.period() == 2.0  # a quarter of the window: a quiet loop is noticed in time


@pytest_twisted.ensureDeferred
async def test_deleting_the_current_run_directory_restarts_inotify(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **INOTIFY_ONLY)
    watcher = watcher_of(daemon)
    run_ids = os.listdir(os.path.join(root, ".claude-loop", "runs"))
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")

    # Twisted's notifier disconnects when any watched directory is deleted.
    shutil.rmtree(os.path.join(root, ".claude-loop", "runs", run_ids[0]))
    await stream.next_of_type("status_update")  # the run is gone: status changes
    append_entry(root, "After the run directory went")

    message = await stream.next_of_type("log_appended", timeout=10.0)
    assert message.data["data"]["lines"][0] == "**Story**: US-001 - After the run directory went"
    assert watcher.inotify_restarts == 1
    assert watcher.watching_all
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_root_replaced_by_a_rename_is_watched_again(daemon_factory: DaemonFactory, root: str) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(root, **INOTIFY_ONLY)
    watcher = watcher_of(daemon)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")

    os.rename(root, root + ".old")
    for _ in range(100):  # the move is reported; the poll that follows sees the root gone
        if not watcher.watching_all:
            break
        await settle(reactor, 0.05)
    # With the root gone nothing would report its return: polling is back to every second.
    assert not watcher.watching_all
    assert next_poll_in(watcher, reactor) <= POLL_INTERVAL
    shutil.copytree(root + ".old", root)
    for _ in range(100):
        if watcher.watching_all:
            break
        await settle(reactor, 0.05)
    assert watcher.watching_all
    append_entry(root, "In the new root")

    message = await stream.next_of_type("log_appended", timeout=10.0)
    assert message.data["data"]["lines"][0] == "**Story**: US-001 - In the new root"
    assert watcher.inotify_restarts == 1
    stream.close()


@pytest_twisted.ensureDeferred
async def test_each_new_run_is_watched_and_earlier_runs_are_let_go(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **INOTIFY_ONLY)
    watcher = watcher_of(daemon)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    started = datetime.now(UTC)

    for n in range(3):
        run = RealRun(root, started + timedelta(minutes=n + 1))
        run.start()  # the directory and its first metrics.json, at once
        run.write_metrics(run.started_at)
        message = await stream.next_of_type("run_started", timeout=10.0)
        assert message.data["data"]["run_id"] == run.run_id

    run.add_iteration("US-002", "Second story", datetime.now(UTC), 1000, "complete")
    run.write_metrics(datetime.now(UTC))
    message = await stream.next_of_type("iteration_added", timeout=10.0)
    assert message.data["data"]["run_id"] == run.run_id
    assert set(watcher._watched) == expected_watches(root, run.run_id)
    stream.close()


class SlowFirstLookProject(Project):
    """A project whose first snapshot takes 0.4 s of the clock (a cold big project)."""

    def __init__(self, root: str, clock: Clock) -> None:
        super().__init__(root)
        self.clock = clock
        self.looked = False

    def snapshot(self, log_budget: int | None = None) -> Any:
        if not self.looked:
            self.looked = True
            self.clock.advance(0.4)
        return super().snapshot(log_budget)


def test_the_keepalive_falls_on_a_safety_poll_so_an_idle_daemon_wakes_once_for_both(root: str) -> None:
    clock = Clock()
    hub = StreamHub(clock, keepalive=30.0)
    watcher = Watcher(
        SlowFirstLookProject(root, clock), hub, clock, stale_after=600.0, interval=10.0, use_inotify=False
    )
    watcher.startService()
    try:
        loop, keepalive = watcher._loop, hub._timer
        assert loop is not None and keepalive is not None
        assert loop.call is not None and keepalive.call is not None
        polls = [loop.call.getTime() + n * loop.interval for n in range(3)]
        assert keepalive.call.getTime() in polls
    finally:
        watcher.stopService()

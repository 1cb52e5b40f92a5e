"""Run states people can trust (issue 15): each transition on a fake clock.

The project's files are real (written with loopdash.cli.sample), their times
set by hand; ``now`` is a ``task.Clock`` that the tests move. The watcher is
driven poll by poll and its hub records what it publishes.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twisted.internet.task import Clock

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, append_progress, progress_entry, write_prd
from loopdash.derive.status import decide_liveness, execution_status
from loopdash.loop.project import Project
from loopdash.server.live import LiveProject
from loopdash.server.watcher import Watcher

START = datetime(2026, 1, 24, 12, 0, 0, tzinfo=UTC)
STALL, STALE = 300.0, 600.0


def stories(done: int) -> list[dict[str, Any]]:
    return [dict(s, passes=i < done, notes="") for i, s in enumerate(SAMPLE_STORIES)]


def touch(path: str, moment: float) -> None:
    os.utime(path, (moment, moment))


class Recorder:
    """Stands in for the stream hub: what was published, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def publish(self, kind: str, data: object) -> None:
        self.events.append((kind, data))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class Loop:
    """A project with one run, its clock, a LiveProject and a watcher over them."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root)
        write_prd(root, stories(done=2))
        self.run = RealRun(root, START)
        self.run.start()
        self.clock = Clock()
        self.clock.advance(START.timestamp())
        self.iterate("US-001")
        self.project = Project(root)
        self.live = LiveProject(self.project, self.clock, STALE, stall_after=STALL)
        self.hub = Recorder()
        self.watcher = Watcher(
            self.project, self.hub, self.clock, STALE, use_inotify=False, live=self.live, stall_after=STALL
        )  # type: ignore[arg-type]
        self.watcher.poll()  # the baseline

    @property
    def now(self) -> float:
        return float(self.clock.seconds())

    def iterate(self, story_id: str) -> None:
        """The loop records an iteration now: metrics.json and a progress entry."""
        moment = datetime.fromtimestamp(self.clock.seconds(), tz=UTC)
        self.run.add_iteration(story_id, "t", moment, 60000, "complete")
        self.run.write_metrics(moment)
        path = os.path.join(self.run.directory, "metrics.json")
        append_progress(self.root, progress_entry(moment.isoformat(), story_id, "t", "Complete", ["x"]))
        touch(path, self.clock.seconds())
        touch(os.path.join(self.root, "progress.txt"), self.clock.seconds())

    def wait(self, seconds: float) -> dict[str, Any]:
        self.clock.advance(seconds)
        self.watcher.poll()
        return self.live.status()


@pytest.fixture
def loop(tmp_path: Any) -> Loop:
    return Loop(os.path.join(str(tmp_path), "project"))


def test_running_then_stalled_then_running_again(loop: Loop) -> None:
    status = loop.wait(60)
    assert (status["state"], status["is_running"], status["quiet_for"]) == ("running", True, 60)
    status = loop.wait(STALL)  # 360 s without a write
    assert (status["state"], status["is_running"], status["quiet_for"]) == ("stalled", True, 360)
    assert loop.hub.kinds() == ["run_stalled", "status_update"]
    kind, data = loop.hub.events[0]
    assert data["run_id"] == loop.run.run_id and data["state"] == "stalled" and data["quiet_for"] == 360
    loop.hub.events.clear()
    loop.iterate("US-002")
    status = loop.wait(1)
    assert (status["state"], status["quiet_for"]) == ("running", 1)
    assert "run_resumed" in loop.hub.kinds()
    assert loop.hub.kinds().index("run_resumed") < loop.hub.kinds().index("status_update")


def test_a_run_that_stays_stalled_is_not_announced_as_resumed(loop: Loop) -> None:
    loop.wait(STALL + 1)
    assert loop.hub.kinds() == ["run_stalled", "status_update"]
    loop.hub.events.clear()
    for _ in range(3):  # polls while it stays quiet, still stalled
        assert loop.wait(10)["state"] == "stalled"
    assert "run_resumed" not in loop.hub.kinds() and "run_stalled" not in loop.hub.kinds()


def test_quiet_past_the_stale_window_is_stopped_with_frozen_elapsed_and_no_estimate(loop: Loop) -> None:
    loop.iterate("US-002")
    loop.wait(STALL + 1)
    loop.hub.events.clear()
    status = loop.wait(STALE)  # 901 s quiet
    assert (status["state"], status["is_running"]) == ("stopped", False)
    assert status["estimated_remaining"] is None
    assert status["last_activity"] == "2026-01-24T12:00:00Z"
    assert loop.hub.kinds() == ["run_stopped", "status_update"]
    frozen = status["elapsed_time"]
    later = loop.wait(3600)
    assert later["elapsed_time"] == frozen  # a dead run's clock does not go on
    assert later["quiet_for"] == status["quiet_for"] + 3600
    assert later["state"] == "stopped" and "run_stopped" not in loop.hub.kinds()[2:]


def test_running_straight_to_stopped_when_the_stall_window_is_not_shorter(tmp_path: Any) -> None:
    base = dict(started=0.0, finished=False, every_story_passes=False, stale_after=600.0)
    assert decide_liveness(evidence=[100.0], now=700.0, stall_after=600.0, **base).state == "running"
    assert decide_liveness(evidence=[100.0], now=701.0, stall_after=600.0, **base).state == "stopped"
    assert decide_liveness(evidence=[100.0], now=701.0, stall_after=900.0, **base).state == "stopped"


def test_a_summary_finishes_the_run_once(loop: Loop) -> None:
    loop.wait(30)
    loop.run.write_summary(datetime.fromtimestamp(loop.now, tz=UTC))
    status = loop.wait(1)
    assert (status["state"], status["is_running"], status["estimated_remaining"]) == ("finished", False, None)
    assert loop.hub.kinds().count("run_finished") == 1
    loop.wait(STALE * 2)
    assert loop.hub.kinds().count("run_finished") == 1
    assert "run_stopped" not in loop.hub.kinds() and "run_stalled" not in loop.hub.kinds()


def test_every_story_passing_and_quiet_is_finished_not_stalled(loop: Loop) -> None:
    write_prd(loop.root, stories(done=len(SAMPLE_STORIES)))
    touch(os.path.join(loop.root, "prd.json"), loop.now)
    status = loop.wait(10)
    assert status["state"] == "running" and status["estimated_remaining"] == 0  # wrapping up
    loop.hub.events.clear()
    status = loop.wait(STALL)
    assert (status["state"], status["is_running"], status["estimated_remaining"]) == ("finished", False, None)
    assert loop.hub.kinds() == ["run_finished", "status_update"]
    loop.run.write_summary(datetime.fromtimestamp(loop.now, tz=UTC))
    loop.wait(1)
    assert loop.hub.kinds().count("run_finished") == 1  # the summary does not finish it twice


def test_an_old_run_does_not_come_back_to_life_when_the_plan_is_edited(tmp_path: Any) -> None:
    # The newest run started 310 days ago and has no summary; someone edits prd.json now.
    root = os.path.join(str(tmp_path), "project")
    os.makedirs(root)
    started = datetime(2026, 1, 20, 9, 0, 0, tzinfo=UTC)
    run = RealRun(root, started)
    run.start()
    run.add_iteration("US-001", "t", started + timedelta(minutes=5), 300000, "complete")
    run.write_metrics(started + timedelta(minutes=5))
    touch(os.path.join(run.directory, "metrics.json"), (started + timedelta(minutes=5)).timestamp())
    append_progress(root, progress_entry("2026-01-20 09:05", "US-001", "t", "Complete", ["x"]))
    touch(os.path.join(root, "progress.txt"), (started + timedelta(minutes=5)).timestamp())
    now = started.timestamp() + 310 * 86400
    write_prd(root, stories(done=1))
    touch(os.path.join(root, "prd.json"), now - 5)
    status = execution_status(Project(root).snapshot(), now, STALE, STALL)
    assert (status["state"], status["is_running"]) == ("stopped", False)
    assert status["elapsed_time"] == 300  # the run's life, not 310 days
    assert status["estimated_remaining"] is None
    assert status["last_activity"] == "2026-01-20T09:05:00Z"
    assert status["quiet_for"] == 310 * 86400 - 300
    # The plan's edit is still the project's last update, as the contract says.
    assert status["last_update"] == datetime.fromtimestamp(now - 5, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_no_run_is_idle(tmp_path: Any) -> None:
    root = str(tmp_path)
    write_prd(root, stories(done=1))
    touch(os.path.join(root, "prd.json"), START.timestamp())
    status = execution_status(Project(root).snapshot(), START.timestamp() + 42, STALE, STALL)
    assert (status["state"], status["is_running"], status["quiet_for"]) == ("idle", False, 42)


def test_a_file_time_from_the_future_counts_from_when_it_was_first_seen(loop: Loop) -> None:
    # touch -d '+30 minutes' progress.txt, with a 60 s staleness window.
    live = LiveProject(loop.project, loop.clock, 60.0, stall_after=30.0)
    loop.clock.advance(3600)
    ahead = loop.now + 1800
    touch(os.path.join(loop.root, "progress.txt"), ahead)
    status = live.status()
    assert status["last_update"] <= datetime.fromtimestamp(loop.now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (status["state"], status["quiet_for"]) == ("running", 0)
    loop.clock.advance(61)
    status = live.status()
    assert (status["state"], status["is_running"], status["quiet_for"]) == ("stopped", False, 61)
    # Still stopped when the clock passes the file's time: no false resurrection.
    loop.clock.advance(1800)
    assert live.status()["state"] == "stopped"


def test_history_rows_and_run_details_carry_the_same_state_as_the_status(loop: Loop) -> None:
    import json

    loop.wait(STALL + 5)
    status = loop.live.status()
    row = json.loads(loop.live.history_body(0, 10))["runs"][0]
    detail = json.loads(loop.live.run_body(loop.run.run_id))
    listed = json.loads(loop.live.runs_body())[0]
    assert status["state"] == row["state"] == detail["state"] == listed["state"] == "stalled"
    assert row["last_activity"] == detail["last_activity"] == status["last_activity"]
    assert detail["quiet_for"] == status["quiet_for"] == STALL + 5
    loop.wait(STALE)
    assert json.loads(loop.live.runs_body())[0]["state"] == "stopped"
    assert json.loads(loop.live.run_body(loop.run.run_id))["state"] == "stopped"


def test_an_older_run_without_a_summary_is_stopped_in_history(loop: Loop) -> None:
    import json

    newer = RealRun(loop.root, START + timedelta(hours=1))
    newer.start()
    loop.clock.advance(3600 + 10)  # the newer run started 10 s ago and has written nothing yet
    rows = json.loads(loop.live.history_body(0, 10))["runs"]
    assert [(r["run_id"], r["state"]) for r in rows] == [
        (newer.run_id, "running"),
        (loop.run.run_id, "stopped"),
    ]


def answered_states(loop: Loop) -> dict[str, str]:
    """The run's state as each kept answer says it: status, history, run list, run detail."""
    import json

    return {
        "status": json.loads(loop.live.status_body())["state"],
        "history": json.loads(loop.live.history_body(0, 10))["runs"][0]["state"],
        "runs": json.loads(loop.live.runs_body())[0]["state"],
        "run": json.loads(loop.live.run_body(loop.run.run_id))["state"],
    }


def test_answers_read_in_the_second_the_run_stops_say_stopped(loop: Loop) -> None:
    # CI at 9344074: the page read history as "Running" at second S, the watcher
    # published run_stopped later in S, and the page's re-read in S got the answer
    # kept for S: the runs table said Running under a card that said Stopped.

    loop.clock.advance(1.1 - loop.now % 1)
    loop.iterate("US-002")  # at a whole second and a tenth
    loop.wait(0)
    loop.clock.advance(STALE - 0.1)  # at a whole second, a tenth before the run goes stale
    assert loop.live.status()["state"] == "stalled"
    before = answered_states(loop)
    assert before == dict.fromkeys(before, "stalled")
    loop.hub.events.clear()
    loop.wait(0.25)  # same whole second, past the stale window: the watcher says stopped
    assert loop.hub.kinds() == ["run_stopped", "status_update"]
    after = answered_states(loop)
    assert after == dict.fromkeys(after, "stopped")


class EverythingWatched(Watcher):
    """A watcher as on a multi-project daemon whose inotify sees every directory that matters."""

    def _keep_watching(self) -> bool:
        return True


class TimedRecorder(Recorder):
    """Also notes the clock's time of each event."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[tuple[str, float]] = []

    def publish(self, kind: str, data: object) -> None:
        super().publish(kind, data)
        self.times.append((kind, float(self.clock.seconds())))


def test_a_live_run_among_many_projects_is_polled_when_its_quiet_time_passes_a_threshold(loop: Loop) -> None:
    # bench/projects at 12:00 on 2026-12-03: 100 live projects polled every 10 s cost
    # 0.87 % of a core at rest. Between writes (which inotify reports) only the clock
    # moves a live run's state, so the watcher wakes when a threshold falls due.
    hub = TimedRecorder(loop.clock)
    watcher = EverythingWatched(
        loop.project,
        hub,
        loop.clock,
        STALE,
        use_inotify=False,
        live=loop.live,
        stall_after=STALL,
        ended_interval=60.0,
    )  # type: ignore[arg-type]
    polls: list[float] = []
    original = watcher.poll

    def counted() -> None:
        polls.append(float(loop.clock.seconds()))
        original()

    watcher.poll = counted  # type: ignore[method-assign]
    last_write = loop.now
    watcher.startService()
    try:
        assert watcher.period() == 60.0  # quiet 0 s: the stall is 300 s away
        while loop.now < last_write + STALE + 5:
            loop.clock.advance(0.5)
        kinds = {kind: moment - last_write for kind, moment in hub.times if kind.startswith("run_")}
        # Each transition published within a second and a half of its threshold, never before it.
        assert set(kinds) == {"run_stalled", "run_stopped"}
        assert STALL < kinds["run_stalled"] <= STALL + 1.5
        assert STALE < kinds["run_stopped"] <= STALE + 1.5
        # Polls: one a minute, and one more the second after each threshold (quiet_for
        # is whole seconds); a watched interval of 10 s polled 61 times here.
        assert [p - last_write for p in polls] == [
            0,
            60,
            120,
            180,
            240,
            300,
            301,
            360,
            420,
            480,
            540,
            600,
            601,
        ]
        assert watcher.period() == 60.0  # stopped: no live run, the rest interval
    finally:
        watcher.stopService()

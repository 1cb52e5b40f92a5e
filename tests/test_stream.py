"""The live stream over a real socket: /api/stream with a real SSE reader (treq, unbuffered)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, append_progress, progress_entry, write_prd
from tests.conftest import DaemonFactory
from tests.support import RunningDaemon, open_stream, settle


@dataclass
class LiveProject:
    """A loop at work: a run started five minutes ago, every story pending."""

    root: str
    run: RealRun
    stories: list[dict[str, Any]]

    def pass_story(self, index: int) -> None:
        self.stories[index].update(passes=True, notes="Implemented in commit abc1234")
        write_prd(self.root, self.stories)

    def add_iteration(self, index: int, status: str = "complete") -> None:
        story = self.stories[index]
        now = datetime.now(UTC)
        self.run.add_iteration(story["id"], story["title"], now, 90000, status)
        self.run.write_metrics(now)

    def append_log(self, story_index: int) -> None:
        story = self.stories[story_index]
        append_progress(
            self.root,
            progress_entry("2026-11-28 10:20 AM", story["id"], story["title"], "Complete", ["did it"]),
        )

    def start_new_run(self) -> RealRun:
        run = RealRun(self.root, self.run.started_at + timedelta(minutes=30))
        run.start()
        run.write_metrics(run.started_at)
        self.run = run
        return run


@pytest.fixture
def live(tmp_path: Any) -> LiveProject:
    root = os.path.join(str(tmp_path), "live")
    os.makedirs(root)
    stories = [dict(s, passes=False, notes="") for s in SAMPLE_STORIES]
    write_prd(root, stories)
    with open(os.path.join(root, "progress.txt"), "w") as f:
        f.write("# progress\n\n")
    run = RealRun(root, datetime.now(UTC) - timedelta(minutes=5))
    run.start()
    run.write_metrics(run.started_at)
    return LiveProject(root, run, stories)


FAST = {"poll_interval": 0.05, "keepalive": 60.0}


@pytest_twisted.ensureDeferred
async def test_stream_starts_with_retry_connected_then_the_current_status(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, **FAST)
    stream = await open_stream(daemon)
    assert stream.response.code == 200
    headers = stream.response.headers
    assert headers.getRawHeaders("content-type")[0].startswith("text/event-stream")
    assert headers.getRawHeaders("cache-control") == ["no-cache"]
    assert headers.getRawHeaders("x-accel-buffering") == ["no"]
    assert headers.getRawHeaders("referrer-policy") == ["no-referrer"]

    retry = await stream.next()
    assert retry.retry == 3000 and retry.data is None
    connected = await stream.next()
    assert connected.type == "connected" and connected.id is not None
    status = await stream.next()
    assert status.type == "status_update" and status.id is not None
    answer = (await daemon.get("/api/status")).json()
    for field in (
        "is_running",
        "run_id",
        "progress_pct",
        "completed_stories",
        "total_stories",
        "cost_so_far",
    ):
        assert status.data["data"][field] == answer[field]
    assert status.data["data"]["is_running"] is True
    assert b"event:" not in b"".join(m.raw for m in stream.messages)
    stream.close()


@pytest_twisted.ensureDeferred
async def test_each_kind_of_change_arrives_as_its_typed_event(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")

    live.pass_story(0)
    story = await stream.next_of_type("story_updated")
    assert story.data["data"]["id"] == "US-001"
    assert story.data["data"]["status"] == "completed"
    assert story.data["data"]["notes"] == "Implemented in commit abc1234"
    status = await stream.next_of_type("status_update")
    assert status.data["data"]["completed_stories"] == 1

    live.add_iteration(0)
    iteration = await stream.next_of_type("iteration_added")
    data = iteration.data["data"]
    assert data["story_id"] == "US-001" and data["status"] == "success"
    assert data["run_id"] == live.run.run_id
    assert data["elapsed_ms"] == 90000 and data["story_title"] == SAMPLE_STORIES[0]["title"]
    assert isinstance(data["agents_used"], list)

    live.append_log(0)
    log = await stream.next_of_type("log_appended")
    assert log.data["data"]["index"] == 0
    assert log.data["data"]["lines"][0] == f"**Story**: US-001 - {SAMPLE_STORIES[0]['title']}"
    logs = (await daemon.get("/api/logs")).json()
    assert logs["logs"][0] == {k: v for k, v in log.data["data"].items() if k != "index"}

    new_run = live.start_new_run()
    started = await stream.next_of_type("run_started")
    assert started.data["data"]["run_id"] == new_run.run_id

    new_run.add_iteration("US-002", "t", new_run.started_at + timedelta(minutes=2), 120000)
    new_run.write_summary(new_run.started_at + timedelta(minutes=3))
    finished = await stream.next_of_type("run_finished")
    assert finished.data["data"]["run_id"] == new_run.run_id
    assert finished.data["data"]["total_iterations"] == 1
    seqs = [_seq(m.id) for m in stream.messages if m.id]
    assert seqs == sorted(seqs) and seqs[-1] > seqs[0]
    stream.close()


@pytest_twisted.ensureDeferred
async def test_polling_alone_delivers_changes_without_inotify(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, use_inotify=False, **FAST)
    assert daemon.dashboard.watcher._notifier is None
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    live.pass_story(0)
    story = await stream.next_of_type("story_updated")
    assert story.data["data"]["id"] == "US-001"
    stream.close()


@pytest_twisted.ensureDeferred
async def test_nothing_is_sent_while_nothing_changes(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(live.root, **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    polls_before = daemon.dashboard.watcher.polls
    # Several polls (however long a loaded machine takes for them): the status's
    # elapsed times moved, yet no event was sent.
    await _until(lambda: daemon.dashboard.watcher.polls >= polls_before + 4, seconds=20)
    await settle(reactor, 0.1)
    assert stream.pending_events() == []
    stream.close()


@pytest_twisted.ensureDeferred
async def test_keepalive_comments_arrive_on_the_configured_interval(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, poll_interval=0.05, keepalive=0.1)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    first = await stream.next(timeout=3, comments=True)
    second = await stream.next(timeout=3, comments=True)
    assert first.comment == "keepalive" and second.comment == "keepalive"
    assert first.raw == b": keepalive"
    stream.close()


async def _until(predicate: Any, seconds: float = 5.0) -> None:
    from twisted.internet import reactor

    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await settle(reactor, 0.02)
    raise AssertionError("condition not reached in time")


def _seq(event_id: str | None) -> int:
    assert event_id is not None
    return int(event_id.rsplit("-", 1)[1])


@pytest_twisted.ensureDeferred
async def test_reconnecting_with_last_event_id_replays_what_was_missed(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, **FAST)
    hub = daemon.dashboard.hub
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    live.pass_story(0)
    await stream.next_of_type("story_updated")
    last_seen = (await stream.next_of_type("status_update")).id
    stream.close()

    # With nobody listening, the loop moves on: a story passes, a log entry is added.
    published = hub.published
    live.pass_story(1)
    live.append_log(1)
    await _until(lambda: hub.published >= published + 3)
    missed = [encoded for seq, encoded in hub._replay if seq > _seq(last_seen)]
    assert missed

    headers = dict(daemon.auth())
    headers[b"Last-Event-ID"] = [str(last_seen).encode()]
    again = await open_stream(daemon, headers=headers)
    assert (await again.next()).retry == 3000
    assert (await again.next()).type == "connected"
    replayed = [await again.next() for _ in missed]
    assert [m.raw + b"\n\n" for m in replayed] == missed
    kinds = [m.type for m in replayed]
    assert "story_updated" in kinds and "log_appended" in kinds
    assert replayed[kinds.index("story_updated")].data["data"]["id"] == "US-002"
    assert not any(m.data.get("gap") for m in replayed)
    again.close()


@pytest_twisted.ensureDeferred
async def test_an_unknown_or_foreign_last_event_id_gets_a_status_marked_as_a_gap(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, **FAST)
    headers = dict(daemon.auth())
    headers[b"Last-Event-ID"] = [b"deadbeef-12"]  # from another daemon process
    stream = await open_stream(daemon, headers=headers)
    assert (await stream.next()).retry == 3000
    assert (await stream.next()).type == "connected"
    status = await stream.next()
    assert status.type == "status_update" and status.data["gap"] is True
    stream.close()

    # An id older than the replay buffer reaches back is a gap too.
    hub = daemon.dashboard.hub
    old = f"{hub.boot}-0"
    for n in range(hub._replay.maxlen + 5):  # type: ignore[operator]
        hub.publish("story_updated", {"n": n})
    stream = await open_stream(daemon, query=f"?last_event_id={old}")
    assert (await stream.next()).retry == 3000
    assert (await stream.next()).type == "connected"
    status = await stream.next()
    assert status.type == "status_update" and status.data["gap"] is True
    stream.close()


@pytest_twisted.ensureDeferred
async def test_stream_without_credentials_is_401_json(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, **FAST)
    answer = await daemon.get("/api/stream", authenticated=False)
    assert answer.code == 401
    assert answer.json() == {"error": "Missing or invalid Authorization header"}
    answer = await daemon.get("/api/stream", token="wrong")
    assert answer.code == 403
    assert answer.json() == {"error": "Invalid authentication token"}


@pytest_twisted.ensureDeferred
async def test_a_ticket_opens_one_stream_once_within_its_lifetime(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, **FAST)
    clock = Clock()
    daemon.dashboard.api.tickets.clock = clock

    refused = await daemon.request("POST", "/api/stream/ticket", authenticated=False)
    assert refused.code == 401
    issued = await daemon.request("POST", "/api/stream/ticket")
    assert issued.code == 200
    body = issued.json()
    assert body["expires_in"] == 30 and len(body["ticket"]) >= 32

    stream = await open_stream(daemon, query=f"?ticket={body['ticket']}", headers={})
    assert stream.response.code == 200
    assert (await stream.next_of_type("connected")).type == "connected"
    stream.close()

    second = await daemon.get(f"/api/stream?ticket={body['ticket']}", authenticated=False)
    assert second.code == 403
    assert second.json() == {"error": "Invalid or expired stream ticket"}

    late = (await daemon.request("POST", "/api/stream/ticket")).json()["ticket"]
    clock.advance(31)
    expired = await daemon.get(f"/api/stream?ticket={late}", authenticated=False)
    assert expired.code == 403


class _Stalled(Protocol):
    """A stream client that reads the response head and then stops reading."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"status_update" in self.received:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


async def _raw_stream(daemon: RunningDaemon, protocol: Protocol) -> Any:
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    port = int(daemon.url.rsplit(":", 1)[1])
    connected = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    connected.transport.write(
        b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + daemon.token.encode()
        + b"\r\n\r\n"
    )
    return connected


def _buffered(transport: Any) -> int:
    """Bytes a Twisted TCP transport holds, not yet written to the socket."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_is_coalesced_not_buffered_then_dropped(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(live.root, poll_interval=0.05, keepalive=0.2)
    hub = daemon.dashboard.hub
    hub.stuck_after = 1.0
    client = _Stalled()
    await _raw_stream(daemon, client)
    for _ in range(100):
        if hub.subscribers and b"status_update" in client.received:
            break
        await settle(reactor, 0.02)
    (subscriber,) = hub.subscribers
    transport = subscriber.request.channel.transport

    # 40 MB of events at a client that reads nothing.
    big = {"padding": "x" * 100_000}
    for n in range(400):
        hub.publish("story_updated", dict(big, n=n))
        if n % 20 == 0:
            await settle(reactor, 0)
    assert subscriber.paused_since is not None
    assert subscriber.missed is True
    # The daemon holds at most a few event sizes for it, not 40 MB.
    assert _buffered(transport) < 2_000_000
    # The loop goes on producing; the client never reads: once its buffers are
    # full for longer than stuck_after, the daemon lets it go.
    for n in range(100):
        if subscriber not in hub.subscribers:
            break
        hub.publish("story_updated", dict(big, n=n))
        await settle(reactor, 0.05)
    assert subscriber not in hub.subscribers
    assert subscriber.closed
    client.transport.loseConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_a_client_paused_past_the_bound_resumes_with_the_latest_status_marked_as_a_gap(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    from loopdash.server.stream import PAUSED_QUEUE_BYTES

    daemon = await daemon_factory(live.root, **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    (subscriber,) = daemon.dashboard.hub.subscribers
    subscriber.pauseProducing()  # what the transport does when the client's buffer is full
    for n in range(PAUSED_QUEUE_BYTES // 10_000 + 2):  # more than the paused queue holds
        daemon.dashboard.hub.publish("story_updated", {"id": "US-001", "padding": "x" * 10_000, "n": n})
    live.pass_story(2)
    await _until(lambda: daemon.dashboard.hub.published >= PAUSED_QUEUE_BYTES // 10_000 + 4)
    assert stream.pending_events() == []
    assert subscriber.queued == [] and subscriber.missed
    subscriber.resumeProducing()
    status = await stream.next()
    assert status.type == "status_update" and status.data["gap"] is True
    assert status.data["data"]["completed_stories"] == 1
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_burst_while_briefly_paused_arrives_whole_and_in_order(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, **FAST)
    hub = daemon.dashboard.hub
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    # 200 events of about 1 KB in one reactor turn: more than the transport's
    # 64 KB buffer, so it pauses the stream for a moment. Nothing is lost.
    for n in range(200):
        hub.publish("story_updated", {"id": f"US-{n:03d}", "padding": "x" * 900})
    received = [await stream.next() for _ in range(200)]
    assert [m.data["data"]["id"] for m in received] == [f"US-{n:03d}" for n in range(200)]
    assert not any(m.data.get("gap") for m in received)
    stream.close()


class _OpenThenClose(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.ready: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"connected" in self.received and not self.ready.called:
            self.ready.callback(None)


@pytest_twisted.ensureDeferred
async def test_200_connect_disconnect_cycles_leave_no_subscriber_behind(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(live.root, **FAST)
    hub = daemon.dashboard.hub
    for _ in range(200):
        client = _OpenThenClose()
        await _raw_stream(daemon, client)
        await client.ready.addTimeout(5, reactor)
        client.transport.loseConnection()  # type: ignore[union-attr]
    for _ in range(200):
        if not hub.subscribers:
            break
        await settle(reactor, 0.02)
    assert hub.subscribers == set()


@pytest_twisted.ensureDeferred
async def test_stopping_the_service_ends_every_stream_cleanly(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(live.root, **FAST)
    streams = [await open_stream(daemon) for _ in range(3)]
    for stream in streams:
        await stream.next_of_type("status_update")
    gone = _OpenThenClose()  # one client already gone when the daemon stops
    await _raw_stream(daemon, gone)
    await gone.ready.addTimeout(5, reactor)
    gone.transport.loseConnection()  # type: ignore[union-attr]

    await daemon.stop()
    for stream in streams:
        await stream.ended.addTimeout(5, reactor)
        assert stream.clean_end is True
    assert daemon.dashboard.hub.subscribers == set()


@pytest_twisted.ensureDeferred
async def test_a_loop_going_quiet_is_announced_without_any_file_changing(
    daemon_factory: DaemonFactory, live: LiveProject
) -> None:
    daemon = await daemon_factory(live.root, poll_interval=0.05, keepalive=60.0, stale_after=2.0)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    # Activity now (the fixture's may be over 2 s old on a loaded machine): running.
    live.add_iteration(0)
    running = await stream.next_of_type("status_update", timeout=10)
    assert running.data["data"]["is_running"] is True
    # metrics.json is rewritten in place: a poll may catch it half-written, and the
    # next one whole, so more than one running status may come (seen once in CI).
    # Nothing is written after: the staleness window alone turns the run into a
    # stopped one, within the timeout, and nothing else comes after.
    quiet = await stream.next_status_where(lambda s: s.data["data"]["is_running"] is False, timeout=15)
    assert quiet.data["data"]["is_running"] is False
    assert stream.pending_events() == []
    stream.close()

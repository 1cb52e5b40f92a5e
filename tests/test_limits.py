"""Issue 16: bounded time and memory whatever the files and the clients do.

Each fault of the issue at a size that runs in a second or two, asserting the
structure of what is sent and held (one reset instead of K events, the
truncated flag, bytes under the budget), never a timing.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.protocol import Protocol

from loopdash.cli.sample import RealRun, progress_entry, write_in_place, write_prd
from loopdash.derive.changes import MAX_ITEM_EVENTS
from loopdash.loop.filecache import INLINE_PARSE_BYTES
from loopdash.loop.parsing import MAX_JSON_DEPTH, ParseError, load_json_object
from loopdash.server.stream import PAUSED_QUEUE_BYTES, REPLAY_BYTES, REPLAY_EVENTS
from tests.conftest import DaemonFactory
from tests.support import RunningDaemon, open_stream, settle

FAST = {"poll_interval": 0.05, "keepalive": 60.0}


def _story(n: int, passes: bool) -> dict[str, Any]:
    return {"id": f"US-{n:04d}", "title": f"Story {n}", "priority": n % 5 + 1, "passes": passes}


def _project(root: str, stories: int = 3) -> RealRun:
    os.makedirs(root, exist_ok=True)
    write_prd(root, [_story(n, False) for n in range(stories)])
    with open(os.path.join(root, "progress.txt"), "w") as f:
        f.write(
            "# progress\n\n" + progress_entry("2026-12-01 10:00", "US-0000", "Story 0", "Complete", ["ok"])
        )
    now = datetime.now(UTC)
    run = RealRun(root, now - timedelta(minutes=5))
    run.start()
    run.add_iteration("US-0000", "Story 0", now - timedelta(minutes=1), 60000)
    run.write_metrics(now)
    return run


def _entry(n: int, size: int) -> bytes:
    head = f"### Iteration: 2026-12-02 11:{n:02d}\n".encode()
    return head + b"- " + b"z" * (size - len(head) - 10) + b"\n---\n\n\n"


async def _until(predicate: Any, seconds: float = 5.0) -> None:
    from twisted.internet import reactor

    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await settle(reactor, 0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def root(tmp_path: Any) -> str:
    path = os.path.join(str(tmp_path), "project")
    _project(path)
    return path


# -- 1. a large change: one reset and a gap, and no status derivation per event ------------


@pytest_twisted.ensureDeferred
async def test_more_than_k_stories_changing_is_one_stories_reset_and_a_gap_status(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    path = os.path.join(str(tmp_path), "big")
    count = MAX_ITEM_EVENTS + 50
    _project(path, stories=count)
    daemon = await daemon_factory(path, **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    write_prd(path, [_story(n, True) for n in range(count)])
    reset = await stream.next_of_type("stories_reset")
    status = await stream.next()
    assert reset.data["data"] == {"changed": count, "total": count, "completed": count}
    assert status.type == "status_update" and status.data["gap"] is True
    assert status.data["data"]["completed_stories"] == count
    kinds = [m.type for m in stream.messages if m.type is not None]
    assert kinds.count("story_updated") == 0 and kinds.count("stories_reset") == 1
    stream.close()


@pytest_twisted.ensureDeferred
async def test_k_stories_changing_are_k_story_updated_events(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    path = os.path.join(str(tmp_path), "k")
    _project(path, stories=MAX_ITEM_EVENTS)
    daemon = await daemon_factory(path, **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    write_prd(path, [_story(n, True) for n in range(MAX_ITEM_EVENTS)])
    # The plan is rewritten in place: a poll may catch it half-written, which is
    # activity (a status_update, the last good plan kept) but no story change.
    status = await stream.next_status_where(
        lambda s: s.data["data"]["completed_stories"] == MAX_ITEM_EVENTS,
        meanwhile=lambda s: "gap" not in s.data,
    )
    assert "gap" not in status.data
    kinds = [m.type for m in stream.messages if m.type is not None]
    assert kinds.count("story_updated") == MAX_ITEM_EVENTS and "stories_reset" not in kinds
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_large_plan_rewritten_is_parsed_in_the_worker_while_the_reactor_answers(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    path = os.path.join(str(tmp_path), "large")
    count = 4000
    _project(path, stories=count)
    assert os.path.getsize(os.path.join(path, "prd.json")) > INLINE_PARSE_BYTES
    daemon = await daemon_factory(path, **FAST)
    parses = daemon.dashboard.watcher.parses
    assert parses is not None and parses.jobs == 0  # the first reading was parsed at start
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    # The parse worker is kept busy until the test says so: a parse handed off
    # waits, so anything answered meanwhile was answered without it.
    gate = threading.Event()
    parses.pool.callInThread(gate.wait, 30)
    thresholds = gc.get_threshold()
    try:
        write_prd(path, [_story(n, True) for n in range(count)])
        await _until(lambda: parses.jobs == 1)
        await settle(daemon.dashboard.watcher.clock, 0.2)  # polls go on: still one job
        assert parses.jobs == 1
        assert (await daemon.get("/api/health")).code == 200
        # The last good reading, not a blank plan, while the new one is parsed.
        assert (await daemon.get("/api/stories")).json()["completed"] == 0
        assert (await daemon.get("/api/status")).json()["total_stories"] == count
        assert "stories_reset" not in [m.type for m in stream.messages]
    finally:
        gate.set()
    reset = await stream.next_of_type("stories_reset")
    status = await stream.next()
    assert reset.data["data"] == {"changed": count, "total": count, "completed": count}
    assert status.type == "status_update" and status.data["gap"] is True
    assert (await daemon.get("/api/stories")).json()["completed"] == count
    # Full collections were held off for the parse only: the threshold is back.
    assert gc.isenabled() and gc.get_threshold() == thresholds
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_stream_missing_a_burst_costs_one_status_derivation_on_resume(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    hub = daemon.dashboard.hub
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    derivations = []
    derive = hub.current_status
    hub.current_status = lambda: derivations.append(1) or derive()
    (subscriber,) = hub.subscribers
    subscriber.pauseProducing()
    for n in range(2000):  # far past the paused queue
        hub.publish("story_updated", {"n": n, "padding": "p" * 1000})
    assert subscriber.missed and subscriber.queued == []
    assert derivations == []  # none per missed event
    subscriber.resumeProducing()
    status = await stream.next()
    assert status.type == "status_update" and status.data["gap"] is True
    assert len(derivations) == 1
    stream.close()


# -- 2. byte budgets: the replay buffer, each stream's queue and resumes ---------------------


@pytest_twisted.ensureDeferred
async def test_the_replay_buffer_holds_its_bytes_under_budget_and_counts_them_exactly(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    hub = daemon.dashboard.hub
    for n in range(60):  # 60 events of 100 KB: 6 MB published
        hub.publish("log_appended", {"n": n, "padding": "q" * 100_000})
    assert hub.replayed_bytes <= REPLAY_BYTES
    assert hub.replayed_bytes == sum(len(encoded) for _, encoded in hub._replay)
    assert REPLAY_BYTES - 110_000 < hub.replayed_bytes  # full up to one event, not emptied
    for n in range(REPLAY_EVENTS + 10):
        hub.publish("story_updated", {"n": n})
    assert len(hub._replay) == REPLAY_EVENTS
    assert hub.replayed_bytes == sum(len(encoded) for _, encoded in hub._replay)


class _Silent(Protocol):
    """A stream client that sends its request and never reads."""

    def __init__(self) -> None:
        self.received = 0

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]


async def _silent_stream(daemon: RunningDaemon, last_event_id: str | None = None) -> Any:
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    port = int(daemon.url.rsplit(":", 1)[1])
    protocol = _Silent()
    connected = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    resume = f"Last-Event-ID: {last_event_id}\r\n".encode() if last_event_id else b""
    connected.transport.write(
        b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + daemon.token.encode()
        + b"\r\n"
        + resume
        + b"\r\n"
    )
    return connected


def _buffered(transport: Any) -> int:
    """Bytes a Twisted TCP transport holds, not yet written to the socket."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


@pytest_twisted.ensureDeferred
async def test_resumes_that_do_not_read_hold_at_most_the_stream_budget_each(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    hub = daemon.dashboard.hub
    first = f"{hub.boot}-{hub.seq}"
    for n in range(30):  # 3 MB in the replay buffer, all after `first`
        hub.publish("log_appended", {"n": n, "padding": "r" * 100_000})
    clients = [await _silent_stream(daemon, first) for _ in range(5)]
    await _until(lambda: len(hub.subscribers) == 5)
    for subscriber in hub.subscribers:
        held = _buffered(subscriber.request.channel.transport) + subscriber.queued_bytes
        assert held <= PAUSED_QUEUE_BYTES + 4096  # the status and headers, not 3 MB
    for client in clients:
        client.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_a_resume_past_the_stream_budget_is_a_gap_and_within_it_a_replay(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    hub = daemon.dashboard.hub
    before = f"{hub.boot}-{hub.seq}"
    for n in range(PAUSED_QUEUE_BYTES // 50_000 + 2):  # just over the budget
        hub.publish("story_updated", {"n": n, "padding": "s" * 50_000})
    within = f"{hub.boot}-{hub.seq - 2}"
    stream = await open_stream(daemon, headers={**daemon.auth(), b"Last-Event-ID": [before.encode()]})
    await stream.next_of_type("connected")
    status = await stream.next()
    assert status.type == "status_update" and status.data["gap"] is True
    stream.close()
    stream = await open_stream(daemon, headers={**daemon.auth(), b"Last-Event-ID": [within.encode()]})
    await stream.next_of_type("connected")
    replayed = [await stream.next(), await stream.next()]
    assert [m.data["data"]["n"] for m in replayed] == [
        PAUSED_QUEUE_BYTES // 50_000,
        PAUSED_QUEUE_BYTES // 50_000 + 1,
    ]
    assert not any(m.data.get("gap") for m in replayed)
    stream.close()


@pytest.mark.parametrize("last_event_id", ["57", "abc", "-", "x-y"])
@pytest_twisted.ensureDeferred
async def test_an_unparseable_last_event_id_gets_the_status_marked_as_a_gap(
    daemon_factory: DaemonFactory, root: str, last_event_id: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    stream = await open_stream(daemon, headers={**daemon.auth(), b"Last-Event-ID": [last_event_id.encode()]})
    await stream.next_of_type("connected")
    status = await stream.next()
    assert status.type == "status_update" and status.data["gap"] is True
    stream.close()
    fresh = await open_stream(daemon)
    await fresh.next_of_type("connected")
    assert "gap" not in (await fresh.next()).data  # no Last-Event-ID: nothing missed
    fresh.close()


# -- 3. the largest event: a long entry is cut, in the stream and in /api/logs --------------


@pytest_twisted.ensureDeferred
async def test_an_entry_over_the_cap_is_sent_and_served_truncated_with_its_size(
    daemon_factory: DaemonFactory, root: str
) -> None:
    cap = 4096
    daemon = await daemon_factory(root, max_entry_bytes=cap, **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    entry = _entry(7, 300_000)
    with open(os.path.join(root, "progress.txt"), "ab") as f:
        f.write(entry)
    event = await stream.next_of_type("log_appended")
    data = event.data["data"]
    assert data["truncated"] is True and data["size"] == len(entry)
    assert data["index"] == 1 and data["timestamp"] == "2026-12-02 11:07"
    assert len(event.raw) < cap + 512
    page = (await daemon.get("/api/logs")).json()
    assert page["total"] == 2
    assert "truncated" not in page["logs"][0]
    assert page["logs"][1]["truncated"] is True and page["logs"][1]["size"] == len(entry)
    assert sum(len(line) for line in page["logs"][1]["lines"]) < cap
    stream.close()


@pytest_twisted.ensureDeferred
async def test_streams_that_do_not_read_hold_a_capped_entry_not_the_whole_one(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    hub = daemon.dashboard.hub
    clients = [await _silent_stream(daemon) for _ in range(10)]
    await _until(lambda: len(hub.subscribers) == 10)
    for n in range(3):
        with open(os.path.join(root, "progress.txt"), "ab") as f:
            f.write(_entry(n, 1_000_000))
        await _until(lambda n=n: hub.published >= n + 1)
    cap = daemon.dashboard.watcher.live.max_entry_bytes
    for subscriber in hub.subscribers:
        held = _buffered(subscriber.request.channel.transport) + subscriber.queued_bytes
        assert held < 3 * (cap + 1024) + 8192  # three capped events at most, not 3 MB
    for client in clients:
        client.transport.loseConnection()


def test_entries_are_read_only_up_to_the_cap_and_cut_on_a_character(tmp_path: Any) -> None:
    from loopdash.loop.progress import ProgressLog

    path = os.path.join(str(tmp_path), "progress.txt")
    long_line = "é" * 5000  # two bytes each: a cut at an odd byte would split one
    text = "### Iteration: a\n- short\n### Iteration: b\n- " + long_line + "\n### Iteration: c\n- end\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    log = ProgressLog(path)
    log.refresh()
    whole = log.entries(0, 3)
    cut = log.entries(0, 3, max_entry_bytes=1001)
    assert [e.timestamp for e in cut] == ["a", "b", "c"]
    assert cut[0] == whole[0] and cut[2] == whole[2]
    assert cut[1].truncated and cut[1].size == len(("### Iteration: b\n- " + long_line + "\n").encode())
    assert "\ufffd" not in cut[1].lines[0] and long_line.startswith(cut[1].lines[0][2:])
    assert not whole[1].truncated and whole[1].size is None


# -- 4. a large append is announced once indexed, never lost ----------------------------


@pytest_twisted.ensureDeferred
async def test_an_append_larger_than_an_index_step_is_announced(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    daemon.dashboard.watcher.live.log_step = 16 << 10  # index in steps of 16 KB: the append takes several
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    # 150 KB in one write (within a stream's queue budget, so no gap is due).
    entries = b"".join(_entry(n, 5_000) for n in range(30))
    with open(os.path.join(root, "progress.txt"), "ab") as f:
        f.write(entries)
    received = [await stream.next_of_type("log_appended") for _ in range(30)]
    assert [m.data["data"]["index"] for m in received] == list(range(1, 31))
    assert (await daemon.get("/api/logs?limit=1")).json()["total"] == 31
    stream.close()


@pytest_twisted.ensureDeferred
async def test_an_append_of_more_than_k_entries_arrives_whole_k_per_poll_without_a_gap(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    hub = daemon.dashboard.hub
    published: list[int] = []
    publish = hub.publish

    def counting(kind: str, data: Any, gap: bool = False) -> None:
        if kind == "log_appended":
            published.append(1)
        publish(kind, data, gap)

    polls: list[int] = []
    daemon.dashboard.watcher.on_poll = lambda changes: polls.append(len(published))
    hub.publish = counting  # type: ignore[method-assign]
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    count = 2 * MAX_ITEM_EVENTS + 30
    with open(os.path.join(root, "progress.txt"), "ab") as f:
        f.write(b"".join(_entry(n % 60, 200) for n in range(count)))
    received = [await stream.next_of_type("log_appended") for _ in range(count)]
    assert [m.data["data"]["index"] for m in received] == list(range(1, count + 1))
    assert not [m for m in stream.messages if m.type in ("logs_reset",) or (m.data or {}).get("gap")]
    # No poll sent more than K of them.
    steps = [b - a for a, b in zip([0, *polls], polls, strict=False)]
    assert max(steps) == MAX_ITEM_EVENTS and sum(steps) == count
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_replaced_log_of_more_than_k_entries_is_one_logs_reset_and_a_gap(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    path = os.path.join(root, "progress.txt")
    with open(path + ".new", "wb") as f:
        f.write(b"".join(_entry(n % 60, 200) for n in range(MAX_ITEM_EVENTS + 1)))
    os.replace(path + ".new", path)
    reset = await stream.next_of_type("logs_reset")
    assert reset.data["data"]["first"] == 0 and reset.data["data"]["total"] == MAX_ITEM_EVENTS + 1
    status = await stream.next_of_type("status_update")
    assert status.data["gap"] is True
    assert not [m for m in stream.messages if m.type == "log_appended"]
    stream.close()


# -- 5. nesting depth ---------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    # The top object is level 1; the list inside it nests depth - 1 more levels.
    return b'{"deep": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_json_nested_to_the_limit_parses_and_one_level_deeper_does_not() -> None:
    assert load_json_object(_nested(MAX_JSON_DEPTH))["deep"] is not None
    with pytest.raises(ParseError, match="nested too deeply"):
        load_json_object(_nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(ParseError, match="nested too deeply"):
        load_json_object(_nested(980))
    with pytest.raises(ParseError, match="nested too deeply"):
        load_json_object(b'{"a": {"b": ' * 70 + b"1" + b"}}" * 70)


@pytest_twisted.ensureDeferred
async def test_deep_metrics_keep_the_last_good_reading_and_are_reported_once(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **FAST)
    reports: list[tuple[str, str]] = []
    project = daemon.dashboard.project
    for name in ("_metrics", "_metrics_rows"):
        cache = getattr(project, name)
        cache._report = lambda path, reason, name=name: reports.append((name, reason))
        cache._grace = 0.0
    run_id = sorted(os.listdir(os.path.join(root, ".claude-loop", "runs")))[-1]
    good = await daemon.get(f"/api/runs/{run_id}")
    assert good.code == 200
    path = os.path.join(root, ".claude-loop", "runs", run_id, "metrics.json")
    with open(path) as f:
        document = json.load(f)
    document["cache"] = {"deep": "@"}
    write_in_place(path, json.dumps(document).replace('"@"', "[" * 980 + "]" * 980))
    for _ in range(3):
        from twisted.internet import reactor

        await settle(reactor, 0.1)
        for target in ("/api/metrics", f"/api/runs/{run_id}"):
            answer = await daemon.get(target)
            assert answer.code == 200
        # The last good reading (quiet_for moves with the clock, not with the file).
        assert (await daemon.get(f"/api/runs/{run_id}")).json()["metrics"] == good.json()["metrics"]
    assert reports and all("nested too deeply" in reason for _, reason in reports)
    assert len(reports) == len({name for name, _ in reports})  # once per reader, not per request


# -- memory that stays flat: answers kept per run -------------------------------------------


def test_answers_kept_per_run_are_bounded_whatever_the_runs_asked_for(tmp_path: Any) -> None:
    from twisted.internet.task import Clock

    from loopdash.loop.project import Project
    from loopdash.server.live import MAX_RUN_SLOTS, LiveProject

    root = os.path.join(str(tmp_path), "runs")
    run = _project(root)
    run_ids = [run.run_id]
    for n in range(1, MAX_RUN_SLOTS + 10):  # more runs than slots, each asked for once
        later = RealRun(root, run.started_at + timedelta(minutes=n))
        later.start()
        later.add_iteration("US-0000", "Story 0", later.started_at + timedelta(seconds=30), 30000)
        later.write_metrics(later.started_at + timedelta(seconds=30))
        run_ids.append(later.run_id)
    live = LiveProject(Project(root), Clock(), stale_after=600.0)
    for run_id in run_ids:
        assert live.metrics_body(run_id) is not None
        live.run_body(run_id)
    kinds = [slot[0] for slot in live._bodies]
    assert kinds.count("metrics") == MAX_RUN_SLOTS and kinds.count("run") == MAX_RUN_SLOTS
    assert live._cached_bytes == sum(len(body) for _, body in live._bodies.values())
    # The newest runs are the ones kept.
    assert {slot[1] for slot in live._bodies if slot[0] == "metrics"} == set(run_ids[-MAX_RUN_SLOTS:])


def test_overlapping_parses_put_the_full_collection_threshold_back_as_it_was() -> None:
    from loopdash.loop.filecache import Parsed
    from loopdash.server.watcher import FULL_COLLECTION_HELD, without_full_collections

    before = gc.get_threshold()
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def second() -> Parsed[None]:
        started.set()
        release.wait(10)
        seen.append(gc.get_threshold()[2])
        return Parsed(None, None)

    # A second project's parse, in its own thread, begins during the first and ends after it.
    worker = threading.Thread(target=without_full_collections, args=(second,))

    def first() -> Parsed[None]:
        worker.start()
        started.wait(10)
        seen.append(gc.get_threshold()[2])
        return Parsed(None, None)

    without_full_collections(first)
    release.set()
    worker.join(10)
    assert seen == [FULL_COLLECTION_HELD, before[2]]  # the second ran on after the first put it back
    assert gc.get_threshold() == before

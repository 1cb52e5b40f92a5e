"""DashboardClient against a real daemon on 127.0.0.1:0, and against servers that misbehave on purpose."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError, Deferred
from twisted.web.resource import Resource

from loopdash.client import (
    BadRequest,
    ConnectionFailed,
    DashboardClient,
    DashboardError,
    Disconnected,
    Forbidden,
    MalformedResponse,
    NotFound,
    ReconnectPolicy,
    ServerError,
    TimedOut,
    Unauthorized,
)
from loopdash.client.events import (
    Connected,
    Gap,
    LogAppended,
    Reconnected,
    StatusUpdate,
    StoryUpdated,
    UnknownEvent,
)
from loopdash.client.models import ExecutionStatus
from tests.client_support import (
    STATUS,
    FastClock,
    LiveLoop,
    ScriptedResource,
    Session,
    SilentFactory,
    event,
    hello,
    listen,
    serve,
    take,
    take_until,
    within,
)
from tests.support import RunningDaemon


@pytest_twisted.async_yield_fixture
async def client(sample_daemon: RunningDaemon) -> AsyncIterator[DashboardClient]:
    c = DashboardClient(sample_daemon.url, sample_daemon.token, timeout=5.0)
    yield c
    await c.close()


def make_client(url: str, token: str = "t0ken", **kwargs: Any) -> DashboardClient:
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("jitter", lambda: 0.0)
    return DashboardClient(url, token, **kwargs)


# -- every endpoint's happy path, checked against the daemon's own JSON -----------------


@pytest_twisted.ensureDeferred
async def test_health_is_public_and_keeps_extra_fields(sample_daemon: RunningDaemon) -> None:
    anonymous = DashboardClient(sample_daemon.url, "not-the-token")
    health = await within(anonymous.health())
    await anonymous.close()
    assert health.status == "ok" and health.version == "1.0.0"
    assert health.extra["server_version"] == (await sample_daemon.get("/api/health")).json()["server_version"]


@pytest_twisted.ensureDeferred
async def test_status_mirrors_the_servers_json(daemon_factory: Any, sample_root: str) -> None:
    # A tiny staleness window: the run counts as stopped, so no field moves with the clock.
    daemon = await daemon_factory(sample_root, stale_after=0.001)
    c = make_client(daemon.url, daemon.token)
    status = await within(c.status())
    await c.close()
    raw = (await daemon.get("/api/status")).json()
    assert status.to_json() == raw
    assert status.is_running is False and status.total_stories == 8 and status.completed_stories == 6
    assert status.current_story is not None and status.current_story.id == "US-007"
    assert status.current_story.title == "Visual progress dashboard: backend API"
    assert status.current_story.extra == {"title": status.current_story.title}


@pytest_twisted.ensureDeferred
async def test_status_of_a_running_loop(client: DashboardClient) -> None:
    status = await within(client.status())
    assert status.is_running is True
    assert status.current_story is not None and status.current_story.status == "in_progress"
    assert status.estimated_remaining is not None and status.elapsed_time > 0


@pytest_twisted.ensureDeferred
async def test_stories_are_typed_and_keep_acceptance_criteria(
    client: DashboardClient, sample_daemon: RunningDaemon
) -> None:
    stories = await within(client.stories())
    raw = (await sample_daemon.get("/api/stories")).json()
    assert [s.id for s in stories.stories] == [s["id"] for s in raw["stories"]]
    assert (stories.total, stories.completed, stories.pending) == (
        raw["total"],
        raw["completed"],
        raw["pending"],
    )
    first, raw_first = stories.stories[0], raw["stories"][0]
    assert first.estimated_complexity == raw_first["estimatedComplexity"]
    assert first.priority == raw_first["priority"] and first.dependencies == tuple(raw_first["dependencies"])
    # Every field beyond the contract's Story is kept, as sent (commits: issue 21).
    assert first.extra == {key: raw_first[key] for key in ("acceptanceCriteria", "commits")}
    assert first.commits == tuple(raw_first["commits"])


@pytest_twisted.ensureDeferred
async def test_logs_page_and_iterator_cover_every_entry(
    client: DashboardClient, sample_daemon: RunningDaemon
) -> None:
    raw = (await sample_daemon.get("/api/logs?limit=1000")).json()
    assert raw["total"] == 7
    page = await within(client.logs(limit=2, offset=3))
    assert (page.total, page.limit, page.offset) == (7, 2, 3)
    assert [e.timestamp for e in page.logs] == [e["timestamp"] for e in raw["logs"][3:5]]

    async def everything() -> list[Any]:
        return [entry async for entry in client.iter_logs(page_size=3)]

    entries = await within(everything())
    assert [(e.timestamp, list(e.lines)) for e in entries] == [
        (e["timestamp"], e["lines"]) for e in raw["logs"]
    ]


@pytest_twisted.ensureDeferred
async def test_metrics_default_to_the_newest_run_and_keep_iteration_extras(
    client: DashboardClient, sample_daemon: RunningDaemon
) -> None:
    runs = (await sample_daemon.get("/api/runs")).json()
    newest, oldest = runs[0]["run_id"], runs[-1]["run_id"]
    metrics = await within(client.metrics())
    assert metrics.run_id == newest and metrics.total_iterations == len(metrics.iterations) == 2
    assert metrics.iterations[0].extra["story_title"] == "Prompt cache statistics"
    assert metrics.iterations[1].extra["model"] == "opus"
    old = await within(client.metrics(run_id=oldest))
    raw = (await sample_daemon.get(f"/api/metrics?run_id={oldest}")).json()
    assert old.run_id == oldest and old.total_cost == raw["total_cost"]
    assert [(i.story_id, i.status, i.agents_used) for i in old.iterations] == [
        (i["story_id"], i["status"], tuple(i["agents_used"])) for i in raw["iterations"]
    ]


@pytest_twisted.ensureDeferred
async def test_history_pages_and_iterator_newest_first(
    client: DashboardClient, sample_daemon: RunningDaemon
) -> None:
    raw = (await sample_daemon.get("/api/history")).json()
    page = await within(client.history(limit=1, offset=1))
    assert (page.total, page.limit, page.offset) == (3, 1, 1)
    assert page.runs[0].run_id == raw["runs"][1]["run_id"]

    async def everything() -> list[Any]:
        return [row async for row in client.iter_history(page_size=2)]

    rows = await within(everything())
    assert [r.run_id for r in rows] == [r["run_id"] for r in raw["runs"]]
    assert [r.total_cost for r in rows] == [r["total_cost"] for r in raw["runs"]]


@pytest_twisted.ensureDeferred
async def test_runs_and_run_detail(client: DashboardClient, sample_daemon: RunningDaemon) -> None:
    raw_runs = (await sample_daemon.get("/api/runs")).json()
    runs = await within(client.runs())
    assert [r.run_id for r in runs] == [r["run_id"] for r in raw_runs]
    assert [r.elapsed_time_s for r in runs] == [r["elapsed_time_s"] for r in raw_runs]
    newest = runs[0].run_id
    detail = await within(client.run(newest))
    raw = (await sample_daemon.get(f"/api/runs/{newest}")).json()
    assert detail.run_id == detail.timestamp == newest
    assert detail.summary.total_iterations == raw["summary"]["total_iterations"] == 2
    assert [i.story_id for i in detail.metrics.iterations] == [
        i["story_id"] for i in raw["metrics"]["iterations"]
    ]
    # Blocks beyond the contract (cache, parallel, model_usage) are kept.
    assert detail.metrics.extra["cache"] == raw["metrics"]["cache"]


@pytest_twisted.ensureDeferred
async def test_from_project_reads_the_token_file(sample_daemon: RunningDaemon) -> None:
    found = DashboardClient.from_project(sample_daemon.root)
    assert found.token == sample_daemon.token
    # No daemon recorded by `loopdash start` here: the default address
    # (test_watch.py covers a daemon that `loopdash start` runs).
    assert found.base_url == "http://127.0.0.1:8080"
    pointed = DashboardClient(sample_daemon.url, found.token)
    assert (await within(pointed.stories())).total == 8
    await pointed.close()
    await found.close()


def test_from_project_without_a_token_file_says_so(empty_root: str) -> None:
    with pytest.raises(DashboardError) as caught:
        DashboardClient.from_project(empty_root)
    assert "auth_token.txt" in str(caught.value)


# -- error classes -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_missing_token_is_unauthorized_with_the_servers_message(sample_daemon: RunningDaemon) -> None:
    c = make_client(sample_daemon.url, token="")
    with pytest.raises(Unauthorized) as caught:
        await within(c.status())
    await c.close()
    assert caught.value.status == 401
    assert caught.value.message == "Missing or invalid Authorization header"


@pytest_twisted.ensureDeferred
async def test_wrong_token_is_forbidden(sample_daemon: RunningDaemon) -> None:
    c = make_client(sample_daemon.url, token="wrong")
    with pytest.raises(Forbidden) as caught:
        await within(c.runs())
    await c.close()
    assert (caught.value.status, caught.value.message) == (403, "Invalid authentication token")


@pytest_twisted.ensureDeferred
async def test_unknown_run_is_not_found(client: DashboardClient) -> None:
    with pytest.raises(NotFound) as caught:
        await within(client.run("20000101_000000"))
    assert caught.value.message == "Run not found: 20000101_000000"


@pytest_twisted.ensureDeferred
async def test_a_run_id_is_sent_as_one_path_segment(client: DashboardClient) -> None:
    with pytest.raises(NotFound) as caught:
        await within(client.run("a b?c#d"))
    assert caught.value.message == "Run not found: a b?c#d"
    # Not resolved into /api/status (whose answer would not parse as a run): the server's 404.
    with pytest.raises(NotFound):
        await within(client.run("x/../../api/status"))


@pytest_twisted.ensureDeferred
async def test_metrics_of_a_project_without_runs_is_not_found(daemon_factory: Any, empty_root: str) -> None:
    daemon = await daemon_factory(empty_root)
    c = make_client(daemon.url, daemon.token)
    with pytest.raises(NotFound) as caught:
        await within(c.metrics())
    await c.close()
    assert caught.value.message == "Metrics file not found"


@pytest_twisted.ensureDeferred
async def test_negative_limit_is_bad_request(client: DashboardClient) -> None:
    with pytest.raises(BadRequest) as caught:
        await within(client.logs(limit=-1))
    assert caught.value.status == 400 and "'limit'" in caught.value.message


@pytest_twisted.ensureDeferred
async def test_server_error_carries_the_message() -> None:
    resource = Resource()
    resource.putChild(b"api", Resource())
    failing = ScriptedResource([Session(503, b"application/json", [b'{"error": "warming up"}'])])
    resource.children[b"api"].putChild(b"status", failing)
    server = await serve(resource)
    c = make_client(server.url)
    with pytest.raises(ServerError) as caught:
        await within(c.status())
    await c.close()
    await server.stop()
    assert (caught.value.status, caught.value.message) == (503, "warming up")


@pytest_twisted.ensureDeferred
async def test_a_body_that_breaks_the_contract_is_malformed() -> None:
    server = await serve(ScriptedResource([Session(200, b"application/json", [b'{"is_running": "yes"}'])]))
    c = make_client(server.url)
    with pytest.raises(MalformedResponse):
        await within(c.status())
    await c.close()
    await server.stop()


@pytest_twisted.ensureDeferred
async def test_connection_refused_is_connection_failed() -> None:
    server = await listen(SilentFactory())
    await server.stop()  # nothing listens on this port any more
    c = make_client(server.url)
    with pytest.raises(ConnectionFailed) as caught:
        await within(c.health())
    assert not isinstance(caught.value, TimedOut)
    assert "refused" in caught.value.message.lower()


@pytest_twisted.ensureDeferred
async def test_a_server_that_never_answers_times_out_and_the_connection_is_closed() -> None:
    factory = SilentFactory()
    server = await listen(factory)
    closed = factory.next_close()
    c = make_client(server.url, timeout=0.3)
    with pytest.raises(TimedOut) as caught:
        await within(c.status())
    await within(closed, 5)
    await server.stop()
    assert factory.opened == factory.closed == 1
    assert "0.3 s" in caught.value.message


@pytest_twisted.ensureDeferred
async def test_a_body_that_stalls_times_out_too() -> None:
    server = await serve(
        ScriptedResource([Session(200, b"application/json", [b'{"status": "ok", '], close=False)])
    )
    c = make_client(server.url, timeout=0.3)
    with pytest.raises(TimedOut):
        await within(c.health())
    await c.close()
    await server.stop()


@pytest_twisted.ensureDeferred
async def test_cancelling_a_call_closes_its_connection() -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    factory = SilentFactory()
    server = await listen(factory)
    closed = factory.next_close()
    c = make_client(server.url, timeout=30)
    call = Deferred.fromCoroutine(c.status())
    while factory.opened == 0:
        await within(deferLater(reactor, 0.01, lambda: None))
    call.cancel()
    with pytest.raises(CancelledError):
        await call
    await within(closed, 5)
    await server.stop()


# -- the stream's reconnect logic, against a scripted server speaking the contract ------


@pytest_twisted.ensureDeferred
async def test_stream_yields_typed_events_and_resumes_with_last_event_id() -> None:
    story = {
        "id": "US-1",
        "title": "T",
        "description": "",
        "priority": 1,
        "status": "completed",
        "notes": "",
        "estimatedComplexity": "simple",
        "dependencies": [],
        "acceptanceCriteria": [],
    }
    resource = ScriptedResource(
        [
            Session(chunks=[*hello("b", 1), b": keepalive\n\n", event("b-3", "story_updated", story)]),
            Session(chunks=[b"retry: 50\n\n", event("b-4", "future_kind", {"x": 1})], close=False),
        ]
    )
    server = await serve(resource)
    c = make_client(server.url, jitter=lambda: 0.5)
    items = c.stream()
    got = await take(items, 6)
    await items.aclose()  # type: ignore[attr-defined]
    await within(resource.finished[1], 5)  # closing the iterator closed the connection
    await c.close()
    await server.stop()

    connected, status, updated, lost, back, unknown = got
    assert isinstance(connected, Connected) and connected.api_version == "1.0.0" and connected.id == "b-1"
    assert isinstance(status, StatusUpdate) and status.status == ExecutionStatus.from_json(STATUS)
    assert isinstance(updated, StoryUpdated) and updated.story.extra == {"acceptanceCriteria": []}
    assert isinstance(lost, Disconnected) and lost.attempts == 1
    assert lost.error == "the server ended the stream"
    # The server's retry (50 ms) is the base; jitter stretches it by up to 50 %.
    assert lost.retry_in == pytest.approx(0.05 * 1.25)
    assert back == Reconnected(attempts=1, delay=lost.retry_in, last_event_id="b-3")
    assert isinstance(unknown, UnknownEvent) and unknown.type == "future_kind" and unknown.data == {"x": 1}
    assert resource.header(0, b"last-event-id") is None
    assert resource.header(1, b"last-event-id") == "b-3"
    assert resource.header(0, b"accept") == "text/event-stream"
    assert resource.header(0, b"authorization") == "Bearer t0ken"


@pytest_twisted.ensureDeferred
async def test_stream_reports_the_servers_gap_before_the_event() -> None:
    resource = ScriptedResource([Session(chunks=hello("new", 1, gap=True), close=False)])
    server = await serve(resource)
    c = make_client(server.url)
    items = c.stream(last_event_id="old-77")
    got = await take(items, 3)
    await items.aclose()  # type: ignore[attr-defined]
    await c.close()
    await server.stop()
    assert resource.header(0, b"last-event-id") == "old-77"
    assert isinstance(got[0], Connected)
    assert isinstance(got[1], Gap)
    assert isinstance(got[2], StatusUpdate) and got[2].gap


@pytest_twisted.ensureDeferred
async def test_reconnecting_without_an_event_id_is_a_gap() -> None:
    anonymous = [b"retry: 50\n\n", b'data: {"type": "connected", "data": {}}\n\n']
    resource = ScriptedResource([Session(chunks=anonymous), Session(chunks=anonymous, close=False)])
    server = await serve(resource)
    c = make_client(server.url)
    items = c.stream()
    got = await take(items, 5)
    await items.aclose()  # type: ignore[attr-defined]
    await c.close()
    await server.stop()
    assert [type(i) for i in got] == [Connected, Disconnected, Reconnected, Gap, Connected]
    assert resource.header(1, b"last-event-id") is None


@pytest_twisted.ensureDeferred
async def test_stream_backs_off_exponentially_while_the_daemon_is_away() -> None:
    resource = ScriptedResource([Session(chunks=hello("b", 1)), Session(chunks=hello("b", 3), close=False)])
    server = await serve(resource)
    policy = ReconnectPolicy(factor=2.0, maximum=60.0)
    c = make_client(server.url, reconnect=policy)
    items = c.stream()
    first = await take(items, 3)
    assert isinstance(first[2], Disconnected)
    await server.stop()  # the daemon goes away: the next attempts are refused
    refused = await take(items, 2)
    assert [type(r) for r in refused] == [Disconnected, Disconnected]
    assert all("refused" in r.error.lower() for r in refused)  # type: ignore[union-attr]
    again = await serve(resource, server.number)  # back, on the same port
    # The iterator is lazy: its next wait starts when it is asked for the next item.
    back = await take(items, 2)
    await items.aclose()  # type: ignore[attr-defined]
    await c.close()
    await again.stop()
    delays = [first[2].retry_in] + [r.retry_in for r in refused]  # type: ignore[union-attr]
    assert [r.attempts for r in refused] == [2, 3]  # type: ignore[union-attr]
    assert delays == pytest.approx([0.05, 0.1, 0.2])
    assert back[0] == Reconnected(attempts=3, delay=pytest.approx(0.05 + 0.1 + 0.2), last_event_id="b-2")
    assert isinstance(back[1], Connected) and back[1].id == "b-3"


def test_backoff_policy_grows_caps_and_never_undercuts_the_servers_retry() -> None:
    policy = ReconnectPolicy(initial=1.0, factor=2.0, maximum=10.0, jitter=0.5)
    assert [policy.delay(n, None, lambda: 0.0) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert policy.delay(0, 2.0, lambda: 1.0) == 3.0
    # A server asking for more than the cap is obeyed.
    assert policy.delay(5, 30.0, lambda: 0.0) == 30.0


@pytest_twisted.ensureDeferred
async def test_stream_retries_a_5xx_but_raises_auth_errors() -> None:
    busy = Session(503, b"application/json", [b'{"error": "starting"}'])
    denied = Session(403, b"application/json", [b'{"error": "Invalid authentication token"}'])
    resource = ScriptedResource([busy, denied])
    server = await serve(resource)
    # No retry: from the server yet, so the policy's initial wait applies.
    c = make_client(server.url, reconnect=ReconnectPolicy(initial=0.05))
    items = c.stream()
    lost = await take(items, 1)
    assert lost == [Disconnected("starting", attempts=1, retry_in=0.05)]
    with pytest.raises(Forbidden):
        await take(items, 1)
    await c.close()
    await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_stream_that_is_not_an_event_stream_is_refused() -> None:
    server = await serve(ScriptedResource([Session(200, b"application/json", [b"{}"])]))
    c = make_client(server.url)
    with pytest.raises(MalformedResponse):
        await take(c.stream(), 1)
    await c.close()
    await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_stream_that_never_opens_times_out_and_is_retried() -> None:
    factory = SilentFactory()
    server = await listen(factory)
    c = make_client(server.url, timeout=0.2, reconnect=ReconnectPolicy(initial=0.05))
    items = c.stream()
    got = await take(items, 2)
    await items.aclose()  # type: ignore[attr-defined]
    # Each timed-out attempt closed its connection (the server notices a moment later).
    await within(_until(lambda: factory.closed == 2))
    await server.stop()
    assert factory.opened == 2
    assert [type(g) for g in got] == [Disconnected, Disconnected]
    assert got[0].error == f"GET /api/stream: no answer from {server.url} within 0.2 s"  # type: ignore[union-attr]
    assert [g.attempts for g in got] == [1, 2]  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_a_silent_stream_is_closed_and_reopened() -> None:
    resource = ScriptedResource([Session(chunks=hello("b", 1), close=False)])
    server = await serve(resource)
    c = make_client(server.url, idle_timeout=0.2)
    items = c.stream()
    got = await take(items, 4)
    await items.aclose()  # type: ignore[attr-defined]
    await within(resource.finished[0], 5)
    await c.close()
    await server.stop()
    assert isinstance(got[2], Disconnected) and got[2].error == "no data for 0.2 s"
    assert got[3] == Reconnected(attempts=1, delay=got[2].retry_in, last_event_id="b-2")


# -- the stream against the real daemon ----------------------------------------------------

LIVE = {"poll_interval": 0.05, "keepalive": 60.0}


def live_client(daemon: RunningDaemon) -> DashboardClient:
    # Waits run 100 times faster; the delays the client chose are still reported as chosen.
    return make_client(daemon.url, daemon.token, clock=FastClock(100.0))


def drop_streams(daemon: RunningDaemon) -> None:
    """End every open stream from the daemon's side, the daemon staying up."""
    for subscriber in list(daemon.dashboard.hub.subscribers):
        subscriber.end()


@pytest_twisted.ensureDeferred
async def test_daemon_stream_delivers_typed_events_as_the_loop_moves(
    daemon_factory: Any, tmp_path: Any
) -> None:
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(loop.root, **LIVE)
    c = live_client(daemon)
    items = c.stream()
    first = await take(items, 2)
    assert isinstance(first[0], Connected) and first[0].api_version == "1.0.0"
    assert isinstance(first[1], StatusUpdate) and first[1].status.total_stories == 8
    assert first[1].status.completed_stories == 0 and not first[1].gap

    story_id = loop.pass_story(0)
    kinds: set[type] = set()

    def story_and_status(item: Any) -> bool:
        if isinstance(item, StoryUpdated) or (
            isinstance(item, StatusUpdate) and item.status.completed_stories == 1
        ):
            kinds.add(type(item))
        return kinds == {StoryUpdated, StatusUpdate}

    seen = await take_until(items, story_and_status)
    updated = [i for i in seen if isinstance(i, StoryUpdated)]
    assert [(u.story.id, u.story.status) for u in updated] == [(story_id, "completed")]
    loop.append_log(0)
    seen += await take_until(items, lambda i: isinstance(i, LogAppended))
    appended = seen[-1]
    assert isinstance(appended, LogAppended) and appended.index == 0
    assert appended.entry.lines[0] == f"**Story**: {story_id} - {loop.stories[0]['title']}"
    assert not any(isinstance(i, (Gap, Disconnected, Reconnected)) for i in seen)
    assert len({i.id for i in seen}) == len(seen)  # type: ignore[union-attr]
    await items.aclose()  # type: ignore[attr-defined]
    await c.close()


@pytest_twisted.ensureDeferred
async def test_daemon_stream_resumes_from_last_event_id_without_a_gap(
    daemon_factory: Any, tmp_path: Any
) -> None:
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(loop.root, **LIVE)
    c = live_client(daemon)
    items = c.stream()
    start = await take(items, 2)
    drop_streams(daemon)
    lost = await take(items, 1)
    assert isinstance(lost[0], Disconnected) and lost[0].error == "the server ended the stream"
    # The daemon's retry: 3000 is honoured (jitter is 0 here).
    assert lost[0].retry_in == 3.0
    # While the client is away (the iterator waits for us), the loop moves on.
    published = daemon.dashboard.hub.published
    story_id = loop.pass_story(2)
    await within(_until(lambda: daemon.dashboard.hub.published > published))
    back = await take_until(items, lambda i: isinstance(i, StoryUpdated))
    await items.aclose()  # type: ignore[attr-defined]
    await c.close()
    assert back[0] == Reconnected(attempts=1, delay=3.0, last_event_id=start[1].id)  # type: ignore[union-attr]
    assert isinstance(back[1], Connected)
    assert back[-1].story.id == story_id  # type: ignore[union-attr]
    # Replayed, not restarted: no gap, and no fresh status before the missed event.
    assert not any(isinstance(i, (Gap, StatusUpdate)) for i in back[:-1])


@pytest_twisted.ensureDeferred
async def test_daemon_stream_reports_a_gap_when_the_replay_buffer_was_exceeded(
    daemon_factory: Any, tmp_path: Any
) -> None:
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(loop.root, **LIVE)
    hub = daemon.dashboard.hub
    c = live_client(daemon)
    items = c.stream()
    await take(items, 2)
    drop_streams(daemon)
    await take(items, 1)  # Disconnected
    for n in range(hub._replay.maxlen + 5):  # more than the daemon can replay
        hub.publish("story_updated", {"n": n})
    back = await take(items, 4)
    await items.aclose()  # type: ignore[attr-defined]
    await c.close()
    assert isinstance(back[0], Reconnected) and isinstance(back[1], Connected)
    assert isinstance(back[2], Gap)
    assert isinstance(back[3], StatusUpdate) and back[3].gap and back[3].status.total_stories == 8


@pytest_twisted.ensureDeferred
async def test_daemon_stream_survives_a_daemon_restart(daemon_factory: Any, tmp_path: Any) -> None:
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(loop.root, **LIVE)
    port = int(daemon.url.rsplit(":", 1)[1])
    c = live_client(daemon)
    items = c.stream()
    start = await take(items, 2)
    await daemon.stop()
    lost = await take(items, 1)
    assert isinstance(lost[0], Disconnected)
    # While it is down, reconnecting is refused and the waits grow.
    refused = await take(items, 1)
    assert isinstance(refused[0], Disconnected) and refused[0].retry_in == 6.0
    assert "refused" in refused[0].error.lower()
    await daemon_factory(loop.root, listen=f"tcp:{port}:interface=127.0.0.1", **LIVE)
    back = await take(items, 4)
    assert back[0] == Reconnected(attempts=2, delay=9.0, last_event_id=start[1].id)  # type: ignore[union-attr]
    assert isinstance(back[1], Connected)
    # A new daemon process cannot replay the old one's events: a gap, then the whole status.
    assert isinstance(back[2], Gap) and isinstance(back[3], StatusUpdate) and back[3].gap
    # And live events flow again.
    story_id = loop.pass_story(1)
    seen = await take_until(items, lambda i: isinstance(i, StoryUpdated))
    await items.aclose()  # type: ignore[attr-defined]
    await c.close()
    assert seen[-1].story.id == story_id  # type: ignore[union-attr]


async def _until(condition: Any, seconds: float = 5.0) -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in time")

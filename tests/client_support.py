"""Small servers on 127.0.0.1 for the client's failure paths and reconnect logic.

The real daemon covers the happy paths; these exist for what a healthy daemon
never does on demand: stall, answer 5xx, drop a stream after N events, refuse
connections for a while.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

T = TypeVar("T")


async def within(work: Awaitable[T], seconds: float = 10.0) -> T:
    """Bound a wait in a test: a TimeoutError instead of a hung suite."""
    from twisted.internet import reactor

    d: Deferred[T] = Deferred.fromCoroutine(_await(work))
    d.addTimeout(seconds, reactor)
    return await d


async def _await(work: Awaitable[T]) -> T:
    return await work


async def take(items: AsyncIterator[T], count: int, seconds: float = 10.0) -> list[T]:
    """The next ``count`` items of an async iterator, within ``seconds``."""

    async def collect() -> list[T]:
        out: list[T] = []
        while len(out) < count:
            out.append(await items.__anext__())
        return out

    return await within(collect(), seconds)


class SilentProtocol(Protocol):
    """Accepts a connection and never answers; remembers when it was closed."""

    def connectionMade(self) -> None:
        self.factory.opened += 1  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.closed += 1  # type: ignore[attr-defined]
        for waiter in self.factory.close_waiters:  # type: ignore[attr-defined]
            if not waiter.called:
                waiter.callback(None)


class SilentFactory(Factory):
    protocol = SilentProtocol

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self.close_waiters: list[Deferred[None]] = []

    def next_close(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.close_waiters.append(d)
        return d


@dataclass
class Session:
    """What one connection to the scripted stream receives."""

    status: int = 200
    content_type: bytes = b"text/event-stream"
    chunks: list[bytes] = field(default_factory=list)
    #: End the response after the chunks (True) or hold it open (False).
    close: bool = True


class ScriptedResource(Resource):
    """Answers each request with the next session of a script (the last one repeats)."""

    isLeaf = True

    def __init__(self, sessions: list[Session]) -> None:
        super().__init__()
        self.sessions = sessions
        self.requests: list[Any] = []
        self.finished: list[Deferred[None]] = []

    def render(self, request: Any) -> Any:
        from twisted.internet import reactor

        session = self.sessions[min(len(self.requests), len(self.sessions) - 1)]
        self.requests.append(request)
        ended: Deferred[None] = Deferred()
        request.notifyFinish().addBoth(lambda _: ended.callback(None))
        self.finished.append(ended)
        request.setResponseCode(session.status)
        request.setHeader(b"Content-Type", session.content_type)
        delay = 0.0
        for chunk in session.chunks:
            delay += 0.002
            reactor.callLater(delay, _write, request, chunk)
        if session.close:
            reactor.callLater(delay + 0.002, _finish, request)
        return NOT_DONE_YET

    def header(self, index: int, name: bytes) -> str | None:
        values = self.requests[index].requestHeaders.getRawHeaders(name)
        return values[0].decode() if values else None


def _write(request: Any, chunk: bytes) -> None:
    if request.channel is not None and not request.finished:
        request.write(chunk)


def _finish(request: Any) -> None:
    if request.channel is not None and not request.finished:
        request.finish()


@dataclass
class Listening:
    port: Any
    url: str
    number: int

    async def stop(self) -> None:
        await self.port.stopListening()


async def listen(factory: Any, port_number: int = 0) -> Listening:
    """Listen on 127.0.0.1 (port 0: any free port)."""
    from twisted.internet import reactor

    port = reactor.listenTCP(port_number, factory, interface="127.0.0.1")
    number = port.getHost().port
    return Listening(port, f"http://127.0.0.1:{number}", number)


def serve(resource: Resource, port_number: int = 0) -> Awaitable[Listening]:
    return listen(Site(resource), port_number)


def event(event_id: str | None, kind: str, data: Any, **top: Any) -> bytes:
    """One contract message: ``id: ...`` (if any) and one ``data:`` line of JSON."""
    import json

    body = json.dumps({"type": kind, "data": data, "timestamp": "2026-01-13T20:00:00Z", **top})
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {body}\n\n".encode()


STATUS = {
    "is_running": True,
    "run_id": "20260113_200000",
    "current_story": {"id": "US-207", "status": "in_progress", "elapsed_ms": 15000},
    "progress_pct": 60.0,
    "completed_stories": 6,
    "total_stories": 10,
    "elapsed_time": 3600,
    "estimated_remaining": 2400,
    "cost_so_far": 2.5,
    "last_update": "2026-01-13T20:00:00Z",
}


def hello(boot: str, first_seq: int, **top: Any) -> list[bytes]:
    """What the contract sends first: retry, connected, then a status_update."""
    return [
        b"retry: 50\n\n",
        event(f"{boot}-{first_seq}", "connected", {"server_version": "0.1.0", "api_version": "1.0.0"}),
        event(f"{boot}-{first_seq + 1}", "status_update", STATUS, **top),
    ]


class FastClock:
    """The reactor's clock with every wait shortened ``factor`` times.

    The client reports the delays it chose (``Disconnected.retry_in``), so
    tests check the policy from those and need not sit through 3 s waits.
    """

    def __init__(self, factor: float = 100.0) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.factor = factor

    def seconds(self) -> float:
        return float(self.reactor.seconds())

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.reactor.callLater(delay / self.factor, f, *args, **kwargs)

    def getDelayedCalls(self) -> Any:
        return self.reactor.getDelayedCalls()


@dataclass
class LiveLoop:
    """A loop at work on disk: a run started five minutes ago, every story pending."""

    root: str
    stories: list[dict[str, Any]]
    run: Any

    @classmethod
    def create(cls, root: str) -> LiveLoop:
        import os
        from datetime import datetime, timedelta

        from loopdash.cli.sample import SAMPLE_STORIES, RealRun, write_prd

        os.makedirs(root, exist_ok=True)
        stories = [dict(s, passes=False, notes="") for s in SAMPLE_STORIES]
        write_prd(root, stories)
        with open(os.path.join(root, "progress.txt"), "w") as f:
            f.write("# progress\n\n")
        run = RealRun(root, datetime.now(UTC) - timedelta(minutes=5))
        run.start()
        run.write_metrics(run.started_at)
        return cls(root, stories, run)

    def pass_story(self, index: int) -> str:
        from loopdash.cli.sample import write_prd

        self.stories[index].update(passes=True, notes="Implemented in commit abc1234")
        write_prd(self.root, self.stories)
        return str(self.stories[index]["id"])

    def append_log(self, index: int) -> None:
        from loopdash.cli.sample import append_progress, progress_entry

        story = self.stories[index]
        append_progress(
            self.root,
            progress_entry("2026-11-28 10:20 AM", story["id"], story["title"], "Complete", ["did it"]),
        )


async def take_until(
    items: AsyncIterator[T], found: Callable[[T], bool], seconds: float = 10.0, limit: int = 200
) -> list[T]:
    """Items up to and including the first one ``found`` accepts (bounded in count and time)."""

    async def collect() -> list[T]:
        out: list[T] = []
        while len(out) < limit:
            item = await items.__anext__()
            out.append(item)
            if found(item):
                return out
        raise AssertionError(f"not found in {limit} items: {out[-5:]}")

    return await within(collect(), seconds)

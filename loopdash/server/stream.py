"""The event hub: Server-Sent Events fanned out to every open stream.

An event is encoded once and the same bytes are written to every stream. A
replay buffer bounded in events and in bytes serves clients that reconnect with
``Last-Event-ID``. Each stream is a push producer: while its client does not
read, the hub holds at most :data:`PAUSED_QUEUE_BYTES` for it, then gives up on
the queue and sends the current status marked as a gap when the client reads
again (derived then, once, not per missed event). A resume goes through the
same budget: events it cannot replay within it are a gap. A client that stays
stuck past a bound is dropped. One timer sends keepalives to all streams (and
finds dead peers, whose writes fail). The budgets are listed in docs/limits.md.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.server import Request
from zope.interface import implementer

from loopdash.contract.codec import plain
from loopdash.derive.status import iso_utc
from loopdash.metrics.meter import NULL_METER, Meter

RETRY_MS = 3000
#: Bytes of events held for one stream that cannot take them yet (a paused
#: client, or the events a resume replays); past it, the stream gets a gap.
PAUSED_QUEUE_BYTES = 256 * 1024
#: Events the replay buffer holds at most...
REPLAY_EVENTS = 1000
#: ...and their bytes at most: the oldest go first (200 entries of 1 MB once held 200 MB).
REPLAY_BYTES = 4 << 20
KEEPALIVE = b": keepalive\n\n"


@dataclass(frozen=True)
class EventId:
    boot: str
    seq: int

    def __str__(self) -> str:
        return f"{self.boot}-{self.seq}"

    @classmethod
    def parse(cls, raw: str | None) -> EventId | None:
        if not raw:
            return None
        boot, sep, seq = raw.strip().rpartition("-")
        if not sep or not seq.isdigit() or len(seq) > 18:
            return None
        return cls(boot, int(seq))


def encode_event(
    event_id: str,
    kind: str,
    data: object,
    timestamp: str | None,
    gap: bool = False,
    project: str | None = None,
) -> bytes:
    """One SSE message: an ``id:`` line and one ``data:`` line of JSON, no ``event:`` line.

    ``project`` (a multi-project daemon's events only) is the id of the project
    the event is about, a top-level field beside ``type`` (docs/projects.md).
    """
    body: dict[str, Any] = {"type": kind}
    if project is not None:
        body["project"] = project
    if data is not None:
        # A contract value (a Struct) as JSON builtins, its pass-through fields included.
        body["data"] = plain(data)
    body["timestamp"] = timestamp
    if gap:
        body["gap"] = True
    # json.dumps never emits a newline without indent, so one data line suffices.
    payload = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return f"id: {event_id}\ndata: {payload}\n\n".encode()


@implementer(IPushProducer)
class Subscriber:
    """One open stream: its request, its flow control and its end."""

    def __init__(self, hub: StreamHub, request: Request, project: str | None = None) -> None:
        self.hub = hub
        self.request = request
        #: The project whose events this stream carries; None: every event (the combined stream).
        self.project = project
        self.paused_since: float | None = None
        #: While paused: the events held for the client, up to PAUSED_QUEUE_BYTES.
        #: A burst larger than the transport's 64 KB buffer pauses a healthy
        #: client for a moment; it should get every event, not a gap.
        self.queued: list[bytes] = []
        self.queued_bytes = 0
        #: Past the bound, the queue is given up: when the client reads again it
        #: gets the status of that moment, and learns it has a gap.
        self.missed = False
        self.closed = False
        self.done: Deferred[None] = Deferred(lambda _: self.hub.forget(self))

    # IPushProducer, called by the transport.
    def pauseProducing(self) -> None:
        if self.paused_since is None:
            self.paused_since = self.hub.clock.seconds()

    def resumeProducing(self) -> None:
        if self.paused_since is None:
            return
        self.paused_since = None
        queued, self.queued, self.queued_bytes = self.queued, [], 0
        if queued:
            self.write(b"".join(queued))
        if self.missed:
            self.missed = False
            self.write(self.hub.gap_status(self.project))

    def stopProducing(self) -> None:
        self.hub.forget(self)

    def write(self, data: bytes) -> None:
        if not self.closed and self.request.channel is not None:
            self.request.write(data)

    def offer(self, encoded: bytes) -> None:
        """Send an event; while paused, hold it (bounded), then give up and owe a gap.

        O(1) per event whatever the state: the gap's status is derived when the
        client reads again, not here (deriving it per missed event made a burst
        of N events cost N status derivations: minutes at N = 100,000).
        """
        if self.paused_since is None:
            self.write(encoded)
            return
        if not self.missed and self.queued_bytes + len(encoded) <= PAUSED_QUEUE_BYTES:
            self.queued.append(encoded)
            self.queued_bytes += len(encoded)
            return
        # The client is not keeping up: drop what is held; it gets a gap on resume.
        self.missed = True
        self.queued, self.queued_bytes = [], 0

    def end(self) -> None:
        """End the stream from our side (shutdown, stuck client); Klein finishes the request."""
        if self.closed:
            return
        self.closed = True
        # Twisted refuses to finish a request whose producer is still registered.
        if self.request.producer is not None:
            self.request.unregisterProducer()
        if not self.done.called:
            self.done.callback(None)


class TicketBook:
    """Short-lived single-use tickets that let EventSource (no headers) open a stream."""

    def __init__(self, clock: Any, lifetime: float = 30.0, capacity: int = 1024) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.capacity = capacity
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        now = self.clock.seconds()
        for ticket, expires in list(self._expiry.items()):
            if expires <= now:
                del self._expiry[ticket]
        while len(self._expiry) >= self.capacity:
            # Oldest first: dicts keep insertion order.
            del self._expiry[next(iter(self._expiry))]
        ticket = secrets.token_urlsafe(24)
        self._expiry[ticket] = now + self.lifetime
        return ticket

    def valid(self, ticket: str) -> bool:
        """Whether ``ticket`` would be accepted now, without using it up (for HEAD)."""
        expires = self._expiry.get(ticket)
        return expires is not None and expires > self.clock.seconds()

    def redeem(self, ticket: str) -> bool:
        expires = self._expiry.pop(ticket, None)
        return expires is not None and expires > self.clock.seconds()


class StreamHub:
    """Open streams, the replay buffer, and the one keepalive timer."""

    log = Logger(namespace="loopdash.server.stream")

    def __init__(
        self,
        clock: Any,
        keepalive: float = 30.0,
        replay_size: int = REPLAY_EVENTS,
        replay_bytes: int = REPLAY_BYTES,
        stuck_after: float | None = None,
        meter: Meter = NULL_METER,
    ) -> None:
        self.clock = clock
        self.meter = meter
        self.keepalive = keepalive
        #: A client that has not read for this long is dropped.
        self.stuck_after = stuck_after if stuck_after is not None else max(2 * keepalive, 30.0)
        self.boot = secrets.token_hex(4)
        self.seq = 0
        self._replay: deque[tuple[int, bytes]] = deque(maxlen=replay_size)
        #: Beside each replayed event, in step with ``_replay``: the project a filtered
        #: stream must match (None: every stream's event; "": the combined stream's only).
        self._routes: deque[str | None] = deque(maxlen=replay_size)
        self.replay_bytes = replay_bytes
        #: Bytes of the events in the replay buffer.
        self.replayed_bytes = 0
        #: The gap status last encoded per stream filter, and the event id and second it was made for.
        self._gap_status: dict[str | None, tuple[tuple[int, int], bytes]] = {}
        self.subscribers: set[Subscriber] = set()
        self._timer: LoopingCall | None = None
        self.published = 0
        #: Supplies the current status for a new stream or a gap (set by the API):
        #: the (default) project's, for a stream of every event.
        self.current_status: Callable[[], Mapping[str, Any]] = lambda: {}
        #: On a multi-project daemon: the id put in the ``project`` field of the
        #: status ``current_status`` gives (the default project's), else None.
        self.status_project: Callable[[], str | None] = lambda: None
        #: A filtered stream's status: its project's (None: no such project any more).
        self.project_status: Callable[[str], Mapping[str, Any] | None] = lambda project: None

    @property
    def last_id(self) -> str:
        return str(EventId(self.boot, self.seq))

    def start(self) -> None:
        timer = LoopingCall(self._tick)
        timer.clock = self.clock
        timer.start(self.keepalive, now=False)
        self._timer = timer

    def stop(self) -> None:
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        self._timer = None
        for subscriber in list(self.subscribers):
            subscriber.end()
        self.subscribers.clear()

    def _now_iso(self) -> str | None:
        return iso_utc(self.clock.seconds())

    def _tick(self) -> None:
        now = self.clock.seconds()
        for subscriber in list(self.subscribers):
            if subscriber.paused_since is not None:
                if now - subscriber.paused_since > self.stuck_after:
                    self.log.warn("Dropping a stream whose client stopped reading")
                    subscriber.end()
                    self.forget(subscriber)
                    self.meter.stream_dropped()
            else:
                subscriber.write(KEEPALIVE)

    def _status_message(self, gap: bool, project: str | None = None) -> bytes:
        """The status a stream starts with (or resumes with, as a gap): ``b""`` when there is none.

        A stream of every event gets the (default) project's status, a filtered
        stream its project's; on a multi-project daemon with its ``project`` field.
        """
        if project is None:
            status: Mapping[str, Any] | None = self.current_status()
            tag = self.status_project()
        else:
            status, tag = self.project_status(project), project
        if status is None:
            return b""
        return encode_event(self.last_id, "status_update", dict(status), self._now_iso(), gap, tag)

    def gap_status(self, project: str | None = None) -> bytes:
        """The current status marked as a gap: derived once per event id, second and
        stream filter, however many streams resume in that moment."""
        key = (self.seq, int(self.clock.seconds()))
        cached = self._gap_status.get(project)
        if cached is None or cached[0] != key:
            if len(self._gap_status) > 256:
                self._gap_status.clear()  # filters of projects long gone
            cached = (key, self._status_message(gap=True, project=project))
            self._gap_status[project] = cached
        return cached[1]

    def publish(
        self,
        kind: str,
        data: object,
        gap: bool = False,
        project: str | None = None,
        combined_only: bool = False,
    ) -> None:
        """Encode once, remember for replay (within its budgets), write to every stream.

        ``gap`` marks the event as one that replaces events not sent (a change
        too large to send item by item): a client reloads what it shows.
        ``project`` (a multi-project daemon) tags the event with its project's
        id: streams filtered to another project do not get it. A
        ``combined_only`` event (project_added, ...) goes to unfiltered streams only.
        """
        self.seq += 1
        encoded = encode_event(self.last_id, kind, data, self._now_iso(), gap, project)
        route = "" if combined_only else project
        self._remember(route, encoded)
        self.published += 1
        self.meter.event_published(kind)
        for subscriber in list(self.subscribers):
            if subscriber.project is None or subscriber.project == route:
                subscriber.offer(encoded)

    def _remember(self, route: str | None, encoded: bytes) -> None:
        replay = self._replay
        if len(replay) == replay.maxlen:
            self.replayed_bytes -= len(replay[0][1])  # the append below pushes it out
        replay.append((self.seq, encoded))
        self._routes.append(route)
        self.replayed_bytes += len(encoded)
        while self.replayed_bytes > self.replay_bytes and replay:
            _, evicted = replay.popleft()
            self._routes.popleft()
            self.replayed_bytes -= len(evicted)

    def _replay_after(self, last: EventId | None, project: str | None = None) -> list[bytes] | None:
        """Events after ``last`` (for a stream filtered to ``project``: its events only),
        or None when they cannot all be replayed."""
        if last is None or last.boot != self.boot or last.seq > self.seq:
            return None
        if last.seq == self.seq:
            return []
        oldest = self._replay[0][0] if self._replay else self.seq + 1
        if last.seq + 1 < oldest:
            return None
        # Newest first, and no further than the stream's budget: a resume of
        # more than it can hold is a gap, never a join of everything missed.
        missed: list[bytes] = []
        size = 0
        for (seq, encoded), route in zip(reversed(self._replay), reversed(self._routes), strict=True):
            if seq <= last.seq:
                break
            if project is not None and route != project:
                continue
            size += len(encoded)
            if size > PAUSED_QUEUE_BYTES:
                return None
            missed.append(encoded)
        missed.reverse()
        return missed

    def subscribe(
        self, request: Request, last_event_id: str | None, project: str | None = None
    ) -> Deferred[None]:
        """Open a stream on ``request``; the Deferred fires when the stream ends.

        ``project``: the stream carries that project's events only (its status
        first); None: every event.
        """
        from loopdash import API_VERSION, __version__

        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        subscriber = Subscriber(self, request, project)
        request.registerProducer(subscriber, True)
        self.subscribers.add(subscriber)
        request.notifyFinish().addBoth(lambda _: self.forget(subscriber))

        resume_from = EventId.parse(last_event_id)
        missed = self._replay_after(resume_from, project)
        first = [
            f"retry: {RETRY_MS}\n\n".encode(),
            encode_event(
                self.last_id,
                "connected",
                {"server_version": __version__, "api_version": API_VERSION},
                self._now_iso(),
            ),
        ]
        if missed is None:
            # A fresh stream, or one we cannot resume (an id we cannot read, from
            # another daemon, too old, or more than the budget): the current status,
            # a gap unless the client asked for no resume at all.
            asked_to_resume = bool(last_event_id and last_event_id.strip())
            first.append(
                self.gap_status(project)
                if asked_to_resume
                else self._status_message(gap=False, project=project)
            )
        else:
            first.extend(missed)
        subscriber.write(b"".join(first))
        self.log.info("Stream opened ({count} open)", count=len(self.subscribers))
        return subscriber.done

    def forget(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            subscriber.closed = True
            self.log.info("Stream closed ({count} open)", count=len(self.subscribers))
        subscriber.closed = True

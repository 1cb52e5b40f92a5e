"""Helpers for tests that talk to a real daemon over a real socket with treq."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import treq
from twisted.internet.defer import Deferred

from loopdash.server.service import Dashboard, DashboardConfig, build_dashboard


@dataclass
class Answer:
    code: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


@dataclass
class RunningDaemon:
    dashboard: Dashboard
    url: str
    root: str

    @property
    def token(self) -> str:
        with open(self.dashboard.config.token_path) as f:
            return f.read().strip()

    def auth(self, token: str | None = None) -> dict[bytes, list[bytes]]:
        return {b"Authorization": [f"Bearer {token or self.token}".encode()]}

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        authenticated: bool = True,
        headers: dict[bytes, list[bytes]] | None = None,
        **kwargs: Any,
    ) -> Answer:
        all_headers = dict(self.auth(token) if authenticated else {})
        all_headers.update(headers or {})
        response = await treq.request(method, self.url + path, headers=all_headers, **kwargs)
        body = await treq.content(response)
        return Answer(response.code, response.headers, body)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def stop(self) -> None:
        if self.dashboard.service.running:
            await self.dashboard.service.stopService()


async def start_daemon(reactor: Any, root: str, **config: Any) -> RunningDaemon:
    config.setdefault("listen", "tcp:0:interface=127.0.0.1")
    dashboard = build_dashboard(DashboardConfig(root=root, **config), reactor)
    dashboard.service.startService()
    port = await dashboard.web.when_listening()
    address = port.getHost()
    return RunningDaemon(dashboard, f"http://127.0.0.1:{address.port}", root)


def settle(reactor: Any, seconds: float = 0.0) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


# -- a real SSE client for the stream tests --------------------------------------

from twisted.internet.protocol import Protocol  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.web.client import ResponseDone  # noqa: E402


@dataclass
class Message:
    """One SSE block as received: its fields, the JSON of its data, or a comment."""

    raw: bytes
    id: str | None
    data: Any
    retry: int | None
    comment: str | None

    @property
    def type(self) -> str | None:
        return self.data.get("type") if isinstance(self.data, dict) else None


def parse_block(block: bytes) -> Message:
    fields: dict[str, list[str]] = {}
    comment = None
    for line in block.decode("utf-8").split("\n"):
        if line.startswith(":"):
            comment = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
    data = json.loads("\n".join(fields["data"])) if "data" in fields else None
    retry = int(fields["retry"][-1]) if "retry" in fields else None
    event_id = fields["id"][-1] if "id" in fields else None
    return Message(block, event_id, data, retry, comment)


class EventStream(Protocol):
    """Reads an event-stream body as it arrives (treq ``unbuffered=True`` + deliverBody)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.buffer = b""
        self.messages: list[Message] = []
        self._read = 0
        self._waiter: Deferred[None] | None = None
        self.ended: Deferred[None] = Deferred()
        self.end_reason: Failure | None = None
        self.clean_end: bool | None = None

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            self.messages.append(parse_block(block))
        self._wake()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.end_reason = reason
        self.clean_end = reason is not None and reason.check(ResponseDone) is not None
        self.ended.callback(None)
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    async def next(self, timeout: float = 5.0, comments: bool = False) -> Message:
        """The next message (events only, unless ``comments``), or TimeoutError."""
        from twisted.internet import reactor

        deadline = reactor.seconds() + timeout
        while True:
            while self._read < len(self.messages):
                message = self.messages[self._read]
                self._read += 1
                if comments or message.comment is None:
                    return message
            if self.ended.called:
                raise EOFError("the stream ended")
            remaining = deadline - reactor.seconds()
            if remaining <= 0:
                raise TimeoutError("no message in time")
            waiter: Deferred[None] = Deferred()
            self._waiter = waiter
            waiter.addTimeout(remaining, reactor)
            try:
                await waiter
            except Exception:
                self._waiter = None
                raise TimeoutError("no message in time") from None

    async def next_of_type(self, kind: str, timeout: float = 5.0) -> Message:
        from twisted.internet import reactor

        deadline = reactor.seconds() + timeout
        while True:
            message = await self.next(max(deadline - reactor.seconds(), 0.001))
            if message.type == kind:
                return message

    async def next_status_where(
        self,
        wanted: Callable[[Message], bool],
        meanwhile: Callable[[Message], bool] = lambda message: True,
        skip: int = 3,
        timeout: float = 5.0,
    ) -> Message:
        """The next ``status_update`` that is ``wanted``, after at most ``skip`` others.

        A file written in place (a plan, metrics.json) or removed file by file
        can be seen by two or three polls, each a status of its own, before the
        one the test waits for; each of those must hold ``meanwhile``.
        """
        status = await self.next_of_type("status_update", timeout)
        for _ in range(skip):
            if wanted(status):
                break
            assert meanwhile(status), status
            status = await self.next_of_type("status_update", timeout)
        return status

    def pending_events(self) -> list[Message]:
        """Events received but not yet read with next()."""
        return [m for m in self.messages[self._read :] if m.comment is None]

    def close(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


async def open_stream(
    daemon: RunningDaemon, query: str = "", path: str = "/api/stream", **kwargs: Any
) -> EventStream:
    """GET /api/stream (or another stream's ``path``) and start reading its body as it arrives."""
    response = await treq.get(
        daemon.url + path + query,
        headers=kwargs.pop("headers", daemon.auth()),
        unbuffered=True,
        **kwargs,
    )
    stream = EventStream(response)
    response.deliverBody(stream)
    return stream

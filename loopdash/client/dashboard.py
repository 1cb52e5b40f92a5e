"""A typed treq client for the loopdash API: one async method per endpoint, and a live stream.

:class:`DashboardClient` holds its collaborators (reactor, HTTP client, clock
for backoff jitter) and turns every answer into the frozen values of
:mod:`loopdash.client.models` and :mod:`loopdash.client.events`, every error
into a typed exception. Every call has a timeout; cancelling a call closes its
connection. :meth:`DashboardClient.stream` follows ``GET /api/stream`` and
reconnects by itself, the way the HTML standard's ``EventSource`` does.
:meth:`DashboardClient.project` gives a client bound to one project of a
multi-project daemon (its routes under ``/api/projects/<id>/``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from treq.client import HTTPClient
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, DeferredQueue
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import _newclient
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IAgent, IResponse

from loopdash.client.events import (
    Gap,
    Reconnected,
    StreamItem,
    decode_event,
)
from loopdash.client.models import (
    CommitDetail,
    CommitPage,
    DashboardError,
    ExecutionStatus,
    Health,
    HistoryPage,
    LogEntry,
    LogPage,
    MalformedResponse,
    Metrics,
    NotificationPage,
    ProjectList,
    RunDetail,
    RunRow,
    Stories,
    decode,
    runs_from_json,
)
from loopdash.client.sse import SSEParser
from loopdash.local.daemon import find_running, find_scanning
from loopdash.local.token import default_token_path
from loopdash.local.token import read_token as local_read_token

__all__ = [
    "BadRequest",
    "ConnectionFailed",
    "DashboardClient",
    "DashboardError",
    "Disconnected",
    "Forbidden",
    "HTTPError",
    "MalformedResponse",
    "NotFound",
    "ServerError",
    "TimedOut",
    "Unauthorized",
    "ReconnectPolicy",
    "asyncio_iterate",
    "asyncio_run",
]

#: Where a daemon listens when nothing says otherwise (the tap's default).
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0
#: Larger REST answers are refused rather than held in memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
PAGE_SIZE = 100

T = TypeVar("T")


# -- errors --------------------------------------------------------------------


class HTTPError(DashboardError):
    """The server answered with an error status; ``message`` is its JSON ``error``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class BadRequest(HTTPError):
    """400: a parameter was malformed."""


class Unauthorized(HTTPError):
    """401: no token, or not a Bearer header."""


class Forbidden(HTTPError):
    """403: the token is wrong."""


class NotFound(HTTPError):
    """404: no such run, or no metrics yet."""


class ServerError(HTTPError):
    """5xx: the daemon failed."""


class ConnectionFailed(DashboardError):
    """No answer: the daemon is not reachable, or the connection broke."""


class TimedOut(ConnectionFailed):
    """No complete answer within the client's timeout."""


_ERRORS_BY_STATUS: dict[int, type[HTTPError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
}

#: What Twisted and treq raise when a request cannot be sent or its answer not received.
_NETWORK_ERRORS = (
    net_error.ConnectError,
    net_error.ConnectionLost,
    net_error.DNSLookupError,
    _newclient.ResponseFailed,
    _newclient.ResponseNeverReceived,
    _newclient.RequestTransmissionFailed,
    OSError,
)


def error_for(status: int, body: bytes) -> HTTPError:
    """The typed exception for an error answer, carrying the server's ``error`` message."""
    message = ""
    try:
        value = json.loads(body)
        if isinstance(value, dict) and isinstance(value.get("error"), str):
            message = value["error"]
    except ValueError:
        pass
    if not message:
        message = body[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    kind = _ERRORS_BY_STATUS.get(status, ServerError if 500 <= status <= 599 else HTTPError)
    return kind(status, message)


# -- reading bodies ----------------------------------------------------------------


class _BodyReader(Protocol):
    """Collects a response body; the Deferred's canceller closes the connection."""

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.done: Deferred[bytes] = Deferred(lambda _: self.abort())

    def abort(self) -> None:
        if self.transport is not None:
            # The body's transport is a producer; stopping it closes the connection.
            IPushProducer(self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        self.size += len(data)
        self.chunks.append(data)
        if self.size > self.limit and not self.done.called:
            self.abort()
            self.done.errback(MalformedResponse(f"answer larger than {self.limit} bytes"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(ConnectionFailed(f"connection lost while reading the answer: {reason.value}"))


def read_body(response: IResponse, limit: int = MAX_BODY_BYTES) -> Deferred[bytes]:
    reader = _BodyReader(limit)
    response.deliverBody(reader)
    return reader.done


@dataclass(frozen=True)
class _End:
    """The stream's last queue item (a Failure itself would errback the queue's get)."""

    reason: Failure


class _EventStreamReader(Protocol):
    """Feeds an event stream through the SSE parser into a queue of batches.

    A batch is a list of parsed events; the final item says why the stream
    ended. With ``idle_timeout``, a stream silent for that long
    (no events, no keepalive comments) is closed: the peer is presumed dead.
    """

    def __init__(self, clock: IReactorTime, idle_timeout: float | None) -> None:
        self.parser = SSEParser()
        self.queue: DeferredQueue[list[Any] | _End] = DeferredQueue()
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.idle_call: IDelayedCall | None = None
        self.timed_out = False

    def connectionMade(self) -> None:
        self._arm()

    def _arm(self) -> None:
        if self.idle_timeout is None:
            return
        if self.idle_call is not None and self.idle_call.active():
            self.idle_call.reset(self.idle_timeout)
        else:
            self.idle_call = self.clock.callLater(self.idle_timeout, self._idle)

    def _idle(self) -> None:
        self.timed_out = True
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            # The body's transport is a producer; stopping it closes the connection.
            IPushProducer(self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        self._arm()
        events = self.parser.feed(data)
        if events:
            self.queue.put(events)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.idle_call is not None and self.idle_call.active():
            self.idle_call.cancel()
        self.queue.put(_End(reason))


# -- reconnecting ------------------------------------------------------------------


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff with jitter, starting from the server's ``retry:``.

    The n-th consecutive failure waits ``retry * factor**n`` seconds (capped at
    ``maximum``, but never below the server's retry), stretched by a random
    fraction up to ``jitter`` so that many clients do not return in step.
    """

    #: Seconds to wait before the server has sent ``retry:``.
    initial: float = 3.0
    factor: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.5

    def delay(self, failures: int, retry: float | None, draw: Callable[[], float]) -> float:
        base = self.initial if retry is None else retry
        ceiling = max(self.maximum, base)
        return min(base * self.factor ** max(failures, 0), ceiling) * (1.0 + self.jitter * draw())


@dataclass(frozen=True)
class Disconnected:
    """The stream is down (or could not be opened); the client retries in ``retry_in`` seconds."""

    error: str
    #: Consecutive failed attempts so far (1 for the first).
    attempts: int
    retry_in: float


# -- the client --------------------------------------------------------------------


class DashboardClient:
    """The loopdash API at ``base_url``, with a bearer ``token``.

    ``timeout`` bounds every REST call (connect, answer and body) and the
    opening of the stream; ``idle_timeout`` closes and reopens a stream that
    has been silent that long (the server's keepalive comes every 30 s).
    ``clock`` (default: the reactor) times the waits between reconnections
    and the idle timeout; ``jitter`` draws the backoff's random fraction.

    Per-project calls (status, stories, ..., stream) go to the plain
    ``/api/...`` routes, which serve the daemon's default project; a client
    from :meth:`project` sends them to ``/api/projects/<id>/...`` instead.
    """

    #: The project this client's per-project calls are for; None: the daemon's default one.
    project_id: str | None = None
    #: Where the per-project routes are: ``/api`` or ``/api/projects/<id>``.
    _routes = "/api"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        reactor: Any = None,
        clock: IReactorTime | None = None,
        agent: IAgent | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        idle_timeout: float | None = 90.0,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.reconnect = reconnect
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._jitter = jitter
        self._pool: HTTPConnectionPool | None = None
        if agent is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._http = HTTPClient(Agent(reactor, pool=self._pool))
            # Each stream gets a connection of its own, never reused: after a daemon ends
            # a stream (it is stopping), a kept-alive connection would lead back to it.
            self._stream_http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        else:
            self._http = self._stream_http = HTTPClient(agent)

    @classmethod
    def from_project(cls, root: str, *, token_file: str | None = None, **kwargs: Any) -> DashboardClient:
        """A client for the daemon serving the project at ``root``.

        The token comes from ``<root>/.claude-loop/dashboard/auth_token.txt``
        (or ``token_file``). The URL is the one ``loopdash start`` recorded for
        a running daemon; without one, :data:`DEFAULT_URL` (the daemon's
        default port), since a daemon started by hand records nothing.
        """
        path = token_file or default_token_path(os.path.abspath(root))
        return cls(find_url(root), read_token(path), **kwargs)

    async def close(self) -> None:
        """Close idle pooled connections (not needed with an agent of your own)."""
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    async def __aenter__(self) -> DashboardClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- projects ------------------------------------------------------------------

    def project(self, project_id: str) -> DashboardClient:
        """A client of the project ``project_id``: every per-project call goes to
        ``/api/projects/<project_id>/...``, its stream to ``/api/projects/<project_id>/stream``.

        It shares this client's connections, token and settings (closing either
        closes the shared idle connections). An unknown id (or a remote
        project's, which its own daemon serves) is :class:`NotFound` at the first call.
        """
        bound = copy.copy(self)
        bound.project_id = project_id
        # One path segment whatever the id holds; ids are URL-safe, but a caller's typo need not be.
        bound._routes = "/api/projects/" + quote(project_id, safe="")
        return bound

    async def projects(self) -> ProjectList:
        """``GET /api/projects``: every project the daemon serves (its ``projects`` rows,
        remote ones included), and the id of the default one."""
        return decode(ProjectList, await self._get("/api/projects"))

    # -- REST ----------------------------------------------------------------------

    async def health(self) -> Health:
        return decode(Health, await self._get("/api/health", authenticated=False))

    async def status(self) -> ExecutionStatus:
        return decode(ExecutionStatus, await self._get(self._routes + "/status"))

    async def stories(self, run_id: str | None = None) -> Stories:
        return decode(Stories, await self._get(self._routes + "/stories", {"run_id": run_id}))

    async def logs(self, limit: int = 100, offset: int = 0, run_id: str | None = None) -> LogPage:
        params = {"limit": limit, "offset": offset, "run_id": run_id}
        return decode(LogPage, await self._get(self._routes + "/logs", params))

    async def metrics(self, run_id: str | None = None) -> Metrics:
        return decode(Metrics, await self._get(self._routes + "/metrics", {"run_id": run_id}))

    async def history(self, limit: int = 20, offset: int = 0) -> HistoryPage:
        params = {"limit": limit, "offset": offset}
        return decode(HistoryPage, await self._get(self._routes + "/history", params))

    async def notifications(self, limit: int = 50, offset: int = 0) -> NotificationPage:
        """The daemon's recent notifications, newest first, and its rules' settings."""
        params = {"limit": limit, "offset": offset}
        return decode(NotificationPage, await self._get(self._routes + "/notifications", params))

    async def runs(self) -> tuple[RunRow, ...]:
        return runs_from_json(await self._get(self._routes + "/runs"))

    async def run(self, run_id: str) -> RunDetail:
        # One path segment whatever the id holds ("/" included).
        return decode(RunDetail, await self._get(f"{self._routes}/runs/{quote(run_id, safe='')}"))

    async def commits(self, limit: int = 20, offset: int = 0, since: str | None = None) -> CommitPage:
        """A page of the project's commits, newest first; ``since``: a run id or a commit sha."""
        params = {"limit": limit, "offset": offset, "since": since}
        return decode(CommitPage, await self._get(self._routes + "/commits", params))

    async def commit(self, sha: str) -> CommitDetail:
        """One commit with its files' stats and diffs (NotFound when there is no such commit)."""
        return decode(CommitDetail, await self._get(f"{self._routes}/commits/{quote(sha, safe='')}"))

    async def iter_logs(
        self, page_size: int = PAGE_SIZE, run_id: str | None = None
    ) -> AsyncIterator[LogEntry]:
        """Every log entry, oldest first, fetched a page at a time."""
        offset = 0
        while True:
            page = await self.logs(limit=page_size, offset=offset, run_id=run_id)
            for entry in page.logs:
                yield entry
            offset += len(page.logs)
            if not page.logs or offset >= page.total:
                return

    async def iter_history(self, page_size: int = PAGE_SIZE) -> AsyncIterator[RunRow]:
        """Every run, newest first, fetched a page at a time."""
        offset = 0
        while True:
            page = await self.history(limit=page_size, offset=offset)
            for row in page.runs:
                yield row
            offset += len(page.runs)
            if not page.runs or offset >= page.total:
                return

    def _headers(self, accept: bytes, authenticated: bool = True) -> dict[bytes | str, list[bytes | str]]:
        headers: dict[bytes | str, list[bytes | str]] = {b"Accept": [accept]}
        if authenticated:
            headers[b"Authorization"] = [b"Bearer " + self.token.encode("utf-8")]
        return headers

    async def _get(
        self, path: str, params: Mapping[str, object] | None = None, *, authenticated: bool = True
    ) -> Any:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        return await self._bounded(self._fetch_json(path, query, authenticated), f"GET {path}")

    async def _bounded(self, work: Coroutine[Any, Any, T], what: str) -> T:
        """Run ``work`` within the timeout; on timeout it is cancelled, which closes its connection."""
        attempt = Deferred.fromCoroutine(work)
        attempt.addTimeout(self.timeout, self._reactor)
        try:
            return await attempt
        except DeferredTimeout:
            raise TimedOut(f"{what}: no answer from {self.base_url} within {self.timeout:g} s") from None

    async def _fetch_json(self, path: str, query: dict[str, str], authenticated: bool) -> Any:
        response = await self._request(path, query, self._headers(b"application/json", authenticated))
        body = await read_body(response)
        if response.code != 200:
            raise error_for(response.code, body)
        try:
            return json.loads(body)
        except ValueError as e:
            raise MalformedResponse(f"GET {path}: the answer is not JSON ({e})") from None

    async def _request(
        self,
        path: str,
        query: dict[str, str],
        headers: dict[bytes | str, list[bytes | str]],
        http: HTTPClient | None = None,
    ) -> IResponse:
        try:
            response: IResponse = await (http or self._http).get(
                self.base_url + path, params=query, headers=headers, unbuffered=True, reactor=self._reactor
            )
        except CancelledError:
            raise
        except _NETWORK_ERRORS as e:
            if _cancelled(e):
                raise CancelledError() from None
            raise ConnectionFailed(f"cannot reach {self.base_url}: {_describe(e)}") from None
        return response

    # -- the live stream -------------------------------------------------------------

    async def stream(self, last_event_id: str | None = None) -> AsyncIterator[StreamItem | Disconnected]:
        """Events of ``GET /api/stream`` as they come, for as long as you iterate.

        A multi-project daemon's ``/api/stream`` carries every project's events
        (each with its ``project``) and the project_added/updated/removed ones;
        a client from :meth:`project` follows ``/api/projects/<id>/stream``,
        that project's events only.

        The stream survives the daemon going away: on a lost connection it
        yields :class:`Disconnected`, waits (backoff with jitter, from the
        server's ``retry:``), reconnects sending ``Last-Event-ID``, then yields
        :class:`Reconnected`, and :class:`Gap` when events may have been
        missed. Errors that retrying cannot fix (401, 403, 404, 400, an answer
        that is not an event stream) are raised. Stop with ``break`` or
        ``aclose()``; either closes the connection.
        """
        last_id = last_event_id
        retry: float | None = None
        failures = 0
        waited = 0.0
        has_connected = False
        while True:
            reader: _EventStreamReader | None = None
            try:
                reader = await self._bounded(self._open_stream(last_id), f"GET {self._routes}/stream")
                if has_connected:
                    yield Reconnected(failures, waited, last_id)
                    if last_id is None:
                        yield Gap("reconnected without an event id to resume from")
                has_connected = True
                failures, waited = 0, 0.0
                while True:
                    batch = await reader.queue.get()
                    if isinstance(batch, _End):
                        raise _StreamEnded(_ending(batch.reason, reader))
                    if reader.parser.retry is not None:
                        retry = reader.parser.retry / 1000.0
                    for sse in batch:
                        event = decode_event(sse.data, sse.last_event_id or None)
                        last_id = sse.last_event_id or None
                        if event.gap:
                            yield Gap("the server could not replay the events missed")
                        yield event
            except (ConnectionFailed, ServerError, _StreamEnded) as e:
                if reader is not None and reader.parser.retry is not None:
                    retry = reader.parser.retry / 1000.0
                failures += 1
                delay = self.reconnect.delay(failures - 1, retry, self._jitter)
                waited += delay
                yield Disconnected(e.message if isinstance(e, DashboardError) else str(e), failures, delay)
                await _sleep(self._clock, delay)
            finally:
                if reader is not None:
                    reader.close()

    async def _open_stream(self, last_id: str | None) -> _EventStreamReader:
        headers = self._headers(b"text/event-stream")
        headers[b"Cache-Control"] = [b"no-cache"]
        if last_id:
            headers[b"Last-Event-ID"] = [last_id.encode("utf-8")]
        path = self._routes + "/stream"
        response = await self._request(path, {}, headers, self._stream_http)
        if response.code != 200:
            raise error_for(response.code, await read_body(response))
        content_type = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        if content_type.split(b";")[0].strip().lower() != b"text/event-stream":
            response.deliverBody(_BodyReader(0))  # discard: closes the connection
            raise MalformedResponse(f"GET {path} answered {content_type!r}, not text/event-stream")
        reader = _EventStreamReader(self._clock, self.idle_timeout)
        response.deliverBody(reader)
        return reader


class _StreamEnded(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _ending(reason: Failure, reader: _EventStreamReader) -> str:
    if reader.timed_out:
        return f"no data for {reader.idle_timeout:g} s"
    if reason.check(ResponseDone, PotentialDataLoss):
        return "the server ended the stream"
    return f"connection lost: {_describe(reason.value)}"


def _cancelled(error: object) -> bool:
    """Whether the request failed because it was cancelled (Twisted wraps that in ResponseNeverReceived)."""
    if isinstance(error, _newclient._WrapperException):
        return any(r.check(CancelledError) for r in error.reasons)
    return False


def _describe(error: object) -> str:
    if isinstance(error, _newclient._WrapperException) and error.reasons:
        return "; ".join(_describe(r.value) for r in error.reasons)
    text = str(error).strip().rstrip(".")
    return text or type(error).__name__


def _sleep(reactor: IReactorTime, seconds: float) -> Deferred[None]:
    waiting: Deferred[None] = Deferred(lambda _: call.cancel())
    call = reactor.callLater(seconds, waiting.callback, None)
    return waiting


# -- finding a daemon ----------------------------------------------------------------


def read_token(path: str) -> str:
    """The token in ``path``; a missing, empty, oversized or non-regular file is a :class:`DashboardError`.

    Read non-blocking and bounded (a FIFO never hangs the client).
    """
    try:
        return local_read_token(path)
    except FileNotFoundError:
        raise DashboardError(f"cannot read the API token: no file {path}") from None
    except OSError as e:
        raise DashboardError(f"cannot read the API token: {e}") from None
    except ValueError:
        raise DashboardError(f"the token file {path} is empty") from None


def find_url(root: str) -> str:
    """The URL of the daemon ``loopdash start`` runs for ``root``: the project's own,
    else one scanning ``root`` (``start --scan``), else :data:`DEFAULT_URL`."""
    folder = os.path.abspath(root)
    running = find_running(folder) or find_scanning(folder)
    return running.url if running is not None else DEFAULT_URL


# -- plain asyncio -----------------------------------------------------------------


def asyncio_run(work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Await a client coroutine from asyncio code (Twisted's asyncio reactor installed)."""
    return Deferred.fromCoroutine(work).asFuture(asyncio.get_running_loop())


async def asyncio_iterate(source: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate ``client.stream()`` (or ``iter_logs()``...) with ``async for`` in asyncio code."""

    async def step() -> T:
        return await source.__anext__()

    try:
        while True:
            try:
                item = await asyncio_run(step())
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await asyncio_run(aclose())

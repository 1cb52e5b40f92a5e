"""The access log: one twisted.logger event per request, with secrets taken out.

EventSource cannot send headers, so stream tickets and tokens
(``/api/stream?token=``) arrive in the query string; Twisted's own access log writes
the full URI. :class:`AccessLogSite` logs method, redacted URI, status and
duration instead, through twisted.logger, so the line lands in the daemon's
log in whichever format (text or JSON) the daemon writes.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web.http import Request
from twisted.web.resource import IResource
from twisted.web.server import Site

from loopdash.server.limits import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_DEADLINE,
    EdgeChannel,
    OverCapacity,
)
from loopdash.server.logformat import PREFORMATTED

SECRET_QUERY_NAMES = frozenset({b"ticket", b"token", b"access_token", b"auth"})


def redact_uri(uri: bytes) -> bytes:
    """The URI with the values of secret query parameters replaced by ``REDACTED``.

    Works on the raw bytes, pair by pair, so any query (non-ASCII, malformed
    percent-escapes) passes through. Pairs are split on ``&`` and on ``;``, and
    names compared percent-decoded with ``+`` as a space, exactly as Twisted
    parses ``request.args`` (so ``?x=1;ticket=T`` and ``?tick%65t=T`` are caught);
    case is ignored, which catches more than the API reads.
    """
    path, sep, query = uri.partition(b"?")
    if not sep:
        return uri
    return path + b"?" + _redact_query(query)


_SEPARATOR = re.compile(rb"([&;])")


def _redact_query(query: bytes) -> bytes:
    parts = _SEPARATOR.split(query)  # pairs at even indexes, their separators between
    for index in range(0, len(parts), 2):
        name = parts[index].partition(b"=")[0]
        if _is_secret(name):
            parts[index] = name + b"=REDACTED"
    return b"".join(parts)


def _is_secret(name: bytes) -> bool:
    return unquote_to_bytes(name.replace(b"+", b" ")).lower() in SECRET_QUERY_NAMES


def client_host(request: Request) -> str:
    host = getattr(request.getClientAddress(), "host", None)
    return host if isinstance(host, str) else "-"


#: Module-level, not a class attribute: a Logger on a class is a descriptor that
#: makes a new Logger at every access (once per request here).
access_log = Logger(namespace="loopdash.server.accesslog.AccessLogSite")


class AccessLogSite(Site):
    """A Site logging each finished request: method, URI without secrets, status, milliseconds.

    Its connections are :class:`EdgeChannel` (JSON refusals, the request
    deadline); past ``max_connections`` open ones, a new connection gets
    :class:`OverCapacity` (503) instead.
    """

    protocol = EdgeChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: IResource,
        reactor: Any,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        request_deadline: float | None = DEFAULT_REQUEST_DEADLINE,
    ) -> None:
        Site.__init__(self, resource, reactor=reactor)
        self.max_connections = max_connections
        self.request_deadline = request_deadline
        #: The open connections, streams included (EdgeChannel adds and removes itself).
        self.connections: set[EdgeChannel] = set()
        #: Connections answered 503 since the start.
        self.refused_connections = 0
        #: refused_connections when the cap was reached, while it is.
        self._refusing_since: int | None = None

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.connections) >= self.max_connections:
            if self._refusing_since is None:
                # Once per spell at the cap, not once per connection: a flood must not flood the log.
                self._refusing_since = self.refused_connections
                access_log.warn(
                    "{count} connections open: answering new ones 503 (--max-connections)",
                    count=len(self.connections),
                )
            self.refused_connections += 1
            deadline = self.request_deadline if self.request_deadline is not None else 10.0
            refuser = OverCapacity(self.reactor.callLater, deadline, self.max_connections)
            refuser.factory = self
            return refuser
        channel = Site.buildProtocol(self, addr)
        assert isinstance(channel, EdgeChannel)
        channel.request_deadline = self.request_deadline
        channel.on_open = self.connections.add
        channel.on_close = self._closed
        return channel

    def _closed(self, channel: EdgeChannel) -> None:
        self.connections.discard(channel)
        if self._refusing_since is not None and len(self.connections) < self.max_connections:
            access_log.info(
                "Below --max-connections again; {count} connections were answered 503",
                count=self.refused_connections - self._refusing_since,
            )
            self._refusing_since = None

    def log_refusal(self, status: int, client: str, reason: str) -> None:
        """A request refused before it was parsed (400, 408, 414, 431): no method or URI to log."""
        access_log.info(
            PREFORMATTED,
            line=f"- - {status} {client} ({reason})",
            status=status,
            client=client,
            reason=reason,
        )

    def startFactory(self) -> None:
        # HTTPFactory's would open its Combined Log Format file and start a timer
        # that refreshes that log's date string every second, waking an idle
        # daemon for nothing: log() below writes through twisted.logger instead.
        pass

    def stopFactory(self) -> None:
        pass

    def getResourceFor(self, request: Request) -> IResource:
        # Called once per request, when its headers and body have arrived.
        request.loopdash_received = self.reactor.seconds()  # type: ignore[attr-defined]
        resource: IResource = Site.getResourceFor(self, request)
        return resource

    def log_unfinished(self, request: Request) -> None:
        """Log a request whose client went away first: an event stream's usual end."""
        self.log(request, closed_by_client=True)

    def log(self, request: Request, closed_by_client: bool = False) -> None:
        received = getattr(request, "loopdash_received", None)
        duration = 0.0 if received is None else (self.reactor.seconds() - received) * 1000
        method = request.method.decode("ascii", "replace")
        uri = redact_uri(request.uri).decode("ascii", "replace")
        duration_ms = round(duration, 1)
        client = client_host(request)
        # One pre-formatted field: the log observer formats it per event, and
        # five fields cost a third more on every request. The fields stay in
        # the event for the JSON log.
        ending = " (closed by the client)" if closed_by_client else ""
        access_log.info(
            PREFORMATTED,
            line=f"{method} {uri} {request.code} {duration_ms}ms {client}{ending}",
            method=method,
            uri=uri,
            status=request.code,
            duration_ms=duration_ms,
            client=client,
            sent_bytes=request.sentLength,
            closed_by_client=closed_by_client,
        )

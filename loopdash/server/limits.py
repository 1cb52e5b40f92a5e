"""Bounds on requests and connections, each refused with a JSON answer, never a silent close.

- Bodies: no route of ours reads one, so none may be large. Twisted spools a
  body of over 100 KB to a temporary file, so a client declaring (or
  streaming) gigabytes would fill the disk. :class:`BoundedRequest` answers 413
  as soon as a body is known to exceed :data:`MAX_BODY_BYTES` (from
  Content-Length, or while a chunked body arrives), before any ``100
  Continue``, and hangs up, keeping nothing of it.
- Heads: a request line over :data:`MAX_LINE_BYTES` is 414; a header line over
  it, a head over :data:`MAX_HEAD_BYTES` or over :data:`MAX_HEADERS` header
  lines is 431 (RFC 6585 §5); other malformed heads 400. Twisted itself closes
  an over-long line without a word and answers a bare 400 to the rest.
- Time: a request's head (and its body) must arrive within the request deadline
  of its first byte (or of the connection's opening), else 408: a client sending
  a byte a second would otherwise hold its connection for ever, since every
  byte restarts the idle timeout.
- Count: past ``max_connections`` open connections (open event streams
  included), a new connection is answered 503 and closed.

Every refusal is written here, on the connection, as a whole response with
``Connection: close``: the request never reached a resource.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

from loopdash.server.encoding import encode_json

MAX_BODY_BYTES = 64 * 1024
#: The longest request line or header line (Twisted's own line limit).
MAX_LINE_BYTES = 16 * 1024
#: The request line and every header together (Twisted's default).
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 500
#: Seconds from a request's first byte until its head and body are all in.
DEFAULT_REQUEST_DEADLINE = 10.0
#: Open connections (event streams included) before new ones are answered 503.
DEFAULT_MAX_CONNECTIONS = 800
#: Seconds to tell a client past the connection cap to wait.
RETRY_AFTER_BUSY = 5

TOO_LARGE = f"Request body too large (at most {MAX_BODY_BYTES} bytes)"

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def refusal(status: int, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A whole HTTP/1.1 response: ``{"error": message}``, the security headers, ``Connection: close``."""
    body = encode_json({"error": message})
    head = [
        b"HTTP/1.1 %d %s" % (status, REASONS[status]),
        b"Content-Type: application/json; charset=utf-8",
        b"Content-Length: %d" % len(body),
        b"Cache-Control: no-store",
        b"X-Content-Type-Options: nosniff",
        b"Referrer-Policy: no-referrer",
        b"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'",
        b"Connection: close",
        *(name + b": " + value for name, value in extra),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class BoundedRequest(Request):
    """A request whose body, if any, is at most ``max_body`` bytes.

    Also serves an absolute-form request line (``GET http://host:port/path``,
    RFC 9112 §3.2.2) as the path it names, with its authority as the Host (which
    the front resource then checks), sends ``OPTIONS *`` through the front
    resource (for its Host check and headers), and logs a request whose client
    went away before it finished (an event stream's usual end).
    """

    max_body = MAX_BODY_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Request.__init__(self, *args, **kwargs)
        self._body_bytes = 0
        #: Answered (413) and closing: nothing more is done with this request.
        self.refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse()
            return
        Request.gotLength(self, length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body:
            self._refuse()
            return
        Request.handleContentChunk(self, data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.refused:
            return  # already answered; the connection is closing
        if path[:1] not in (b"/", b"*"):
            path = self._origin_form(path)
        Request.requestReceived(self, command, path, version)

    def _origin_form(self, target: bytes) -> bytes:
        """The path of an absolute-form target; its authority replaces the Host header.

        A target that is not ``http(s)://authority/...`` is left as it is (it
        then matches no route: 404).
        """
        try:
            parts = urlsplit(target.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return target
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return target
        # RFC 9112 §3.2.2: the authority of the target wins over any Host header.
        self.requestHeaders.setRawHeaders(b"host", [parts.netloc.encode("ascii")])
        path = parts.path or "/"
        query = "?" + parts.query if parts.query or target.endswith(b"?") else ""
        return (path + query).encode("ascii")

    def _handleStar(self) -> None:
        # Twisted answers ``*`` itself, bare; ours carries the Host check and the headers.
        assert self.site is not None
        self.render(self.site.resource)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure) -> None:
        logged = self.finished or self.refused or not hasattr(self, "loopdash_received")
        Request.connectionLost(self, reason)
        if not logged:
            closed = getattr(self.site, "log_unfinished", None)
            if closed is not None:
                closed(self)

    def _refuse(self) -> None:
        self.refused = True
        self.content = io.BytesIO()
        transport = self.channel.transport if self.channel is not None else None
        if transport is None:
            return
        transport.write(refusal(413, TOO_LARGE))
        transport.loseConnection()


class EdgeChannel(HTTPChannel):
    """HTTP/1.1 with JSON refusals (414, 431, 400), a request deadline, and a count of itself.

    ``on_open``/``on_close`` (set by the site) count open connections;
    ``request_deadline`` is in seconds (None: none).
    """

    MAX_LENGTH = MAX_LINE_BYTES
    totalHeadersSize = MAX_HEAD_BYTES
    maxHeaders = MAX_HEADERS

    request_deadline: float | None = DEFAULT_REQUEST_DEADLINE
    on_open: Callable[[EdgeChannel], None] = staticmethod(lambda channel: None)
    on_close: Callable[[EdgeChannel], None] = staticmethod(lambda channel: None)

    def __init__(self) -> None:
        HTTPChannel.__init__(self)
        #: Between requests (or before the first): the next bytes start a request.
        self._awaiting_request = True
        self._deadline: IDelayedCall | None = None
        self._refused = False

    # -- the request deadline --------------------------------------------------------

    def connectionMade(self) -> None:
        HTTPChannel.connectionMade(self)
        self.on_open(self)
        # A new connection must send a request in time, not only a kept-alive one.
        self._start_deadline()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_request and self._deadline is None:
            self._start_deadline()
        HTTPChannel.dataReceived(self, data)

    def allContentReceived(self) -> None:
        self._awaiting_request = False
        self._stop_deadline()
        HTTPChannel.allContentReceived(self)

    def requestDone(self, request: Request) -> None:
        self._awaiting_request = True
        HTTPChannel.requestDone(self, request)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._stop_deadline()
        HTTPChannel.connectionLost(self, reason)
        self.on_close(self)

    def _start_deadline(self) -> None:
        if self.request_deadline is not None and self._deadline is None:
            self._deadline = self.callLater(  # type: ignore[no-untyped-call]
                self.request_deadline, self._deadline_passed
            )

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        self._refuse(408, f"The request did not arrive within {self.request_deadline:g} seconds")
        # A client that does not even read its answer is cut off, as Twisted's idle timeout does.
        if self.abortTimeout is not None:
            self._abortingCall = self.callLater(  # type: ignore[no-untyped-call]
                self.abortTimeout, self.forceAbortClient
            )

    # -- oversized and malformed heads -----------------------------------------------

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted's LineReceiver would close the connection without a word.
        if self._HTTPChannel__first_line:  # type: ignore[attr-defined]
            self._refuse(414, f"Request line too long (at most {self.MAX_LENGTH} bytes)")
        else:
            self._refuse(431, f"Request header too long (at most {self.MAX_LENGTH} bytes a line)")

    def lineReceived(self, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            if self._HTTPChannel__first_line:  # type: ignore[attr-defined]
                self._refuse(414, f"Request line too long (at most {self.totalHeadersSize} bytes)")
            else:
                self._refuse(431, f"Request headers too large (at most {self.totalHeadersSize} bytes)")
            return
        HTTPChannel.lineReceived(self, line)

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(431, f"Too many request headers (at most {self.maxHeaders})")
            return False
        ok: bool = HTTPChannel.headerReceived(self, line)
        return ok

    def _respondToBadRequestAndDisconnect(self) -> None:
        self._refuse(400, "Bad request")

    def _send100Continue(self) -> None:
        # gotLength has just run: a body refused (413) must get no "go ahead".
        request = self.requests[-1] if self.requests else None
        if isinstance(request, BoundedRequest) and request.refused:
            return
        HTTPChannel._send100Continue(self)

    def _refuse(self, status: int, message: str) -> None:
        if self._refused or self.transport is None:
            return
        self._refused = True
        self._stop_deadline()
        report = getattr(self.factory, "log_refusal", None)
        if report is not None:
            report(status, getattr(self.transport.getPeer(), "host", "-"), message)
        self.transport.write(refusal(status, message))
        self.loseConnection()  # type: ignore[no-untyped-call]


class OverCapacity(Protocol):
    """A connection past the cap: 503 as soon as its client says anything, then closed.

    Answering on the first bytes (rather than at once) means the request has
    been read, so closing does not reset the connection under the answer. A
    client that says nothing is cut off after ``deadline`` seconds.
    """

    def __init__(self, call_later: Callable[..., IDelayedCall], deadline: float, limit: int) -> None:
        self._call_later = call_later
        self._deadline = deadline
        self._limit = limit
        self._timer: IDelayedCall | None = None
        self._answered = False

    def connectionMade(self) -> None:
        self._timer = self._call_later(self._deadline, self._give_up)

    def dataReceived(self, data: bytes) -> None:
        if self._answered or self.transport is None:
            return
        self._answered = True
        self.transport.write(
            refusal(
                503,
                f"Too many connections (at most {self._limit}); retry later",
                ((b"Retry-After", str(RETRY_AFTER_BUSY).encode("ascii")),),
            )
        )
        self.transport.loseConnection()

    def _give_up(self) -> None:
        self._timer = None
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

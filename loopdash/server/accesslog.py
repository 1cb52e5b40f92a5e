"""The access log: one twisted.logger event per request, with secrets taken out.

EventSource cannot send headers, so stream tickets (and, from careless
clients, tokens) arrive in the query string; Twisted's own access log writes
the full URI. :class:`AccessLogSite` logs method, redacted URI, status and
duration instead, through twisted.logger, so the line lands in the daemon's
log in whichever format (text or JSON) the daemon writes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web.http import Request
from twisted.web.resource import IResource
from twisted.web.server import Site

from loopdash.server.logformat import PREFORMATTED

SECRET_QUERY_NAMES = frozenset({b"ticket", b"token", b"access_token", b"auth"})


def redact_uri(uri: bytes) -> bytes:
    """The URI with the values of secret query parameters replaced by ``REDACTED``.

    Works on the raw bytes, pair by pair, so any query (non-ASCII, malformed
    percent-escapes) passes through; names are compared percent-decoded, as
    the API reads them.
    """
    path, sep, query = uri.partition(b"?")
    if not sep:
        return uri
    pairs = query.split(b"&")
    redacted = [
        name + b"=REDACTED" if _is_secret(name) else pair
        for pair, name in ((pair, pair.partition(b"=")[0]) for pair in pairs)
    ]
    return path + b"?" + b"&".join(redacted)


def _is_secret(name: bytes) -> bool:
    return unquote_to_bytes(name.replace(b"+", b" ")).lower() in SECRET_QUERY_NAMES


def client_host(request: Request) -> str:
    host = getattr(request.getClientAddress(), "host", None)
    return host if isinstance(host, str) else "-"


#: Module-level, not a class attribute: a Logger on a class is a descriptor that
#: makes a new Logger at every access (once per request here).
access_log = Logger(namespace="loopdash.server.accesslog.AccessLogSite")


class AccessLogSite(Site):
    """A Site logging each finished request: method, URI without secrets, status, milliseconds."""

    def __init__(self, resource: IResource, reactor: Any) -> None:
        Site.__init__(self, resource, reactor=reactor)

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

    def log(self, request: Request) -> None:
        received = getattr(request, "loopdash_received", None)
        duration = 0.0 if received is None else (self.reactor.seconds() - received) * 1000
        method = request.method.decode("ascii", "replace")
        uri = redact_uri(request.uri).decode("ascii", "replace")
        duration_ms = round(duration, 1)
        client = client_host(request)
        # One pre-formatted field: the log observer formats it per event, and
        # five fields cost a third more on every request. The fields stay in
        # the event for the JSON log.
        access_log.info(
            PREFORMATTED,
            line=f"{method} {uri} {request.code} {duration_ms}ms {client}",
            method=method,
            uri=uri,
            status=request.code,
            duration_ms=duration_ms,
            client=client,
            sent_bytes=request.sentLength,
        )

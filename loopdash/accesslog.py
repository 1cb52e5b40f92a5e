"""The access log, with secrets taken out of query strings.

EventSource cannot send headers, so stream tickets (and, from careless
clients, tokens) arrive in the query string; Twisted's access log writes the
full URI. This formatter writes Twisted's combined format with those values
replaced by ``REDACTED``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from twisted.web.http import combinedLogFormatter
from twisted.web.iweb import IRequest

SECRET_QUERY_NAMES = frozenset({b"ticket", b"token", b"access_token", b"auth"})


def redact_uri(uri: bytes) -> bytes:
    path, sep, query = uri.partition(b"?")
    if not sep:
        return uri
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_QUERY_NAMES for name, _ in pairs):
        return uri
    redacted = [
        (name, b"REDACTED" if name.lower() in SECRET_QUERY_NAMES else value) for name, value in pairs
    ]
    return path + b"?" + urlencode(redacted).encode("ascii")


class _RedactedRequest:
    """The request as the log formatter sees it: the same but for its URI."""

    def __init__(self, request: IRequest) -> None:
        self._request = request
        self.uri = redact_uri(request.uri)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def redacting_log_formatter(timestamp: str, request: IRequest) -> str:
    line: str = combinedLogFormatter(timestamp, _RedactedRequest(request))
    return line

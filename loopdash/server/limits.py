"""A bound on request bodies: no route of ours reads one, so none may be large.

Twisted spools a body of over 100 KB to a temporary file, so a client
declaring (or streaming) gigabytes would fill the disk. :class:`BoundedRequest`
answers 413 JSON as soon as a body is known to exceed :data:`MAX_BODY_BYTES`
(from Content-Length, or while a chunked body arrives) and hangs up, keeping
nothing of it.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.web.server import Request

from loopdash.server.encoding import encode_json

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = encode_json({"error": f"Request body too large (at most {MAX_BODY_BYTES} bytes)"})


class BoundedRequest(Request):
    """A request whose body, if any, is at most ``max_body`` bytes."""

    max_body = MAX_BODY_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Request.__init__(self, *args, **kwargs)
        self._body_bytes = 0
        self._refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse()
            return
        Request.gotLength(self, length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body:
            self._refuse()
            return
        Request.handleContentChunk(self, data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return  # already answered; the connection is closing
        Request.requestReceived(self, command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        self.content = io.BytesIO()
        transport = self.channel.transport if self.channel is not None else None
        if transport is None:
            return
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\n"
            b"Connection: close\r\n"
            b"Content-Length: " + str(len(TOO_LARGE)).encode("ascii") + b"\r\n\r\n" + TOO_LARGE
        )
        transport.loseConnection()

"""An incremental Server-Sent Events parser: bytes in, events out.

Pure (no I/O, no reactor). It follows the HTML Living Standard, "Server-sent
events", section "Interpreting an event stream": UTF-8 with one leading BOM
ignored, lines ended by CRLF, LF or CR (even when a chunk boundary falls
between the CR and the LF), ``data`` lines joined with ``\\n``, comments
ignored, ``id`` values holding NUL ignored, ``retry`` taken only when it is
all ASCII digits, and an event dispatched on a blank line unless its data is
empty.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

BOM = "\ufeff"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event, as ``EventSource`` would hand it to a listener."""

    data: str
    #: The event type: ``message`` unless an ``event`` field named another.
    type: str = "message"
    #: The stream's last event id when this event was dispatched ("" if none yet).
    last_event_id: str = ""


class SSEParser:
    """Feed it chunks of an event stream; it returns the events they complete.

    ``last_event_id`` and ``retry`` (milliseconds, or None before the server
    sent one) are what a client needs to reconnect the way the standard says.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        #: A CR ended the previous chunk: an LF opening the next one belongs to it.
        self._after_cr = False
        self._data: list[str] = []
        self._event_type = ""
        self._id_buffer = ""
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume a chunk of bytes and return the events it completed, in order."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            if text.startswith(BOM):
                text = text[1:]
        if self._after_cr and text:
            self._after_cr = False
            if text.startswith("\n"):
                text = text[1:]
        return self._consume(self._pending + text)

    def _consume(self, text: str) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        start = 0
        length = len(text)
        while True:
            cr = text.find("\r", start)
            lf = text.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, after = lf, lf + 1
            elif cr + 1 < length:
                end, after = cr, cr + 2 if text[cr + 1] == "\n" else cr + 1
            else:
                # A CR at the very end: the line is complete; an LF may follow in the next chunk.
                end, after = cr, cr + 1
                self._after_cr = True
            event = self._line(text[start:end])
            if event is not None:
                events.append(event)
            start = after
        self._pending = text[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keepalives look like this
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event_type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry":
            if value and all("0" <= c <= "9" for c in value):
                self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        data, event_type = self._data, self._event_type
        self._data, self._event_type = [], ""
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event_type or "message", self.last_event_id)

"""Many SSE clients in one process: plain non-blocking sockets and one selector.

The clients do not parse events: the benchmark writes a unique marker into each
change (a story title in metrics.json, a line in progress.txt), and a client
records the moment the marker's bytes arrive. That is all the timing needs,
and it keeps a thousand clients cheap enough not to distort what they measure.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: The initial status of every stream: a client counts as open once it arrived.
INITIAL = b'"type":"status_update"'


@dataclass
class Client:
    sock: socket.socket
    request: bytes
    status_line: bytes = b""
    headers_done: bool = False
    opened: bool = False  # got its initial status_update
    closed: bool = False
    tail: bytes = b""
    received: int = 0
    arrivals: dict[bytes, float] = field(default_factory=dict)


class Swarm:
    """A set of open /api/stream clients against one daemon."""

    def __init__(self, port: int, token: str, path: str = "/api/stream") -> None:
        self.port = port
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        self.selector = selectors.DefaultSelector()
        self.clients: list[Client] = []
        #: Markers being waited for; the longest sets how much tail a client keeps.
        self.watching: set[bytes] = set()
        self._keep = len(INITIAL)

    def __len__(self) -> int:
        return len(self.clients)

    @property
    def open_count(self) -> int:
        return sum(1 for c in self.clients if c.opened and not c.closed)

    def open(self, count: int, batch: int = 50, timeout: float = 60.0) -> float:
        """Open ``count`` more streams, ``batch`` at a time; returns the seconds it took."""
        began = time.monotonic()
        deadline = began + timeout
        target = len(self.clients) + count
        while len(self.clients) < target:
            for _ in range(min(batch, target - len(self.clients))):
                self._connect()
            self.pump_until(lambda: all(c.opened or c.closed for c in self.clients), deadline)
            if time.monotonic() >= deadline:
                break
        failed = [c for c in self.clients if not c.opened]
        if failed:
            reason = failed[0].status_line.decode(errors="replace") or "no answer"
            raise RuntimeError(f"{len(failed)} of {len(self.clients)} streams did not open ({reason})")
        return time.monotonic() - began

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))
        client = Client(sock, self.request)
        self.clients.append(client)
        self.selector.register(sock, selectors.EVENT_WRITE, client)

    def watch(self, marker: bytes) -> None:
        self.watching.add(marker)
        self._keep = max(self._keep, len(marker))

    def pump(self, timeout: float) -> None:
        """Handle whatever is ready within ``timeout`` seconds (one select)."""
        for key, events in self.selector.select(timeout):
            client: Client = key.data
            if events & selectors.EVENT_WRITE:
                self._send(client)
            if events & selectors.EVENT_READ:
                self._receive(client)

    def pump_until(self, done: Callable[[], bool], deadline: float) -> bool:
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.pump(min(remaining, 0.05))
        return True

    def pump_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.pump_until(lambda: False, deadline)

    def arrivals(self, marker: bytes) -> list[float]:
        return [c.arrivals[marker] for c in self.clients if marker in c.arrivals]

    def wait_for(self, marker: bytes, timeout: float) -> list[float]:
        """Pump until every open client got ``marker`` (or ``timeout``); returns the arrival times."""
        deadline = time.monotonic() + timeout
        live = [c for c in self.clients if c.opened and not c.closed]
        self.pump_until(lambda: all(marker in c.arrivals or c.closed for c in live), deadline)
        return self.arrivals(marker)

    def _send(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.request)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        client.request = client.request[sent:]
        if not client.request:
            self.selector.modify(client.sock, selectors.EVENT_READ, client)

    def _receive(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        now = time.monotonic()
        if not data:
            self._drop(client)
            return
        client.received += len(data)
        seen = client.tail + data
        if not client.headers_done:
            head, sep, rest = seen.partition(b"\r\n\r\n")
            if not sep:
                client.tail = seen[-65536:]
                return
            client.headers_done = True
            client.status_line = head.split(b"\r\n", 1)[0]
            if not client.status_line.startswith(b"HTTP/1.1 200"):
                self._drop(client)
                return
            seen = rest
        if not client.opened and INITIAL in seen:
            client.opened = True
        for marker in self.watching:
            if marker not in client.arrivals and marker in seen:
                client.arrivals[marker] = now
        client.tail = seen[-self._keep :]

    def _drop(self, client: Client) -> None:
        if not client.closed:
            client.closed = True
            try:
                self.selector.unregister(client.sock)
            except (KeyError, ValueError):
                pass
            client.sock.close()

    def close(self) -> None:
        for client in self.clients:
            self._drop(client)
        self.clients.clear()
        self.selector.close()

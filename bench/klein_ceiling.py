"""The ceiling: a minimal Klein app answering a fixed 73-byte JSON body.

Served by twistd exactly like the daemon (same Python, same reactor, access log
on stdout, pinned to the same core), so the harness can report each loopdash
endpoint as a fraction of what Klein itself can do on this machine:

    twistd -n --pidfile= web --listen tcp:PORT:interface=127.0.0.1 --class bench.klein_ceiling.resource
"""

from __future__ import annotations

from typing import Any

from klein import Klein

BODY = b'{"status":"healthy","timestamp":"2026-01-13T20:00:00Z","version":"1.0.0"}'
assert len(BODY) == 73

app = Klein()


@app.route("/", branch=True)
def ceiling(request: Any) -> bytes:
    request.setHeader(b"Content-Type", b"application/json")
    return BODY


def resource() -> Any:
    """What ``twistd web --class`` instantiates."""
    return app.resource()

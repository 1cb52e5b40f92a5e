"""Slow clients and too many connections against a real daemon on 127.0.0.1 (issue 18, fault 4).

Two cases, each bounded in sockets and seconds, each run twice in the same
invocation: with the daemon's defaults, then with the request deadline and the
connection cap set out of reach (``--request-deadline 100000 --max-connections
100000``), which is how the daemon behaved before they existed.

1. **slowloris**: ``--slow`` sockets (200) each send a request head one byte a
   second and never finish it. Reported: how many the daemon closed, when (from
   their first byte), with what answer, and the longest ``/api/health`` wait
   meanwhile.
2. **cap**: ``--streams`` event streams (default: the cap) are opened and held,
   then ``--extra`` (50) more clients ask for ``/api/health``. Reported: their
   answers (503 past the cap), and that ``/api/health`` answers 200 again once
   the streams close.

    python -m bench.hostile_http                 # defaults: about 40 s
    python -m bench.hostile_http --slow 50 --seconds 15 --streams 100 --max-connections 100

It exits 0 when, with the defaults, every slow socket was answered 408 within
the deadline plus two seconds and every extra client got 503, and 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench import procs
from loopdash.cli.sample import create_sample_project

SLOW_HEAD = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 4000


@dataclass
class HealthProbe:
    """GET /api/health every 100 ms in a thread; keeps each wait (seconds) and status."""

    port: int
    waits: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("GET", "/api/health")
                status = connection.getresponse().status
                connection.close()
            except OSError:
                status = 0
            self.waits.append(time.monotonic() - started)
            self.statuses.append(status)
            self._stop.wait(0.1)


def slowloris(port: int, count: int, seconds: float) -> dict[str, Any]:
    """``count`` sockets sending a head a byte a second for at most ``seconds``."""
    selector = selectors.DefaultSelector()
    opened: dict[socket.socket, float] = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        opened[sock] = time.monotonic()
    answers: dict[socket.socket, bytes] = {sock: b"" for sock in opened}
    closed_after: list[float] = []
    statuses: dict[str, int] = {}
    sent = 0
    started = time.monotonic()
    next_byte = started
    while opened and time.monotonic() - started < seconds:
        now = time.monotonic()
        if now >= next_byte and sent < len(SLOW_HEAD):
            for sock in list(opened):
                try:
                    sock.send(SLOW_HEAD[sent : sent + 1])
                except OSError:
                    pass
            sent += 1
            next_byte += 1.0
        for key, _ in selector.select(timeout=max(min(next_byte - time.monotonic(), 0.2), 0)):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                answers[sock] += data
                continue
            closed_after.append(time.monotonic() - opened.pop(sock))
            selector.unregister(sock)
            status = answers[sock].split(b" ", 2)[1].decode() if answers[sock] else "no answer"
            statuses[status] = statuses.get(status, 0) + 1
            sock.close()
    for sock in opened:
        selector.unregister(sock)
        sock.close()
    return {
        "sockets": count,
        "closed_by_daemon": len(closed_after),
        "still_open_at_end": len(opened),
        "answers": statuses,
        "closed_after_s_median": round(statistics.median(closed_after), 2) if closed_after else None,
        "closed_after_s_max": round(max(closed_after), 2) if closed_after else None,
    }


def open_stream(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\n\r\n"
    )
    return sock


def first_status(sock: socket.socket) -> str:
    try:
        data = sock.recv(65536)
    except OSError as error:
        return f"error {error.__class__.__name__}"
    return data.split(b" ", 2)[1].decode() if data else "closed"


def cap(port: int, token: str, streams: int, extra: int) -> dict[str, Any]:
    held = [open_stream(port, token) for _ in range(streams)]
    held_statuses: dict[str, int] = {}
    for sock in held:
        status = first_status(sock)
        held_statuses[status] = held_statuses.get(status, 0) + 1
    extra_statuses: dict[str, int] = {}
    waits = []
    for _ in range(extra):
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/api/health")
            status = str(connection.getresponse().status)
            connection.close()
        except OSError as error:
            status = f"error {error.__class__.__name__}"
        waits.append(time.monotonic() - started)
        extra_statuses[status] = extra_statuses.get(status, 0) + 1
    for sock in held:
        sock.close()
    time.sleep(0.5)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/api/health")
    after = connection.getresponse().status
    connection.close()
    return {
        "streams_opened": streams,
        "stream_answers": held_statuses,
        "extra_clients": extra,
        "extra_answers": extra_statuses,
        "extra_wait_s_max": round(max(waits), 3) if waits else None,
        "health_after_streams_closed": after,
    }


def run_case(
    root: str, workdir: str, label: str, extra_args: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    server = procs.start_loopdash(root, args.server_cpu, os.path.join(workdir, f"{label}.log"), extra_args)
    try:
        procs.wait_until_answers(server, "/api/health", None)
        with open(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")) as f:
            token = f.read().strip()
        probe = HealthProbe(server.port)
        thread = probe.start()
        slow = slowloris(server.port, args.slow, args.seconds)
        probe.stop()
        thread.join(15)
        slow["health_wait_ms_max"] = round(max(probe.waits) * 1000, 1) if probe.waits else None
        slow["health_non_200"] = sum(1 for s in probe.statuses if s != 200)
        capped = cap(server.port, token, args.streams or args.max_connections, args.extra)
        rss = procs.memory_kib(server.pid, "VmHWM")
        return {"slowloris": slow, "cap": capped, "peak_rss_mb": round(rss / 1024, 1)}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slow", type=int, default=200, help="slowloris sockets (200)")
    parser.add_argument("--seconds", type=float, default=15.0, help="longest slowloris phase (15 s)")
    parser.add_argument(
        "--deadline", type=float, default=10.0, help="--request-deadline of the daemon (10 s)"
    )
    parser.add_argument(
        "--max-connections", type=int, default=300, help="--max-connections of the daemon (300)"
    )
    parser.add_argument(
        "--streams", type=int, default=0, help="streams held in the cap case (default: the cap)"
    )
    parser.add_argument("--extra", type=int, default=50, help="clients past the cap (50)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args(argv)
    procs.raise_open_files(4 * (args.slow + args.max_connections + args.extra) + 256)
    with tempfile.TemporaryDirectory(prefix="hostile-http-") as workdir:
        root = os.path.join(workdir, "project")
        create_sample_project(root)
        limits = ["--request-deadline", str(args.deadline), "--max-connections", str(args.max_connections)]
        report = {
            "with_limits": run_case(root, workdir, "limits", limits, args),
            "without_limits": run_case(
                root,
                workdir,
                "nolimits",
                ["--request-deadline", "100000", "--max-connections", "100000"],
                args,
            ),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    slow = report["with_limits"]["slowloris"]
    capped = report["with_limits"]["cap"]
    ok = (
        slow["answers"].get("408") == args.slow
        and (slow["closed_after_s_max"] or 1e9) <= args.deadline + 2
        and capped["extra_answers"].get("503") == args.extra
        and capped["health_after_streams_closed"] == 200
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

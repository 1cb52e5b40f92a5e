"""Soak: REST clients and SSE clients against one daemon while a simulated loop works.

``python -m bench.soak --seconds 600`` starts ``twistd -n loopdash`` on a fresh
project (a subprocess, pinned to CPU 0), then in this process (CPU 1): a
:class:`~loopdash.cli.simulator.LoopSimulator` writing one iteration a second, 50
REST clients each asking the API's endpoints in turn, and 500 SSE clients
counting the events they receive. At the end it reports requests served,
errors (must be 0), events delivered against expected per stream (equal for
every stream that kept up), the daemon's RSS at start, after the clients
connected and at the end, and its growth rate after a warm-up (``--warmup``,
300 s: the replay buffer and the caches fill first; the notification history
starts full, see :func:`fill_notification_history`): the least-squares slope
of RSS sampled every 10 s, in MB per hour, and of its anonymous part (RssAnon:
without the pages of mapped libraries, which the kernel drops and reads again
under pressure from elsewhere; seen in a soak on 2026-12-03, 20 MB at once). ``--trace DIR`` runs the daemon
under tracemalloc (bench/traced_daemon.py; slower) and prints the allocations
that grew most between the end of the warm-up and the end; ``--heap FILE``
writes, every 30 s, where the daemon's memory is (bench/heap_daemon.py:
glibc's heap, pymalloc's arenas, mappings). Run by hand; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from bench import procs
from loopdash.cli.sample import SAMPLE_STORIES
from loopdash.cli.simulator import BASE_ITERATION_SECONDS, LoopSimulator
from loopdash.server.notify import KEEP, NotificationLog
from loopdash.server.service import notifications_path

REST_PATHS = (
    "/api/status",
    "/api/stories",
    "/api/logs?limit=20",
    "/api/metrics",
    "/api/history?limit=20",
    "/api/runs",
)
EVENT_ID = re.compile(rb"^id: [0-9a-f]+-([0-9]+)$", re.M)


@dataclass
class StreamCounter:
    """One SSE client: the sequence numbers it received, after the one it connected at."""

    first: int | None = None
    seqs: set[int] = field(default_factory=set)
    gaps: int = 0
    ended: bool = False
    buffer: bytes = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        for block in blocks:
            match = EVENT_ID.search(block)
            if match is None:
                continue  # the retry line, keepalives, the HTTP header
            seq = int(match.group(1))
            if self.first is None:
                self.first = seq  # the `connected` event carries the current id
            elif b'"type":"status_update"' in block and seq == self.first:
                continue  # the initial status, sent with the same id
            else:
                self.seqs.add(seq)
            if b'"gap":true' in block:
                self.gaps += 1


@dataclass
class Tally:
    requests: int = 0
    errors: list[str] = field(default_factory=list)


def sse_protocol(counter: StreamCounter, tally: Tally, port: int, token: str) -> Any:
    from twisted.internet.protocol import Protocol

    class SSE(Protocol):
        def connectionMade(self) -> None:
            # HTTP/1.0: the body is not chunked, so ids can be read straight off the bytes.
            self.transport.write(  # type: ignore[union-attr]
                f"GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )

        def dataReceived(self, data: bytes) -> None:
            counter.feed(data)

        def connectionLost(self, reason: Any = None) -> None:
            counter.ended = True

    return SSE()


async def rest_client(
    client: Any, base: str, token: str, tally: Tally, until: float, interval: float, offset: int
) -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    headers = {"Authorization": f"Bearer {token}"}
    n = offset
    while reactor.seconds() < until:
        path = REST_PATHS[n % len(REST_PATHS)]
        n += 1
        try:
            response = await client.get(base + path, headers=headers)
            await response.content()
            if response.code != 200 and not (path == "/api/metrics" and response.code == 404):
                tally.errors.append(f"{path}: {response.code}")
            tally.requests += 1
        except Exception as e:  # a failed request is an error of the soak, never a crash of it
            tally.errors.append(f"{path}: {e!r}")
        await deferLater(reactor, interval, lambda: None)


async def soak(args: argparse.Namespace, root: str, workdir: str) -> dict[str, Any]:
    import treq
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred, gatherResults
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.task import deferLater
    from twisted.web.client import Agent, HTTPConnectionPool

    twistd = None
    if args.trace:
        os.makedirs(args.trace, exist_ok=True)
        os.environ["LOOPDASH_TRACE_DIR"] = os.path.abspath(args.trace)
        twistd = [sys.executable, "-m", "bench.traced_daemon"]
    elif args.heap:
        os.environ["LOOPDASH_HEAP_LOG"] = os.path.abspath(args.heap)
        twistd = [sys.executable, "-m", "bench.heap_daemon"]
    server = procs.start_loopdash(
        root,
        args.server_cpu,
        os.path.join(workdir, "daemon.log"),
        ["--poll-interval", "1", "--auth-failures", "100000"],
        twistd=twistd,
    )
    try:
        procs.wait_until_answers(server, "/api/health", None)  # the token file exists from then on
        with open(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")) as f:
            token = f.read().strip()
        base = f"http://127.0.0.1:{server.port}"
        status, body = procs.get(server, "/api/notifications?limit=1", token)
        history = json.loads(body)["total"] if status == 200 else None
        print(f"notification history at start: {history} kept", flush=True)
        if args.trace:
            os.kill(server.pid, signal.SIGUSR2)  # start tracing, now that the imports are done
        rss_start = procs.memory_kib(server.pid, "VmRSS")
        print(f"daemon pid {server.pid} on port {server.port}, RSS {rss_start} KiB", flush=True)

        counters = [StreamCounter() for _ in range(args.sse_clients)]
        tally = Tally()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", server.port)
        for start in range(0, len(counters), 50):
            await gatherResults(
                [
                    connectProtocol(endpoint, sse_protocol(c, tally, server.port, token))
                    for c in counters[start : start + 50]
                ]
            )
        await deferLater(reactor, 2.0, lambda: None)
        opened = sum(1 for c in counters if c.first is not None)
        rss_connected = procs.memory_kib(server.pid, "VmRSS")
        print(f"{opened}/{len(counters)} streams open, RSS {rss_connected} KiB", flush=True)

        simulator = LoopSimulator(
            root, reactor, speed=BASE_ITERATION_SECONDS / args.iteration_seconds, stories=plan(args.stories)
        )
        simulator.start()
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = args.rest_clients
        client = treq.client.HTTPClient(Agent(reactor, pool=pool))
        started = reactor.seconds()
        until = started + args.seconds
        rest = [
            rest_client(client, base, token, tally, until, args.rest_interval, n)
            for n in range(args.rest_clients)
        ]
        progress = ensureDeferred(report_progress(until, tally, counters, server.pid))
        samples: list[tuple[float, int]] = []
        anon: list[tuple[float, int]] = []
        sampling = ensureDeferred(sample_rss(server.pid, started, until, samples, anon, args, workdir))
        await gatherResults([ensureDeferred(r) for r in rest])
        simulator.stop()
        await progress
        await sampling
        if args.trace:
            os.kill(server.pid, signal.SIGUSR2)  # the end snapshot, before the drain
            await deferLater(reactor, 5.0, lambda: None)
        await deferLater(reactor, args.drain, lambda: None)  # let the last events arrive
        rss_end = procs.memory_kib(server.pid, "VmRSS")
        elapsed = reactor.seconds() - started
        await pool.closeCachedConnections()

        final = max((max(c.seqs) for c in counters if c.seqs), default=0)
        # Every stream that opened and stayed open must have every event published
        # after it connected. A `gap: true` status is not a loss: the daemon sends
        # one to every stream after each reset (a new run's iterations, a rewritten
        # plan), in sequence like any event. (Until 2026-12-03 a stream that got
        # one was left out of the count, and with a reset every run no stream was
        # counted: "0 of 0 events delivered" passed.)
        opened = [c for c in counters if c.first is not None and not c.ended]
        delivered = sum(len(c.seqs) for c in opened)
        expected = sum(final - (c.first or 0) for c in opened)
        short = [c for c in opened if len(c.seqs) != final - (c.first or 0)]
        kept_up = [c for c in opened if len(c.seqs) == final - (c.first or 0)]
        ended = sum(1 for c in counters if c.ended)
        if ended:
            tally.errors.append(f"{ended} streams ended early")
        for c in counters:
            if c.first is None:
                tally.errors.append("a stream never opened")
        return {
            "seconds": round(elapsed, 1),
            "iterations_written": simulator.iterations_done,
            "runs_finished": simulator.runs_finished,
            "notifications_kept_at_start": history,
            "rest_clients": args.rest_clients,
            "requests_served": tally.requests,
            "requests_per_second": round(tally.requests / elapsed, 1),
            "sse_clients": len(counters),
            "streams_kept_up": len(kept_up),
            "gap_statuses_per_stream": max((c.gaps for c in counters), default=0),
            "events_published": final,
            "events_delivered": delivered,
            "events_expected": expected,
            "streams_short": len(short),
            "errors": len(tally.errors),
            "error_samples": tally.errors[:10],
            "rss_kib": {"start": rss_start, "streams_open": rss_connected, "end": rss_end},
            "rss_growth_after_warmup": growth(samples, args.warmup),
            # The daemon's own memory: RSS less the pages of mapped files (libraries),
            # which the kernel may drop and read again whatever the daemon does.
            "anon_growth_after_warmup": growth(anon, args.warmup),
            "daemon_cpu_seconds": procs.cpu_seconds(server.pid),
        }
    finally:
        server.stop()


def fill_notification_history(root: str) -> None:
    """Give the project a full notification history (KEEP lines), as a daemon has after a day.

    The history is bounded (500 notifications, about 183 KiB) but fills for
    about half an hour at the soak's pace (a notification every 4 s or so):
    left empty, a 30-minute soak measures it filling (about 0.3 MB an hour on
    2026-12-03), not what keeps growing. The daemon loads it at start, as it
    does after a restart. ``--empty-history`` measures the filling too.
    """
    notifications = []
    for n in range(1, KEEP + 1):
        run = f"20261202_{n // 8:06d}"
        notifications.append(
            {
                "kind": "iteration_failed",
                "severity": "warning",
                "title": "project: an iteration failed",
                "message": f"An iteration of run {run} on US-00{n % 8 + 1} failed.",
                "project": "project",
                "run_id": run,
                "story_id": f"US-00{n % 8 + 1}",
                "story_title": None,
                "cost": round(0.01 * n, 6),
                "time": f"2026-12-02T{n // 60 % 24:02d}:{n % 60:02d}:00Z",
                "link": "http://127.0.0.1:8080/",
            }
        )
    # Written by the daemon's own log, so the file is what a daemon leaves.
    NotificationLog(notifications_path(root)).add_all(notifications)


def plan(count: int) -> list[dict[str, Any]]:
    """The simulated loop's stories: the sample plan's, repeated to ``count`` with new ids.

    A run ends when every story passes: eight stories make a run every 14 s or
    so, a run directory and its history row every time (memory a daemon keeps
    per run on disk); more stories, longer runs, fewer rows.
    """
    if count <= len(SAMPLE_STORIES):
        return [dict(story) for story in SAMPLE_STORIES[:count]]
    return [
        {**SAMPLE_STORIES[n % len(SAMPLE_STORIES)], "id": f"US-{n + 1:03d}", "dependencies": []}
        for n in range(count)
    ]


async def sample_rss(
    pid: int,
    started: float,
    until: float,
    samples: list[tuple[float, int]],
    anon: list[tuple[float, int]],
    args: Any,
    workdir: str,
) -> None:
    """RSS and its anonymous part every 10 s (seconds since the clients started, KiB);
    with --trace, a snapshot after warm-up."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    traced = not args.trace
    while reactor.seconds() < until:
        now = reactor.seconds()
        samples.append((now - started, procs.memory_kib(pid, "VmRSS")))
        anon.append((now - started, procs.memory_kib(pid, "RssAnon")))
        if not traced and now - started >= args.warmup:
            os.kill(pid, signal.SIGUSR2)
            traced = True
        await deferLater(reactor, min(10.0, max(until - now, 0.0)), lambda: None)
    samples.append((reactor.seconds() - started, procs.memory_kib(pid, "VmRSS")))
    anon.append((reactor.seconds() - started, procs.memory_kib(pid, "RssAnon")))


def growth(samples: list[tuple[float, int]], warmup: float) -> dict[str, Any]:
    """The least-squares slope of memory samples (KiB) after ``warmup`` seconds, in MB per hour."""
    kept = [(t, kib / 1024) for t, kib in samples if t >= warmup]
    if len(kept) < 3:
        return {"warmup_s": warmup, "samples": len(kept), "mb_per_hour": None}
    n = len(kept)
    mean_t = sum(t for t, _ in kept) / n
    mean_m = sum(m for _, m in kept) / n
    slope = sum((t - mean_t) * (m - mean_m) for t, m in kept) / sum((t - mean_t) ** 2 for t, _ in kept)
    return {
        "warmup_s": warmup,
        "samples": n,
        "window_s": round(kept[-1][0] - kept[0][0], 1),
        "mb_first": round(kept[0][1], 2),
        "mb_last": round(kept[-1][1], 2),
        "mb_per_hour": round(slope * 3600, 2),
    }


def print_trace(directory: str, top: int = 25) -> None:
    """The allocation sites that grew most between the two snapshots, and the top tracebacks."""
    import tracemalloc

    paths = sorted(
        (os.path.join(directory, name) for name in os.listdir(directory) if name.startswith("snapshot-")),
        key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]),
    )
    if len(paths) < 2:
        print(f"trace: {len(paths)} snapshot(s) in {directory}, need 2", flush=True)
        return
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first = tracemalloc.Snapshot.load(paths[0]).filter_traces(ignore)
    last = tracemalloc.Snapshot.load(paths[-1]).filter_traces(ignore)
    print(f"trace: growth from {paths[0]} to {paths[-1]}", flush=True)
    # Flat totals with a rising RSS: the allocator keeping freed pages, not objects kept.
    totals = [sum(stat.size for stat in snapshot.statistics("filename")) for snapshot in (first, last)]
    print(f"  traced total {totals[0] / 1024:.0f} KiB -> {totals[1] / 1024:.0f} KiB", flush=True)
    for stat in last.compare_to(first, "lineno")[:top]:
        print(f"  {stat}", flush=True)
    for stat in last.compare_to(first, "traceback")[:5]:
        print(f"  {stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks:", flush=True)
        for line in stat.traceback.format()[-16:]:
            print(f"    {line}", flush=True)


async def report_progress(until: float, tally: Tally, counters: list[StreamCounter], pid: int) -> None:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    while reactor.seconds() < until:
        await deferLater(reactor, min(30.0, max(until - reactor.seconds(), 0.0)), lambda: None)
        newest = max((max(c.seqs) for c in counters if c.seqs), default=0)
        print(
            f"  {time.strftime('%H:%M:%S')} requests {tally.requests} errors {len(tally.errors)} "
            f"newest event {newest} RSS {procs.memory_kib(pid, 'VmRSS')} KiB",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the clients run (600)")
    parser.add_argument("--rest-clients", type=int, default=50)
    parser.add_argument(
        "--rest-interval", type=float, default=0.2, help="each REST client's pause between requests"
    )
    parser.add_argument("--sse-clients", type=int, default=500)
    parser.add_argument(
        "--iteration-seconds", type=float, default=1.0, help="simulated loop: seconds per iteration"
    )
    parser.add_argument(
        "--stories",
        type=int,
        default=len(SAMPLE_STORIES),
        help="stories in the simulated plan (8: a run every ~14 s)",
    )
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for the last events")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument(
        "--warmup", type=float, default=300.0, help="seconds before the growth rate is measured (300)"
    )
    parser.add_argument(
        "--empty-history",
        action="store_true",
        help="start with no notification history (by default it starts full, as after a day)",
    )
    parser.add_argument("--trace", help="run the daemon under tracemalloc, snapshots in this directory")
    parser.add_argument(
        "--heap",
        help="run the daemon under bench/heap_daemon.py: where its memory is, every 30 s, to this file",
    )
    args = parser.parse_args(argv)

    procs.raise_open_files(args.sse_clients * 2 + args.rest_clients + 256)
    procs.pin_self(args.client_cpu)
    workdir = tempfile.mkdtemp(prefix="loopdash-soak-")
    root = os.path.join(workdir, "project")
    os.makedirs(root)
    if not args.empty_history:
        fill_notification_history(root)
    from twisted.internet import defer, task

    result: dict[str, Any] = {}

    async def run(reactor: Any) -> None:
        result.update(await soak(args, root, workdir))

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code not in (0, None):
            print(f"soak failed; daemon log in {workdir}", file=sys.stderr)
            return int(e.code) if isinstance(e.code, int) else 1
    print(json.dumps(result, indent=2))
    if args.trace:
        print_trace(args.trace)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    ok = (
        result["errors"] == 0
        and result["events_expected"] > 0
        and result["events_delivered"] == result["events_expected"]
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

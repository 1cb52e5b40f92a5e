"""Notifications to slow and failing services never slow the dashboard.

``python -m bench.notify`` runs a real daemon (twistd, 127.0.0.1) three times
on the same project, each time making the loop fail ``--failures`` iterations
in a burst (every one an ``iteration_failed`` notification, plus a streak):

- ``baseline``: no notification target;
- ``slow``: a JSON webhook on 127.0.0.1 that holds every request 5 s;
- ``refused``: a webhook URL on a port where nothing listens.

Meanwhile a probe asks ``/api/health`` every 10 ms; per run it prints the
median, the 99th percentile and the longest wait, the deliveries the webhook
saw, and the daemon's own count of waiting sends. Target (issue 20): the
longest wait under 50 ms while deliveries hang or fail. Bounded: each run
lasts ``--seconds`` (10) after the burst; the webhook answers within 5 s.
Run by hand; not a test.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

from bench import procs
from loopdash.cli.sample import SAMPLE_STORIES, RealRun, write_prd

TARGET_MS = 50.0


class SlowHook(http.server.BaseHTTPRequestHandler):
    """A notification service that takes 5 s to answer."""

    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with SlowHook.lock:
            SlowHook.received += 1
        time.sleep(5)
        try:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")
        except OSError:
            pass  # the sender gave up first (its own read timeout)

    def log_message(self, format: str, *args: object) -> None:
        pass


def project(root: str) -> RealRun:
    write_prd(root, SAMPLE_STORIES[:4])
    run = RealRun(root, datetime.now(UTC) - timedelta(minutes=30))
    run.start()
    run.add_iteration("US-001", "A story", datetime.now(UTC) - timedelta(minutes=20), 60000)
    run.write_metrics(datetime.now(UTC) - timedelta(minutes=20))
    return run


class Probe(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.waits: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                connection.request("GET", "/api/health")
                connection.getresponse().read()
                connection.close()
            except OSError:
                pass
            self.waits.append((time.monotonic() - started) * 1000)
            time.sleep(0.01)


def stall_summary(path: str, since: float) -> str:
    """The reactor's stalls past the target while probed, from bench.stall_daemon's log:
    how many, the longest with its reactor thread's CPU and run-queue time in ms (the
    rest of a stall is time blocked: the GIL, a lock, or the machine itself), and how
    many garbage collections took as long."""
    records = []
    if os.path.exists(path):
        with open(path) as f:
            records = [r for r in map(json.loads, f) if r["at"] >= since]
    stalls = [r for r in records if r.get("ms", 0) >= TARGET_MS]
    collections = sum(1 for r in records if r.get("gc_ms", 0) >= TARGET_MS)
    if not stalls:
        return f"0; GC {collections}"
    worst = max(stalls, key=lambda r: r["ms"])
    return (
        f"{len(stalls)} (longest {worst['ms']}: cpu {worst['cpu_ms']}, run queue {worst['runqueue_ms']});"
        f" GC {collections}"
    )


def one_run(name: str, target: str | None, args: argparse.Namespace, workdir: str) -> str:
    root = os.path.join(workdir, name)
    os.makedirs(root)
    run = project(root)
    extra = ["--poll-interval", "0.2", "--notify-kinds", "all"]
    if target is not None:
        extra += ["--notify", target]
    twistd = None
    if args.stalls:
        os.environ["LOOPDASH_STALL_LOG"] = os.path.join(args.stalls, f"{name}.jsonl")
        twistd = [sys.executable, "-m", "bench.stall_daemon"]
    server = procs.start_loopdash(root, args.cpu, os.path.join(workdir, f"{name}.log"), extra, twistd)
    try:
        procs.wait_until_answers(server, "/api/health", None)
        time.sleep(1.0)  # the first observation (the baseline of the rules)
        probe = Probe(server.port)
        probe_started = time.time()
        probe.start()
        now = datetime.now(UTC)
        for i in range(args.failures):
            run.add_iteration("US-002", "B story", now + timedelta(seconds=i), 1000, status="failed")
        run.write_metrics(now)
        time.sleep(args.seconds)
        probe.stop.set()
        probe.join(5)
        waits = sorted(probe.waits)
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
        with open(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")) as f:
            token = f.read().strip()
        _, body = procs.get(server, "/api/notifications?limit=1", token)
        total = body.decode().split('"total":')[1].split(",")[0]
        verdict = "pass" if waits[-1] < TARGET_MS else "FAIL"
        stalls = f" {stall_summary(os.environ['LOOPDASH_STALL_LOG'], probe_started)} |" if args.stalls else ""
        return (
            f"| {name} | {len(waits)} | {statistics.median(waits):.1f} | {p99:.1f} | {waits[-1]:.1f} | "
            f"{total} | {SlowHook.received if name.startswith('slow') else '-'} |{stalls} {verdict} |"
        )
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=100, help="failed iterations in the burst")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to probe after the burst")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU the daemon runs on")
    parser.add_argument("--rounds", type=int, default=1, help="baseline, slow, refused: this many times")
    parser.add_argument(
        "--stalls",
        metavar="DIR",
        help="run the daemon under bench.stall_daemon; its stalls go to DIR/<run>.jsonl",
    )
    args = parser.parse_args(argv)
    if args.stalls:
        os.makedirs(args.stalls, exist_ok=True)
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    refused = procs.free_port()  # nothing listens there
    workdir = tempfile.mkdtemp(prefix="loopdash-notify-")
    rows = []
    load_before = os.getloadavg()
    try:
        for n in range(args.rounds):
            suffix = f"-{n + 1}" if args.rounds > 1 else ""
            SlowHook.received = 0
            rows.append(one_run(f"baseline{suffix}", None, args, workdir))
            slow = f"json://127.0.0.1:{hook.server_address[1]}/hook"
            rows.append(one_run(f"slow{suffix}", slow, args, workdir))
            rows.append(one_run(f"refused{suffix}", f"json://127.0.0.1:{refused}/hook", args, workdir))
    finally:
        hook.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.failures} failed iterations in one burst; /api/health every 10 ms for {args.seconds:.0f} s")
    load = " ".join(f"{n:.2f}" for n in load_before), " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(f"load average before: {load[0]}; after: {load[1]} (2 cores; other work makes stalls too)")
    stalls = " reactor stalls >= 50 ms; GCs as long |" if args.stalls else ""
    print(
        f"| run | probes | median ms | p99 ms | longest ms | notifications | webhook saw |{stalls} < 50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.stalls else ""))
    for row in rows:
        print(row)
    return 0 if all(row.endswith("pass |") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

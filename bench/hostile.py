"""Hostile inputs: every case of issue 16 replayed against a real daemon.

``python -m bench.hostile`` starts a fresh ``twistd -n loopdash`` (a subprocess,
127.0.0.1 only) for each case, makes the hostile change (a huge prd.json
rewrite, megabyte log entries, resuming or non-reading streams, a 200 MB line,
a 5 MB append, deep JSON, a garbage ``Last-Event-ID``) and prints, per case:

- the longest ``/api/health`` wait while the case ran (a probe asks every 20 ms;
  a request still unanswered at the end counts for as long as it has waited),
- the daemon's peak RSS (``VmHWM``: each case has its own daemon),
- the events one reading stream received, and whether the change was
  announced (its events arrived) or gapped (a ``gap: true`` status arrived).

Every case is bounded in time (``--case-timeout``, 90 s) and in count; a daemon
still busy at the end is killed. The 100,000-story burst is ``--huge`` (23 MB of
prd.json). Targets (issue 16): wait < 100 ms, peak RSS < 300 MB, every change
announced or gapped. Run by hand; not a test. A full run takes 2 to 4 minutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import procs
from loopdash.cli.sample import RealRun, progress_entry, write_in_place, write_prd

TARGET_WAIT_MS = 100.0
TARGET_RSS_MB = 300.0


# -- the project --------------------------------------------------------------------


def story(n: int, passes: bool) -> dict[str, Any]:
    """A story of about 230 bytes as write_prd writes it: 100,000 make a 23 MB prd.json (under the 32 MB cap)."""
    return {
        "id": f"US-{n:06d}",
        "title": f"Story number {n}",
        "description": "Make the widget frobnicate the gizmo.",
        "priority": n % 7 + 1,
        "passes": passes,
        "notes": "done" if passes else "",
        "dependencies": [],
    }


def make_project(root: str, stories: int = 5, entries: int = 3) -> RealRun:
    """A running project: a plan, a log, and a current run written just now."""
    os.makedirs(root, exist_ok=True)
    write_prd(root, (story(n, False) for n in range(stories)))
    now = datetime.now(UTC)
    text = "# progress\n\n" + "".join(
        progress_entry(f"2026-12-01 10:{n % 60:02d}", f"US-{n:06d}", "A story", "complete", ["did it"])
        for n in range(entries)
    )
    write_in_place(os.path.join(root, "progress.txt"), text)
    run = RealRun(root, now - timedelta(minutes=5))
    run.start()
    run.add_iteration("US-000000", "Story number 0", now - timedelta(minutes=1), 60000)
    run.write_metrics(now)
    return run


def big_entry(n: int, size: int) -> bytes:
    """One progress.txt entry of about ``size`` bytes (one long line of text)."""
    head = f"### Iteration: 2026-12-02 11:{n % 60:02d}\n**Story**: US-{n:06d} - Big\n".encode()
    body = b"- " + b"x" * max(size - len(head) - 8, 0) + b"\n---\n\n"
    return head + body


# -- clients (plain sockets and threads: the daemon is the only Twisted here) ----------


class Stream(threading.Thread):
    """A stream client that reads: counts events by type, gaps and truncated entries."""

    def __init__(self, port: int, token: str, last_event_id: str | None = None) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.last_event_id = port, token, last_event_id
        self.types: Counter[str] = Counter()
        self.gaps = 0
        self.truncated = 0
        self.first_id: str | None = None
        self.statuses: list[dict[str, Any]] = []
        self.first_status_gap: bool | None = None
        self.stop = threading.Event()
        self.connected = threading.Event()

    @property
    def events(self) -> int:
        return sum(self.types.values())

    def run(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
        resume = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id is not None else ""
        sock.sendall(
            f"GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
            f"{resume}\r\n".encode()
        )
        # Megabyte events arrive in many pieces: keep them in a bytearray and look
        # for the end of an event only in what is new (not in the whole buffer again).
        buffer = bytearray()
        try:
            while not self.stop.is_set():
                try:
                    data = sock.recv(1 << 20)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                searched = max(len(buffer) - 1, 0)
                buffer += data
                start = 0
                end = buffer.find(b"\n\n", searched)
                while end != -1:
                    self._block(bytes(buffer[start:end]))
                    start = end + 2
                    end = buffer.find(b"\n\n", start)
                del buffer[:start]
        finally:
            sock.close()

    def _block(self, block: bytes) -> None:
        for line in block.split(b"\n"):
            if line.startswith(b"id: ") and self.first_id is None:
                self.first_id = line[4:].decode()
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            kind = event.get("type", "?")
            self.types[kind] += 1
            if kind == "connected":
                self.connected.set()
            if event.get("gap"):
                self.gaps += 1
            data = event.get("data")
            if isinstance(data, dict):
                if data.get("truncated"):
                    self.truncated += 1
                if kind == "status_update":
                    if self.first_status_gap is None:
                        self.first_status_gap = bool(event.get("gap"))
                    self.statuses.append(
                        {"completed": data.get("completed_stories"), "gap": event.get("gap")}
                    )


def idle_stream(port: int, token: str, last_event_id: str | None = None) -> socket.socket:
    """A stream client that never reads (a small receive buffer, so it stalls soon)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    sock.sendall(
        f"GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n{resume}\r\n".encode()
    )
    return sock


class HealthProbe(threading.Thread):
    """Asks /api/health every 20 ms; keeps the longest wait (ms)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.longest = 0.0
        self.inflight: float | None = None
        self.stop = threading.Event()
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.inflight = time.monotonic()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                connection.request("GET", "/api/health")
                connection.getresponse().read()
                connection.close()
            except OSError:
                self.failures += 1
            waited = (time.monotonic() - self.inflight) * 1000
            self.inflight = None
            self.longest = max(self.longest, waited)
            time.sleep(0.02)

    def finish(self) -> float:
        self.stop.set()
        started = self.inflight
        if started is not None:
            self.longest = max(self.longest, (time.monotonic() - started) * 1000)
        return self.longest


# -- one case -----------------------------------------------------------------------


@dataclass
class Result:
    case: str
    wait_ms: float
    peak_rss_mb: float
    end_rss_mb: float
    events: int
    announced: bool
    notes: str = ""
    seconds: float = 0.0
    ok: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.ok = self.wait_ms < TARGET_WAIT_MS and self.peak_rss_mb < TARGET_RSS_MB and self.announced


class Daemon:
    """A daemon on a fresh project, its token, and a bound on how long we wait for it."""

    def __init__(self, root: str, workdir: str, cpu: int, limit_as: int | None = None) -> None:
        self.port = procs.free_port()
        argv = [procs.TWISTD, "-n", "--pidfile=", "loopdash", "--root", root, "--port", str(self.port)]
        argv += ["--auth-failures", "100000"]
        if limit_as is not None:
            argv = ["prlimit", f"--as={limit_as}", *argv]
        self.log_path = os.path.join(workdir, "daemon.log")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=procs.REPO,
            env=dict(os.environ, PYTHONPATH=procs.REPO),
        )
        log.close()
        self.server = procs.Server("loopdash", self.process, self.port, self.log_path, time.monotonic())
        procs.wait_until_answers(self.server, "/api/health", None)
        with open(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")) as f:
            self.token = f.read().strip()

    def get(self, path: str, timeout: float = 120.0) -> tuple[int, bytes, float]:
        started = time.monotonic()
        try:
            status, body = procs.get(self.server, path, self.token, timeout=timeout)
        except OSError as e:
            return -1, repr(e).encode(), (time.monotonic() - started) * 1000
        return status, body, (time.monotonic() - started) * 1000

    def streams_open(self) -> float:
        """The daemon's own count of open streams (its Prometheus gauge)."""
        status, body, _ = self.get("/metrics", timeout=10)
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("loopdash_sse_streams_open "):
                return float(line.split()[1])
        return -1.0

    def rss_mb(self, field_name: str) -> float:
        try:
            return procs.memory_kib(self.process.pid, field_name) / 1024
        except (OSError, KeyError):
            return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()  # still busy: the case already failed on its wait
                self.process.wait(10)


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


Case = Callable[[str, "Daemon", "Stream", argparse.Namespace], tuple[bool, str]]


def burst(n: int) -> Case:
    """Fault 1: prd.json of ``n`` pending stories rewritten with every one passing."""

    def case(root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace) -> tuple[bool, str]:
        write_prd(root, (story(k, True) for k in range(n)))

        def done() -> bool:
            return any(s["completed"] == n for s in stream.statuses)

        settled = wait_for(done, args.case_timeout)
        updated = stream.types["story_updated"]
        reset = stream.types["stories_reset"]
        announced = settled and (updated == n or (stream.gaps > 0 and reset + stream.gaps > 0))
        return announced, f"story_updated {updated}, stories_reset {reset}, gaps {stream.gaps}"

    return case


def replay_bytes(root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace) -> tuple[bool, str]:
    """Fault 2a: 200 log entries of 1 MB each through the replay buffer."""
    path = os.path.join(root, "progress.txt")
    deadline = time.monotonic() + args.case_timeout
    for n in range(200):
        with open(path, "ab") as f:
            f.write(big_entry(n, 1 << 20))
        # One entry per poll, as a loop writes them (each append under the 4 MB index step).
        wait_for(
            lambda n=n: stream.types["log_appended"] + stream.gaps > n, max(deadline - time.monotonic(), 0)
        )
    settled = wait_for(lambda: stream.types["log_appended"] >= 200 or stream.gaps > 0, 5)
    return settled, f"log_appended {stream.types['log_appended']}, truncated {stream.truncated}"


def resume_flood(root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace) -> tuple[bool, str]:
    """Fault 2b: after 200 MB of entries, 20 clients resume from the first event and never read."""
    announced, notes = replay_bytes(root, daemon, stream, args)
    boot = (stream.first_id or "x-0").rpartition("-")[0]
    sockets = [idle_stream(daemon.port, daemon.token, f"{boot}-0") for _ in range(20)]
    time.sleep(5.0)
    for sock in sockets:
        sock.close()
    return announced, notes + ", 20 idle resumes"


def fanout_oversized(root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace) -> tuple[bool, str]:
    """Fault 2c: 100 streams that never read, and four 3.5 MB entries, one a second."""
    sockets = [idle_stream(daemon.port, daemon.token) for _ in range(100)]
    wait_for(lambda: daemon.streams_open() >= 101, 30)
    path = os.path.join(root, "progress.txt")
    for n in range(4):
        with open(path, "ab") as f:
            f.write(big_entry(n, 3_500_000))
        wait_for(lambda n=n: stream.types["log_appended"] + stream.gaps > n, args.case_timeout / 4)
    for sock in sockets:
        sock.close()
    announced = stream.types["log_appended"] + stream.gaps >= 4
    return announced, f"log_appended {stream.types['log_appended']}, truncated {stream.truncated}"


def huge_line(size: int, sparse: bool) -> Case:
    """Fault 3: one entry whose line is ``size`` bytes (NULs on a sparse file), then 3 /api/logs calls."""

    def case(root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace) -> tuple[bool, str]:
        path = os.path.join(root, "progress.txt")
        with open(path, "ab") as f:
            f.write(b"### Iteration: 2026-12-02 12:00\n- ")
            if sparse:
                f.truncate(f.tell() + size)
                f.seek(0, os.SEEK_END)
            else:
                chunk = b"y" * (1 << 20)
                for _ in range(size >> 20):
                    f.write(chunk)
            f.write(b"\n")
        time.sleep(1.0)
        calls = [daemon.get("/api/logs?limit=100", timeout=args.case_timeout / 3) for _ in range(3)]
        codes = [c for c, _, _ in calls]
        slowest = max(ms for _, _, ms in calls)
        truncated = 0
        if codes[-1] == 200:
            entries = json.loads(calls[-1][1])["logs"]
            truncated = sum(1 for e in entries if e.get("truncated"))
        got_event = wait_for(lambda: stream.types["log_appended"] + stream.gaps > 0, 5)
        announced = all(c == 200 for c in codes) and got_event
        return announced, f"/api/logs {codes}, slowest {slowest:.0f} ms, truncated entries {truncated}"

    return case


def big_append(root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace) -> tuple[bool, str]:
    """Fault 4: 5 MB of ordinary entries appended in one write."""
    before = json.loads(daemon.get("/api/logs?limit=1")[1])["total"]
    entries = b"".join(big_entry(n, 100_000) for n in range(50))
    with open(os.path.join(root, "progress.txt"), "ab") as f:
        f.write(entries)
    settled = wait_for(lambda: stream.types["log_appended"] >= 50 or stream.gaps > 0, 10)
    after = json.loads(daemon.get("/api/logs?limit=1")[1])["total"]
    return (
        settled,
        f"total {before} -> {after}, log_appended {stream.types['log_appended']}, gaps {stream.gaps}",
    )


def deep_json(root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace) -> tuple[bool, str]:
    """Fault 5: metrics.json whose cache block nests 960 to 995 levels deep (each depth in turn)."""
    runs = os.path.join(root, ".claude-loop", "runs")
    run_id = sorted(os.listdir(runs))[-1]
    path = os.path.join(runs, run_id, "metrics.json")
    with open(path) as f:
        document = json.load(f)
    codes: list[int] = []
    for depth in (960, 975, 990, 995):
        document["cache"] = {"deep": "@"}
        text = json.dumps(document).replace('"@"', "[" * depth + "]" * depth)
        write_in_place(path, text)
        time.sleep(0.3)
        codes += [daemon.get(p)[0] for p in ("/api/metrics", f"/api/runs/{run_id}", "/api/status")]
    return all(c == 200 for c in codes), f"codes {codes}"


def bad_last_event_id(
    root: str, daemon: Daemon, stream: Stream, args: argparse.Namespace
) -> tuple[bool, str]:
    """Fault 6: streams resumed from ids that cannot be parsed."""
    flags = []
    for raw in ("57", "abc"):
        resumed = Stream(daemon.port, daemon.token, raw)
        resumed.start()
        wait_for(lambda r=resumed: r.first_status_gap is not None, 5)
        resumed.stop.set()
        flags.append(resumed.first_status_gap)
    return all(flags), f"first status gap for 57, abc: {flags}"


CASES: dict[str, tuple[Case, dict[str, Any]]] = {
    "burst_2000": (burst(2000), {"stories": 2000}),
    "burst_4000": (burst(4000), {"stories": 4000}),
    "burst_8000": (burst(8000), {"stories": 8000}),
    "replay_200x1MB": (replay_bytes, {}),
    "resume_20_idle": (resume_flood, {}),
    "fanout_100x3.5MB": (fanout_oversized, {}),
    "line_200MB": (huge_line(200 << 20, sparse=False), {}),
    "line_1GB_sparse_as4G": (huge_line(1 << 30, sparse=True), {"limit_as": 4 << 30}),
    "append_5MB": (big_append, {"entries": 225}),
    "deep_json_960-995": (deep_json, {}),
    "bad_last_event_id": (bad_last_event_id, {}),
}
HUGE = {"burst_100000": (burst(100_000), {"stories": 100_000})}


def run_case(name: str, case: Case, options: dict[str, Any], args: argparse.Namespace) -> Result:
    workdir = tempfile.mkdtemp(prefix=f"loopdash-hostile-{name}-")
    root = os.path.join(workdir, "project")
    make_project(root, stories=options.get("stories", 5), entries=options.get("entries", 3))
    daemon = Daemon(root, workdir, args.server_cpu, options.get("limit_as"))
    stream = Stream(daemon.port, daemon.token)
    probe = HealthProbe(daemon.port)
    started = time.monotonic()
    try:
        stream.start()
        stream.connected.wait(10)
        time.sleep(0.5)
        probe.start()
        announced, notes = case(root, daemon, stream, args)
        time.sleep(0.5)
        wait = probe.finish()
        alive = daemon.process.poll() is None
        peak = daemon.rss_mb("VmHWM")
        end = daemon.rss_mb("VmRSS")
        if not alive:
            notes += f", daemon exited {daemon.process.returncode}"
        return Result(
            name, wait, peak, end, stream.events, announced and alive, notes, time.monotonic() - started
        )
    finally:
        probe.stop.set()
        stream.stop.set()
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def table(results: list[Result]) -> str:
    lines = [
        f"{'case':<22} {'wait ms':>9} {'peak MB':>8} {'end MB':>7} {'events':>7} {'announced':>9} {'ok':>3}  notes",
    ]
    for r in results:
        lines.append(
            f"{r.case:<22} {r.wait_ms:>9.0f} {r.peak_rss_mb:>8.1f} {r.end_rss_mb:>7.1f} {r.events:>7} "
            f"{'yes' if r.announced else 'NO':>9} {'ok' if r.ok else 'NO':>3}  {r.notes} ({r.seconds:.0f} s)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU for this process's clients (1)")
    parser.add_argument("--cases", help="comma-separated case names (default: all but the huge one)")
    parser.add_argument("--huge", action="store_true", help="also the 100,000-story burst (23 MB prd.json)")
    parser.add_argument("--case-timeout", type=float, default=90.0, help="seconds a case may take (90)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    cases = dict(CASES)
    if args.huge:
        cases.update(HUGE)
    if args.cases:
        wanted = args.cases.split(",")
        cases = {name: c for name, c in {**CASES, **HUGE}.items() if name in wanted}
    procs.raise_open_files(1024)
    procs.pin_self(args.client_cpu)  # the daemon has CPU 0 (--server-cpu) to itself
    print(f"loopdash {procs.git_revision()}", flush=True)
    results = []
    for name, (case, options) in cases.items():
        result = run_case(name, case, options, args)
        print(table([result]).splitlines()[1], flush=True)
        results.append(result)
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in results], f, indent=2)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Servers under test as pinned subprocesses, and what /proc says about them."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A running twistd: its process, port and log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: str
    started: float  # time.monotonic() just before spawning

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin_self(cpu: int) -> None:
    """Run the calling process (and the SSE clients in it) on ``cpu`` only."""
    os.sched_setaffinity(0, {cpu})


def raise_open_files(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _spawn(name: str, argv: list[str], cpu: int, log_path: str) -> Server:
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else int(argv[-1].split(":")[1])
    log: IO[bytes] = open(log_path, "ab")
    env = dict(os.environ, PYTHONPATH=REPO)
    started = time.monotonic()
    process = subprocess.Popen(
        ["taskset", "-c", str(cpu), *argv], stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env
    )
    log.close()
    return Server(name, process, port, log_path, started)


def start_loopdash(
    root: str, cpu: int, log_path: str, extra: list[str] | None = None, twistd: list[str] | None = None
) -> Server:
    """``twistd -n loopdash`` on ``root``; ``twistd`` replaces the command (e.g. bench.traced_daemon)."""
    port = free_port()
    command = twistd or [TWISTD]
    argv = [*command, "-n", "--pidfile=", "loopdash", "--root", root, *(extra or []), "--port", str(port)]
    return _spawn("loopdash", argv, cpu, log_path)


def start_klein_ceiling(cpu: int, log_path: str) -> Server:
    port = free_port()
    argv = [
        TWISTD,
        "-n",
        "--pidfile=",
        "web",
        "--class",
        "bench.klein_ceiling.resource",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
    ]
    return _spawn("klein", argv, cpu, log_path)


def get(server: Server, path: str, token: str | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_answers(server: Server, path: str, token: str | None, timeout: float = 30.0) -> float:
    """Poll until ``path`` answers 200; returns seconds since the server was spawned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}; see {server.log_path}"
            )
        try:
            status, _ = get(server, path, token, timeout=max(deadline - time.monotonic(), 0.1))
            if status == 200:
                return time.monotonic() - server.started
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{server.name} did not answer {path} within {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the ")" closing the command name: state is field 3, utime 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process's main
    thread, from /proc/<pid>/schedstat (nanosecond counters; the reactor's thread)."""
    with open(f"/proc/{pid}/schedstat") as f:
        run_ns, wait_ns, _ = f.read().split()
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def threads_run_seconds(pid: int) -> float:
    """CPU time of all of a process's live threads, at nanosecond resolution (schedstat)."""
    total = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
        except OSError:
            continue  # the thread ended meanwhile
    return total


class SchedProbe:
    """CPU and run-queue wait of the daemon and of this process over an interval, in ms:
    how much of a latency was work, and how much was waiting for a busy core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start = (*schedstat(pid), *schedstat(os.getpid()))

    def read(self) -> dict[str, float]:
        now = (*schedstat(self.pid), *schedstat(os.getpid()))
        names = ("server_cpu_ms", "server_wait_ms", "client_cpu_ms", "client_wait_ms")
        return {n: round((b - a) * 1000, 2) for n, a, b in zip(names, self._start, now, strict=False)}


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmHWM, VmRSS) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def open_files_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise KeyError("Max open files")


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", REPO, "log", "-1", "--format=%h %s"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"

"""``twistd`` with a reactor stall watchdog (``bench/notify.py --stalls``).

``python -m bench.stall_daemon -n --pidfile= loopdash --root DIR ...`` runs
twistd exactly as ``twistd`` would, plus a heartbeat on the reactor every
2 ms and a watchdog thread. While the heartbeat is late by more than
``LOOPDASH_STALL_MS`` (10), the watchdog samples the reactor thread's stack
every millisecond; when the heartbeat comes back, a stall longer than that
is written as one JSON line to ``LOOPDASH_STALL_LOG``: its length in ms,
how much of it the reactor thread spent on a CPU, waiting for a CPU (the run
queue) and neither (blocked: the GIL, a lock, or I/O), from
``/proc/self/task/<tid>/schedstat`` (counted from the watchdog's last look
before the stall, at most 5 ms earlier), every thread's CPU time meanwhile,
the ticks the host stole from the machine's CPUs, and the most sampled
stacks of the reactor thread and of the other threads (one sample: the
watchdog could not run, one thread held the interpreter). Each garbage
collection past the same threshold is a line too (``gc_ms``). The watchdog
costs the daemon a little: figures of a watched run are for finding causes,
not for reporting.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any


def schedstat(tid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) of one thread of this process."""
    with open(f"/proc/self/task/{tid}/schedstat") as f:
        run_ns, wait_ns, _ = f.read().split()
    return int(run_ns), int(wait_ns)


def threads_cpu() -> dict[str, int]:
    """ns on a CPU of each live thread of this process, by ``name:tid``."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            out[f"{name}:{tid}"] = schedstat(int(tid))[0]
        except OSError:
            continue  # the thread ended meanwhile
    return out


def steal_ticks() -> int:
    """Ticks stolen from this machine's virtual CPUs by its host (/proc/stat), all CPUs."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def stack_of(frame: FrameType | None, depth: int = 8) -> str:
    """The innermost ``depth`` frames, innermost first, as ``file:line func`` joined by `` < ``."""
    entries = traceback.extract_stack(frame)[-depth:]
    return " < ".join(
        f"{'/'.join(e.filename.split('/')[-2:])}:{e.lineno} {e.name}" for e in reversed(entries)
    )


class Watchdog(threading.Thread):
    def __init__(self, path: str, threshold_ms: float) -> None:
        super().__init__(daemon=True, name="stall-watchdog")
        self.path = path
        self.threshold = threshold_ms / 1000
        self.main_ident = threading.main_thread().ident
        self.main_tid = threading.main_thread().native_id
        self.beat = time.monotonic()

    def heartbeat(self) -> None:
        self.beat = time.monotonic()

    def run(self) -> None:
        me = threading.get_ident()
        # Taken every 5 ms while the reactor keeps time: a stall is counted from the
        # last one before it, since the watchdog may only notice it at its end (when
        # one thread held the interpreter throughout, the watchdog could not run).
        started_sched, started_threads, started_steal = (0, 0), {}, 0
        ticks = 0
        while True:
            time.sleep(0.001)
            beat = self.beat
            if time.monotonic() - beat < self.threshold:
                if ticks % 5 == 0:
                    started_sched, started_threads, started_steal = (
                        schedstat(self.main_tid),
                        threads_cpu(),
                        steal_ticks(),
                    )
                ticks += 1
                continue
            main: collections.Counter[str] = collections.Counter()
            others: collections.Counter[str] = collections.Counter()
            samples = 0
            while self.beat == beat:
                frames = sys._current_frames()
                samples += 1
                main[stack_of(frames.get(self.main_ident))] += 1
                for ident, frame in frames.items():
                    if ident not in (self.main_ident, me):
                        others[stack_of(frame, 4)] += 1
                time.sleep(0.001)
            ended = self.beat
            run_ns, wait_ns = schedstat(self.main_tid)
            ended_threads = threads_cpu()
            busy = {
                name: round((ns - started_threads.get(name, 0)) / 1e6, 1)
                for name, ns in ended_threads.items()
                if ns - started_threads.get(name, 0) > 500_000
            }
            length = (ended - beat) * 1000
            record: dict[str, Any] = {
                "at": time.time(),
                "ms": round(length, 1),
                "cpu_ms": round((run_ns - started_sched[0]) / 1e6, 1),
                "runqueue_ms": round((wait_ns - started_sched[1]) / 1e6, 1),
                "threads_cpu_ms": busy,
                "steal_ticks": steal_ticks() - started_steal,
                "samples": samples,
                "threads": threading.active_count(),
                "reactor": main.most_common(4),
                "others": others.most_common(6),
            }
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            ticks = 0


class GarbageTimer:
    """Logs each garbage collection longer than ``threshold_ms``: it holds the GIL throughout."""

    def __init__(self, path: str, threshold_ms: float) -> None:
        self.path = path
        self.threshold = threshold_ms / 1000
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.monotonic()
            return
        took = time.monotonic() - self.started
        if took >= self.threshold:
            record = {
                "at": time.time(),
                "gc_ms": round(took * 1000, 1),
                **info,
                "objects": len(gc.get_objects()),
            }
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def main() -> None:
    threshold = float(os.environ.get("LOOPDASH_STALL_MS", "10"))
    watchdog = Watchdog(os.environ["LOOPDASH_STALL_LOG"], threshold)
    gc.callbacks.append(GarbageTimer(os.environ["LOOPDASH_STALL_LOG"], threshold))
    from twisted.internet import reactor, task

    def start() -> None:
        task.LoopingCall(watchdog.heartbeat).start(0.002)
        watchdog.start()

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()

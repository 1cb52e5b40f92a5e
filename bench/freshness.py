"""Freshness: time from a loop's file write to the matching event at an SSE client.

    python -m bench.freshness --project DIR [--changes 20] [--poll-interval 1]

Runs the daemon twice on the same project (pinned to CPU 0, clients on CPU 1):
once with inotify (the default) and once polling only (``--no-inotify``), and
for each makes ``--changes`` changes the way a loop does (progress.txt
appends alternating with in-place metrics.json rewrites), each timed from the
moment the written file is closed to the moment its event arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench import procs
from bench.loopwriter import LoopWriter
from bench.sse import Swarm


@dataclass
class Freshness:
    mode: str
    changes: int
    median_ms: float
    max_ms: float
    min_ms: float
    by_kind: dict[str, dict[str, float]]
    missed: int
    samples_ms: list[float]
    #: Per change: the daemon's and this process's CPU and run-queue wait (ms).
    sched: list[dict[str, float]]

    @property
    def worst_wait_ms(self) -> float:
        """Run-queue wait (daemon + client) during the slowest change."""
        worst = self.sched[self.samples_ms.index(max(self.samples_ms))]
        return worst["server_wait_ms"] + worst["client_wait_ms"]


def token_of(root: str) -> str:
    with open(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")) as f:
        return f.read().strip()


def measure(
    swarm: Swarm,
    writer: LoopWriter,
    changes: int,
    mode: str,
    pid: int,
    poll_interval: float = 1.0,
    seed: int = 7,
    timeout: float = 5.0,
) -> Freshness:
    """``changes`` marked changes, one at a time, each waited for (at most ``timeout`` s).

    The pause before each change is uniform over a whole poll interval: an event
    arrives just after a poll, so a shorter pause would always land early in the
    next interval and bias the polling figures upwards.
    """
    rng = random.Random(seed)
    samples: list[float] = []
    kinds: dict[str, list[float]] = {}
    sched: list[dict[str, float]] = []
    missed = 0
    for index in range(changes):
        swarm.pump_for(0.05 + rng.uniform(0, poll_interval))
        probe = procs.SchedProbe(pid)
        kind, marker, written = writer.change(index)
        swarm.watch(marker)
        arrivals = swarm.wait_for(marker, timeout)
        swarm.watching.discard(marker)
        if not arrivals:
            missed += 1
            continue
        latency = (max(arrivals) - written) * 1000
        sched.append(probe.read())
        samples.append(latency)
        kinds.setdefault(kind, []).append(latency)
    if not samples:
        raise RuntimeError(f"no change reached the client ({mode})")
    return Freshness(
        mode=mode,
        changes=changes,
        median_ms=round(statistics.median(samples), 2),
        max_ms=round(max(samples), 2),
        min_ms=round(min(samples), 2),
        by_kind={
            k: {"median_ms": round(statistics.median(v), 2), "max_ms": round(max(v), 2)}
            for k, v in kinds.items()
        },
        missed=missed,
        samples_ms=[round(s, 2) for s in samples],
        sched=sched,
    )


def run_mode(root: str, mode: str, changes: int, poll_interval: float, cpu: int, workdir: str) -> Freshness:
    extra = ["--poll-interval", str(poll_interval)]
    if mode == "polling":
        extra.append("--no-inotify")
    writer = LoopWriter(root, tag=f"fresh-{mode}")
    writer.refresh()
    server = procs.start_loopdash(root, cpu, os.path.join(workdir, f"loopdash-{mode}.log"), extra)
    try:
        token_path = os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")
        deadline = time.monotonic() + 30
        while not os.path.exists(token_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        token = token_of(root)
        procs.wait_until_answers(server, "/api/health", None)
        swarm = Swarm(server.port, token)
        try:
            swarm.open(1)
            swarm.pump_for(1.5)  # let the first polls settle
            return measure(swarm, writer, changes, mode, server.pid, poll_interval)
        finally:
            swarm.close()
    finally:
        server.stop()


def format_table(results: list[Freshness]) -> str:
    lines = [
        "| watcher | changes | median | max (of which waiting for a CPU) | min | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        target = "≤ 20 ms / ≤ 100 ms" if r.mode == "inotify" else "(fallback: ≤ poll interval)"
        missed = f" ({r.missed} missed)" if r.missed else ""
        lines.append(
            f"| {r.mode} | {r.changes}{missed} | {r.median_ms:.1f} ms | {r.max_ms:.1f} ms "
            f"({r.worst_wait_ms:.1f} ms) | {r.min_ms:.1f} ms | {target} |"
        )
    lines.append("")
    for r in results:
        for kind, figures in sorted(r.by_kind.items()):
            lines.append(
                f"- {r.mode}, {kind}: median {figures['median_ms']:.1f} ms, max {figures['max_ms']:.1f} ms"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--project", required=True, help="a project made by bench.generate (it is written to)"
    )
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--modes", default="inotify,polling")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    procs.pin_self(args.client_cpu)
    results = []
    with tempfile.TemporaryDirectory(prefix="loopdash-fresh-") as workdir:
        for mode in args.modes.split(","):
            print(f"freshness: {mode} ...", file=sys.stderr)
            results.append(
                run_mode(
                    os.path.abspath(args.project),
                    mode,
                    args.changes,
                    args.poll_interval,
                    args.server_cpu,
                    workdir,
                )
            )
    print(format_table(results))
    if args.json:
        document: dict[str, Any] = {
            "revision": procs.git_revision(),
            "poll_interval": args.poll_interval,
            "results": [asdict(r) for r in results],
        }
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

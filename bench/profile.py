"""Profile the daemon under wrk load on one endpoint, with py-spy.

    pip install py-spy
    python -m bench.profile --project /tmp/large --path /api/stories [--duration 8] [--svg out.svg]

Starts ``twistd -n loopdash`` pinned to CPU 0, loads ``--path`` with wrk on CPU 1,
samples the daemon with ``py-spy record`` meanwhile, and prints the functions
taking the most samples: by their own time, and inclusively (the daemon's and
the web stack's frames), plus the CPU time per request.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench import procs, wrk
from bench.freshness import token_of

INTERESTING = ("loopdash/", "twisted/web", "klein/", "twisted/logger", "prometheus_client", "werkzeug")


def read_folded(folded: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """(samples, own samples per function, inclusive samples per function) of a py-spy raw profile."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(folded) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    return total, own, inclusive


def summarise(folded: str, top: int) -> str:
    """The top of a py-spy raw (folded stacks) profile, as text."""
    total, own, inclusive = read_folded(folded)
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive (daemon and web stack frames):"]
    shown = [(name, n) for name, n in inclusive.most_common() if any(k in name for k in INTERESTING)]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in shown[: top + 10]]
    return "\n".join(lines)


def compare(folded: str, cpu_us: float, ceiling_folded: str, ceiling_cpu_us: float, top: int) -> str:
    """Inclusive µs per request of each frame, loopdash against the ceiling: what loopdash adds."""
    total, _, inclusive = read_folded(folded)
    c_total, _, c_inclusive = read_folded(ceiling_folded)
    cost = {name: cpu_us * n / total for name, n in inclusive.items()}
    c_cost = {name: ceiling_cpu_us * n / c_total for name, n in c_inclusive.items()}
    names = [n for n in set(cost) | set(c_cost) if any(k in n for k in INTERESTING)]
    names.sort(key=lambda n: cost.get(n, 0.0) - c_cost.get(n, 0.0), reverse=True)
    lines = [
        f"µs CPU per request, inclusive: loopdash {cpu_us:.0f} µs, ceiling {ceiling_cpu_us:.0f} µs",
        "  loopdash  ceiling  extra  frame",
    ]
    for name in names[:top]:
        a, b = cost.get(name, 0.0), c_cost.get(name, 0.0)
        lines.append(f"  {a:8.1f} {b:8.1f} {a - b:6.1f}  {name}")
    return "\n".join(lines)


def profile_server(
    server: procs.Server, path: str, token: str | None, args: argparse.Namespace, spy: str, folded: str
) -> tuple[wrk.WrkResult, float]:
    """Load ``path`` with wrk while py-spy samples the server; returns wrk's result and µs CPU/req."""
    wrk.run(server.url(path), token, 1, args.client_cpu)
    seconds = str(max(1, round(args.duration)))
    recorders = [["record", "--format", "raw", "-o", folded]]
    if args.svg and server.name == "loopdash":
        recorders.append(["record", "-o", os.path.abspath(args.svg)])
    spies = [
        subprocess.Popen(
            [
                "taskset",
                "-c",
                str(args.client_cpu),
                spy,
                *how,
                "--pid",
                str(server.pid),
                "--duration",
                seconds,
                "--rate",
                str(args.rate),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for how in recorders
    ]
    time.sleep(0.5)  # py-spy attaches
    before = procs.cpu_seconds(server.pid)
    result = wrk.run(server.url(path), token, args.duration, args.client_cpu)
    cpu_us = 1e6 * (procs.cpu_seconds(server.pid) - before) / max(result.requests, 1)
    for process in spies:
        process.wait(timeout=args.duration + 60)
    return result, cpu_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", required=True)
    parser.add_argument("--path", required=True, help="the endpoint to load, e.g. /api/stories")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--svg", help="also write a flame graph here")
    parser.add_argument(
        "--compare-ceiling",
        action="store_true",
        help="also profile the Klein ceiling and list the frames where loopdash spends more",
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy) or not wrk.available():
        parser.error("needs py-spy (pip install py-spy), wrk and taskset")
    procs.pin_self(args.client_cpu)
    root = os.path.abspath(args.project)
    with tempfile.TemporaryDirectory(prefix="loopdash-profile-") as workdir:
        server = procs.start_loopdash(root, args.server_cpu, os.path.join(workdir, "loopdash.log"))
        try:
            procs.wait_until_answers(server, "/api/health", None)
            token = token_of(root)
            status, _ = procs.get(server, args.path, token)
            if status != 200:
                raise SystemExit(f"{args.path} answered {status}")
            folded = os.path.join(workdir, "profile.folded")
            result, cpu_us = profile_server(server, args.path, token, args, spy, folded)
        finally:
            server.stop()
        print(
            f"{args.path}: {result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
            f"{cpu_us:.0f} µs CPU/req (sampling slows the daemon a little)"
        )
        print(summarise(folded, args.top))
        if args.compare_ceiling:
            ceiling = procs.start_klein_ceiling(args.server_cpu, os.path.join(workdir, "klein.log"))
            try:
                procs.wait_until_answers(ceiling, "/", None)
                ceiling_folded = os.path.join(workdir, "ceiling.folded")
                c_result, c_cpu_us = profile_server(ceiling, "/", None, args, spy, ceiling_folded)
            finally:
                ceiling.stop()
            print(f"\nceiling: {c_result.requests_per_s:,.0f} req/s, {c_cpu_us:.0f} µs CPU/req")
            print(compare(folded, cpu_us, ceiling_folded, c_cpu_us, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The scale benchmark of issue 7: every figure of its table, against a Klein ceiling.

    python -m bench.generate /tmp/large --size large
    python -m bench.harness --project /tmp/large [--duration 10] [--json out.json]

The daemon (``twistd -n loopdash``) and a minimal Klein app (bench/klein_ceiling.py)
run one after the other on CPU 0; wrk (``-t2 -c16``) and this process's SSE
clients run on CPU 1. See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from bench import procs, wrk
from bench.freshness import measure as measure_freshness
from bench.freshness import token_of
from bench.generate import SIZES, generate
from bench.loopwriter import LoopWriter
from bench.sse import Swarm


@dataclass
class Row:
    """One line of the report."""

    figure: str
    measured: str
    target: str
    ratio: float | None
    passed: bool
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Endpoint:
    label: str
    path: str
    target_ratio: float


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def project_facts(root: str) -> dict[str, Any]:
    runs_dir = os.path.join(root, ".claude-loop", "runs")
    run_ids = sorted(n for n in os.listdir(runs_dir) if os.path.isdir(os.path.join(runs_dir, n)))
    with open(os.path.join(root, "prd.json"), encoding="utf-8") as f:
        stories = len(json.load(f)["userStories"])
    return {
        "root": root,
        "runs": len(run_ids),
        "stories": stories,
        "progress_txt_bytes": os.path.getsize(os.path.join(root, "progress.txt")),
        "middle_run": run_ids[len(run_ids) // 2],
        "current_run": run_ids[-1],
    }


def timed_wrk(server: procs.Server, path: str, token: str | None, args: argparse.Namespace) -> wrk.WrkResult:
    """wrk against ``path``, with the server's CPU time per request (steadier than req/s on a busy machine)."""
    before = procs.cpu_seconds(server.pid)
    result = wrk.run(server.url(path), token, args.duration, args.client_cpu)
    result.cpu_us_per_request = round(
        1e6 * (procs.cpu_seconds(server.pid) - before) / max(result.requests, 1), 1
    )
    return result


# -- REST endpoints, each paired with a ceiling run just before it ---------------------


def endpoints(server: procs.Server, token: str, facts: dict[str, Any]) -> list[Endpoint]:
    status, body = procs.get(server, "/api/logs?limit=1", token)
    if status != 200:
        raise RuntimeError(f"/api/logs answered {status}")
    total = json.loads(body)["total"]
    return [
        Endpoint("/api/status", "/api/status", 0.7),
        Endpoint("/api/history?limit=20", "/api/history?limit=20", 0.7),
        Endpoint("/api/logs?limit=10", "/api/logs?limit=10", 0.5),
        Endpoint(
            f"/api/logs?limit=10 last page (offset {max(total - 10, 0)})",
            f"/api/logs?limit=10&offset={max(total - 10, 0)}",
            0.5,
        ),
        Endpoint("/api/stories", "/api/stories", 0.5),
        Endpoint(f"/api/runs/<id> ({facts['middle_run']})", f"/api/runs/{facts['middle_run']}", 0.7),
    ]


def measure_endpoint(
    server: procs.Server,
    ceiling_server: procs.Server,
    token: str,
    endpoint: Endpoint,
    args: argparse.Namespace,
) -> tuple[Row, wrk.WrkResult]:
    """The ceiling, then the endpoint, back to back (``--rounds`` times): the ratio
    compares like with like even when the machine's load drifts during the run.
    With several rounds each side keeps its best run (load only ever slows a run)."""
    status, body = procs.get(server, endpoint.path, token)
    if status != 200:
        raise RuntimeError(f"{endpoint.path} answered {status}: {body[:200]!r}")
    ceilings: list[wrk.WrkResult] = []
    results: list[wrk.WrkResult] = []
    for _ in range(args.rounds):
        wrk.run(ceiling_server.url("/"), None, args.warmup, args.client_cpu)
        ceilings.append(timed_wrk(ceiling_server, "/", None, args))
        wrk.run(server.url(endpoint.path), token, args.warmup, args.client_cpu)
        results.append(timed_wrk(server, endpoint.path, token, args))
    ceiling = best(ceilings)
    result = best(results)
    result.non_2xx = sum(r.non_2xx for r in results)
    result.socket_errors = "; ".join(r.socket_errors for r in results if r.socket_errors)
    ratio = result.requests_per_s / ceiling.requests_per_s
    cpu_ratio = ceiling.cpu_us_per_request / max(result.cpu_us_per_request, 0.1)
    notes = (
        ""
        if result.clean
        else f" ({result.non_2xx} non-2xx, socket errors: {result.socket_errors or 'none'})"
    )
    row = Row(
        figure=endpoint.label,
        measured=(
            f"{result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
            f"{result.cpu_us_per_request:.0f} µs CPU/req{notes}"
        ),
        target=(
            f"≥ {endpoint.target_ratio} × ceiling ({ceiling.requests_per_s:,.0f} req/s, "
            f"{ceiling.cpu_us_per_request:.0f} µs CPU/req)"
        ),
        ratio=round(ratio, 3),
        passed=ratio >= endpoint.target_ratio and result.clean,
        numbers=dict(
            asdict(result),
            body_bytes=len(body),
            cpu_ratio=round(cpu_ratio, 3),
            target_ratio=endpoint.target_ratio,
            ceiling=asdict(ceiling),
            rounds=[asdict(r) for r in results],
            ceiling_rounds=[asdict(c) for c in ceilings],
        ),
    )
    return row, ceiling


def best(runs: list[wrk.WrkResult]) -> wrk.WrkResult:
    """The fastest run, with the lowest CPU per request seen in any run."""
    fastest = max(runs, key=lambda r: r.requests_per_s)
    return replace(fastest, cpu_us_per_request=min(r.cpu_us_per_request for r in runs))


# -- streams -------------------------------------------------------------------------


def fan_out(
    server: procs.Server, token: str, writer: LoopWriter, count: int, repeats: int, target_ms: float
) -> Row:
    swarm = Swarm(server.port, token)
    try:
        opened_in = swarm.open(count, batch=50, timeout=120)
        swarm.pump_for(1.0)
        lasts: list[float] = []
        firsts: list[float] = []
        reached: list[int] = []
        sched: list[dict[str, float]] = []
        for index in range(repeats):
            swarm.pump_for(0.3)
            probe = procs.SchedProbe(server.pid)
            _, marker, written = writer.change(index)
            swarm.watch(marker)
            arrivals = swarm.wait_for(marker, timeout=10.0)
            swarm.watching.discard(marker)
            sched.append(probe.read())
            reached.append(len(arrivals))
            if arrivals:
                lasts.append((max(arrivals) - written) * 1000)
                firsts.append((min(arrivals) - written) * 1000)
        complete = all(r == count for r in reached)
        worst = max(lasts) if lasts else float("inf")
        at_worst = sched[lasts.index(worst)] if lasts else {}
        return Row(
            figure=f"{count:,} open streams all updated after a change (last client)",
            measured=(
                f"median {statistics.median(lasts):.0f} ms / max {worst:.0f} ms over {repeats} changes"
                f" (first client: median {statistics.median(firsts):.0f} ms; daemon CPU per change: "
                f"median {statistics.median(s['server_cpu_ms'] for s in sched):.0f} ms; the slowest waited "
                f"{at_worst['server_wait_ms'] + at_worst['client_wait_ms']:.0f} ms for a CPU)"
                + ("" if complete else f"; clients reached: {reached} of {count}")
            )
            if lasts
            else "no event",
            target=f"≤ {target_ms:.0f} ms",
            ratio=None,
            passed=complete and worst <= target_ms,
            numbers={
                "last_ms": [round(x, 1) for x in lasts],
                "first_ms": [round(x, 1) for x in firsts],
                "reached": reached,
                "opened_in_s": round(opened_in, 2),
                "sched": sched,
            },
        )
    finally:
        swarm.close()


def idle_cpu(server: procs.Server, token: str, streams: int, seconds: float) -> Row:
    swarm = Swarm(server.port, token)
    try:
        swarm.open(streams, batch=50, timeout=60)
        swarm.pump_for(3.0)  # let the opening settle
        # schedstat's nanoseconds, not /proc/<pid>/stat's 10 ms ticks: idle is a few ticks.
        before, began = procs.threads_run_seconds(server.pid), time.monotonic()
        swarm.pump_for(seconds)
        used, elapsed = procs.threads_run_seconds(server.pid) - before, time.monotonic() - began
        still_open = swarm.open_count
    finally:
        swarm.close()
    percent = 100 * used / elapsed
    return Row(
        figure=f"idle CPU with {streams} open streams",
        measured=f"{percent:.3f} % of a core ({1000 * used:.1f} ms CPU in {elapsed:.0f} s; {still_open} streams open)",
        target="≤ 0.3 %",
        ratio=None,
        passed=percent <= 0.3 and still_open == streams,
        numbers={"percent": round(percent, 3), "cpu_s": used, "seconds": elapsed, "open": still_open},
    )


def measure_startups(root: str, args: argparse.Namespace, workdir: str) -> list[Row]:
    """Start the daemon ``args.startups`` times, each after a start of the Klein ceiling.

    One start is one sample of a noisy machine (on shared VMs the same start
    varies by a third): the row reports the median and the slowest, and the
    ceiling's own start-up (the framework's imports, the floor under ours).
    The package is byte-compiled first, as ``pip install`` does, so that no
    sample pays for compiling loopdash (where PYTHONDONTWRITEBYTECODE is set, an
    editable install would otherwise compile it at every start).
    """
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "loopdash")
    compileall.compile_dir(package, quiet=1)
    ceiling_s: list[float] = []
    health_s: list[float] = []
    logs_s: list[float] = []
    health_cpu: list[float] = []
    logs_cpu: list[float] = []
    for index in range(args.startups):
        ceiling = procs.start_klein_ceiling(args.server_cpu, os.path.join(workdir, "klein-start.log"))
        try:
            ceiling_s.append(procs.wait_until_answers(ceiling, "/", None))
        finally:
            ceiling.stop()
        server = procs.start_loopdash(root, args.server_cpu, os.path.join(workdir, "loopdash-start.log"))
        try:
            health_s.append(procs.wait_until_answers(server, "/api/health", None))
            health_cpu.append(procs.cpu_seconds(server.pid))
            token = token_of(root)  # created by the daemon before it listens
            logs_s.append(procs.wait_until_answers(server, "/api/logs?limit=10", token))
            logs_cpu.append(procs.cpu_seconds(server.pid))
        finally:
            server.stop()
        log(
            f"  start {index + 1}: ceiling {ceiling_s[-1]:.2f} s; /api/health {health_s[-1]:.2f} s "
            f"({health_cpu[-1]:.2f} s CPU), first /api/logs page {logs_s[-1]:.2f} s"
        )

    def row(figure: str, seconds: list[float], cpu: list[float]) -> Row:
        median = statistics.median(seconds)
        return Row(
            figure=figure,
            measured=(
                f"median {median:.2f} s, slowest {max(seconds):.2f} s over {len(seconds)} starts "
                f"(CPU median {statistics.median(cpu):.2f} s; the Klein ceiling's start-up: "
                f"median {statistics.median(ceiling_s):.2f} s, slowest {max(ceiling_s):.2f} s)"
            ),
            target="≤ 1 s",
            ratio=None,
            passed=median <= 1.0,
            numbers={
                "seconds": [round(x, 3) for x in seconds],
                "cpu_s": cpu,
                "ceiling_seconds": [round(x, 3) for x in ceiling_s],
            },
        )

    return [
        row("start-up to /api/health", health_s, health_cpu),
        row("start-up to the first /api/logs page", logs_s, logs_cpu),
    ]


# -- the run -------------------------------------------------------------------------


def run(args: argparse.Namespace, root: str, workdir: str) -> dict[str, Any]:
    facts = project_facts(root)
    log(
        f"project: {facts['runs']} runs, {facts['stories']} stories, progress.txt {facts['progress_txt_bytes']:,} B"
    )

    log(f"start-up, {args.startups} starts of the ceiling and of the daemon ...")
    startup_rows = measure_startups(root, args, workdir)
    writer = LoopWriter(root)
    writer.refresh()
    server = procs.start_loopdash(root, args.server_cpu, os.path.join(workdir, "loopdash.log"))
    try:
        procs.wait_until_answers(server, "/api/health", None)
        token = token_of(root)
        procs.wait_until_answers(server, "/api/logs?limit=10", token)
        nofile = procs.open_files_limit(server.pid)
        if nofile < max(args.fanout) + 64:
            raise RuntimeError(f"the daemon may open only {nofile} files; raise the limit (ulimit -n)")

        endpoint_rows = []
        ceilings: list[wrk.WrkResult] = []
        ceiling_server = procs.start_klein_ceiling(args.server_cpu, os.path.join(workdir, "klein.log"))
        try:
            procs.wait_until_answers(ceiling_server, "/", None)
            for endpoint in endpoints(server, token, facts):
                log(f"wrk: the ceiling, then {endpoint.path} ...")
                row, ceiling_run = measure_endpoint(server, ceiling_server, token, endpoint, args)
                log(
                    f"  ceiling {ceiling_run.requests_per_s:,.0f} req/s; {row.measured}; ratio {row.ratio:.2f}"
                )
                endpoint_rows.append(row)
                ceilings.append(ceiling_run)
        finally:
            ceiling_server.stop()
        hwm_rest = procs.memory_kib(server.pid, "VmHWM")

        log(f"file change -> event, {args.changes} changes ...")
        swarm = Swarm(server.port, token)
        try:
            swarm.open(1)
            swarm.pump_for(1.0)
            fresh = measure_freshness(swarm, writer, args.changes, "inotify", server.pid)
        finally:
            swarm.close()
        fresh_row = Row(
            figure="file change → stream event (median / max)",
            measured=f"{fresh.median_ms:.1f} ms / {fresh.max_ms:.1f} ms over {args.changes - fresh.missed} changes"
            + (f" ({fresh.missed} missed)" if fresh.missed else "")
            + f"; the slowest waited {fresh.worst_wait_ms:.1f} ms for a CPU",
            target="≤ 20 ms / ≤ 100 ms",
            ratio=None,
            passed=fresh.median_ms <= 20 and fresh.max_ms <= 100 and not fresh.missed,
            numbers=asdict(fresh),
        )

        fan_rows = []
        for count in args.fanout:
            log(f"fan-out to {count} streams ...")
            target = 250.0 if count >= 1000 else 100.0
            fan_rows.append(fan_out(server, token, writer, count, args.fanout_repeats, target))
            log(f"  {fan_rows[-1].measured}")

        log(f"idle CPU with {args.idle_streams} streams over {args.idle_seconds:g} s ...")
        idle_row = idle_cpu(server, token, args.idle_streams, args.idle_seconds)
        log(f"  {idle_row.measured}")
        hwm = procs.memory_kib(server.pid, "VmHWM")
        rss = procs.memory_kib(server.pid, "VmRSS")
    finally:
        server.stop()

    rows = [*endpoint_rows, fresh_row, *fan_rows, idle_row]
    rows.append(
        Row(
            figure="peak RSS under load (VmHWM)",
            measured=f"{hwm / 1024:.0f} MiB ({hwm * 1024 / 1e6:.0f} MB; {hwm_rest * 1024 / 1e6:.0f} MB after the REST load,"
            f" {rss * 1024 / 1e6:.0f} MB at the end)",
            target="≤ 150 MB",
            ratio=None,
            passed=hwm * 1024 <= 150e6,
            numbers={"vm_hwm_kib": hwm, "vm_hwm_after_rest_kib": hwm_rest, "vm_rss_end_kib": rss},
        )
    )
    rows.extend(startup_rows)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revision": procs.git_revision(),
        "project": facts,
        "conditions": {
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "wrk": f"-t2 -c16 -d{args.duration:g}s",
            "daemon_open_files": nofile,
            "load_average_at_end": os.getloadavg(),
        },
        "ceiling": {
            "requests_per_s": [c.requests_per_s for c in ceilings],
            "cpu_us_per_request": [c.cpu_us_per_request for c in ceilings],
            "rounds": args.rounds,
        },
        "rows": [asdict(r) for r in rows],
    }


def format_report(report: dict[str, Any]) -> str:
    p, c = report["project"], report["ceiling"]
    rounds = "" if c["rounds"] == 1 else f" (best of {c['rounds']} rounds each)"
    lines = [
        f"loopdash scale benchmark, {report['date']}, revision {report['revision']}",
        f"project: {p['runs']:,} runs, {p['stories']} stories, progress.txt {p['progress_txt_bytes'] / 1e6:.1f} MB",
        (
            f"Klein ceiling (73-byte JSON, same twistd, same core), measured just before each endpoint: "
            f"{min(c['requests_per_s']):,.0f} to {max(c['requests_per_s']):,.0f} req/s, "
            f"{min(c['cpu_us_per_request']):.0f} to {max(c['cpu_us_per_request']):.0f} µs CPU/req"
            f"{rounds}; "
            f"wrk {report['conditions']['wrk']} on CPU {report['conditions']['client_cpu']}, "
            f"server on CPU {report['conditions']['server_cpu']}"
        ),
        "",
        "| endpoint / figure | measured | target | ratio (req/s; CPU) | pass/fail |",
        "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        ratio = "—"
        if row["ratio"] is not None:
            ratio = f"{row['ratio']:.2f}; {row['numbers']['cpu_ratio']:.2f}"
        lines.append(
            f"| {row['figure']} | {row['measured']} | {row['target']} | {ratio} | "
            f"{'pass' if row['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--project", help="a project made by bench.generate (the run writes to it)")
    where.add_argument(
        "--size", choices=sorted(SIZES), help="generate a project of this size in a temporary directory"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk per endpoint")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of wrk before each measurement")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="ceiling/endpoint pairs per endpoint; each side keeps its best (for busy machines)",
    )
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--fanout", default="1000,500", help="stream counts for the fan-out rows")
    parser.add_argument("--fanout-repeats", type=int, default=3)
    parser.add_argument("--idle-streams", type=int, default=100)
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=60.0,
        help="the idle window: whole keepalive cycles (30 s), so each window holds the same wake-ups",
    )
    parser.add_argument(
        "--startups", type=int, default=5, help="starts of the daemon (and of the ceiling) measured"
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    args.fanout = [int(n) for n in args.fanout.split(",") if n]
    if not wrk.available():
        parser.error("wrk and taskset are needed: apt-get install -y wrk")
    procs.pin_self(args.client_cpu)
    limit = procs.raise_open_files(max(args.fanout + [args.idle_streams]) * 2 + 256)
    log(f"open files limit {limit} (the daemon inherits it)")
    with tempfile.TemporaryDirectory(prefix="loopdash-bench-") as workdir:
        if args.project:
            root = os.path.abspath(args.project)
        else:
            preset = SIZES[args.size]
            root = os.path.join(workdir, "project")
            log(f"generating a {args.size} project ...")
            generate(
                root, int(preset["runs"]), int(preset["iterations"]), int(preset["stories"]), preset["log_mb"]
            )
        report = run(args, root, workdir)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if all(r["passed"] for r in report["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())

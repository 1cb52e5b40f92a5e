"""The figures of issue 21 on a real daemon over a 10,000-commit repository.

    python -m bench.gitrepo /tmp/repo10k --commits 10000
    python -m bench.git --repo /tmp/repo10k [--commits 20] [--idle-seconds 30]

``twistd -n loopdash`` runs on CPU 0 with the repository as its project root
(a sample loop project is written into it, untracked); this process and its
stream client run on CPU 1. It reports, as JSON:

- **commit → stream**: a commit object is made beforehand (``git commit-tree``)
  and the clock starts just before ``git update-ref`` moves the branch to it;
  it stops when the ``commit_added`` event carrying its marker arrives on an
  open stream. Median and worst of ``--commits`` tries. (The clock includes
  spawning ``git update-ref``, a few ms: the figure is an upper bound.)
- **/api/commits warm**: the first page (20 commits with their diffstats),
  asked once to warm the caches, then ``--pages`` times: median and worst.
- **1 MB diff detail**: the generator's HEAD~1 commit (a 1,000,000-byte patch),
  first (cold) and the median of 10 further asks, with the daemon's RSS before
  the first ask and after the last (VmRSS, growth in MB).
- **idle CPU**: the daemon's CPU seconds over ``--idle-seconds`` with nothing
  happening, with git read and with ``--no-git``, one daemon after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import procs
from bench.freshness import token_of
from bench.sse import Swarm
from loopdash.cli.sample import create_sample_project


def git(repo: str, *args: str, text: str | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", repo, *args],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        env=dict(
            os.environ,
            GIT_AUTHOR_NAME="Bench",
            GIT_AUTHOR_EMAIL="b@example.invalid",
            GIT_COMMITTER_NAME="Bench",
            GIT_COMMITTER_EMAIL="b@example.invalid",
        ),
    )
    return done.stdout.strip()


def timed_get(server: procs.Server, path: str, token: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    status, body = procs.get(server, path, token)
    return (time.perf_counter() - started) * 1000, status, len(body)


def commit_latency(server: procs.Server, token: str, repo: str, count: int) -> dict[str, Any]:
    swarm = Swarm(server.port, token)
    swarm.open(1)
    samples = []
    missed = 0
    for index in range(count):
        swarm.pump_for(0.3)
        marker = f"bench-commit-{index}-{time.time_ns()}"
        head = git(repo, "rev-parse", "HEAD")
        tree = git(repo, "rev-parse", "HEAD^{tree}")
        sha = git(repo, "commit-tree", tree, "-p", head, text=f"feat: US-001 {marker}\n")
        swarm.watch(marker.encode())
        written = time.monotonic()
        git(repo, "update-ref", "refs/heads/main", sha, head)
        arrivals = swarm.wait_for(marker.encode(), 5.0)
        if not arrivals:
            missed += 1
            continue
        samples.append((max(arrivals) - written) * 1000)
    for client in swarm.clients:
        client.sock.close()
    return {
        "commits": count,
        "missed": missed,
        "median_ms": round(statistics.median(samples), 2) if samples else None,
        "max_ms": round(max(samples), 2) if samples else None,
        "target_median_ms": 100,
    }


def idle_cpu(root: str, seconds: float, extra: list[str], workdir: str, name: str) -> float:
    server = procs.start_loopdash(root, 0, os.path.join(workdir, f"{name}.log"), extra)
    try:
        procs.wait_until_answers(server, "/api/health", None)
        time.sleep(2)  # the first poll, the first git read, the first warm-ups
        before = procs.cpu_seconds(server.pid)
        time.sleep(seconds)
        return procs.cpu_seconds(server.pid) - before
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="a repository made by bench.gitrepo (it is written to)")
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    repo = os.path.abspath(args.repo)
    procs.pin_self(1)
    if not os.path.exists(os.path.join(repo, "prd.json")):
        create_sample_project(repo)
    big = git(repo, "log", "--format=%H", "-1", "--", "data/big.txt")
    workdir = tempfile.mkdtemp(prefix="loopdash-bench-git-")
    report: dict[str, Any] = {"repo": repo, "revision": procs.git_revision()}
    server = procs.start_loopdash(repo, 0, os.path.join(workdir, "loopdash.log"))
    try:
        procs.wait_until_answers(server, "/api/health", None)
        token = token_of(repo)
        time.sleep(1.0)  # the first git read
        cold = timed_get(server, "/api/commits", token)
        warm = [timed_get(server, "/api/commits", token)[0] for _ in range(args.pages)]
        report["commits_page"] = {
            "cold_ms": round(cold[0], 2),
            "status": cold[1],
            "bytes": cold[2],
            "warm_median_ms": round(statistics.median(warm), 2),
            "warm_max_ms": round(max(warm), 2),
            "target_warm_ms": 50,
        }
        rss_before = procs.memory_kib(server.pid, "VmRSS")
        first = timed_get(server, f"/api/commits/{big}", token)
        again = [timed_get(server, f"/api/commits/{big}", token)[0] for _ in range(10)]
        rss_after = procs.memory_kib(server.pid, "VmRSS")
        report["big_detail"] = {
            "sha": big,
            "status": first[1],
            "bytes": first[2],
            "first_ms": round(first[0], 2),
            "again_median_ms": round(statistics.median(again), 2),
            "rss_growth_mb": round((rss_after - rss_before) / 1024, 2),
            "target_ms": 200,
            "target_rss_growth_mb": 20,
        }
        report["commit_to_stream"] = commit_latency(server, token, repo, args.commits)
    finally:
        server.stop()
    with_git = idle_cpu(repo, args.idle_seconds, [], workdir, "idle-git")
    without = idle_cpu(repo, args.idle_seconds, ["--no-git"], workdir, "idle-nogit")
    report["idle_cpu"] = {
        "seconds": args.idle_seconds,
        "with_git_cpu_s": round(with_git, 3),
        "no_git_cpu_s": round(without, 3),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

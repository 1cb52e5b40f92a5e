"""dulwich against pygit2 on the reads loopdash's git view makes (issue 21).

    python -m bench.gitrepo /tmp/repo10k --commits 10000
    python -m bench.git_libraries /tmp/repo10k

Each library runs in its own child process (so that RSS figures are its own),
on the same repository, doing what the API does: open the repository, the
first page of 20 commits of HEAD with each commit's diffstat against its first
parent (cold, then warm: the same page again in the same process), every
commit message walked for story ids, and the detail of HEAD~1 (the generator's
1 MB diff) as per-file stats plus the patch text. Times are medians of
``--repeat`` runs in milliseconds; RSS is the growth over the process's RSS
after import and open, in MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

PAGE = 20


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run_pygit2(path: str, repeat: int) -> dict[str, Any]:
    import pygit2

    started = time.perf_counter()
    repo = pygit2.Repository(path)
    opened = (time.perf_counter() - started) * 1000
    base = rss_mb()

    def page() -> list[tuple[str, int, int, int]]:
        out = []
        walker = repo.walk(repo.head.target, pygit2.enums.SortMode.NONE)
        for commit in walker:
            parent = commit.parents[0].tree if commit.parents else None
            diff = (
                repo.diff(parent, commit.tree) if parent is not None else commit.tree.diff_to_tree(swap=True)
            )
            stats = diff.stats
            out.append((str(commit.id), stats.files_changed, stats.insertions, stats.deletions))
            if len(out) == PAGE:
                break
        return out

    def messages() -> int:
        return sum(1 for c in repo.walk(repo.head.target, pygit2.enums.SortMode.NONE) if "US-" in c.message)

    def detail() -> int:
        commit = repo.revparse_single("HEAD~1")
        diff = repo.diff(commit.parents[0].tree, commit.tree)
        size = 0
        for patch in diff:
            _, adds, dels = patch.line_stats
            size += len(patch.data) + adds + dels
        return size

    cold = timed(page, 1)
    warm = timed(page, repeat)
    walk = timed(messages, max(1, repeat // 2))
    before = rss_mb()
    detail_ms = timed(detail, repeat)
    return {
        "library": f"pygit2 {pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION})",
        "open_ms": opened,
        "page_cold_ms": cold,
        "page_warm_ms": warm,
        "walk_all_messages_ms": walk,
        "detail_1mb_ms": detail_ms,
        "rss_growth_mb": rss_mb() - min(base, before),
    }


def run_dulwich(path: str, repeat: int) -> dict[str, Any]:
    import io

    import dulwich
    from dulwich.patch import write_tree_diff
    from dulwich.repo import Repo
    from dulwich.walk import ORDER_DATE

    started = time.perf_counter()
    repo = Repo(path)
    opened = (time.perf_counter() - started) * 1000
    base = rss_mb()

    def stats_of(commit: Any) -> tuple[int, int, int, bytes]:
        parent_tree = repo[commit.parents[0]].tree if commit.parents else None
        out = io.BytesIO()
        write_tree_diff(out, repo.object_store, parent_tree, commit.tree)
        files = adds = dels = 0
        patch = out.getvalue()
        for line in patch.split(b"\n"):
            if line.startswith(b"diff --git"):
                files += 1
            elif line.startswith(b"+") and not line.startswith(b"+++"):
                adds += 1
            elif line.startswith(b"-") and not line.startswith(b"---"):
                dels += 1
        return files, adds, dels, patch

    def page() -> list[tuple[str, int, int, int]]:
        out = []
        for entry in repo.get_walker(include=[repo.head()], order=ORDER_DATE, max_entries=PAGE):
            files, adds, dels, _ = stats_of(entry.commit)
            out.append((entry.commit.id.decode(), files, adds, dels))
        return out

    def messages() -> int:
        return sum(1 for e in repo.get_walker(include=[repo.head()]) if b"US-" in e.commit.message)

    def detail() -> int:
        head = repo[repo.head()]
        commit = repo[head.parents[0]]
        return len(stats_of(commit)[3])

    cold = timed(page, 1)
    warm = timed(page, repeat)
    walk = timed(messages, max(1, repeat // 2))
    before = rss_mb()
    detail_ms = timed(detail, repeat)
    return {
        "library": f"dulwich {'.'.join(map(str, dulwich.__version__))}",
        "open_ms": opened,
        "page_cold_ms": cold,
        "page_warm_ms": warm,
        "walk_all_messages_ms": walk,
        "detail_1mb_ms": detail_ms,
        "rss_growth_mb": rss_mb() - min(base, before),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["pygit2", "dulwich"])
    args = parser.parse_args(argv)
    if args.only:
        result = (run_pygit2 if args.only == "pygit2" else run_dulwich)(args.path, args.repeat)
        print(json.dumps(result))
        return 0
    for name in ("pygit2", "dulwich"):
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.git_libraries",
                args.path,
                "--repeat",
                str(args.repeat),
                "--only",
                name,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(child.stdout)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

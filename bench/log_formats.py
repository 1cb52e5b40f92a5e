"""Cold indexing of a big progress log in every supported shape, as a ratio to claude-loop's.

    python -m bench.log_formats [--mb 50] [--repeat 5]

Writes one log per shape (invented text, same size) to a temporary directory,
then times a cold ``ProgressLog.refresh()`` of each (best of ``--repeat``
rounds, each round timing every shape once) and prints milliseconds, wall and
CPU, and their ratios to the claude-loop shape measured in the same run. Issue 14 asks for every shape within 1.5x. Run by hand: nothing here is a test.

The last column, CPU nanoseconds per entry found, is there to read the others
by: the logs are the same size, not the same number of entries, and a shape
whose every other line is an entry pays the regex engine per entry, not per byte.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

from loopdash.loop.progress import ProgressLog

BODY = "".join(f"- step {i}: changed `module_{i}.py` and ran the tests, which pass\n" for i in range(20))


def claude_loop(i: int) -> str:
    return f"### Iteration: 2026-01-{i % 28 + 1:02d} 10:20 AM\n**Status**: Complete\n{BODY}\n---\n\n"


def dated_headers(i: int) -> str:
    return f"## 2026-01-{i % 28 + 1:02d} - US-{i % 999:03d}: Title\n{BODY}### Learnings\n- one\n---\n\n"


def dated_lines(i: int) -> str:
    return f"[2026-01-{i % 28 + 1:02d}T11:53:17Z] iter {i} status=CONTINUE story=S{i % 40}\n  detail line\n"


def whole_file(i: int) -> str:
    return f"=== section {i} ===\n{BODY}\n"


SHAPES: dict[str, Callable[[int], str]] = {
    "claude-loop": claude_loop,
    "dated-headers": dated_headers,
    "dated-lines": dated_lines,
    "whole-file": whole_file,
}


def write(path: str, make: Callable[[int], str], size: int) -> None:
    written, i = 0, 0
    with open(path, "w") as f:
        while written < size:
            text = make(i)
            f.write(text)
            written += len(text)
            i += 1


def cold_ms(path: str) -> tuple[float, float, int]:
    """One cold refresh of the log at ``path``: wall and CPU milliseconds, entries found."""
    log = ProgressLog(path, whole_file=True)
    start, cpu = time.perf_counter(), time.process_time()
    total = log.refresh().total
    return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    size = int(args.mb * (1 << 20))
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as work:
        paths = {}
        for name, make in SHAPES.items():
            paths[name] = os.path.join(work, f"{name}.txt")
            write(paths[name], make, size)
        # Rounds that each time every shape once, best of each kept: a burst of
        # load from elsewhere then slows one round of all shapes, not one shape.
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        entries: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, path in paths.items():
                ms, cpu_ms, entries[name] = cold_ms(path)
                wall[name] = min(wall.get(name, ms), ms)
                cpu[name] = min(cpu.get(name, cpu_ms), cpu_ms)
    # CPU time too: on a shared machine, time spent waiting for a core is not the index's.
    print(f"{'shape':<14} {'entries':>9} {'ms':>8} {'ratio':>6} {'cpu ms':>8} {'ratio':>6} {'ns/entry':>9}")
    for name in paths:
        print(
            f"{name:<14} {entries[name]:>9} {wall[name]:>8.1f} {wall[name] / wall['claude-loop']:>6.2f}"
            f" {cpu[name]:>8.1f} {cpu[name] / cpu['claude-loop']:>6.2f}"
            f" {cpu[name] * 1e6 / max(entries[name], 1):>9.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

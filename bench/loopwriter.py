"""Changes made the way a running claude-loop makes them, each carrying a marker.

The loop appends an entry to progress.txt and rewrites the current run's
metrics.json in place (a truncating write, like ``cat >``) after every
iteration. Each change here puts a unique marker in what it writes (the entry's
story title, the iteration's ``story_title``), so an SSE client can tell when
the event for that change arrived; the write's own time is taken just after the
file is closed, i.e. when the change is complete on disk.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from itertools import count

from loopdash.cli.sample import RealRun, append_progress, progress_entry


class LoopWriter:
    """Continues the newest (running) run of a project, one marked change at a time."""

    def __init__(self, root: str, tag: str = "bench") -> None:
        self.root = root
        runs = os.path.join(root, ".claude-loop", "runs")
        self.run_id = max(n for n in os.listdir(runs) if os.path.isdir(os.path.join(runs, n)))
        with open(os.path.join(runs, self.run_id, "metrics.json"), encoding="utf-8") as f:
            document = json.load(f)
        if "totals" not in document:
            raise ValueError(f"run {self.run_id} is not in the real metrics shape")
        started = datetime.strptime(document["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        self.run = RealRun(
            root,
            started,
            list(document["iterations"]),
            document["cache"]["hits"],
            document["cache"]["misses"],
        )
        if self.run.run_id != self.run_id:
            raise ValueError(f"run {self.run_id} does not start at its own name ({self.run.run_id})")
        self.tag = tag
        self._serial = count(1)

    def marker(self) -> str:
        return f"{self.tag}-mark-{os.getpid()}-{next(self._serial)}-{time.monotonic_ns() % 10**9}"

    def append_progress(self) -> tuple[bytes, float]:
        """One progress.txt entry appended; returns (marker, time the file was closed)."""
        marker = self.marker()
        now = datetime.now(UTC)
        append_progress(
            self.root,
            progress_entry(
                now.strftime("%Y-%m-%d %H:%M:%S"), "US-001", marker, "Complete", ["Benchmark change"]
            ),
        )
        return marker.encode(), time.monotonic()

    def rewrite_metrics(self) -> tuple[bytes, float]:
        """One iteration added and metrics.json rewritten in place; returns (marker, closed at)."""
        marker = self.marker()
        now = datetime.now(UTC)
        self.run.add_iteration("US-001", marker, now, 120_000)
        self.run.write_metrics(now)
        return marker.encode(), time.monotonic()

    def change(self, index: int) -> tuple[str, bytes, float]:
        """Alternate the loop's two writes: (kind, marker, closed at)."""
        if index % 2 == 0:
            return ("progress.txt append", *self.append_progress())
        return ("metrics.json rewrite", *self.rewrite_metrics())

    def refresh(self) -> None:
        """Make the run look alive (fresh mtimes) without adding anything to it."""
        self.run.write_metrics(datetime.now(UTC))
        os.utime(os.path.join(self.root, "progress.txt"))
        os.utime(os.path.join(self.root, "prd.json"))

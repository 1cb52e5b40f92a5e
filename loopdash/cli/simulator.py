"""A simulated claude-loop: writes a project's files the way the real loop does.

It drives the demo (``loopdash demo``) and the live end-to-end tests. Each
iteration picks the next story as the real loop would, rewrites metrics.json
in place in two writes (so a reader can catch it half-written, as with the
real ``cat >``), flips the story in prd.json, appends a block to progress.txt,
and writes summary.json when every story passes; after a pause it starts a
new run. The clock is injected, so tests can drive it with ``Clock``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from twisted.internet.interfaces import IDelayedCall

from loopdash.cli.sample import (
    AGENTS,
    SAMPLE_STORIES,
    RealRun,
    append_progress,
    progress_entry,
    write_prd,
)
from loopdash.derive.status import next_story
from loopdash.loop.models import Prd
from loopdash.loop.parsing import parse_prd

#: Seconds of wall time per iteration at speed 1: a demo, not a real loop's minutes.
BASE_ITERATION_SECONDS = 6.0
BASE_PAUSE_SECONDS = 12.0
#: Delay between the two halves of a non-atomic metrics.json rewrite.
HALF_WRITE_GAP = 0.05


class LoopSimulator:
    """Plays runs of a loop over ``stories`` in ``root``, one iteration at a time."""

    def __init__(
        self,
        root: str,
        clock: Any,
        speed: float = 1.0,
        stories: Sequence[dict[str, Any]] = SAMPLE_STORIES,
        seed: int = 7,
        failure_every: int = 4,
    ) -> None:
        self.root = root
        self.clock = clock
        self.speed = speed
        self.stories = [dict(s) for s in stories]
        self.random = random.Random(seed)
        self.failure_every = failure_every
        self.run: RealRun | None = None
        self.iterations_done = 0
        self.runs_finished = 0
        self._pending: IDelayedCall | None = None
        self._last_end: datetime | None = None

    # -- timing ----------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), tz=UTC)

    def _later(self, seconds: float, f: Any) -> None:
        self._pending = self.clock.callLater(seconds / self.speed, f)

    def start(self) -> None:
        self.start_run()

    def stop(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    # -- the loop ----------------------------------------------------------------

    def start_run(self) -> None:
        """A new run: every story pending again, a new run directory."""
        for story in self.stories:
            story.update(passes=False, notes="")
        write_prd(self.root, self.stories)
        started = self._now()
        run = RealRun(self.root, started)
        if self.run is not None and run.run_id == self.run.run_id:
            # Run ids have one-second resolution; never reuse a directory.
            run = RealRun(self.root, datetime.fromtimestamp(started.timestamp() + 1, tz=UTC))
        run.start()
        run.write_metrics(started)
        self.run = run
        self._last_end = started
        self._later(BASE_ITERATION_SECONDS, self.iterate)

    def _prd(self) -> Prd:
        with open(os.path.join(self.root, "prd.json"), "rb") as f:
            return parse_prd(f.read())

    def iterate(self) -> None:
        """One iteration: work on the next story, record it everywhere the loop does."""
        run = self.run
        assert run is not None
        story = next_story(self._prd())
        if story is None:
            self.finish_run()
            return
        ended = self._now()
        started = self._last_end or run.started_at
        duration_ms = max(int((ended - started).total_seconds() * 1000), 1)
        self.iterations_done += 1
        failed = self.failure_every > 0 and self.iterations_done % self.failure_every == 0
        status = "failed" if failed else "complete"
        run.add_iteration(
            story.id,
            story.title,
            ended,
            duration_ms,
            status,
            tokens_in=self.random.randint(6000, 24000),
            tokens_out=self.random.randint(1500, 6000),
            model=self.random.choice(("sonnet", "sonnet", "opus", "haiku")),
            agents=self.random.sample(AGENTS, self.random.randint(1, 3)),
        )
        self._last_end = ended
        self._rewrite_metrics_in_two_writes(run, ended)
        if not failed:
            for raw in self.stories:
                if raw["id"] == story.id:
                    raw.update(passes=True, notes=f"Implemented in commit {self.random.getrandbits(28):07x}")
            write_prd(self.root, self.stories)
        append_progress(
            self.root,
            progress_entry(
                ended.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                story.id,
                story.title,
                "Failed" if failed else "Complete",
                [
                    f"Worked on **{story.title}**",
                    "Tests failed: `test_edge_cases` (retrying next iteration)"
                    if failed
                    else "All tests pass",
                ],
            ),
        )
        self._later(BASE_ITERATION_SECONDS, self.iterate)

    def _rewrite_metrics_in_two_writes(self, run: RealRun, updated: datetime) -> None:
        import json

        text = json.dumps(run.metrics_document(updated), indent=2) + "\n"
        path = os.path.join(run.directory, "metrics.json")
        middle = len(text) // 2
        handle = open(path, "w", encoding="utf-8")
        handle.write(text[:middle])
        handle.flush()

        def rest() -> None:
            handle.write(text[middle:])
            handle.close()

        self.clock.callLater(HALF_WRITE_GAP, rest)

    def finish_run(self) -> None:
        run = self.run
        assert run is not None
        run.write_summary(self._now())
        self.runs_finished += 1
        self._later(BASE_PAUSE_SECONDS, self.start_run)

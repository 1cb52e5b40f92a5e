"""Immutable values read from a loop's files.

These are what the parsers produce and what status derivation consumes. They
hold the loop's data already normalised to one shape, whichever of the on-disk
schemas it came from (see ``loop-data.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

JSONValue = Any
JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Story:
    """One user story of ``prd.json``."""

    id: str
    title: str
    description: str
    priority: float | None
    passes: bool
    notes: str
    complexity: str | None
    dependencies: tuple[str, ...]
    acceptance_criteria: tuple[str, ...] = ()
    #: The raw ``priority`` value, so the API returns it as written (1, not 1.0).
    priority_raw: int | float | None = None
    #: Where the item stands: ``completed``, ``pending``, ``in_progress`` or
    #: ``blocked`` (the last two only when the plan's ``status`` word says so).
    state: str = "pending"
    #: The order used to pick the next story: ``priority`` when a number, a
    #: priority word mapped to one (``critical`` 0 ... ``low`` 3), else None.
    rank: float | None = None
    #: A priority written as a word (``high``), as written; None for numbers.
    priority_label: str | None = None


@dataclass(frozen=True)
class Prd:
    """The plan: the project's name and its stories in file order."""

    project: str | None
    stories: tuple[Story, ...]

    # A plan can hold 100,000 stories, and the status is derived every poll and
    # every second: what is O(stories) is computed once per parsed plan (cached
    # on the value, which never changes), by the parse itself where that runs in
    # a worker thread (see ``warm``).

    @cached_property
    def completed(self) -> int:
        """How many stories pass."""
        return sum(1 for s in self.stories if s.passes)

    @cached_property
    def next_story(self) -> Story | None:
        """The story a running loop works on: first by priority (then file order)
        that does not pass and whose dependencies all pass. A story the plan itself
        marks in progress comes first; numeric priorities before priority words
        (``critical`` ... ``low``, ordered by rank), then stories with neither.

        A dependency that names no story in the plan does not block: a typo in
        prd.json should not make the dashboard claim the loop is idle.
        """
        passing = {s.id for s in self.stories if s.passes}
        known = {s.id for s in self.stories}
        # The first eligible story in that order is the least eligible one: one pass,
        # not a sort of the whole plan.
        best: Story | None = None
        best_key: tuple[bool, bool, float, bool, float, int] | None = None
        for index, story in enumerate(self.stories):
            if story.passes:
                continue
            if not all(dep in passing or dep not in known for dep in story.dependencies):
                continue
            key = (
                story.state != "in_progress",
                story.priority is None,
                story.priority or 0.0,
                story.rank is None,
                story.rank or 0.0,
                index,
            )
            if best_key is None or key < best_key:
                best, best_key = story, key
        return best

    @cached_property
    def story_hashes(self) -> tuple[int, ...]:
        """Each story's hash (of every field): equal hashes, the same story as far as a diff cares.

        Comparing two plans' hashes position by position is a few milliseconds
        for 100,000 stories, where comparing the stories field by field took a
        tenth of a second (the watcher does it in the reactor thread).
        """
        return tuple(map(hash, self.stories))

    @cached_property
    def ids(self) -> tuple[str, ...]:
        """The stories' ids, in file order (what commit messages are matched against)."""
        return tuple(s.id for s in self.stories)

    def warm(self) -> Prd:
        """The plan with its derived facts computed now (in the thread that parsed it)."""
        self.completed  # noqa: B018 -- computed for its cache
        self.next_story  # noqa: B018
        self.story_hashes  # noqa: B018
        self.ids  # noqa: B018
        return self


@dataclass(frozen=True)
class Iteration:
    """One iteration of a run, in the API's ``Iteration`` vocabulary."""

    story_id: str | None
    status: str
    elapsed_ms: int
    tokens_in: int
    tokens_out: int
    cost: float
    agents_used: tuple[str, ...]
    #: When the iteration ended, if the file says so.
    ended_at: datetime | None = None
    #: Fields the real loop writes beyond the contract's (story_title, model, ...).
    extra: Mapping[str, JSONValue] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    @property
    def failed(self) -> bool:
        return self.status == "failure"


@dataclass(frozen=True)
class RunMetrics:
    """A run's ``metrics.json``, normalised from either on-disk shape."""

    elapsed_time_s: float
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    last_update: datetime | None
    started_at: datetime | None
    iterations: tuple[Iteration, ...]
    #: ``cache``, ``parallel``, ``model_usage`` and the like, passed through.
    blocks: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """A finished run's ``summary.json``, normalised from either shape."""

    elapsed_time_s: float
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    status: str | None
    completed_at: datetime | None
    blocks: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True)
class LogEntry:
    """One entry of a progress log (a ``### Iteration:`` block in claude-loop's format)."""

    timestamp: str
    lines: tuple[str, ...]
    #: What the header line says beyond the timestamp, for formats that carry it
    #: (``None`` for claude-loop's own, whose answer stays as the contract shows it).
    details: EntryDetails | None = None

    #: Whether the entry was cut at a byte budget (its ``lines`` are its beginning).
    truncated: bool = False
    #: The whole entry's size in bytes on disk, when it was cut.
    size: int | None = None


@dataclass(frozen=True)
class EntryDetails:
    """The parts of an entry's header line: the story ids, a title, a status word, the time."""

    story_ids: tuple[str, ...] = ()
    title: str | None = None
    status: str | None = None
    #: The timestamp normalised to ISO-8601 (UTC with ``Z`` when it has an offset), or None.
    time: str | None = None

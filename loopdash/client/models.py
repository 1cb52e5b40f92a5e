"""Typed, frozen values for what the dashboard API answers, as a client sees them.

They mirror the data models of ``dashboard-api.md``. Each ``from_json`` checks
the fields the contract promises and keeps every other field in ``extra``, so
a newer server's additions are not lost. A body that breaks the contract
raises :class:`MalformedResponse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSONObject = Mapping[str, Any]


class DashboardError(Exception):
    """Anything the dashboard client raises; ``message`` says what went wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedResponse(DashboardError, ValueError):
    """The server answered something that does not match the API contract."""


def _object(value: object, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise MalformedResponse(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedResponse(f"{what}: expected a JSON array, got {type(value).__name__}")
    return value


class Fields:
    """Typed access to one JSON object's fields, remembering which were read."""

    def __init__(self, value: object, what: str) -> None:
        self.obj = _object(value, what)
        self.what = what
        self.read: set[str] = set()

    def _get(self, key: str, optional: bool) -> Any:
        self.read.add(key)
        if key not in self.obj:
            if optional:
                return None
            raise MalformedResponse(f"{self.what}: missing field {key!r}")
        return self.obj[key]

    def _fail(self, key: str, expected: str) -> MalformedResponse:
        return MalformedResponse(f"{self.what}.{key}: expected {expected}, got {self.obj.get(key)!r}")

    def text(self, key: str) -> str:
        value = self._get(key, False)
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, True)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, "a string or null")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key, False)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "an integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, True)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "an integer or null")
        return value

    def number(self, key: str) -> float:
        value = self._get(key, False)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, "a number")
        return float(value)

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, True)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, "a number or null")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self._get(key, False)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, False)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "an array of strings")
        return tuple(value)

    def raw(self, key: str) -> Any:
        return self._get(key, False)

    def opt_raw(self, key: str) -> Any:
        return self._get(key, True)

    def extra(self) -> dict[str, Any]:
        """The fields the caller did not read: what the contract does not name."""
        return {k: v for k, v in self.obj.items() if k not in self.read}


@dataclass(frozen=True)
class Health:
    """``GET /api/health``."""

    status: str
    timestamp: str
    version: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> Health:
        f = Fields(value, "health")
        return cls(f.text("status"), f.text("timestamp"), f.text("version"), f.extra())


@dataclass(frozen=True)
class CurrentStory:
    """``ExecutionStatus.current_story``."""

    id: str
    status: str
    elapsed_ms: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        """The story's title, which loopdash sends beyond the contract."""
        title = self.extra.get("title")
        return title if isinstance(title, str) else None

    @classmethod
    def from_json(cls, value: object) -> CurrentStory:
        f = Fields(value, "current_story")
        return cls(f.text("id"), f.text("status"), f.integer("elapsed_ms"), f.extra())

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "elapsed_ms": self.elapsed_ms, **self.extra}


@dataclass(frozen=True)
class ExecutionStatus:
    """``GET /api/status``: where the loop is now."""

    is_running: bool
    run_id: str | None
    current_story: CurrentStory | None
    progress_pct: float
    completed_stories: int
    total_stories: int
    #: Seconds.
    elapsed_time: int
    #: Seconds, or None while there is nothing to estimate from.
    estimated_remaining: int | None
    cost_so_far: float
    last_update: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> ExecutionStatus:
        f = Fields(value, "status")
        story = f.raw("current_story")
        return cls(
            is_running=f.flag("is_running"),
            run_id=f.opt_text("run_id"),
            current_story=None if story is None else CurrentStory.from_json(story),
            progress_pct=f.number("progress_pct"),
            completed_stories=f.integer("completed_stories"),
            total_stories=f.integer("total_stories"),
            elapsed_time=f.integer("elapsed_time"),
            estimated_remaining=f.opt_integer("estimated_remaining"),
            cost_so_far=f.number("cost_so_far"),
            last_update=f.text("last_update"),
            extra=f.extra(),
        )

    def to_json(self) -> dict[str, Any]:
        """The status as the server's JSON, extra fields included."""
        return {
            "is_running": self.is_running,
            "run_id": self.run_id,
            "current_story": None if self.current_story is None else self.current_story.to_json(),
            "progress_pct": self.progress_pct,
            "completed_stories": self.completed_stories,
            "total_stories": self.total_stories,
            "elapsed_time": self.elapsed_time,
            "estimated_remaining": self.estimated_remaining,
            "cost_so_far": self.cost_so_far,
            "last_update": self.last_update,
            **self.extra,
        }


@dataclass(frozen=True)
class Story:
    """One story of ``GET /api/stories``."""

    id: str
    title: str
    description: str
    priority: float | None
    #: ``completed`` or ``pending``.
    status: str
    notes: str
    estimated_complexity: str | None
    dependencies: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> Story:
        f = Fields(value, "story")
        return cls(
            id=f.text("id"),
            title=f.text("title"),
            description=f.text("description"),
            priority=f.opt_number("priority"),
            status=f.text("status"),
            notes=f.text("notes"),
            estimated_complexity=f.opt_text("estimatedComplexity"),
            dependencies=f.strings("dependencies"),
            extra=f.extra(),
        )


@dataclass(frozen=True)
class Stories:
    """``GET /api/stories``."""

    stories: tuple[Story, ...]
    total: int
    completed: int
    pending: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> Stories:
        f = Fields(value, "stories")
        items = tuple(Story.from_json(s) for s in _list(f.raw("stories"), "stories.stories"))
        return cls(items, f.integer("total"), f.integer("completed"), f.integer("pending"), f.extra())


@dataclass(frozen=True)
class LogEntry:
    """One iteration block of ``progress.txt``, as ``GET /api/logs`` lists it."""

    timestamp: str
    lines: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> LogEntry:
        f = Fields(value, "log entry")
        return cls(f.text("timestamp"), f.strings("lines"), f.extra())


@dataclass(frozen=True)
class LogPage:
    """One page of ``GET /api/logs``."""

    logs: tuple[LogEntry, ...]
    total: int
    limit: int
    offset: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> LogPage:
        f = Fields(value, "logs")
        items = tuple(LogEntry.from_json(e) for e in _list(f.raw("logs"), "logs.logs"))
        return cls(items, f.integer("total"), f.integer("limit"), f.integer("offset"), f.extra())


@dataclass(frozen=True)
class Iteration:
    """One iteration of a run (``Metrics.iterations[]``)."""

    story_id: str | None
    #: ``success`` or ``failure``.
    status: str
    elapsed_ms: int
    tokens_in: int
    tokens_out: int
    cost: float
    agents_used: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> Iteration:
        f = Fields(value, "iteration")
        return cls(
            story_id=f.opt_text("story_id"),
            status=f.text("status"),
            elapsed_ms=f.integer("elapsed_ms"),
            tokens_in=f.integer("tokens_in"),
            tokens_out=f.integer("tokens_out"),
            cost=f.number("cost"),
            agents_used=f.strings("agents_used"),
            extra=f.extra(),
        )


@dataclass(frozen=True)
class Metrics:
    """``GET /api/metrics``: one run's totals and iterations."""

    elapsed_time_s: float
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    last_update: str | None
    iterations: tuple[Iteration, ...]
    #: The run these metrics belong to (loopdash sends it beyond the contract).
    run_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> Metrics:
        f = Fields(value, "metrics")
        return cls(
            elapsed_time_s=f.number("elapsed_time_s"),
            total_cost=f.number("total_cost"),
            total_iterations=f.integer("total_iterations"),
            success_count=f.integer("success_count"),
            failure_count=f.integer("failure_count"),
            last_update=f.opt_text("last_update"),
            iterations=tuple(
                Iteration.from_json(i) for i in _list(f.raw("iterations"), "metrics.iterations")
            ),
            run_id=f.opt_text("run_id"),
            extra=f.extra(),
        )


@dataclass(frozen=True)
class RunRow:
    """A run as one row of ``GET /api/history`` and ``GET /api/runs``."""

    run_id: str
    timestamp: str
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    elapsed_time_s: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> RunRow:
        f = Fields(value, "run")
        return cls(
            run_id=f.text("run_id"),
            timestamp=f.text("timestamp"),
            total_cost=f.number("total_cost"),
            total_iterations=f.integer("total_iterations"),
            success_count=f.integer("success_count"),
            failure_count=f.integer("failure_count"),
            elapsed_time_s=f.number("elapsed_time_s"),
            extra=f.extra(),
        )


@dataclass(frozen=True)
class HistoryPage:
    """One page of ``GET /api/history``, newest run first."""

    runs: tuple[RunRow, ...]
    total: int
    limit: int
    offset: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> HistoryPage:
        f = Fields(value, "history")
        items = tuple(RunRow.from_json(r) for r in _list(f.raw("runs"), "history.runs"))
        return cls(items, f.integer("total"), f.integer("limit"), f.integer("offset"), f.extra())


def runs_from_json(value: object) -> tuple[RunRow, ...]:
    """``GET /api/runs``: a bare array of run rows."""
    return tuple(RunRow.from_json(r) for r in _list(value, "runs"))


@dataclass(frozen=True)
class RunTotals:
    """``RunDetail.summary``: a run's totals."""

    elapsed_time_s: float
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> RunTotals:
        f = Fields(value, "run.summary")
        return cls(
            f.number("elapsed_time_s"),
            f.number("total_cost"),
            f.integer("total_iterations"),
            f.integer("success_count"),
            f.integer("failure_count"),
            f.extra(),
        )


@dataclass(frozen=True)
class RunMetricsDetail:
    """``RunDetail.metrics``: the iterations, plus blocks such as ``cache`` and ``parallel`` in ``extra``."""

    iterations: tuple[Iteration, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> RunMetricsDetail:
        f = Fields(value, "run.metrics")
        iterations = tuple(
            Iteration.from_json(i) for i in _list(f.raw("iterations"), "run.metrics.iterations")
        )
        return cls(iterations, f.extra())


@dataclass(frozen=True)
class RunDetail:
    """``GET /api/runs/<run_id>``."""

    run_id: str
    timestamp: str
    summary: RunTotals
    metrics: RunMetricsDetail
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> RunDetail:
        f = Fields(value, "run")
        return cls(
            f.text("run_id"),
            f.text("timestamp"),
            RunTotals.from_json(f.raw("summary")),
            RunMetricsDetail.from_json(f.raw("metrics")),
            f.extra(),
        )

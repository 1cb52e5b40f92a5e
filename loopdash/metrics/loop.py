"""The loop's numbers as Prometheus metrics, computed when scraped.

Nothing is pushed: at each scrape :class:`LoopCollector` reads the snapshot
the requests share (``LiveProject``: taken again only when a file changed or
it is 50 ms old, and then a few ``stat`` calls when nothing changed) and
derives everything from it with the same status derivation as
``GET /api/status``. Every series carries the project name from
prd.json (``project``), the project's id in the daemon (``project_id``:
unique, so the projects of a multi-project daemon never share a series even
when their plans share a name) and the current run id.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from twisted.logger import Logger

from loopdash.derive.notify import DEFAULT_STALL_AFTER, RUN_STATES, failure_streak, run_state
from loopdash.derive.status import execution_status
from loopdash.loop.models import Iteration, RunMetrics
from loopdash.loop.project import ProjectSnapshot

LABELS = ("project", "project_id", "run_id")
OUTCOMES = ("success", "failure", "other")

#: Iterations take minutes; the buckets span a quick fix to a long story.
DURATION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
#: Dollars per iteration, from a cheap model's small step to a large one's long story.
COST_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class SnapshotSource(Protocol):
    def snapshot(self) -> ProjectSnapshot: ...


@dataclass(frozen=True)
class LoopSource:
    """One project the collector reports: its id, its snapshots and its budget (USD, or None)."""

    project_id: str
    source: SnapshotSource
    budget_usd: float | None = None


def outcome(iteration: Iteration) -> str:
    """The outcome label: success, failure, or other (any word the loop invents)."""
    if iteration.succeeded:
        return "success"
    if iteration.failed:
        return "failure"
    return "other"


def histogram_buckets(values: Iterable[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    """Cumulative bucket counts (``le`` as text, +Inf last), as a histogram exposes them."""
    ordered = sorted(values)
    buckets = [(_le(bound), float(bisect.bisect_right(ordered, bound))) for bound in bounds]
    buckets.append(("+Inf", float(len(ordered))))
    return buckets


def _le(bound: float) -> str:
    return repr(float(bound))


@dataclass(frozen=True)
class RunFigures:
    """What the metrics take from a run's iterations, computed once per metrics.json version."""

    tokens_in: int
    tokens_out: int
    outcomes: dict[str, int]
    last_duration: float | None
    duration_buckets: list[tuple[str, float]]
    duration_sum: float
    cost_buckets: list[tuple[str, float]]
    cost_sum: float


def run_figures(iterations: Sequence[Iteration]) -> RunFigures:
    durations = [i.elapsed_ms / 1000 for i in iterations]
    costs = [i.cost for i in iterations]
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for iteration in iterations:
        outcomes[outcome(iteration)] += 1
    return RunFigures(
        tokens_in=sum(i.tokens_in for i in iterations),
        tokens_out=sum(i.tokens_out for i in iterations),
        outcomes=outcomes,
        last_duration=durations[-1] if durations else None,
        duration_buckets=histogram_buckets(durations, DURATION_BUCKETS),
        duration_sum=math.fsum(durations),
        cost_buckets=histogram_buckets(costs, COST_BUCKETS),
        cost_sum=math.fsum(costs),
    )


class LoopCollector:
    """A custom collector over every project's snapshots: registered once, read at each scrape.

    ``projects`` answers the projects to report at the moment of the scrape
    (a multi-project daemon adds and drops projects while it runs); each
    metric family holds one sample set per project.
    """

    log = Logger(namespace="loopdash.metrics")

    def __init__(
        self,
        projects: Callable[[], Iterable[LoopSource]],
        clock: Any,
        stale_after: float,
        stall_after: float = DEFAULT_STALL_AFTER,
    ) -> None:
        self.projects = projects
        self.clock = clock
        self.stale_after = stale_after
        self.stall_after = stall_after
        #: Per project id, the last run's figures and the metrics reading they came
        #: from (readers hand out the same object while the file is unchanged): a
        #: scrape of a long run does not walk its thousands of iterations again.
        self._figures: dict[str, tuple[RunMetrics | None, RunFigures]] = {}

    def collect(self) -> Iterable[Metric]:
        families = Families()
        seen: set[str] = set()
        for project in self.projects():
            seen.add(project.project_id)
            try:
                self._add(families, project)
            except Exception:
                # One unreadable project must not hide the others, or the daemon's own metrics.
                self.log.failure("Cannot compute the loop metrics of {project}", project=project.project_id)
        for gone in set(self._figures) - seen:
            del self._figures[gone]
        return families.all()

    def _add(self, families: Families, project: LoopSource) -> None:
        snapshot = project.source.snapshot()
        now = float(self.clock.seconds())
        status = execution_status(snapshot, now, self.stale_after)
        prd = snapshot.prd.value
        metrics = snapshot.metrics.value
        figures = self._run_figures(project.project_id, metrics)
        labels = [
            (prd.project if prd is not None else None) or "",
            project.project_id,
            snapshot.current_run or "",
        ]
        gauge = families.gauges(labels)

        total = int(status["total_stories"])
        completed = int(status["completed_stories"])
        gauge("loopdash_loop_stories", "User stories in prd.json.", total)
        gauge("loopdash_loop_stories_completed", "User stories that pass.", completed)
        gauge(
            "loopdash_loop_progress_ratio",
            "Completed stories over all stories (0 to 1).",
            completed / total if total else 0.0,
        )
        gauge(
            "loopdash_loop_running",
            "1 while the current run is live, else 0.",
            1 if status["is_running"] else 0,
        )
        gauge("loopdash_loop_runs", "Run directories under .claude-loop/runs.", len(snapshot.run_ids))
        gauge(
            "loopdash_loop_cost_usd", "Cost of the current run so far, in US dollars.", status["cost_so_far"]
        )
        gauge("loopdash_loop_elapsed_seconds", "Elapsed time of the current run.", status["elapsed_time"])
        stories = prd.stories if prd is not None else ()
        finished = snapshot.summary.mtime is not None or (bool(stories) and all(s.passes for s in stories))
        current = run_state(status, now, self.stall_after, finished)
        states = families.gauge(
            "loopdash_loop_state",
            "1 for the run's state (running, stalled, finished, stopped, idle), 0 for the others.",
            (*LABELS, "state"),
        )
        for name in RUN_STATES:
            states.add_metric([*labels, name], 1 if name == current else 0)
        gauge(
            "loopdash_loop_failure_streak",
            "Failed iterations in a row at the end of the current run.",
            failure_streak(metrics.iterations if metrics is not None else ()),
        )
        if project.budget_usd is not None:
            gauge(
                "loopdash_loop_budget_usd", "The run's budget (--budget), in US dollars.", project.budget_usd
            )
        if status["estimated_remaining"] is not None:
            gauge(
                "loopdash_loop_estimated_remaining_seconds",
                "Estimated time left for the pending stories, at this run's pace.",
                status["estimated_remaining"],
            )

        tokens = families.gauge(
            "loopdash_loop_tokens", "Tokens used by the current run.", (*LABELS, "direction")
        )
        tokens.add_metric([*labels, "in"], figures.tokens_in)
        tokens.add_metric([*labels, "out"], figures.tokens_out)

        by_outcome = families.gauge(
            "loopdash_loop_iterations", "Iterations of the current run, by outcome.", (*LABELS, "outcome")
        )
        for name, count in figures.outcomes.items():
            by_outcome.add_metric([*labels, name], count)

        activity = snapshot.activity if snapshot.activity is not None else snapshot.root_mtime
        if activity is not None:
            gauge(
                "loopdash_loop_seconds_since_activity",
                "Seconds since the loop last wrote one of its files.",
                max(now - activity, 0.0),
            )
        if figures.last_duration is not None:
            gauge(
                "loopdash_loop_last_iteration_duration_seconds",
                "Duration of the current run's latest iteration.",
                figures.last_duration,
            )
        families.histogram(
            "loopdash_loop_iteration_duration_seconds", "Durations of the current run's iterations."
        ).add_metric(labels, figures.duration_buckets, figures.duration_sum)
        families.histogram(
            "loopdash_loop_iteration_cost_usd", "Cost of each of the current run's iterations, in US dollars."
        ).add_metric(labels, figures.cost_buckets, figures.cost_sum)

    def _run_figures(self, project_id: str, metrics: RunMetrics | None) -> RunFigures:
        kept = self._figures.get(project_id)
        if kept is None or kept[0] is not metrics:
            kept = (metrics, run_figures(metrics.iterations if metrics is not None else ()))
            self._figures[project_id] = kept
        return kept[1]


class Families:
    """The metric families of one scrape, by name, in the order first made."""

    def __init__(self) -> None:
        self._made: dict[str, GaugeMetricFamily | HistogramMetricFamily] = {}

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = LABELS) -> GaugeMetricFamily:
        family = self._made.get(name)
        if family is None:
            family = self._made[name] = GaugeMetricFamily(name, documentation, labels=labels)
        assert isinstance(family, GaugeMetricFamily)
        return family

    def histogram(self, name: str, documentation: str) -> HistogramMetricFamily:
        family = self._made.get(name)
        if family is None:
            family = self._made[name] = HistogramMetricFamily(name, documentation, labels=LABELS)
        assert isinstance(family, HistogramMetricFamily)
        return family

    def gauges(self, labels: Sequence[str]) -> Callable[[str, str, float], None]:
        """A function adding one sample with ``labels`` to the named gauge."""

        def add(name: str, documentation: str, value: float) -> None:
            self.gauge(name, documentation).add_metric(list(labels), value)

        return add

    def all(self) -> list[Metric]:
        return list(self._made.values())

"""From readings to the API's shapes: pure functions, no I/O, no reactor.

The execution status is an inference over the loop's files; the rules are
those of the loop-data spec ("Deriving the execution status"), written down
for users in docs/status.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec
from msgspec import UNSET

from loopdash.contract.codec import copied, plain_object
from loopdash.contract.shapes import (
    CurrentStoryAnswer,
    ExecutionStatusAnswer,
    HistoryPageAnswer,
    IterationAddedAnswer,
    IterationAnswer,
    LogAppendedAnswer,
    LogEntryAnswer,
    LogPageAnswer,
    MetricsAnswer,
    RunDetailAnswer,
    RunMetricsDetailAnswer,
    RunRowAnswer,
    RunTotalsAnswer,
    StoryAnswer,
    StoryListAnswer,
)
from loopdash.loop.models import Iteration, JSONObject, LogEntry, Prd, RunMetrics, Story
from loopdash.loop.project import ProjectSnapshot, RunRow, run_id_start

#: Default staleness window: real iterations take minutes.
DEFAULT_STALE_AFTER = 600.0
#: Default quiet time after which an unfinished run counts as stalled.
DEFAULT_STALL_AFTER = 300.0

#: The run states, as ``state`` names them (see docs/liveness.md).
StateName = Literal["running", "stalled", "finished", "stopped", "idle"]
RUNNING: Final = "running"
STALLED: Final = "stalled"
FINISHED: Final = "finished"
STOPPED: Final = "stopped"
IDLE: Final = "idle"
RUN_STATES = (RUNNING, STALLED, FINISHED, STOPPED, IDLE)
#: The states in which the loop may still be at work (``is_running`` is true).
LIVE_STATES = frozenset({RUNNING, STALLED})


def iso_utc(moment: float | datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, to the second, as the contract writes times."""
    return None if moment is None else iso_utc_at(moment)


def iso_utc_at(moment: float | datetime) -> str:
    """:func:`iso_utc` of a moment that is known."""
    if isinstance(moment, datetime):
        dt = moment.astimezone(UTC)
    else:
        dt = datetime.fromtimestamp(moment, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _round_money(value: float) -> float:
    return round(value, 6)


# -- stories -------------------------------------------------------------------


def story_value(story: Story, commits: Sequence[str] = ()) -> StoryAnswer:
    """A story; ``commits``: the short shas of its commits in the git history, newest first."""
    return StoryAnswer(
        id=story.id,
        title=story.title,
        description=story.description,
        priority=story.priority_raw,
        status="completed" if story.passes else "pending",
        notes=story.notes,
        estimated_complexity=story.complexity,
        dependencies=story.dependencies,
        # Beyond the contract's Story: what a dashboard's detail view shows.
        acceptance_criteria=story.acceptance_criteria,
        # ``status`` keeps the contract's two words; ``state`` also says
        # in_progress or blocked when the plan's own status word does.
        state=story.state,
        priority_label=story.priority_label,
        story_commits=tuple(commits),
    )


def story_json(story: Story, commits: Sequence[str] = ()) -> JSONObject:
    return plain_object(story_value(story, commits))


def stories_value(prd: Prd | None, commits: Mapping[str, Sequence[str]] | None = None) -> StoryListAnswer:
    stories = prd.stories if prd is not None else ()
    completed = sum(1 for s in stories if s.passes)
    found = commits or {}
    return StoryListAnswer(
        stories=tuple(story_value(s, found.get(s.id, ())) for s in stories),
        total=len(stories),
        completed=completed,
        pending=len(stories) - completed,
    )


def stories_payload(prd: Prd | None) -> JSONObject:
    return plain_object(stories_value(prd))


def next_story(prd: Prd) -> Story | None:
    """The story a running loop works on (see :attr:`Prd.next_story`: computed once per plan)."""
    return prd.next_story


# -- metrics -------------------------------------------------------------------
#
# A run's iterations carry the loop's own fields in ``extra``: values holding them
# leave through plain() (``*_json``), which puts those fields beside the contract's.


def iteration_value(iteration: Iteration) -> IterationAnswer:
    """The reading's iteration, whose fields (and ``extra``) are the contract's by name."""
    return copied(IterationAnswer, iteration)


def iteration_added_value(iteration: Iteration, run_id: str) -> IterationAddedAnswer:
    """The ``iteration_added`` event's data: the iteration and its run."""
    return copied(IterationAddedAnswer, iteration, run_id=run_id)


def iteration_json(iteration: Iteration) -> JSONObject:
    return plain_object(iteration_value(iteration))


def metrics_payload(metrics: RunMetrics, run_id: str) -> JSONObject:
    value = MetricsAnswer(
        run_id=run_id,
        elapsed_time_s=metrics.elapsed_time_s,
        total_cost=_round_money(metrics.total_cost),
        total_iterations=metrics.total_iterations,
        success_count=metrics.success_count,
        failure_count=metrics.failure_count,
        last_update=iso_utc(metrics.last_update),
        iterations=tuple(iteration_value(i) for i in metrics.iterations),
    )
    return plain_object(value)


def run_row_value(row: RunRow, liveness: Liveness | None = None) -> RunRowAnswer:
    """A run's row: the run id is its timestamp too; money to the micro-dollar."""
    # Spelled out, not copied(): this is /api/history's hot path (1,000 rows a page).
    return RunRowAnswer(
        run_id=row.run_id,
        timestamp=row.run_id,
        total_cost=_round_money(row.total_cost),
        total_iterations=row.total_iterations,
        success_count=row.success_count,
        failure_count=row.failure_count,
        elapsed_time_s=row.elapsed_time_s,
        state=UNSET if liveness is None else liveness.state,
        last_activity=UNSET if liveness is None else iso_utc(liveness.last_activity),
    )


def run_row_json(row: RunRow, liveness: Liveness | None = None) -> JSONObject:
    """A history row; with ``liveness``, its ``state`` and ``last_activity`` too
    (not ``quiet_for``: rows are kept encoded while they do not change)."""
    return plain_object(run_row_value(row, liveness))


def run_detail_json(row: RunRow, metrics: RunMetrics | None, liveness: Liveness | None = None) -> JSONObject:
    detail = RunMetricsDetailAnswer(iterations=())
    if metrics is not None:
        blocks = {k: v for k, v in metrics.blocks.items() if k not in ("totals", "pricing")}
        detail = RunMetricsDetailAnswer(
            iterations=tuple(iteration_value(i) for i in metrics.iterations),
            last_update=iso_utc(metrics.last_update),
            extra=blocks,
        )
    value = RunDetailAnswer(
        run_id=row.run_id,
        timestamp=row.run_id,
        summary=copied(RunTotalsAnswer, row, total_cost=_round_money(row.total_cost)),
        metrics=detail,
    )
    out = plain_object(value)
    if liveness is not None:
        out.update(liveness.json_fields())
    return out


def log_entry_value(entry: LogEntry) -> LogEntryAnswer:
    """An entry as the API serves it; a cut one also says so, with its full size in bytes.

    Entries of logs other than claude-loop's also carry what their header says
    (time, story_ids, title, status); claude-loop's keep the contract's shape.
    """
    size = entry.size if entry.truncated else None
    details = entry.details
    if details is None:
        if size is not None:
            return LogEntryAnswer(timestamp=entry.timestamp, lines=entry.lines, truncated=True, size=size)
        return LogEntryAnswer(timestamp=entry.timestamp, lines=entry.lines)
    return LogEntryAnswer(
        timestamp=entry.timestamp,
        lines=entry.lines,
        truncated=True if size is not None else UNSET,
        size=size if size is not None else UNSET,
        time=details.time,
        story_ids=details.story_ids,
        title=details.title,
        status=details.status,
    )


def log_appended_value(entry: LogEntry, index: int) -> LogAppendedAnswer:
    """The ``log_appended`` event's data: the entry and its position in ``/api/logs``."""
    return copied(LogAppendedAnswer, log_entry_value(entry), index=index)


def log_entry_json(entry: LogEntry) -> JSONObject:
    return plain_object(log_entry_value(entry))


def log_page_value(entries: Sequence[LogEntry], total: int, limit: int, offset: int) -> LogPageAnswer:
    return LogPageAnswer(
        logs=tuple(log_entry_value(e) for e in entries), total=total, limit=limit, offset=offset
    )


def history_page_value(
    rows: Sequence[RunRow],
    total: int,
    limit: int,
    offset: int,
    liveness: Sequence[Liveness | None] | None = None,
) -> HistoryPageAnswer:
    states = liveness if liveness is not None else [None] * len(rows)
    return HistoryPageAnswer(
        runs=tuple(run_row_value(r, state) for r, state in zip(rows, states, strict=True)),
        total=total,
        limit=limit,
        offset=offset,
    )


# -- liveness ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Liveness:
    """What a run is doing, decided from its own evidence (docs/liveness.md)."""

    #: One of RUN_STATES.
    state: StateName
    #: Seconds since the run's last activity (never negative); None when nothing ever happened.
    quiet_for: float | None
    #: The run's last activity (seconds since the epoch, never after ``now``), if any.
    last_activity: float | None

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def json_fields(self) -> JSONObject:
        """``state``, ``quiet_for`` (whole seconds) and ``last_activity`` (ISO-8601 UTC)."""
        return {
            "state": self.state,
            "quiet_for": None if self.quiet_for is None else int(self.quiet_for),
            "last_activity": iso_utc(self.last_activity),
        }


def decide_liveness(
    *,
    started: float | None,
    evidence: Iterable[float | None],
    finished: bool,
    every_story_passes: bool,
    now: float,
    stall_after: float,
    stale_after: float,
) -> Liveness:
    """The state of a run from its start, the times of its own evidence and whether it ended.

    Rules (docs/liveness.md): a summary means ``finished``; otherwise the quiet
    time since the newest evidence decides: past ``stale_after`` the run is
    ``stopped`` (it ended without finishing), past ``stall_after`` it is
    ``stalled``, else ``running``. A run whose every story passes and that has
    been quiet past ``stall_after`` is ``finished``: it has nothing left to do.
    Times after ``now`` count as ``now``: a file from the future is not
    activity for ever.
    """
    times = [min(t, now) for t in (started, *evidence) if t is not None]
    last = max(times) if times else None
    quiet = max(now - last, 0.0) if last is not None else None
    if finished:
        return Liveness(FINISHED, quiet, last)
    if quiet is None:
        # A run without a start time or any file: say it stopped rather than claim work.
        return Liveness(STOPPED, None, None)
    if every_story_passes and quiet > stall_after:
        return Liveness(FINISHED, quiet, last)
    if quiet > stale_after:
        return Liveness(STOPPED, quiet, last)
    if quiet > stall_after:
        return Liveness(STALLED, quiet, last)
    return Liveness(RUNNING, quiet, last)


def run_evidence(snapshot: ProjectSnapshot) -> list[float | None]:
    """The times that show the current run at work: its metrics.json, and
    progress.txt when it holds entries and was written since the run started.

    prd.json is not among them: the plan is edited by people too, and an edit
    must not bring a run that went quiet long ago back to life.
    """
    started = run_started_at(snapshot)
    evidence: list[float | None] = [snapshot.metrics.mtime, snapshot.summary.mtime]
    log = snapshot.log
    if log.mtime is not None and log.total > 0 and (started is None or log.mtime >= started):
        evidence.append(log.mtime)
    return evidence


def older_run_liveness(
    run_id: str,
    metrics_mtime: float | None,
    summary_mtime: float | None,
    now: float,
    stale_after: float,
    stall_after: float = DEFAULT_STALL_AFTER,
) -> Liveness:
    """A run's liveness from its own files alone (for runs other than the current one)."""
    return decide_liveness(
        started=run_id_start(run_id),
        evidence=(metrics_mtime, summary_mtime),
        finished=summary_mtime is not None,
        every_story_passes=False,
        now=now,
        stall_after=stall_after,
        stale_after=stale_after,
    )


def snapshot_liveness(
    snapshot: ProjectSnapshot, now: float, stale_after: float, stall_after: float = DEFAULT_STALL_AFTER
) -> Liveness:
    """The current run's liveness; ``idle`` when there is no run."""
    if snapshot.current_run is None:
        activity = snapshot.activity if snapshot.activity is not None else None
        quiet = max(now - min(activity, now), 0.0) if activity is not None else None
        return Liveness(IDLE, quiet, None if activity is None else min(activity, now))
    prd = snapshot.prd.value
    return decide_liveness(
        started=run_started_at(snapshot),
        evidence=run_evidence(snapshot),
        finished=snapshot.summary.mtime is not None,
        every_story_passes=prd is not None and bool(prd.stories) and prd.completed == len(prd.stories),
        now=now,
        stall_after=stall_after,
        stale_after=stale_after,
    )


# -- execution status ------------------------------------------------------------


def run_started_at(snapshot: ProjectSnapshot) -> float | None:
    metrics = snapshot.metrics.value
    if metrics is not None and metrics.started_at is not None:
        return metrics.started_at.timestamp()
    if snapshot.current_run is not None:
        return run_id_start(snapshot.current_run)
    return None


def is_running(
    snapshot: ProjectSnapshot, now: float, stale_after: float, stall_after: float = DEFAULT_STALL_AFTER
) -> bool:
    """A run is live while it is running or stalled (it has not ended nor gone quiet for good)."""
    return snapshot_liveness(snapshot, now, stale_after, stall_after).live


def execution_status(
    snapshot: ProjectSnapshot, now: float, stale_after: float, stall_after: float = DEFAULT_STALL_AFTER
) -> JSONObject:
    """The status as JSON builtins (what the stream sends and the diff compares)."""
    return plain_object(status_value(snapshot, now, stale_after, stall_after))


def status_value(
    snapshot: ProjectSnapshot, now: float, stale_after: float, stall_after: float = DEFAULT_STALL_AFTER
) -> ExecutionStatusAnswer:
    """``GET /api/status``: the rules of loop-data.md and docs/liveness.md over one snapshot."""
    if snapshot.source is not None and not snapshot.source.run_directories:
        # A loop family without .claude-loop/runs/: the rules of docs/loop-families.md.
        from loopdash.derive.activity import activity_liveness, activity_status

        family = activity_liveness(snapshot, now, stale_after, stall_after)
        return msgspec.structs.replace(
            activity_status(snapshot, now, stale_after),
            state=family.state,
            quiet_for=None if family.quiet_for is None else int(family.quiet_for),
            last_activity=iso_utc(family.last_activity),
        )
    prd = snapshot.prd.value
    metrics = snapshot.metrics.value
    summary = snapshot.summary.value
    liveness = snapshot_liveness(snapshot, now, stale_after, stall_after)
    running = liveness.live
    started = run_started_at(snapshot)

    total = len(prd.stories) if prd else 0
    completed = prd.completed if prd else 0
    progress = round(completed * 100.0 / total, 1) if total else 0.0

    iterations = metrics.iterations if metrics else ()
    last_iteration = iterations[-1] if iterations else None

    if running:
        elapsed = (
            max(now - started, 0.0) if started is not None else (metrics.elapsed_time_s if metrics else 0.0)
        )
    elif summary is not None:
        elapsed = summary.elapsed_time_s
    elif liveness.state in (STOPPED, FINISHED) and started is not None and liveness.last_activity is not None:
        # Frozen at the run's last sign of life: a dead run's clock does not go on.
        elapsed = max(liveness.last_activity - min(started, now), metrics.elapsed_time_s if metrics else 0.0)
    else:
        elapsed = metrics.elapsed_time_s if metrics else 0.0

    current_story: CurrentStoryAnswer | None = None
    if running and prd is not None:
        story = next_story(prd)
        if story is not None:
            since = _last_iteration_end(last_iteration, metrics) or started
            current_story = CurrentStoryAnswer(
                id=story.id,
                status="in_progress",
                elapsed_ms=int(max(now - since, 0.0) * 1000) if since is not None else 0,
                story_title=story.title,
            )
    elif not running and last_iteration is not None and last_iteration.story_id is not None:
        title = _story_title(prd, last_iteration)
        current_story = CurrentStoryAnswer(
            id=last_iteration.story_id,
            status=last_iteration.status,
            elapsed_ms=last_iteration.elapsed_ms,
            story_title=UNSET if title is None else title,
        )

    # Stories completed in this run: distinct stories with a successful iteration.
    done_here = len({i.story_id for i in iterations if i.succeeded and i.story_id})
    remaining_stories = max(total - completed, 0)
    estimated: int | None = None
    # Without a plan there is no "stories left" to estimate from, and a run
    # that ended (or stopped) is not going to finish anything: say nothing.
    if done_here and prd is not None and running:
        guess = elapsed / done_here * remaining_stories
        # An absurd duration on disk (1e308 s) must not overflow into a 500.
        estimated = int(round(guess)) if math.isfinite(guess) else None

    if summary is not None:
        cost = summary.total_cost
    else:
        cost = metrics.total_cost if metrics else 0.0

    last = snapshot.activity if snapshot.activity is not None else snapshot.root_mtime
    if last is not None:
        last = min(last, now)  # a file time in the future is not a promise of activity
    return ExecutionStatusAnswer(
        is_running=running,
        run_id=snapshot.current_run,
        current_story=current_story,
        progress_pct=progress,
        completed_stories=completed,
        total_stories=total,
        elapsed_time=int(round(elapsed)),
        estimated_remaining=estimated,
        cost_so_far=_round_money(cost),
        last_update=iso_utc_at(last if last is not None else now),
        state=liveness.state,
        quiet_for=None if liveness.quiet_for is None else int(liveness.quiet_for),
        last_activity=iso_utc(liveness.last_activity),
    )


def _last_iteration_end(last: Iteration | None, metrics: RunMetrics | None) -> float | None:
    if last is not None and last.ended_at is not None:
        return last.ended_at.timestamp()
    if metrics is not None and metrics.iterations and metrics.last_update is not None:
        # metrics.json is rewritten after each iteration: its update time is the end of the last.
        return metrics.last_update.timestamp()
    return None


def _story_title(prd: Prd | None, iteration: Iteration) -> str | None:
    title = iteration.extra.get("story_title")
    if isinstance(title, str):
        return title
    if prd is not None:
        for story in prd.stories:
            if story.id == iteration.story_id:
                return story.title
    return None

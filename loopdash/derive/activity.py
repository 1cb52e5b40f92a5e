"""The execution status of loop families that write no ``.claude-loop/runs/``.

The rules (docs/loop-families.md, "Running or not"): such a loop is running
while the newest modification among its plan, its log and, where the family
writes them, ``.status.json`` and ``metrics.jsonl`` is within the staleness
window, unless ``.status.json`` names a finished phase. The current story is
the one ``.status.json`` names, else the plan's next (an item the plan marks in
progress first); cost and tokens come from ``metrics.jsonl``; ``run_id`` is
the family's own run (``PRD-67``) or null. Pure: snapshot and clock in, JSON out.
"""

from __future__ import annotations

from msgspec import UNSET

from loopdash.contract.shapes import CurrentStoryAnswer, ExecutionStatusAnswer
from loopdash.derive.status import IDLE, STOPPED, Liveness, decide_liveness, iso_utc_at, next_story
from loopdash.loop.models import Prd
from loopdash.loop.project import ProjectSnapshot

#: ``.status.json`` phases that mean the loop has stopped.
FINISHED_PHASES = frozenset(
    {"complete", "completed", "done", "finished", "stopped", "idle", "exited", "failed"}
)


def activity_times(snapshot: ProjectSnapshot) -> list[float]:
    run = snapshot.family_run
    times = [snapshot.prd.mtime, snapshot.log.mtime]
    if run is not None:
        times += [run.status_mtime, run.metrics_mtime]
    return [t for t in times if t is not None]


def activity_status(snapshot: ProjectSnapshot, now: float, stale_after: float) -> ExecutionStatusAnswer:
    prd = snapshot.prd.value
    run = snapshot.family_run
    live = run.status if run is not None else None
    metrics = run.metrics if run is not None else None
    times = activity_times(snapshot)
    newest = max(times) if times else None
    phase = (live.phase or "").strip().lower() if live is not None else ""
    running = newest is not None and now - newest <= stale_after and phase not in FINISHED_PHASES

    total = len(prd.stories) if prd else 0
    completed = prd.completed if prd else 0
    current: CurrentStoryAnswer | None = None
    if running:
        # The end of the last iteration: when the log or the metrics last grew.
        ends = [t for t in (snapshot.log.mtime, run.metrics_mtime if run else None) if t is not None]
        since = max(ends) if ends else newest
        elapsed_ms = int(max(now - since, 0.0) * 1000) if since is not None else 0
        if live is not None and live.story_id:
            title = live.story_title or _title(prd, live.story_id)
            current = CurrentStoryAnswer(
                id=live.story_id, status="in_progress", elapsed_ms=elapsed_ms, story_title=title or UNSET
            )
        elif prd is not None:
            story = next_story(prd)
            if story is not None:
                current = CurrentStoryAnswer(
                    id=story.id, status="in_progress", elapsed_ms=elapsed_ms, story_title=story.title
                )
    last = newest if newest is not None else snapshot.root_mtime
    return ExecutionStatusAnswer(
        is_running=running,
        run_id=run.run_id if run is not None else None,
        current_story=current,
        progress_pct=round(completed * 100.0 / total, 1) if total else 0.0,
        completed_stories=completed,
        total_stories=total,
        # No run start is written by these families: elapsed time is not known.
        elapsed_time=0,
        estimated_remaining=None,
        cost_so_far=round(metrics.cost, 6) if metrics is not None else 0.0,
        last_update=iso_utc_at(last if last is not None else now),
        tokens_in=metrics.tokens_in if metrics is not None else UNSET,
        tokens_out=metrics.tokens_out if metrics is not None else UNSET,
    )


#: Of FINISHED_PHASES, those that mean the work is done (the others: the loop stopped).
DONE_PHASES = frozenset({"complete", "completed", "done", "finished"})


def activity_liveness(
    snapshot: ProjectSnapshot, now: float, stale_after: float, stall_after: float
) -> Liveness:
    """The state of such a loop (docs/liveness.md) from the same evidence as ``is_running``."""
    run = snapshot.family_run
    live = run.status if run is not None else None
    phase = (live.phase or "").strip().lower() if live is not None else ""
    times = activity_times(snapshot)
    if not times:
        return Liveness(IDLE, None, None)
    liveness = decide_liveness(
        started=None,
        evidence=times,
        finished=phase in DONE_PHASES,
        every_story_passes=False,
        now=now,
        stall_after=stall_after,
        stale_after=stale_after,
    )
    if phase in FINISHED_PHASES - DONE_PHASES:
        return Liveness(STOPPED, liveness.quiet_for, liveness.last_activity)
    return liveness


def _title(prd: Prd | None, story_id: str) -> str | None:
    for story in prd.stories if prd is not None else ():
        if story.id == story_id:
            return story.title
    return None

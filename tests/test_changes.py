"""The snapshot diff as a pure function: observation pairs in, change lists out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loopdash.derive.changes import (
    IterationAdded,
    LogAppended,
    Observation,
    RunFinished,
    RunStarted,
    StatusChanged,
    StoriesReset,
    StoryUpdated,
    diff,
    status_signature,
)
from loopdash.loop.models import Iteration, Story
from loopdash.loop.progress import LogState


def story(story_id: str, passes: bool = False, notes: str = "") -> Story:
    return Story(story_id, f"title {story_id}", "", 1.0, passes, notes, "medium", ())


def iteration(story_id: str) -> Iteration:
    return Iteration(story_id, "success", 1000, 10, 5, 0.01, ())


STATUS: dict[str, Any] = {
    "is_running": True,
    "run_id": "20260124_102000",
    "current_story": {"id": "US-001", "status": "in_progress", "elapsed_ms": 1000},
    "progress_pct": 0.0,
    "completed_stories": 0,
    "total_stories": 2,
    "elapsed_time": 60,
    "estimated_remaining": None,
    "cost_so_far": 0.0,
    "last_update": "2026-01-24T10:21:00Z",
}

BASE = Observation(
    status=STATUS,
    stories=(story("US-001"), story("US-002")),
    run_ids=("20260124_102000",),
    current_run="20260124_102000",
    current_finished=False,
    iterations=(),
    log=LogState(inode=7, size=100, total=1, mtime=1.0),
)


def test_identical_observations_give_no_change() -> None:
    assert diff(BASE, BASE) == []


def test_only_the_clock_moving_is_not_a_status_change() -> None:
    later = dict(STATUS, elapsed_time=75, estimated_remaining=900)
    later["current_story"] = dict(STATUS["current_story"], elapsed_ms=16000)
    assert diff(BASE, replace(BASE, status=later)) == []
    assert status_signature(later) == status_signature(STATUS)


def test_a_real_status_change_is_reported_with_the_new_status() -> None:
    changed = dict(STATUS, cost_so_far=0.5)
    assert diff(BASE, replace(BASE, status=changed)) == [StatusChanged(changed)]


def test_a_story_that_passes_or_gets_notes_is_updated_others_are_not() -> None:
    new = replace(BASE, stories=(story("US-001", passes=True), story("US-002", notes="wip")))
    assert diff(BASE, new) == [
        StoryUpdated(story("US-001", passes=True)),
        StoryUpdated(story("US-002", notes="wip")),
    ]


def test_a_story_added_to_the_plan_is_reported() -> None:
    new = replace(BASE, stories=BASE.stories + (story("US-003"),))
    assert diff(BASE, new) == [StoryUpdated(story("US-003"))]


def test_any_edit_of_a_story_is_reported_not_only_passes_and_notes() -> None:
    # A story's title, dependencies or criteria edited in place were never sent: an open
    # page kept calling a story blocked on a dependency the plan no longer had.
    edited = (
        replace(story("US-001"), dependencies=("US-999",)),
        replace(story("US-002"), title="A better title", acceptance_criteria=("works",)),
    )
    assert diff(BASE, replace(BASE, stories=edited)) == [StoryUpdated(s) for s in edited]


def test_stories_removed_or_reordered_reset_the_list() -> None:
    # Per-story events cannot say a story is gone or moved: the list is sent as a reset.
    removed = replace(BASE, stories=(story("US-002"),))
    assert diff(BASE, removed) == [StoriesReset(changed=2, total=1, completed=0)]  # gone, moved
    swapped = replace(BASE, stories=(story("US-002"), story("US-001", passes=True)))
    assert diff(BASE, swapped) == [StoriesReset(changed=2, total=2, completed=1)]
    inserted = replace(BASE, stories=(story("US-001"), story("US-000"), story("US-002")))
    assert diff(BASE, inserted) == [StoriesReset(changed=2, total=3, completed=0)]  # new, moved


def test_new_iterations_of_the_current_run_are_added_in_order() -> None:
    one = replace(BASE, iterations=(iteration("US-001"),))
    three = replace(BASE, iterations=(iteration("US-001"), iteration("US-002"), iteration("US-002")))
    assert diff(one, three) == [
        IterationAdded("20260124_102000", iteration("US-002")),
        IterationAdded("20260124_102000", iteration("US-002")),
    ]


def test_a_new_run_is_started_and_its_iterations_count_from_zero() -> None:
    new = replace(
        BASE,
        run_ids=BASE.run_ids + ("20260124_120000",),
        current_run="20260124_120000",
        iterations=(iteration("US-002"),),
    )
    old = replace(BASE, iterations=(iteration("US-001"), iteration("US-001")))
    assert diff(old, new) == [
        RunStarted("20260124_120000"),
        IterationAdded("20260124_120000", iteration("US-002")),
    ]


def test_a_summary_appearing_finishes_the_run_once() -> None:
    finished = replace(BASE, current_finished=True)
    assert diff(BASE, finished) == [RunFinished("20260124_102000")]
    assert diff(finished, finished) == []


def test_log_entries_appended_start_at_the_old_total() -> None:
    grown = replace(BASE, log=LogState(inode=7, size=300, total=3, mtime=2.0))
    assert diff(BASE, grown) == [LogAppended(1)]


def test_the_last_log_entry_growing_is_sent_again() -> None:
    grown = replace(BASE, log=LogState(inode=7, size=180, total=1, mtime=2.0))
    assert diff(BASE, grown) == [LogAppended(0)]


def test_a_replaced_or_truncated_log_is_sent_from_the_start() -> None:
    replaced = replace(BASE, log=LogState(inode=8, size=400, total=2, mtime=2.0))
    truncated = replace(BASE, log=LogState(inode=7, size=50, total=1, mtime=2.0))
    assert diff(BASE, replaced) == [LogAppended(0)]
    assert diff(BASE, truncated) == [LogAppended(0)]


def test_an_emptied_log_sends_nothing() -> None:
    empty = replace(BASE, log=LogState(inode=7, size=0, total=0, mtime=2.0))
    assert diff(BASE, empty) == []


def test_changes_come_in_the_order_a_client_applies_them() -> None:
    new = replace(
        BASE,
        status=dict(STATUS, completed_stories=1),
        stories=(story("US-001", passes=True), story("US-002")),
        iterations=(iteration("US-001"),),
        log=LogState(inode=7, size=300, total=2, mtime=2.0),
        current_finished=True,
    )
    kinds = [type(c).__name__ for c in diff(BASE, new)]
    assert kinds == ["IterationAdded", "StoryUpdated", "LogAppended", "RunFinished", "StatusChanged"]

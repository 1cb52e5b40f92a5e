"""The notification rules: each fires once per occurrence, clears, and fires again.

Pure functions driven by hand-made facts: the "clock" is the ``quiet_for``
and ``time`` each observation carries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from loopdash.derive.notify import (
    DEFAULT_KINDS,
    KINDS,
    Facts,
    Notification,
    RuleConfig,
    RuleState,
    evaluate,
    facts_from,
    failure_streak,
    run_state,
)
from loopdash.loop.models import Iteration, Story


def iteration(status: str, story: str = "US-001") -> Iteration:
    return Iteration(story, status, 1000, 10, 20, 0.5, ())


def story(story_id: str, passes: bool) -> Story:
    return Story(story_id, f"Title of {story_id}", "", 1, passes, "", None, ())


def facts(**changes: Any) -> Facts:
    base = Facts(
        project="demo",
        run_id="20261202_100000",
        state="running",
        quiet_for=10.0,
        cost=1.0,
        story=("US-002", "Second story"),
        iterations=(),
        stories=(story("US-001", True), story("US-002", False)),
    )
    return replace(base, **changes)


class Rules:
    """Feeds observations one by one, as the watcher does, and keeps what fired."""

    def __init__(self, config: RuleConfig | None = None, first: Facts | None = None) -> None:
        self.config = config or RuleConfig()
        self.state = RuleState()
        self.step = 0
        self.fired: list[Notification] = []
        self.see(first or facts())  # the baseline

    def see(self, observed: Facts) -> list[str]:
        self.step += 1
        self.state, fired = evaluate(self.state, observed, self.config, f"2026-12-02T10:00:{self.step:02d}Z")
        self.fired.extend(fired)
        return [n.kind for n in fired]


def test_the_first_observation_is_a_baseline_even_when_the_run_has_finished() -> None:
    rules = Rules(first=facts(state="finished"))
    assert rules.fired == []
    assert rules.see(facts(state="finished")) == []


def test_run_finished_fires_once_and_carries_project_run_story_and_cost() -> None:
    rules = Rules()
    assert rules.see(facts(state="finished", cost=4.25)) == ["run_finished"]
    assert rules.see(facts(state="finished", cost=4.25)) == []
    note = rules.fired[0]
    assert (note.project, note.run_id, note.story_id, note.story_title, note.cost) == (
        "demo",
        "20261202_100000",
        "US-002",
        "Second story",
        4.25,
    )
    assert note.severity == "success"
    assert note.title == "demo: run finished"
    assert note.message == "Run 20261202_100000 finished at $4.25."
    assert note.time == "2026-12-02T10:00:02Z"


def test_a_new_run_that_finishes_fires_again() -> None:
    rules = Rules()
    assert rules.see(facts(state="finished")) == ["run_finished"]
    assert rules.see(facts(run_id="20261202_120000", state="running")) == []
    assert rules.see(facts(run_id="20261202_120000", state="finished")) == ["run_finished"]


def test_stalled_fires_once_clears_when_the_loop_moves_and_fires_again() -> None:
    rules = Rules()
    assert rules.see(facts(state="stalled", quiet_for=420.0)) == ["run_stalled"]
    assert rules.fired[-1].message == "No activity for 7 min on US-002 (Second story) in run 20261202_100000."
    assert rules.see(facts(state="stalled", quiet_for=480.0)) == []
    assert rules.see(facts(state="running", quiet_for=1.0)) == []
    assert rules.see(facts(state="stalled", quiet_for=300.0)) == ["run_stalled"]


def test_stopped_without_finishing_fires_once() -> None:
    rules = Rules()
    assert rules.see(facts(state="stalled", quiet_for=400.0)) == ["run_stalled"]
    assert rules.see(facts(state="stopped", quiet_for=700.0)) == ["run_stopped"]
    assert rules.fired[-1].severity == "warning"
    assert rules.see(facts(state="stopped", quiet_for=900.0)) == []


def test_each_failed_iteration_fires_and_a_streak_fires_once_at_its_length() -> None:
    rules = Rules()
    one = (iteration("failure"),)
    assert rules.see(facts(iterations=one)) == ["iteration_failed"]
    two = one + (iteration("failure"),)
    assert rules.see(facts(iterations=two)) == ["iteration_failed"]
    three = two + (iteration("failure", "US-003"),)
    assert rules.see(facts(iterations=three)) == ["failure_streak", "iteration_failed"]
    assert rules.fired[-2].title == "demo: 3 failed iterations in a row"
    assert rules.fired[-1].story_id == "US-003"
    four = three + (iteration("failure"),)
    assert rules.see(facts(iterations=four)) == ["iteration_failed"]  # the streak is still the same one
    healed = four + (iteration("success"),)
    assert rules.see(facts(iterations=healed)) == []
    again = healed + tuple(iteration("failure") for _ in range(3))
    assert rules.see(facts(iterations=again)) == [
        "failure_streak",
        "iteration_failed",
        "iteration_failed",
        "iteration_failed",
    ]


def test_the_streak_length_is_configurable() -> None:
    rules = Rules(RuleConfig(failure_streak=2))
    assert rules.see(facts(iterations=(iteration("failure"), iteration("failure")))) == [
        "failure_streak",
        "iteration_failed",
        "iteration_failed",
    ]


def test_iterations_of_a_new_run_are_counted_from_its_start() -> None:
    rules = Rules(first=facts(iterations=(iteration("success"), iteration("success"))))
    assert rules.see(facts(run_id="20261202_130000", iterations=(iteration("failure"),))) == [
        "iteration_failed"
    ]


def test_story_completed_is_off_by_default_and_fires_per_story_when_on() -> None:
    assert "story_completed" not in DEFAULT_KINDS
    assert Rules().see(facts(stories=(story("US-001", True), story("US-002", True)))) == []
    rules = Rules(RuleConfig(kinds=frozenset(KINDS)))
    assert rules.see(facts(stories=(story("US-001", True), story("US-002", True)))) == ["story_completed"]
    assert (rules.fired[-1].story_id, rules.fired[-1].message) == (
        "US-002",
        "US-002 (Title of US-002) passes.",
    )
    assert rules.see(facts(stories=(story("US-001", True), story("US-002", True)))) == []


def test_budget_warning_at_80_percent_then_exceeded_each_once() -> None:
    rules = Rules(RuleConfig(budget_usd=10.0))
    assert rules.see(facts(cost=7.99)) == []
    assert rules.see(facts(cost=8.0)) == ["budget_warning"]
    assert rules.fired[-1].message == "Run 20261202_100000 has cost $8.00 of its $10.00 budget."
    assert rules.see(facts(cost=9.5)) == []
    assert rules.see(facts(cost=10.0)) == ["budget_exceeded"]
    assert rules.fired[-1].severity == "failure"
    assert rules.see(facts(cost=12.0)) == []


def test_a_jump_past_the_budget_fires_the_warning_then_the_excess() -> None:
    rules = Rules(RuleConfig(budget_usd=10.0))
    assert rules.see(facts(cost=15.0)) == ["budget_warning", "budget_exceeded"]


def test_a_new_run_starts_its_budget_afresh() -> None:
    rules = Rules(RuleConfig(budget_usd=10.0), first=facts(cost=11.0))
    assert rules.see(facts(cost=11.0)) == []
    assert rules.see(facts(run_id="20261202_140000", cost=0.5)) == []
    assert rules.see(facts(run_id="20261202_140000", cost=10.5)) == ["budget_warning", "budget_exceeded"]


def test_no_budget_means_no_budget_rules() -> None:
    assert Rules().see(facts(cost=1e9)) == []


def test_a_kind_turned_off_never_fires() -> None:
    rules = Rules(RuleConfig(kinds=DEFAULT_KINDS - {"run_finished"}))
    assert rules.see(facts(state="finished")) == []


def test_failure_streak_counts_only_the_tail() -> None:
    assert failure_streak([iteration("failure"), iteration("success"), iteration("failure")]) == 1
    assert failure_streak([]) == 0
    assert failure_streak([iteration("failure")] * 4) == 4


def test_run_state_takes_a_status_state_at_its_word() -> None:
    assert run_state({"state": "stalled", "run_id": "x", "is_running": False}, 0.0, 300.0, False) == "stalled"


def test_run_state_without_a_state_field_derives_one() -> None:
    status = {"run_id": "r", "is_running": True, "last_update": "2027-01-15T08:00:00Z"}
    stamp = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
    assert run_state(status, stamp + 299, 300.0, False) == "running"
    assert run_state(status, stamp + 300, 300.0, False) == "stalled"
    assert run_state({**status, "is_running": False}, stamp + 700, 300.0, False) == "stopped"
    assert run_state({**status, "is_running": False}, stamp + 700, 300.0, True) == "finished"
    assert run_state({"run_id": None, "is_running": False}, stamp, 300.0, False) == "idle"


def test_facts_from_a_status_read_the_story_and_the_cost() -> None:
    status = {
        "run_id": "20261202_100000",
        "is_running": True,
        "current_story": {"id": "US-004", "title": "Fourth", "status": "in_progress", "elapsed_ms": 1},
        "cost_so_far": 3.5,
        "last_update": "2026-12-02T10:00:00Z",
    }
    made = facts_from(status, (story("US-004", False),), (), False, "demo", 0.0, 300.0)
    assert (made.story, made.cost, made.run_id, made.project) == (
        ("US-004", "Fourth"),
        3.5,
        "20261202_100000",
        "demo",
    )
    finished = facts_from(status, (story("US-004", True),), (), False, "demo", 0.0, 300.0)
    assert finished.state == "finished"

"""Notification rules: which moments of a loop are worth telling someone about.

A pure function over successive observations. :func:`evaluate` takes the rule
state left by the previous observation, the :class:`Facts` of the new one and
the :class:`RuleConfig`, and returns the new state with the notifications to
send. Conditions (a run finished, stopped, stalled; a failure streak; a budget
passed) fire once when they become true and again only after they have been
false in between; events (a failed iteration, a completed story) fire once
each. The first observation of a daemon is the baseline: what is already true
then fires nothing, so a restart does not repeat yesterday's news.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter
from typing import Any

from loopdash.derive.status import DEFAULT_STALL_AFTER as DEFAULT_STALL_AFTER  # one source, re-exported
from loopdash.loop.models import Iteration, Story

#: Every kind of notification, in the order the settings list them.
KINDS = (
    "run_finished",
    "run_stopped",
    "run_stalled",
    "iteration_failed",
    "failure_streak",
    "story_completed",
    "budget_warning",
    "budget_exceeded",
)
#: On unless the user says otherwise: a completed story is routine news.
DEFAULT_KINDS = frozenset(KINDS) - {"story_completed"}
SEVERITY = {
    "run_finished": "success",
    "run_stopped": "warning",
    "run_stalled": "warning",
    "iteration_failed": "warning",
    "failure_streak": "failure",
    "story_completed": "info",
    "budget_warning": "warning",
    "budget_exceeded": "failure",
}
#: Failed iterations in a row that make a streak (``--failure-streak``).
DEFAULT_FAILURE_STREAK = 3
#: The share of the budget at which the warning fires.
BUDGET_WARNING_RATIO = 0.8

RUN_STATES = ("running", "stalled", "finished", "stopped", "idle")


@dataclass(frozen=True)
class RuleConfig:
    """Which kinds fire, and their thresholds."""

    kinds: frozenset[str] = DEFAULT_KINDS
    failure_streak: int = DEFAULT_FAILURE_STREAK
    #: The run's budget in USD; None: no budget rules.
    budget_usd: float | None = None


@dataclass(frozen=True)
class Facts:
    """What the rules look at in one observation of a project."""

    project: str | None
    run_id: str | None
    #: One of :data:`RUN_STATES`.
    state: str
    #: Seconds since the last activity, or None when nothing ever happened.
    quiet_for: float | None
    cost: float
    #: The story being worked on (or last worked on), as ``(id, title)``.
    story: tuple[str, str | None] | None
    iterations: tuple[Iteration, ...]
    stories: tuple[Story, ...]


@dataclass(frozen=True)
class Notification:
    """One thing worth telling; ``time`` is ISO-8601 UTC."""

    kind: str
    severity: str
    title: str
    message: str
    project: str | None
    run_id: str | None
    story_id: str | None
    story_title: str | None
    cost: float
    time: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "project": self.project,
            "run_id": self.run_id,
            "story_id": self.story_id,
            "story_title": self.story_title,
            "cost": self.cost,
            "time": self.time,
        }


@dataclass(frozen=True)
class RuleState:
    """What the rules remember between observations."""

    #: False until the baseline observation has been taken.
    started: bool = False
    #: Conditions that are true and have fired (or were true at the baseline).
    active: frozenset[str] = frozenset()
    #: The run whose iterations have been looked at, and how many.
    run_id: str | None = None
    iterations_seen: int = 0
    passing: frozenset[str] = field(default_factory=frozenset)
    #: The plan ``passing`` was taken from: the same tuple again (no new plan
    #: parsed) has nothing new passing, and 100,000 stories are not looked at
    #: again on every poll.
    stories: tuple[Story, ...] = field(default=(), compare=False, repr=False)


def run_state(status: Mapping[str, Any], now: float, stall_after: float, finished: bool) -> str:
    """The run's state from an execution status.

    A status that carries ``state`` (the liveness rules of docs/liveness.md)
    is taken at its word. Otherwise: finished when ``finished`` (the run has a
    summary, or every story passes), running or stalled (quiet ``stall_after`` seconds or
    more) while ``is_running``, stopped when a run exists but is neither,
    idle when there is no run.
    """
    state = status.get("state")
    if isinstance(state, str) and state in RUN_STATES:
        return state
    if status.get("run_id") is None:
        return "idle"
    if finished:
        return "finished"
    quiet = quiet_seconds(status, now)
    if status.get("is_running"):
        return "stalled" if quiet is not None and quiet >= stall_after else "running"
    return "stopped"


def quiet_seconds(status: Mapping[str, Any], now: float) -> float | None:
    """``quiet_for`` when the status carries it, else now minus ``last_update``."""
    quiet = status.get("quiet_for")
    if isinstance(quiet, int | float):
        return float(quiet)
    last = status.get("last_update")
    if not isinstance(last, str):
        return None
    try:
        moment = datetime.fromisoformat(last.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(now - moment.timestamp(), 0.0)


def failure_streak(iterations: Sequence[Iteration]) -> int:
    """Failed iterations at the end of the run, in a row."""
    streak = 0
    for iteration in reversed(iterations):
        if not iteration.failed:
            break
        streak += 1
    return streak


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _story_words(facts: Facts) -> str:
    if facts.story is None:
        return ""
    story_id, title = facts.story
    return f" on {story_id}" + (f" ({title})" if title else "")


def evaluate(
    state: RuleState, facts: Facts, config: RuleConfig, time: str
) -> tuple[RuleState, list[Notification]]:
    """The new rule state and the notifications ``facts`` call for, in firing order."""
    run = facts.run_id
    name = facts.project or "the loop"
    out: list[Notification] = []

    def note(kind: str, title: str, message: str, story: tuple[str, str | None] | None = None) -> None:
        if kind not in config.kinds:
            return
        chosen = story if story is not None else facts.story
        out.append(
            Notification(
                kind=kind,
                severity=SEVERITY[kind],
                title=title,
                message=message,
                project=facts.project,
                run_id=run,
                story_id=chosen[0] if chosen else None,
                story_title=chosen[1] if chosen else None,
                cost=facts.cost,
                time=time,
            )
        )

    # Conditions: key -> (kind, title, message), for those true now.
    conditions: dict[str, tuple[str, str, str]] = {}
    if run is not None:
        if facts.state == "finished":
            conditions[f"finished:{run}"] = (
                "run_finished",
                f"{name}: run finished",
                f"Run {run} finished at {_money(facts.cost)}.",
            )
        elif facts.state == "stopped":
            conditions[f"stopped:{run}"] = (
                "run_stopped",
                f"{name}: run stopped without finishing",
                f"Run {run} went quiet{_story_words(facts)} and has not finished ({_money(facts.cost)} spent).",
            )
        elif facts.state == "stalled":
            minutes = int((facts.quiet_for or 0) // 60)
            conditions[f"stalled:{run}"] = (
                "run_stalled",
                f"{name}: run stalled",
                f"No activity for {minutes} min{_story_words(facts)} in run {run}.",
            )
        streak = failure_streak(facts.iterations)
        if streak >= config.failure_streak:
            conditions[f"streak:{run}"] = (
                "failure_streak",
                f"{name}: {streak} failed iterations in a row",
                f"The last {streak} iterations of run {run} failed{_story_words(facts)}.",
            )
        budget = config.budget_usd
        if budget is not None and budget > 0:
            if facts.cost >= budget:
                conditions[f"budget100:{run}"] = (
                    "budget_exceeded",
                    f"{name}: budget passed",
                    f"Run {run} has cost {_money(facts.cost)}, past its budget of {_money(budget)}.",
                )
            if facts.cost >= budget * BUDGET_WARNING_RATIO:
                conditions[f"budget80:{run}"] = (
                    "budget_warning",
                    f"{name}: 80% of the budget spent",
                    f"Run {run} has cost {_money(facts.cost)} of its {_money(budget)} budget.",
                )

    # Which stories pass matters only to story_completed (off by default), and a
    # plan already looked at has nothing new passing: 100,000 stories are not
    # gone through again on every poll.
    same_plan = state.started and facts.stories is state.stories
    if same_plan or "story_completed" not in config.kinds:
        passing = state.passing
    else:
        passing = frozenset(s.id for s in facts.stories if s.passes)
    same_run = run == state.run_id
    seen = state.iterations_seen if same_run else 0
    if not state.started:
        # The baseline: remember what is true, say nothing.
        return RuleState(True, frozenset(conditions), run, len(facts.iterations), passing, facts.stories), []

    # Warnings before the condition they lead to, then events in time order.
    order = {"budget_warning": 0, "budget_exceeded": 1}
    for key, (kind, title, message) in sorted(conditions.items(), key=lambda item: order.get(item[1][0], 2)):
        if key not in state.active:
            note(kind, title, message)

    if seen > len(facts.iterations):
        seen = 0  # the run's metrics were rewritten shorter: look at them afresh
    for iteration in facts.iterations[seen:]:
        if iteration.failed:
            failed_on = (iteration.story_id, None) if iteration.story_id else None
            note(
                "iteration_failed",
                f"{name}: an iteration failed",
                f"An iteration of run {run}"
                + (f" on {iteration.story_id}" if iteration.story_id else "")
                + " failed.",
                failed_on,
            )
    for done in () if passing is state.passing else facts.stories:
        if done.passes and done.id not in state.passing:
            note(
                "story_completed",
                f"{name}: {done.id} completed",
                f"{done.id} ({done.title}) passes." if done.title else f"{done.id} passes.",
                (done.id, done.title or None),
            )
    new_state = replace(
        state,
        active=frozenset(conditions),
        run_id=run,
        iterations_seen=len(facts.iterations),
        passing=passing,
        stories=facts.stories,
    )
    return new_state, out


_passes = attrgetter("passes")


def facts_from(
    status: Mapping[str, Any],
    stories: Sequence[Story],
    iterations: Sequence[Iteration],
    has_summary: bool,
    project: str | None,
    now: float,
    stall_after: float,
) -> Facts:
    """The facts of one observation: its execution status, plan and current run."""
    total, completed = status.get("total_stories"), status.get("completed_stories")
    if isinstance(total, int) and isinstance(completed, int) and total == len(stories):
        every_story_passes = total > 0 and completed == total  # counted once per plan, not per poll
    else:
        every_story_passes = bool(stories) and all(map(_passes, stories))
    finished = has_summary or every_story_passes
    current = status.get("current_story")
    story: tuple[str, str | None] | None = None
    if isinstance(current, Mapping) and isinstance(current.get("id"), str):
        title = current.get("title")
        story = (current["id"], title if isinstance(title, str) else None)
    cost = status.get("cost_so_far")
    return Facts(
        project=project,
        run_id=status.get("run_id") if isinstance(status.get("run_id"), str) else None,
        state=run_state(status, now, stall_after, finished),
        quiet_for=quiet_seconds(status, now),
        cost=float(cost) if isinstance(cost, int | float) else 0.0,
        story=story,
        iterations=tuple(iterations),
        stories=tuple(stories),
    )

"""The run files of loop families that write no ``.claude-loop/runs/``.

ralph-cli keeps, per plan folder ``.ralph/PRD-N/``, a live ``.status.json``
(``{"phase", "story_id", "story_title", "iteration", "elapsed_seconds",
"updated_at"}``, rewritten as it works) and ``runs/metrics.jsonl`` (one JSON
object per iteration). Parsers are pure: bytes in, a value or ParseError out.
A metrics line that does not parse (real files hold lines with one ``}`` too
many) is counted and skipped, not allowed to hide the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loopdash.loop.parsing import ParseError, integer, load_json_object, number, parse_time, text


@dataclass(frozen=True)
class LiveStatus:
    """What ``.status.json`` says the loop is doing."""

    story_id: str | None
    story_title: str | None
    phase: str | None
    iteration: int | None
    updated_at: datetime | None


@dataclass(frozen=True)
class JsonlTotals:
    """The sums of a ``metrics.jsonl``."""

    iterations: int
    tokens_in: int
    tokens_out: int
    cost: float
    last_story: str | None
    bad_lines: int


@dataclass(frozen=True)
class FamilyRun:
    """A family's own run: its id, its files' times and what they say."""

    run_id: str | None
    status_mtime: float | None
    metrics_mtime: float | None
    status: LiveStatus | None
    metrics: JsonlTotals | None


def parse_status_file(data: bytes) -> LiveStatus:
    obj = load_json_object(data)
    return LiveStatus(
        story_id=text(obj.get("story_id")) or text(obj.get("current_story")),
        story_title=text(obj.get("story_title")),
        phase=text(obj.get("phase")) or text(obj.get("status")),
        iteration=integer(obj.get("iteration")),
        updated_at=parse_time(obj.get("updated_at")),
    )


def _first_number(obj: dict[str, object], *keys: str) -> float:
    for key in keys:
        value = number(obj.get(key))
        if value is not None:
            return max(value, 0.0)
    return 0.0


def parse_metrics_jsonl(data: bytes) -> JsonlTotals:
    iterations = tokens_in = tokens_out = bad = 0
    cost = 0.0
    story: str | None = None
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            obj = load_json_object(raw)
        except ParseError:
            bad += 1
            continue
        iterations += 1
        tokens_in += int(_first_number(obj, "tokens_in", "input_tokens", "inputTokens"))
        tokens_out += int(_first_number(obj, "tokens_out", "output_tokens", "outputTokens"))
        cost += _first_number(obj, "cost", "cost_usd", "costUsd", "total_cost")
        story = text(obj.get("story_id")) or text(obj.get("story")) or story
    if iterations == 0 and bad:
        raise ParseError(f"no line of {bad} is a JSON object")
    if cost != cost or cost == float("inf"):
        raise ParseError("costs add up past the range of a float")
    return JsonlTotals(iterations, tokens_in, tokens_out, cost, story, bad)

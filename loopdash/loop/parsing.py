"""Pure parsers: the bytes of a loop's files in, immutable models out.

Nothing here touches the disk or the reactor. A parser either returns a model
or raises :class:`ParseError`; it never raises anything else, whatever the
bytes (half-written JSON, wrong types, NaN, deep nesting, non-UTF-8). Values of
the wrong type inside a well-formed file fall back to the documented defaults
rather than failing the whole file: a loop that writes ``"priority": "high"``
should not hide every other story.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from loopdash.loop.models import (
    Iteration,
    JSONObject,
    LogEntry,
    Prd,
    RunMetrics,
    RunSummary,
    Story,
)

LOG_HEADER = "### Iteration:"
LOG_HEADER_BYTES = LOG_HEADER.encode()

SUCCESS_WORDS = frozenset({"complete", "completed", "success", "passed", "done"})
FAILURE_WORDS = frozenset({"failed", "failure", "error", "blocked", "timeout"})

# Keys of an on-disk iteration that map onto the contract's Iteration fields;
# every other key is passed through as an extra.
_ITERATION_CORE_KEYS = frozenset(
    {
        "story_id",
        "status",
        "elapsed_ms",
        "duration_ms",
        "tokens_in",
        "tokens_out",
        "cost",
        "cost_usd",
        "agents_used",
    }
)


class ParseError(ValueError):
    """The bytes are not (yet) a readable file of the expected kind."""


def _reject_constant(name: str) -> Any:
    raise ParseError(f"non-finite number {name} in JSON")


def _finite_float(literal: str) -> float:
    # json reads 1e400 as inf without asking parse_constant: refuse it here.
    value = float(literal)
    if not math.isfinite(value):
        raise ParseError(f"number out of range in JSON: {literal[:40]}")
    return value


def load_json_object(data: bytes) -> JSONObject:
    """Decode a JSON object, raising ParseError for anything else."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"not UTF-8: {e.reason} at byte {e.start}") from None
    if not text.strip():
        raise ParseError("empty file")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise ParseError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        # An integer literal past Python's digit limit for int().
        raise ParseError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ParseError(f"expected a JSON object, got {type(value).__name__}")
    return value


# -- typed accessors: wrong types become None, never an exception -----------


def number(value: object) -> float | None:
    """A finite int or float (bools are not numbers here), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return float(value)
    except OverflowError:
        return None  # an integer literal too large for a float


def integer(value: object) -> int | None:
    n = number(value)
    if n is None or abs(n) > 2**53:
        return None
    return int(n)


def text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def string_list(value: object) -> tuple[str, ...]:
    """A list of strings; a comma-separated string also counts (real loops write both)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(s for s in (text(v) for v in value) if s is not None)
    return ()


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    raw = value.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # Year 1 at +01:00 or year 9999 at -01:00 leaves datetime's range in UTC.
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def normalise_status(value: object) -> str:
    """Map the loop's many status words onto the contract's success/failure."""
    word = text(value)
    if word is None:
        return "unknown"
    lowered = word.strip().lower()
    if lowered in SUCCESS_WORDS:
        return "success"
    if lowered in FAILURE_WORDS:
        return "failure"
    return word


# -- prd.json ----------------------------------------------------------------


def parse_prd(data: bytes) -> Prd:
    obj = load_json_object(data)
    raw_stories = obj.get("userStories")
    stories = []
    for raw in raw_stories if isinstance(raw_stories, list) else ():
        story = _parse_story(raw)
        if story is not None:
            stories.append(story)
    return Prd(project=text(obj.get("project")), stories=tuple(stories))


def _parse_story(raw: object) -> Story | None:
    if not isinstance(raw, dict):
        return None
    story_id = text(raw.get("id"))
    if not story_id:
        return None
    priority_raw = raw.get("priority")
    priority = number(priority_raw)
    complexity = raw.get("estimatedComplexity")
    return Story(
        id=story_id,
        title=text(raw.get("title")) or "",
        description=text(raw.get("description")) or "",
        priority=priority,
        priority_raw=(int(priority) if priority is not None and isinstance(priority_raw, int) else priority),
        passes=raw.get("passes") is True,
        notes=text(raw.get("notes")) or "",
        complexity=text(complexity) if complexity is not None else None,
        dependencies=string_list(raw.get("dependencies")),
        acceptance_criteria=string_list_strict(raw.get("acceptanceCriteria")),
    )


def string_list_strict(value: object) -> tuple[str, ...]:
    """A list of strings; unlike string_list, a lone string is one item."""
    if isinstance(value, str):
        return (value,)
    return string_list(value) if isinstance(value, list) else ()


# -- metrics.json ------------------------------------------------------------


def parse_iteration(raw: Mapping[str, Any]) -> Iteration:
    """One iteration from either shape (``cost``/``cost_usd``, ``elapsed_ms``/``duration_ms``)."""
    elapsed = integer(raw.get("elapsed_ms"))
    if elapsed is None:
        elapsed = integer(raw.get("duration_ms"))
    cost = number(raw.get("cost"))
    if cost is None:
        cost = number(raw.get("cost_usd"))
    extra = {k: v for k, v in raw.items() if k not in _ITERATION_CORE_KEYS}
    return Iteration(
        story_id=text(raw.get("story_id")),
        status=normalise_status(raw.get("status")),
        elapsed_ms=max(elapsed or 0, 0),
        tokens_in=max(integer(raw.get("tokens_in")) or 0, 0),
        tokens_out=max(integer(raw.get("tokens_out")) or 0, 0),
        cost=cost or 0.0,
        agents_used=string_list(raw.get("agents_used")),
        ended_at=parse_time(raw.get("timestamp")),
        extra=extra,
    )


def _iterations(value: object) -> tuple[Iteration, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(parse_iteration(item) for item in value if isinstance(item, dict))


def _blocks(obj: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: obj[name] for name in names if isinstance(obj.get(name), dict)}


def _cost_sum(iterations: Iterable[Iteration]) -> float:
    total = sum(i.cost for i in iterations)
    if not math.isfinite(total):
        # Each cost is finite, but their sum left the float range: no truthful total.
        raise ParseError("iteration costs add up past the range of a float")
    return total


def parse_metrics(data: bytes) -> RunMetrics:
    obj = load_json_object(data)
    iterations = _iterations(obj.get("iterations"))
    successes = sum(1 for i in iterations if i.succeeded)
    failures = sum(1 for i in iterations if i.failed)
    started_at = parse_time(obj.get("started_at"))
    blocks = _blocks(obj, ("cache", "parallel", "model_usage", "pricing", "totals"))

    if "totals" in obj or "session_id" in obj or "updated_at" in obj:
        # The shape real claude-loop writes.
        totals = mapping(obj.get("totals"))
        updated_at = parse_time(obj.get("updated_at"))
        total_cost = number(totals.get("cost_usd"))
        if total_cost is None:
            total_cost = _cost_sum(iterations)
        wall_ms = number(totals.get("wall_duration_ms"))
        if wall_ms is not None:
            elapsed = wall_ms / 1000
        elif updated_at is not None and started_at is not None:
            elapsed = max((updated_at - started_at).total_seconds(), 0.0)
        else:
            elapsed = sum(i.elapsed_ms for i in iterations) / 1000
        total_iterations = integer(totals.get("iterations"))
        return RunMetrics(
            elapsed_time_s=elapsed,
            total_cost=total_cost,
            total_iterations=len(iterations) if total_iterations is None else total_iterations,
            success_count=successes,
            failure_count=failures,
            last_update=updated_at,
            started_at=started_at,
            iterations=iterations,
            blocks=blocks,
        )

    # The flat shape of the API document: its own totals win where present.
    total_cost = number(obj.get("total_cost"))
    elapsed_s = number(obj.get("elapsed_time_s"))
    total_iterations = integer(obj.get("total_iterations"))
    success_count = integer(obj.get("success_count"))
    failure_count = integer(obj.get("failure_count"))
    return RunMetrics(
        elapsed_time_s=(elapsed_s if elapsed_s is not None else sum(i.elapsed_ms for i in iterations) / 1000),
        total_cost=total_cost if total_cost is not None else _cost_sum(iterations),
        total_iterations=len(iterations) if total_iterations is None else total_iterations,
        success_count=successes if success_count is None else success_count,
        failure_count=failures if failure_count is None else failure_count,
        last_update=parse_time(obj.get("last_update")),
        started_at=started_at,
        iterations=iterations,
        blocks=blocks,
    )


# -- summary.json ------------------------------------------------------------


def parse_summary(data: bytes) -> RunSummary:
    obj = load_json_object(data)
    blocks = _blocks(obj, ("stories", "tokens", "cost", "duration", "model_usage", "cache", "parallel"))
    if isinstance(obj.get("stories"), dict) or isinstance(obj.get("cost"), dict):
        stories = mapping(obj.get("stories"))
        cost = mapping(obj.get("cost"))
        duration = mapping(obj.get("duration"))
        wall_ms = number(duration.get("wall_ms"))
        return RunSummary(
            elapsed_time_s=(wall_ms or 0.0) / 1000,
            total_cost=number(cost.get("total_usd")) or 0.0,
            total_iterations=max(integer(stories.get("total")) or 0, 0),
            success_count=max(integer(stories.get("completed")) or 0, 0),
            failure_count=max(integer(stories.get("failed")) or 0, 0),
            status=text(obj.get("status")),
            completed_at=parse_time(obj.get("completed_at")),
            blocks=blocks,
        )
    return RunSummary(
        elapsed_time_s=number(obj.get("elapsed_time_s")) or 0.0,
        total_cost=number(obj.get("total_cost")) or 0.0,
        total_iterations=max(integer(obj.get("total_iterations")) or 0, 0),
        success_count=max(integer(obj.get("success_count")) or 0, 0),
        failure_count=max(integer(obj.get("failure_count")) or 0, 0),
        status=text(obj.get("status")),
        completed_at=parse_time(obj.get("completed_at")),
        blocks=blocks,
    )


# -- progress.txt --------------------------------------------------------------


def parse_log_entry(block: str) -> LogEntry:
    """One entry from its text, which starts with the ``### Iteration:`` header line.

    Trailing blank lines and the ``---`` separator that closes a block are
    layout, not content, and are dropped.
    """
    lines = [line.rstrip("\r") for line in block.split("\n")]
    header = lines[0] if lines else ""
    timestamp = header[len(LOG_HEADER) :].strip() if header.startswith(LOG_HEADER) else ""
    body = lines[1:]
    while body and (not body[-1].strip() or body[-1].strip() == "---"):
        body.pop()
    return LogEntry(timestamp=timestamp, lines=tuple(body))


def parse_log_entries(content: str) -> list[LogEntry]:
    """Every entry of a whole progress.txt; text before the first header is not an entry."""
    entries: list[LogEntry] = []
    current: list[str] | None = None
    # Split on newlines only: the byte-offset index (progress.py) does the same,
    # and form feeds or U+2028 inside an entry are content, not line breaks.
    for line in content.split("\n"):
        if line.startswith(LOG_HEADER):
            if current is not None:
                entries.append(parse_log_entry("\n".join(current)))
            current = [line]
        elif current is not None:
            current.append(line)
    if current is not None:
        entries.append(parse_log_entry("\n".join(current)))
    return entries

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
import re
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


#: Levels of nesting accepted in any JSON file (a real one has four or five).
#: Deeper is unparseable: Python's encoder recurses, so a document parsed at
#: 980 levels made every answer that carried it a 500.
MAX_JSON_DEPTH = 64


#: JSON texts longer than this are decoded in many short calls (see :func:`loads`).
CHUNKED_JSON_CHARS = 256 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")


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


def loads(text: str) -> object:
    """``json.loads(text)`` with our number rules; a long text in many short C calls.

    The C decoder holds the GIL for the whole of one call: 23 MB of plan is a
    quarter of a second in which no other thread runs, so a parse in a worker
    thread still froze the reactor. A text over :data:`CHUNKED_JSON_CHARS` has
    its two outer levels of containers walked here and each value below them
    (a story, an iteration) decoded by the C decoder on its own: the same
    value, the same errors (:class:`json.JSONDecodeError` at the same place),
    with a chance for other threads between values.
    """
    if len(text) <= CHUNKED_JSON_CHARS:
        return json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).decode(text)
    # json shares equal keys within one call only; across the many calls here,
    # 100,000 stories' keys were 700,000 strings (40 MB more at the peak).
    keys: dict[str, str] = {}

    def shared_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        return {keys.setdefault(key, key): value for key, value in pairs}

    decoder = json.JSONDecoder(
        parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=shared_keys
    )
    return _ChunkedDecoder(text, decoder).decode()


class _ChunkedDecoder:
    """One long JSON text: the outer ``levels`` of containers here, the values below in C."""

    def __init__(self, text: str, decoder: json.JSONDecoder, levels: int = 2) -> None:
        self.text = text
        self.decoder = decoder
        self.levels = levels

    def decode(self) -> object:
        value, end = self._value(0, 0)
        end = self._skip(end)
        if end != len(self.text):
            raise json.JSONDecodeError("Extra data", self.text, end)
        return value

    def _skip(self, index: int) -> int:
        match = _WHITESPACE.match(self.text, index)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def _value(self, index: int, depth: int) -> tuple[object, int]:
        index = self._skip(index)
        if depth < self.levels and self.text.startswith("[", index):
            return self._array(index + 1, depth + 1)
        if depth < self.levels and self.text.startswith("{", index):
            return self._object(index + 1, depth + 1)
        value: object
        value, end = self.decoder.raw_decode(self.text, index)
        return value, end

    def _array(self, index: int, depth: int) -> tuple[list[object], int]:
        items: list[object] = []
        index = self._skip(index)
        if self.text.startswith("]", index):
            return items, index + 1
        while True:
            item, index = self._value(index, depth)
            items.append(item)
            index = self._skip(index)
            if self.text.startswith(",", index):
                index += 1
            elif self.text.startswith("]", index):
                return items, index + 1
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", self.text, index)

    def _object(self, index: int, depth: int) -> tuple[dict[str, object], int]:
        members: dict[str, object] = {}
        index = self._skip(index)
        if self.text.startswith("}", index):
            return members, index + 1
        while True:
            if not self.text.startswith('"', index):
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", self.text, index
                )
            key, index = self.decoder.raw_decode(self.text, index)
            index = self._skip(index)
            if not self.text.startswith(":", index):
                raise json.JSONDecodeError("Expecting ':' delimiter", self.text, index)
            members[key], index = self._value(index + 1, depth)
            index = self._skip(index)
            if self.text.startswith(",", index):
                index = self._skip(index + 1)
            elif self.text.startswith("}", index):
                return members, index + 1
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", self.text, index)


def load_json_object(data: bytes) -> JSONObject:
    """Decode a JSON object, raising ParseError for anything else."""
    try:
        # A byte-order mark some editors write is not part of the JSON. (Not the
        # utf-8-sig codec: a daemon that dropped privileges may fail to import it.)
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"not UTF-8: {e.reason} at byte {e.start}") from None
    if not text.strip():
        raise ParseError("empty file")
    try:
        value = loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        # An integer literal past Python's digit limit for int().
        raise ParseError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ParseError(f"expected a JSON object, got {type(value).__name__}")
    # Fewer brackets than the limit cannot nest past it: most files skip the walk.
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and not within_depth(value, MAX_JSON_DEPTH):
        raise ParseError(f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return value


def within_depth(value: object, limit: int) -> bool:
    """Whether ``value``'s containers nest at most ``limit`` deep (the top one is level 1).

    Iterative, so any depth is checked without recursing; O(values).
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        children = node.values() if isinstance(node, dict) else node
        assert isinstance(children, Iterable)
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return True


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


#: Keys that hold a plan's item list, in the order they are tried (the shapes of
#: shared/realdata: claude-loop and snarktank ``userStories``, ``user_stories``,
#: ``stories``, ``tasks``, Anthropic-harness ``features``, ``items``, and
#: ``phases`` for plans without per-item status, ``epics`` holding stories).
ITEM_LIST_KEYS = ("userStories", "user_stories", "stories", "tasks", "features", "items", "phases", "epics")
#: Envelopes a plan may sit in (``{"artifact_type": ..., "data": {...}}``).
_ENVELOPE_KEYS = ("data", "prd", "plan")
#: How deep the item list may sit (envelope, then epics or features holding stories).
_MAX_PLAN_DEPTH = 3

#: Done-ness as a ``status`` word (lower-cased, ``-`` and spaces read as ``_``).
DONE_WORDS = frozenset(
    {
        "done",
        "complete",
        "completed",
        "passed",
        "pass",
        "passing",
        "finished",
        "success",
        "succeeded",
        "closed",
        "resolved",
        "merged",
        "shipped",
        "verified",
    }
)
IN_PROGRESS_WORDS = frozenset(
    {
        "in_progress",
        "inprogress",
        "active",
        "started",
        "doing",
        "wip",
        "running",
        "working",
        "current",
        "partial",
        "review",
        "in_review",
    }
)
BLOCKED_WORDS = frozenset({"blocked", "failed", "failing", "failure", "stuck", "error"})
#: Priority words mapped to an order, lower first (``p0`` ... ``p4`` read as their number).
PRIORITY_WORDS = {
    "critical": 0,
    "urgent": 0,
    "highest": 0,
    "blocker": 0,
    "high": 1,
    "important": 1,
    "medium": 2,
    "normal": 2,
    "moderate": 2,
    "mid": 2,
    "low": 3,
    "minor": 3,
    "lowest": 4,
    "trivial": 4,
    "optional": 4,
    "nice_to_have": 4,
}
_TRUE_FLAGS = ("passes", "done", "complete", "completed")


def parse_prd(data: bytes) -> Prd:
    """A plan file in any shape seen in the wild, as stories in file order.

    The item list is the first of :data:`ITEM_LIST_KEYS` that holds objects, at
    the top, inside an envelope (``data``) or under epics or features that hold
    their own stories; a top-level array is the list itself. Items of a list in
    which no item has an id are given ``#1``, ``#2``... by position; in a list
    of ids, an item without one is a fragment and skipped. A plan with no list
    has no stories (not an error); bytes that are not JSON raise ParseError.
    """
    value = load_json_value(data)
    items = _plan_items(value, 0)
    project = None
    if isinstance(value, dict):
        for key in ("project", "projectName", "project_name", "name", "title"):
            project = text(value.get(key))
            if project:
                break
        if project is None:
            project = text(mapping(value.get("data")).get("project_name"))
    positional = not any(isinstance(raw, dict) and _item_id(raw) for raw in items)
    stories = []
    for position, raw in enumerate(items, start=1):
        story = _parse_story(raw, f"#{position}" if positional else None)
        if story is not None:
            stories.append(story)
    return Prd(project=project, stories=tuple(stories))


def load_json_value(data: bytes) -> object:
    """Decode JSON (an object or an array; a UTF-8 BOM is allowed), raising ParseError otherwise."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data.lstrip().startswith(b"["):
        try:
            value: object = loads(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ParseError(f"not UTF-8: {e.reason} at byte {e.start}") from None
        except json.JSONDecodeError as e:
            raise ParseError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        except ValueError as e:
            raise ParseError(f"invalid JSON: {e}") from None
        except RecursionError:
            raise ParseError("JSON nested too deeply") from None
        return value
    return load_json_object(data)


def _object_list(value: object) -> list[dict[str, Any]] | None:
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return [v for v in value if isinstance(v, dict)]
    return None


def _plan_items(value: object, depth: int) -> list[dict[str, Any]]:
    if depth > _MAX_PLAN_DEPTH:
        return []
    items = _object_list(value)
    if items is None and isinstance(value, dict):
        for key in ITEM_LIST_KEYS:
            items = _object_list(value.get(key))
            if items is not None:
                break
        else:
            for key in _ENVELOPE_KEYS:
                if isinstance(value.get(key), dict):
                    return _plan_items(value[key], depth + 1)
            return []
    if items is None:
        return []
    # Epics or features that hold their own stories: the stories are the items.
    nested: list[dict[str, Any]] = []
    for item in items:
        for key in ITEM_LIST_KEYS:
            children = _object_list(item.get(key))
            if children is not None:
                nested.extend(_plan_items(children, depth + 1))
                break
    return nested or items


def _item_id(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("id")
    if isinstance(value, bool):
        return None
    return text(value) or None


def _word(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip().lower().replace("-", "_").replace(" ", "_") or None


def _flag(value: object) -> bool | None:
    """A done flag: a boolean, or the strings ``"true"``/``"false"``."""
    if isinstance(value, bool):
        return value
    word = _word(value)
    if word in ("true", "false"):
        return word == "true"
    return None


def _state(raw: Mapping[str, Any]) -> str:
    """``completed``, ``in_progress``, ``blocked`` or ``pending``, from flags and ``status``."""
    flags = [f for f in (_flag(raw.get(key)) for key in _TRUE_FLAGS) if f is not None]
    if any(flags):
        return "completed"
    word = _word(raw.get("status")) or _word(raw.get("state"))
    if word in DONE_WORDS:
        # A status word that says done, unless a flag of the same item says not.
        return "pending" if flags else "completed"
    if word in IN_PROGRESS_WORDS:
        return "in_progress"
    if word in BLOCKED_WORDS:
        return "blocked"
    return "pending"


def _title(raw: Mapping[str, Any]) -> str:
    for key in ("title", "name", "summary"):
        value = text(raw.get(key))
        if value:
            return value
    description = text(raw.get("description")) or text(raw.get("goal")) or ""
    first = description.strip().split("\n", 1)[0].strip()
    return first[:200]


def _criteria(raw: Mapping[str, Any]) -> tuple[str, ...]:
    for key in ("acceptanceCriteria", "acceptance_criteria", "acceptance", "criteria"):
        value = raw.get(key)
        if isinstance(value, list):
            out = []
            for item in value:
                if isinstance(item, dict):
                    said = (
                        text(item.get("text")) or text(item.get("description")) or text(item.get("criterion"))
                    )
                    if said is not None:
                        out.append(said)
                elif (said := text(item)) is not None:
                    out.append(said)
            return tuple(out)
        if isinstance(value, str):
            return (value,)
    return ()


def _dependencies(raw: Mapping[str, Any]) -> tuple[str, ...]:
    for key in ("dependencies", "dependsOn", "depends_on", "blockedBy", "blocked_by"):
        if key in raw:
            return string_list(raw.get(key))
    blocking = raw.get("blocking")
    # ``blocking`` as a list names the items this one waits on; as a boolean it is a flag, not a list.
    return string_list(blocking) if isinstance(blocking, (list, str)) else ()


def _parse_story(raw: object, positional_id: str | None = None) -> Story | None:
    if not isinstance(raw, dict):
        return None
    story_id = positional_id or _item_id(raw)
    if not story_id:
        return None
    priority_raw = raw.get("priority")
    priority = number(priority_raw)
    label = None
    rank = priority
    if priority is None and isinstance(priority_raw, str):
        label = priority_raw
        word = _word(priority_raw) or ""
        if word in PRIORITY_WORDS:
            rank = float(PRIORITY_WORDS[word])
        elif len(word) == 2 and word[0] == "p" and word[1].isdigit():
            rank = float(word[1])
    complexity = raw.get("estimatedComplexity")
    if complexity is None:
        complexity = raw.get("complexity")
    notes = raw.get("notes")
    state = _state(raw)
    return Story(
        id=story_id,
        title=_title(raw),
        description=text(raw.get("description")) or text(raw.get("goal")) or "",
        priority=priority,
        priority_raw=(int(priority) if priority is not None and isinstance(priority_raw, int) else priority),
        passes=state == "completed",
        notes="\n".join(string_list_strict(notes)) if isinstance(notes, list) else (text(notes) or ""),
        complexity=text(complexity) if complexity is not None else None,
        dependencies=_dependencies(raw),
        acceptance_criteria=_criteria(raw),
        state=state,
        rank=rank,
        priority_label=label,
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
    content = content.removeprefix("\ufeff")  # a byte-order mark before the first header
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

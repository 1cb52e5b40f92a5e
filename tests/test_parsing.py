"""The pure parsers on real-shaped bytes: both schemas, the mapping of
loop-data.md field by field, and bad input of every kind (a model or
ParseError, never another exception, never a non-finite number)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, write_prd
from loopdash.derive.status import metrics_payload, run_detail_json, stories_payload
from loopdash.loop import parsing
from loopdash.loop.models import LogEntry, Prd, RunMetrics, RunSummary
from loopdash.loop.parsing import (
    ParseError,
    parse_log_entries,
    parse_metrics,
    parse_prd,
    parse_summary,
)
from loopdash.loop.project import row_from_metrics, row_from_summary

UTC = UTC

# The real claude-loop shape, verbatim from loop-data.md.
REAL_METRICS = b"""{
  "session_id": "20260124_102000",
  "started_at": "2026-01-24T10:20:00Z",
  "updated_at": "2026-01-24T11:05:12Z",
  "pricing": {"sonnet": {"input_per_m_usd": 3.0, "output_per_m_usd": 15.0}},
  "model_usage": {"haiku": 0, "sonnet": 4, "opus": 1},
  "cache": {"hits": 3, "misses": 2, "hit_rate": 60.0, "saved_tokens_estimate": 12000},
  "parallel": {"enabled": false, "batches": 0, "workers_used": 0, "max_concurrent": 0,
               "parallel_time_ms": 0, "sequential_estimate_ms": 0,
               "time_saved_ms": 0, "speedup_factor": 1.0},
  "totals": {"iterations": 5, "tokens_in": 41000, "tokens_out": 9000,
             "cost_usd": 0.258, "api_duration_ms": 912000, "wall_duration_ms": 2712000},
  "iterations": [
    {"iteration": 1, "story_id": "US-001", "story_title": "Always log tokens",
     "tokens_in": 8000, "tokens_out": 2000, "cost_usd": 0.054,
     "opus_baseline_cost_usd": 0.27, "model": "sonnet", "duration_ms": 180000,
     "status": "complete", "agents_used": ["backend-architect"],
     "agents_used_count": 1, "timestamp": "2026-01-24T10:23:00Z"}
  ]
}
"""

# The flat shape, verbatim from dashboard-api.md.
FLAT_METRICS = b"""{"elapsed_time_s": 3600, "total_cost": 2.5, "total_iterations": 10,
 "success_count": 9, "failure_count": 1, "last_update": "2026-01-13T20:00:00Z",
 "iterations": [{"story_id": "US-201", "status": "success", "elapsed_ms": 180000,
                 "tokens_in": 5000, "tokens_out": 2000, "cost": 0.15,
                 "agents_used": ["backend-architect"]}]}
"""

REAL_SUMMARY = b"""{
  "session_id": "20260124_102000",
  "started_at": "2026-01-24T10:20:00Z",
  "completed_at": "2026-01-24T11:10:00Z",
  "status": "complete",
  "stories": {"total": 6, "completed": 5, "failed": 1},
  "tokens": {"input": 41000, "output": 9000, "total": 50000},
  "cost": {"total_usd": 0.258, "opus_baseline_usd": 1.29},
  "duration": {"api_ms": 912000, "wall_ms": 3000000},
  "model_usage": {"haiku": 0, "sonnet": 4, "opus": 1},
  "cache": {"hits": 3, "misses": 2, "hit_rate": 60.0},
  "parallel": {"enabled": false}
}
"""

FLAT_SUMMARY = (
    b'{"total_cost": 3.2, "total_iterations": 12, "success_count": 11,'
    b' "failure_count": 1, "elapsed_time_s": 4200}'
)

PRD = json.dumps(
    {
        "project": "claude-loop-p2-features",
        "branchName": "feature/p2-dashboard",
        "description": "...",
        "userStories": [
            {
                "id": "US-001",
                "title": "Log tokens",
                "description": "Every call",
                "acceptanceCriteria": ["A line per call"],
                "priority": 1,
                "passes": True,
                "notes": "Implemented in commit 6d02b70",
                "estimatedComplexity": "medium",
                "dependencies": [],
                "owner": "someone",
            },
            {
                "id": "US-002",
                "title": "Metrics",
                "priority": 2,
                "passes": False,
                "estimatedComplexity": "high",
                "dependencies": ["US-001"],
            },
        ],
    },
    indent=2,
).encode()


def real_run_bytes(tmp_path: Any) -> tuple[bytes, bytes]:
    """metrics.json and summary.json as loopdash.cli.sample writes a real-shape run."""
    start = datetime(2026, 1, 24, 10, 20, tzinfo=UTC)
    run = RealRun(str(tmp_path), start)
    run.start()
    moment = start
    for index, status in enumerate(["complete", "failed", "complete", "blocked", "done"]):
        moment += timedelta(minutes=5)
        run.add_iteration(
            f"US-00{index + 1}",
            f"Story {index + 1}",
            moment,
            240000,
            status,
            agents=("backend-architect", "test-engineer")[: 1 + index % 2],
        )
    run.write_metrics(moment)
    run.write_summary(moment + timedelta(seconds=30))
    with open(os.path.join(run.directory, "metrics.json"), "rb") as f:
        metrics = f.read()
    with open(os.path.join(run.directory, "summary.json"), "rb") as f:
        summary = f.read()
    return metrics, summary


# -- both metrics schemas, the mapping table of loop-data.md -------------------


def test_real_metrics_totals_follow_the_mapping_table() -> None:
    m = parse_metrics(REAL_METRICS)
    assert m.total_cost == 0.258  # totals.cost_usd
    assert m.elapsed_time_s == 2712.0  # totals.wall_duration_ms / 1000
    assert m.total_iterations == 5  # totals.iterations, not len(iterations)
    assert m.success_count == 1 and m.failure_count == 0  # from the iterations' status words
    assert m.last_update == datetime(2026, 1, 24, 11, 5, 12, tzinfo=UTC)  # updated_at
    assert m.started_at == datetime(2026, 1, 24, 10, 20, tzinfo=UTC)


def test_real_iteration_maps_duration_and_cost_and_status() -> None:
    (it,) = parse_metrics(REAL_METRICS).iterations
    assert it.story_id == "US-001"
    assert it.elapsed_ms == 180000  # duration_ms
    assert it.cost == 0.054  # cost_usd
    assert it.status == "success"  # "complete"
    assert it.tokens_in == 8000 and it.tokens_out == 2000
    assert it.agents_used == ("backend-architect",)
    assert it.ended_at == datetime(2026, 1, 24, 10, 23, tzinfo=UTC)


def test_real_iteration_keeps_its_extra_fields() -> None:
    (it,) = parse_metrics(REAL_METRICS).iterations
    assert it.extra["story_title"] == "Always log tokens"
    assert it.extra["model"] == "sonnet"
    assert it.extra["timestamp"] == "2026-01-24T10:23:00Z"
    assert it.extra["iteration"] == 1
    assert it.extra["opus_baseline_cost_usd"] == 0.27
    # The mapped names are not duplicated as extras.
    assert "duration_ms" not in it.extra and "cost_usd" not in it.extra


def test_real_metrics_keep_cache_parallel_and_model_usage_blocks() -> None:
    m = parse_metrics(REAL_METRICS)
    assert m.blocks["cache"] == {"hits": 3, "misses": 2, "hit_rate": 60.0, "saved_tokens_estimate": 12000}
    assert m.blocks["parallel"]["speedup_factor"] == 1.0
    assert m.blocks["model_usage"] == {"haiku": 0, "sonnet": 4, "opus": 1}


def test_real_metrics_without_totals_fall_back_to_iterations_and_timestamps() -> None:
    doc = json.loads(REAL_METRICS)
    del doc["totals"]
    doc["iterations"].append(dict(doc["iterations"][0], cost_usd=0.1, status="failed"))
    m = parse_metrics(json.dumps(doc).encode())
    assert m.total_cost == pytest.approx(0.154)  # sum of cost_usd
    assert m.elapsed_time_s == 2712.0  # updated_at - started_at
    assert m.total_iterations == 2  # number of iterations
    assert (m.success_count, m.failure_count) == (1, 1)


def test_flat_metrics_are_read_as_written() -> None:
    m = parse_metrics(FLAT_METRICS)
    assert (m.elapsed_time_s, m.total_cost, m.total_iterations) == (3600, 2.5, 10)
    assert (m.success_count, m.failure_count) == (9, 1)
    assert m.last_update == datetime(2026, 1, 13, 20, 0, tzinfo=UTC)
    (it,) = m.iterations
    assert (it.story_id, it.status, it.elapsed_ms, it.cost) == ("US-201", "success", 180000, 0.15)
    assert (it.tokens_in, it.tokens_out, it.agents_used) == (5000, 2000, ("backend-architect",))
    assert it.extra == {}


def test_flat_metrics_without_totals_are_computed_from_iterations() -> None:
    doc = {
        "iterations": [
            {"story_id": "A", "status": "success", "elapsed_ms": 1000, "cost": 0.5},
            {"story_id": "B", "status": "failure", "elapsed_ms": 3000, "cost": 0.25},
        ]
    }
    m = parse_metrics(json.dumps(doc).encode())
    assert (m.total_cost, m.elapsed_time_s, m.total_iterations) == (0.75, 4.0, 2)
    assert (m.success_count, m.failure_count) == (1, 1)


def test_both_shapes_come_out_in_the_same_api_shape(tmp_path: Any) -> None:
    real, _ = real_run_bytes(tmp_path)
    contract_keys = {"story_id", "status", "elapsed_ms", "tokens_in", "tokens_out", "cost", "agents_used"}
    top_keys = {
        "elapsed_time_s",
        "total_cost",
        "total_iterations",
        "success_count",
        "failure_count",
        "last_update",
        "iterations",
    }
    for data in (real, REAL_METRICS, FLAT_METRICS):
        payload = metrics_payload(parse_metrics(data), "20260124_102000")
        assert top_keys <= payload.keys()
        for it in payload["iterations"]:
            assert contract_keys <= it.keys()
            assert isinstance(it["agents_used"], list)
        json.dumps(payload, allow_nan=False)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("complete", "success"),
        ("completed", "success"),
        ("success", "success"),
        ("passed", "success"),
        ("done", "success"),
        ("Complete", "success"),
        (" DONE ", "success"),
        ("failed", "failure"),
        ("failure", "failure"),
        ("error", "failure"),
        ("blocked", "failure"),
        ("timeout", "failure"),
        ("Failed", "failure"),
        ("in_progress", "in_progress"),
        ("skipped", "skipped"),
    ],
)
def test_status_words_map_to_success_and_failure(word: str, expected: str) -> None:
    doc = {"session_id": "x", "iterations": [{"story_id": "US-1", "status": word}]}
    (it,) = parse_metrics(json.dumps(doc).encode()).iterations
    assert it.status == expected


def test_real_file_written_by_sample_counts_successes_and_failures(tmp_path: Any) -> None:
    real, _ = real_run_bytes(tmp_path)
    m = parse_metrics(real)
    assert [i.status for i in m.iterations] == ["success", "failure", "success", "failure", "success"]
    assert (m.success_count, m.failure_count, m.total_iterations) == (3, 2, 5)
    assert m.elapsed_time_s == 25 * 60
    assert m.total_cost == pytest.approx(sum(i.cost for i in m.iterations))


def test_agents_used_as_a_comma_string_becomes_a_list() -> None:
    doc = {
        "iterations": [
            {"story_id": "A", "status": "success", "agents_used": "backend-architect, test-engineer,"},
            {"story_id": "B", "status": "success", "agents_used": ["code-reviewer", 7, None]},
            {"story_id": "C", "status": "success", "agents_used": ""},
            {"story_id": "D", "status": "success"},
        ]
    }
    its = parse_metrics(json.dumps(doc).encode()).iterations
    assert [i.agents_used for i in its] == [
        ("backend-architect", "test-engineer"),
        ("code-reviewer", "7"),
        (),
        (),
    ]


def test_missing_iteration_fields_take_defaults() -> None:
    doc = {"session_id": "x", "iterations": [{}]}
    (it,) = parse_metrics(json.dumps(doc).encode()).iterations
    assert (it.story_id, it.status, it.elapsed_ms, it.tokens_in, it.tokens_out, it.cost) == (
        None,
        "unknown",
        0,
        0,
        0,
        0.0,
    )
    assert it.agents_used == () and it.ended_at is None


def test_wrong_types_fall_back_without_losing_the_file() -> None:
    doc = {
        "session_id": "x",
        "started_at": 12,
        "updated_at": ["no"],
        "totals": "lots",
        "cache": [1, 2],
        "iterations": [
            {
                "story_id": "A",
                "status": "complete",
                "duration_ms": "long",
                "cost_usd": True,
                "tokens_in": -5,
                "tokens_out": 2.7,
                "agents_used": {"a": 1},
            },
            "not an iteration",
            {"story_id": "B", "status": "complete", "duration_ms": 1000, "cost_usd": 0.5},
        ],
    }
    m = parse_metrics(json.dumps(doc).encode())
    a, b = m.iterations
    assert (a.elapsed_ms, a.cost, a.tokens_in, a.tokens_out, a.agents_used) == (0, 0.0, 0, 2, ())
    assert (b.elapsed_ms, b.cost) == (1000, 0.5)
    assert m.total_cost == 0.5 and m.total_iterations == 2
    assert m.started_at is None and m.last_update is None
    assert "cache" not in m.blocks


def test_metrics_top_level_must_be_an_object() -> None:
    for data in (b"[]", b"1", b'"x"', b"null", b"", b"   \n"):
        with pytest.raises(ParseError):
            parse_metrics(data)


# -- summary.json, both shapes -----------------------------------------------------


def test_real_summary_maps_to_flat_names() -> None:
    s = parse_summary(REAL_SUMMARY)
    assert s.total_cost == 0.258  # cost.total_usd
    assert s.total_iterations == 6  # stories.total
    assert s.success_count == 5  # stories.completed
    assert s.failure_count == 1  # stories.failed
    assert s.elapsed_time_s == 3000.0  # duration.wall_ms / 1000
    assert s.status == "complete"
    assert s.completed_at == datetime(2026, 1, 24, 11, 10, tzinfo=UTC)
    assert s.blocks["cache"]["hit_rate"] == 60.0 and "model_usage" in s.blocks


def test_flat_summary_is_read_as_written() -> None:
    s = parse_summary(FLAT_SUMMARY)
    assert (s.total_cost, s.total_iterations, s.success_count, s.failure_count, s.elapsed_time_s) == (
        3.2,
        12,
        11,
        1,
        4200,
    )


def test_summary_written_by_sample_matches_its_metrics(tmp_path: Any) -> None:
    metrics, summary = real_run_bytes(tmp_path)
    s, m = parse_summary(summary), parse_metrics(metrics)
    doc = json.loads(summary)
    assert s.total_cost == doc["cost"]["total_usd"] == pytest.approx(m.total_cost)
    assert s.elapsed_time_s == doc["duration"]["wall_ms"] / 1000 == 25 * 60 + 30
    assert (s.total_iterations, s.success_count, s.failure_count) == (
        doc["stories"]["total"],
        doc["stories"]["completed"],
        doc["stories"]["failed"],
    )
    row_s, row_m = row_from_summary("r", s), row_from_metrics("r", m)
    assert row_s.total_cost == pytest.approx(row_m.total_cost)


def test_summary_with_missing_and_wrong_fields_takes_zeros() -> None:
    s = parse_summary(b'{"stories": {"total": "six", "completed": -3}, "cost": {"total_usd": null}}')
    assert (s.total_cost, s.total_iterations, s.success_count, s.failure_count, s.elapsed_time_s) == (
        0.0,
        0,
        0,
        0,
        0.0,
    )


# -- prd.json ----------------------------------------------------------------------


def test_prd_stories_in_file_order_with_defaults() -> None:
    prd = parse_prd(PRD)
    assert prd.project == "claude-loop-p2-features"
    first, second = prd.stories
    assert (first.id, first.passes, first.notes, first.complexity, first.priority_raw) == (
        "US-001",
        True,
        "Implemented in commit 6d02b70",
        "medium",
        1,
    )
    assert first.acceptance_criteria == ("A line per call",)
    assert (second.notes, second.description, second.dependencies, second.passes) == (
        "",
        "",
        ("US-001",),
        False,
    )
    assert prd.completed == 1
    payload = stories_payload(prd)
    assert (payload["total"], payload["completed"], payload["pending"]) == (2, 1, 1)
    assert payload["stories"][0]["priority"] == 1 and isinstance(payload["stories"][0]["priority"], int)
    assert "owner" not in payload["stories"][0]


def test_prd_passes_only_when_true_and_skips_stories_without_an_id() -> None:
    doc = {
        "userStories": [
            {"id": "A", "passes": "yes"},
            {"id": "B", "passes": 1},
            {"id": "C", "passes": True},
            {"title": "no id"},
            "junk",
            {"id": ""},
        ]
    }
    prd = parse_prd(json.dumps(doc).encode())
    assert [(s.id, s.passes) for s in prd.stories] == [("A", False), ("B", False), ("C", True)]


def test_prd_complexity_is_free_text_or_null() -> None:
    doc = {
        "userStories": [
            {"id": "A", "estimatedComplexity": "high"},
            {"id": "B"},
            {"id": "C", "priority": "high"},
        ]
    }
    a, b, c = parse_prd(json.dumps(doc).encode()).stories
    assert (a.complexity, b.complexity) == ("high", None)
    assert c.priority is None and c.priority_raw is None


def test_prd_written_by_sample_parses(tmp_path: Any) -> None:
    write_prd(str(tmp_path), [dict(s, passes=i < 3, notes="") for i, s in enumerate(SAMPLE_STORIES)])
    with open(os.path.join(str(tmp_path), "prd.json"), "rb") as f:
        prd = parse_prd(f.read())
    assert [s.id for s in prd.stories] == [s["id"] for s in SAMPLE_STORIES]
    assert prd.completed == 3
    assert prd.stories[4].dependencies == ("US-002", "US-004")


# -- bad bytes: ParseError, never anything else --------------------------------------

PARSERS: list[Callable[[bytes], object]] = [parse_metrics, parse_summary, parse_prd]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(
    "data",
    [
        b'{"total_cost": NaN}',
        b'{"total_cost": Infinity}',
        b'{"total_cost": -Infinity}',
        b"\xff\xfe{}",
        b'{"project": "caf\xe9"}',
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"a": 1' + b"0" * 5000 + b"}",
        b"\x00\x00\x00",
        b"{",
        b'{"iterations": [',
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "bom-utf16",
        "latin1",
        "deep-list",
        "deep-object",
        "huge-int-literal",
        "nul",
        "open-brace",
        "open-list",
    ],
)
def test_bad_bytes_raise_parse_error(parse: Callable[[bytes], object], data: bytes) -> None:
    with pytest.raises(ParseError):
        parse(data)


def _finite_everywhere(value: object, path: str = "") -> None:
    """Assert no float anywhere inside a model (extras and blocks too) is NaN or infinite."""
    if isinstance(value, float):
        assert math.isfinite(value), f"non-finite number at {path or '<top>'}: {value}"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _finite_everywhere(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _finite_everywhere(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _finite_everywhere(v, f"{path}[{i}]")


def _assert_servable(model: object) -> None:
    """What the API would answer for this model can be written as strict JSON."""
    _finite_everywhere(model)
    if isinstance(model, RunMetrics):
        json.dumps(metrics_payload(model, "r"), allow_nan=False)
        json.dumps(run_detail_json(row_from_metrics("r", model), model), allow_nan=False)
    elif isinstance(model, RunSummary):
        json.dumps(dataclasses.asdict(row_from_summary("r", model)), allow_nan=False)
    elif isinstance(model, Prd):
        json.dumps(stories_payload(model), allow_nan=False)


@pytest.mark.parametrize(
    "data",
    [
        b'{"iterations": [{"story_id": "A", "model": 1e400}]}',
        b'{"session_id": "x", "cache": {"hit_rate": 1e400}}',
        b'{"session_id": "x", "model_usage": {"opus": -1e999}}',
        b'{"total_cost": 1e400}',
    ],
    ids=["extra", "cache-block", "model-usage-block", "total"],
)
def test_out_of_range_float_literal_is_never_let_through(data: bytes) -> None:
    # json reads 1e400 as inf without calling parse_constant; it must not reach an answer.
    for parse in PARSERS:
        try:
            model = parse(data)
        except ParseError:
            continue
        _assert_servable(model)


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(
    "data",
    [
        b'{"total_cost": 1' + b"0" * 400 + b"}",
        b'{"session_id": "x", "totals": {"cost_usd": 1' + b"0" * 400 + b"}}",
        b'{"iterations": [{"duration_ms": -1' + b"0" * 400 + b', "cost": 1' + b"0" * 330 + b"}]}",
        b'{"userStories": [{"id": "A", "priority": 1' + b"0" * 400 + b"}]}",
        b'{"cost": {"total_usd": 1' + b"0" * 400 + b'}, "duration": {"wall_ms": 1e308}}',
    ],
    ids=["flat-total", "real-total", "iteration", "priority", "summary"],
)
def test_integers_too_large_for_a_float_are_no_crash(parse: Callable[[bytes], object], data: bytes) -> None:
    try:
        model = parse(data)
    except ParseError:
        return
    _assert_servable(model)


@pytest.mark.parametrize(
    "stamp",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-13-45T99:00:00Z", "yesterday", ""],
)
def test_timestamps_out_of_range_or_malformed_are_absent_not_a_crash(stamp: str) -> None:
    doc = {
        "session_id": "x",
        "started_at": stamp,
        "updated_at": stamp,
        "iterations": [{"story_id": "A", "status": "complete", "timestamp": stamp}],
    }
    m = parse_metrics(json.dumps(doc).encode())
    flat = parse_metrics(json.dumps({"last_update": stamp}).encode())
    s = parse_summary(json.dumps({"completed_at": stamp}).encode())
    for value in (m.started_at, m.last_update, m.iterations[0].ended_at, flat.last_update, s.completed_at):
        assert value is None or value.tzinfo is not None


def test_sums_that_overflow_a_float_never_become_infinite() -> None:
    doc = {"session_id": "x", "iterations": [{"cost_usd": 1e308}, {"cost_usd": 1e308}]}
    flat = {"iterations": [{"cost": 1e308}, {"cost": 1.7e308}]}
    for data in (json.dumps(doc).encode(), json.dumps(flat).encode()):
        try:
            model = parse_metrics(data)
        except ParseError:
            continue
        _assert_servable(model)


@pytest.mark.parametrize(
    ("name", "parse"),
    [("metrics", parse_metrics), ("summary", parse_summary)],
)
def test_real_file_truncated_at_every_offset_is_a_parse_error(
    tmp_path: Any, name: str, parse: Callable[[bytes], object]
) -> None:
    """A half-written file (``cat >`` caught mid-write) is never read as a smaller truth."""
    metrics, summary = real_run_bytes(tmp_path)
    data = metrics if name == "metrics" else summary
    closing = data.rindex(b"}")
    for offset in range(len(data)):
        if offset <= closing:
            with pytest.raises(ParseError):
                parse(data[:offset])
        else:
            parse(data[:offset])


def test_prd_truncated_at_every_offset_is_a_parse_error() -> None:
    closing = PRD.rindex(b"}")
    for offset in range(closing + 1):
        with pytest.raises(ParseError):
            parse_prd(PRD[:offset])


# -- Hypothesis: arbitrary input gives a model or ParseError, and a servable one --------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["complete", "failed", "2026-01-24T10:23:00Z", "0001-01-01T00:00:00+01:00", "a, b", "US-001"]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_model_or_parse_error(data: bytes) -> None:
    for parse in PARSERS:
        try:
            model = parse(data)
        except ParseError:
            continue
        _assert_servable(model)


def _replace_everywhere(doc: Any, draw: Any) -> Any:
    """The document with every value, at every depth, possibly replaced by arbitrary JSON."""
    if isinstance(doc, dict):
        return {
            k: draw(st.one_of(st.just(_replace_everywhere(v, draw)), json_values)) for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [draw(st.one_of(st.just(_replace_everywhere(v, draw)), json_values)) for v in doc]
    return draw(st.one_of(st.just(doc), json_values))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([REAL_METRICS, FLAT_METRICS, REAL_SUMMARY, FLAT_SUMMARY, PRD]))
def test_arbitrary_json_in_every_field_gives_a_model_or_parse_error(data: Any, template: bytes) -> None:
    doc = _replace_everywhere(json.loads(template), data.draw)
    encoded = json.dumps(doc).encode()
    for parse in PARSERS:
        try:
            model = parse(encoded)
        except ParseError:
            continue
        _assert_servable(model)


# -- progress.txt as a whole -------------------------------------------------------------

PROGRESS = """# claude-loop progress

Project: claude-loop-p2-features
### Not an entry header: text before the first one is preamble

### Iteration: 2026-01-24 10:20 AM
**Story**: US-001 - Always log tokens to provider_usage.jsonl
**Status**: Complete

**What was implemented**:
- Added `log_provider_usage_jsonl()` ...

---

### Iteration:   2026-01-13 14:40:00   \r
**Story**: US-201 - Skills Architecture Core Framework\r
**Status**: Complete\r
---\r
### Iteration: sometime, odd\x0cstamp
- line with a form feed \x0c and a \u2028 separator
   ### Iteration: indented is not a header
"""


def test_log_entries_skip_preamble_and_keep_timestamps_as_written() -> None:
    entries = parse_log_entries(PROGRESS)
    assert [e.timestamp for e in entries] == [
        "2026-01-24 10:20 AM",
        "2026-01-13 14:40:00",
        "sometime, odd\x0cstamp",
    ]
    assert entries[0].lines == (
        "**Story**: US-001 - Always log tokens to provider_usage.jsonl",
        "**Status**: Complete",
        "",
        "**What was implemented**:",
        "- Added `log_provider_usage_jsonl()` ...",
    )


def test_log_entries_drop_separators_and_carriage_returns() -> None:
    entries = parse_log_entries(PROGRESS)
    assert entries[1].lines == (
        "**Story**: US-201 - Skills Architecture Core Framework",
        "**Status**: Complete",
    )
    assert entries[2].lines == (
        "- line with a form feed \x0c and a \u2028 separator",
        "   ### Iteration: indented is not a header",
    )


def test_log_without_any_header_has_no_entries() -> None:
    assert parse_log_entries("") == []
    assert parse_log_entries("# title\n\nsome preamble\n---\n") == []


def test_log_entry_with_empty_timestamp_and_body() -> None:
    assert parse_log_entries("### Iteration:\n") == [LogEntry("", ())]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["### Iteration: t", "### Iteration:", "---", "", "x", "### Iter", " ### Iteration: y", "é\r"]
        ),
        max_size=30,
    )
)
def test_log_entries_count_is_the_number_of_header_lines(lines: list[str]) -> None:
    content = "\n".join(lines)
    entries = parse_log_entries(content)
    assert len(entries) == sum(1 for line in lines if line.startswith("### Iteration:"))
    for entry in entries:
        assert not entry.lines or entry.lines[-1].strip() not in ("", "---")


# -- a long JSON text, decoded in many short calls -----------------------------------------


def _decoded(decode: Callable[[str], object], text: str) -> object:
    """The value, or the error as json reports it (message and position)."""
    try:
        return ("value", decode(text))
    except json.JSONDecodeError as e:
        return ("error", e.msg, e.pos)
    except ParseError as e:
        return ("parse error", str(e))


def _chunked(levels: int) -> Callable[[str], object]:
    decoder = json.JSONDecoder(parse_constant=parsing._reject_constant, parse_float=parsing._finite_float)
    return lambda text: parsing._ChunkedDecoder(text, decoder, levels).decode()


def _whole(text: str) -> object:
    return json.JSONDecoder(
        parse_constant=parsing._reject_constant, parse_float=parsing._finite_float
    ).decode(text)


@settings(max_examples=300, deadline=None)
@given(
    json_values,
    st.sampled_from([None, 0, 2]),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]),
    st.integers(min_value=0, max_value=3),
)
def test_a_long_text_decodes_in_chunks_to_what_json_decodes(
    value: object, indent: int | None, separators: tuple[str, str], levels: int
) -> None:
    text = " \n" + json.dumps(value, indent=indent, separators=separators) + "\r\n"
    assert _decoded(_chunked(levels), text) == _decoded(_whole, text)


@settings(max_examples=300, deadline=None)
@given(json_values, st.data(), st.integers(min_value=1, max_value=3))
def test_a_broken_long_text_fails_in_chunks_where_json_fails(value: object, data: Any, levels: int) -> None:
    text = json.dumps({"items": [value, {"k": value}]})
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    broken = data.draw(
        st.sampled_from(
            [text[:at], text[:at] + "," + text[at:], text[:at] + "}" + text[at:], text[:at] + text[at + 1 :]]
        )
    )
    assert _decoded(_chunked(levels), broken) == _decoded(_whole, broken)


def test_a_plan_over_the_chunk_size_parses_to_the_same_stories() -> None:
    items = [
        {"id": f"US-{n:05d}", "title": f"Story {n}", "passes": n % 2 == 0, "priority": 1.5}
        for n in range(4000)
    ]
    data = json.dumps({"project": "big", "userStories": items}, indent=2).encode()
    assert len(data) > parsing.CHUNKED_JSON_CHARS
    prd = parse_prd(data)
    assert [s.id for s in prd.stories] == [i["id"] for i in items]
    assert prd.completed == 2000
    with pytest.raises(ParseError):
        parse_prd(data.replace(b"1.5", b"1e999", 1))  # the number rules hold in chunks too


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_loads_past_the_chunk_size_gives_what_json_gives(value: object) -> None:
    text = json.dumps({"items": [value, value], "other": value}, indent=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parsing, "CHUNKED_JSON_CHARS", 0)  # every text is long
        assert _decoded(parsing.loads, text) == _decoded(_whole, text)

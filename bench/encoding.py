"""Encode speed of the API's answers: today's dicts + json against msgspec, cattrs and pydantic.

    pip install cattrs pydantic        # the candidates that lost; msgspec is a dependency
    python -m bench.encoding [--stories 200] [--rows 1000] [--repeat 15] [--baseline REV]

Each row is the best time of ``--repeat`` rounds to build one answer from the
readers' values and encode it to bytes, and its ratio to the baseline measured
in the same run. Two tables:

1. **The endpoints, end to end**: ``/api/stories`` (200 stories), ``/api/status``
   (of a generated project whose loop is running) and ``/api/history`` (a
   1,000-row page), each by the baseline (loopdash/derive/status.py as it was at
   ``--baseline``, loaded from git: dicts encoded by ``json.dumps``) and by
   today's tree (loopdash.contract's Structs encoded by msgspec).
2. **The candidates** on the same values: building the answer's objects and
   encoding them with each library (msgspec Structs; attrs classes unstructured
   by cattrs then ``json.dumps``; pydantic models validated, or constructed without
   validation, then ``model_dump_json``). The classes of the losers are defined
   here, minimal, for the measurement only.

Nothing here is a test; figures depend on the machine. Run with nothing else busy.
"""

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.generate import generate, make_stories
from loopdash.derive import status as derive
from loopdash.loop.parsing import parse_prd
from loopdash.loop.project import Project, RunRow
from loopdash.server.encoding import encode_json

#: The last commit before the contract's Structs: dicts built by hand, encoded by json.
DEFAULT_BASELINE = "c90c807"
ROOT = Path(__file__).resolve().parent.parent
#: Two runs of the same code differ by up to this ratio here: /api/status is mostly
#: the derivation (sorting 200 stories), the same on both sides, so it reads 0.95-1.05.
NOISE = 1.05


def best_of(works: list[Callable[[], bytes]], repeat: int, budget: float = 0.05) -> list[float]:
    """Seconds per call of each work: the best of ``repeat`` rounds, the works taking turns.

    Taking turns (a round of each, then again) spreads the noise of a shared
    machine over every work alike, so their ratios hold where their times do not.
    """
    counts = []
    for work in works:
        calls = 1
        while True:
            began = time.perf_counter()
            for _ in range(calls):
                work()
            if time.perf_counter() - began >= budget or calls >= 1 << 20:
                break
            calls *= 2
        counts.append(calls)
    best = [float("inf")] * len(works)
    gc.collect()
    for _ in range(repeat):
        for i, (work, calls) in enumerate(zip(works, counts, strict=True)):
            began = time.perf_counter()
            for _ in range(calls):
                work()
            best[i] = min(best[i], (time.perf_counter() - began) / calls)
    return best


def baseline_module(rev: str) -> types.ModuleType:
    """loopdash/derive/status.py as it was at ``rev``, imported under another name."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:loopdash/derive/status.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("baseline_status")
    exec(compile(source, f"{rev}:loopdash/derive/status.py", "exec"), module.__dict__)
    return module


def dumps(value: object) -> bytes:
    """The baseline's encoder (loopdash/server/encoding.py before msgspec)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


# -- the candidates that are not loopdash's: minimal classes, for measuring only ----------

STORY_NAMES = (
    "id", "title", "description", "priority", "status", "notes", "estimated_complexity", "dependencies",
    "acceptance_criteria",
)  # fmt: skip
ROW_NAMES = (
    "run_id", "timestamp", "total_cost", "total_iterations", "success_count", "failure_count", "elapsed_time_s",
)  # fmt: skip


def story_fields(s: Any) -> tuple[Any, ...]:
    """A story answer's values, in STORY_NAMES order (what the candidates' classes take)."""
    status = "completed" if s.passes else "pending"
    return (s.id, s.title, s.description, s.priority_raw, status, s.notes, s.complexity, s.dependencies, s.acceptance_criteria)  # fmt: skip


def row_fields(r: RunRow) -> tuple[Any, ...]:
    """A history row's values, in ROW_NAMES order."""
    return (r.run_id, r.run_id, round(r.total_cost, 6), r.total_iterations, r.success_count, r.failure_count, r.elapsed_time_s)  # fmt: skip


def cattrs_candidate() -> tuple[
    Callable[[Any], bytes], Callable[[list[RunRow], int], bytes], Callable[[dict[str, Any]], bytes]
]:
    import attrs
    import cattrs
    from cattrs.gen import make_dict_unstructure_fn, override

    @attrs.frozen
    class AStory:
        id: str
        title: str
        description: str
        priority: float | None
        status: str
        notes: str
        estimated_complexity: str | None
        dependencies: tuple[str, ...]
        acceptance_criteria: tuple[str, ...]

    @attrs.frozen
    class AStoryList:
        stories: tuple[AStory, ...]
        total: int
        completed: int
        pending: int

    @attrs.frozen
    class ARow:
        run_id: str
        timestamp: str
        total_cost: float
        total_iterations: int
        success_count: int
        failure_count: int
        elapsed_time_s: float

    @attrs.frozen
    class APage:
        runs: tuple[ARow, ...]
        total: int
        limit: int
        offset: int

    @attrs.frozen
    class ACurrent:
        id: str
        status: str
        elapsed_ms: int
        title: str | None

    @attrs.frozen
    class AStatus:
        is_running: bool
        run_id: str | None
        current_story: ACurrent | None
        progress_pct: float
        completed_stories: int
        total_stories: int
        elapsed_time: int
        estimated_remaining: int | None
        cost_so_far: float
        last_update: str

    converter = cattrs.Converter()
    converter.register_unstructure_hook(
        AStory,
        make_dict_unstructure_fn(
            AStory,
            converter,
            estimated_complexity=override(rename="estimatedComplexity"),
            acceptance_criteria=override(rename="acceptanceCriteria"),
        ),
    )

    def stories(prd: Any) -> bytes:
        items = tuple(AStory(*story_fields(s)) for s in prd.stories)
        done = sum(1 for s in prd.stories if s.passes)
        return dumps(converter.unstructure(AStoryList(items, len(items), done, len(items) - done)))

    def history(rows: list[RunRow], total: int) -> bytes:
        items = tuple(ARow(*row_fields(r)) for r in rows)
        return dumps(converter.unstructure(APage(items, total, len(rows), 0)))

    def status(fields: dict[str, Any]) -> bytes:
        story = fields["current_story"]
        current = (
            None
            if story is None
            else ACurrent(story["id"], story["status"], story["elapsed_ms"], story.get("title"))
        )
        return dumps(converter.unstructure(AStatus(**{**fields, "current_story": current})))

    return stories, history, status


def pydantic_candidate(
    validate: bool,
) -> tuple[Callable[[Any], bytes], Callable[[list[RunRow], int], bytes], Callable[[dict[str, Any]], bytes]]:
    from pydantic import BaseModel, ConfigDict, Field

    class PStory(BaseModel):
        model_config = ConfigDict(frozen=True, populate_by_name=True)
        id: str
        title: str
        description: str
        priority: float | int | None
        status: str
        notes: str
        estimated_complexity: str | None = Field(alias="estimatedComplexity")
        dependencies: tuple[str, ...]
        acceptance_criteria: tuple[str, ...] = Field(alias="acceptanceCriteria")

    class PStoryList(BaseModel):
        stories: tuple[PStory, ...]
        total: int
        completed: int
        pending: int

    class PRow(BaseModel):
        run_id: str
        timestamp: str
        total_cost: float
        total_iterations: int
        success_count: int
        failure_count: int
        elapsed_time_s: float

    class PPage(BaseModel):
        runs: tuple[PRow, ...]
        total: int
        limit: int
        offset: int

    class PCurrent(BaseModel):
        id: str
        status: str
        elapsed_ms: int
        title: str | None = None

    class PStatus(BaseModel):
        is_running: bool
        run_id: str | None
        current_story: PCurrent | None
        progress_pct: float
        completed_stories: int
        total_stories: int
        elapsed_time: int
        estimated_remaining: int | None
        cost_so_far: float
        last_update: str

    def make(cls: Any, **kwargs: Any) -> Any:
        return cls(**kwargs) if validate else cls.model_construct(**kwargs)

    def stories(prd: Any) -> bytes:
        items = tuple(
            make(PStory, **dict(zip(STORY_NAMES, story_fields(s), strict=True))) for s in prd.stories
        )
        done = sum(1 for s in prd.stories if s.passes)
        page = make(PStoryList, stories=items, total=len(items), completed=done, pending=len(items) - done)
        encoded: bytes = page.model_dump_json(by_alias=True).encode()
        return encoded

    def history(rows: list[RunRow], total: int) -> bytes:
        items = tuple(make(PRow, **dict(zip(ROW_NAMES, row_fields(r), strict=True))) for r in rows)
        encoded: bytes = (
            make(PPage, runs=items, total=total, limit=len(rows), offset=0).model_dump_json().encode()
        )
        return encoded

    def status(fields: dict[str, Any]) -> bytes:
        story = fields["current_story"]
        current = None if story is None else make(PCurrent, **story)
        encoded: bytes = (
            make(PStatus, **{**fields, "current_story": current}).model_dump_json(exclude_none=False).encode()
        )
        return encoded

    return stories, history, status


def msgspec_candidate() -> tuple[
    Callable[[Any], bytes], Callable[[list[RunRow], int], bytes], Callable[[dict[str, Any]], bytes]
]:
    from loopdash.contract.codec import encode
    from loopdash.contract.shapes import CurrentStoryAnswer, ExecutionStatusAnswer

    def status(fields: dict[str, Any]) -> bytes:
        story = fields["current_story"]
        current = None
        if story is not None:
            title = story.get("title")
            current = (
                CurrentStoryAnswer(
                    id=story["id"], status=story["status"], elapsed_ms=story["elapsed_ms"], story_title=title
                )
                if title is not None
                else CurrentStoryAnswer(
                    id=story["id"], status=story["status"], elapsed_ms=story["elapsed_ms"]
                )
            )
        return encode(ExecutionStatusAnswer(**{**fields, "current_story": current}))

    return (
        lambda prd: encode(derive.stories_value(prd)),
        lambda rows, total: encode(derive.history_page_value(rows, total, len(rows), 0)),
        status,
    )


def dict_candidate(
    old: types.ModuleType,
) -> tuple[Callable[[Any], bytes], Callable[[list[RunRow], int], bytes], Callable[[dict[str, Any]], bytes]]:
    def history(rows: list[RunRow], total: int) -> bytes:
        return dumps(old.page_json("runs", [old.run_row_json(r) for r in rows], total, len(rows), 0))

    def status(fields: dict[str, Any]) -> bytes:
        story = fields["current_story"]
        return dumps({**fields, "current_story": None if story is None else dict(story)})

    return lambda prd: dumps(old.stories_payload(prd)), history, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stories", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="the git revision of today's dicts")
    args = parser.parse_args(argv)

    old = baseline_module(args.baseline)
    # The status rules have changed since (plan shapes, states): the baseline follows
    # today's, so that only the building of the answer and its encoding differ.
    for name in ("next_story", "is_running", "run_started_at", "_last_iteration_end", "_story_title"):
        if hasattr(old, name) and hasattr(derive, name):
            setattr(old, name, getattr(derive, name))
    prd = parse_prd(json.dumps({"project": "bench", "userStories": make_stories(args.stories)}).encode())
    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(tmp) / "project")
        generate(root, runs=40, iterations=10, stories_count=args.stories, log_mb=0.05)
        project = Project(root)
        snapshot = project.snapshot()
        now = time.time()
        rows = [project.run_row(r) for r in snapshot.run_ids]
    rows = (rows * (args.rows // len(rows) + 1))[: args.rows]
    status_fields = old.execution_status(snapshot, now, 600.0)
    assert status_fields.items() <= json.loads(encode_json(derive.status_value(snapshot, now, 600.0))).items()
    # The same answers (today's may carry fields added since the baseline: it does more, not less).
    now_stories, then_stories = json.loads(encode_json(derive.stories_value(prd))), old.stories_payload(prd)
    for story, before in zip(now_stories.pop("stories"), then_stories.pop("stories"), strict=True):
        assert before.items() <= story.items(), (before, story)
    assert now_stories == then_stories

    print(f"python {sys.version.split()[0]}; baseline {args.baseline}; best of {args.repeat}")
    print("\n1. endpoints, end to end (build + encode)          baseline µs     now µs   now/baseline")
    endpoints: list[tuple[str, Callable[[], bytes], Callable[[], bytes]]] = [
        (
            f"/api/stories ({args.stories} stories)",
            lambda: dumps(old.stories_payload(prd)),
            lambda: encode_json(derive.stories_value(prd)),
        ),
        (
            "/api/status (a running loop)",
            lambda: dumps(old.execution_status(snapshot, now, 600.0)),
            lambda: encode_json(derive.status_value(snapshot, now, 600.0)),
        ),
        (
            f"/api/history ({args.rows} rows)",
            lambda: dumps(
                old.page_json("runs", [old.run_row_json(r) for r in rows], len(rows), len(rows), 0)
            ),
            lambda: encode_json(derive.history_page_value(rows, len(rows), len(rows), 0)),
        ),
    ]
    worst = 0.0
    for name, before, after in endpoints:
        b, a = best_of([before, after], args.repeat)
        worst = max(worst, a / b)
        print(f"   {name:<46} {b * 1e6:10.1f} {a * 1e6:10.1f} {a / b:10.2f}")

    print("\n2. candidates (build + encode), ratio to the baseline's dicts + json")
    candidates: list[tuple[str, Any]] = [("dicts + json (baseline)", dict_candidate(old))]
    candidates.append(("msgspec Structs", msgspec_candidate()))
    for label, make in (
        ("attrs + cattrs + json", cattrs_candidate),
        ("pydantic, validated", lambda: pydantic_candidate(True)),
        ("pydantic, model_construct", lambda: pydantic_candidate(False)),
    ):
        try:
            candidates.append((label, make()))
        except ImportError as e:
            print(f"   {label}: not installed ({e.name})")
    print(
        f"   {'':<28}{'stories µs':>12}{'ratio':>7}{'history µs':>12}{'ratio':>7}{'status µs':>11}{'ratio':>7}"
    )
    columns = [
        best_of([lambda s=stories: s(prd) for _, (stories, _, _) in candidates], args.repeat),
        best_of([lambda h=history: h(rows, len(rows)) for _, (_, history, _) in candidates], args.repeat),
        best_of([lambda s=status: s(status_fields) for _, (_, _, status) in candidates], args.repeat),
    ]
    for row, (label, _) in enumerate(candidates):
        cells = "".join(f"{column[row] * 1e6:12.1f}{column[row] / column[0]:7.2f}" for column in columns)
        print(f"   {label:<28}{cells}")
    verdict = "no worse" if worst <= NOISE else "WORSE"
    print(
        f"\nworst endpoint ratio now/baseline: {worst:.2f} ({verdict}; {NOISE:.2f} is the noise of this measure)"
    )
    return 0 if worst <= NOISE else 1


if __name__ == "__main__":
    raise SystemExit(main())

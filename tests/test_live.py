"""Shared snapshots and encoded answers: requests cost what changed."""

from __future__ import annotations

import gc
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from loopdash.cli.sample import RealRun, create_sample_project, progress_entry
from loopdash.loop.parsing import parse_log_entries
from loopdash.loop.project import Project
from loopdash.server.encoding import encode_json
from loopdash.server.live import LiveProject, history_page
from loopdash.server.runlist import ROW_RECHECK
from tests.conftest import DaemonFactory


class CountingProject(Project):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.snapshots = 0

    def snapshot(self, log_budget: int | None = None) -> Any:
        self.snapshots += 1
        return super().snapshot(log_budget)


@pytest.fixture
def project(tmp_path: Any) -> CountingProject:
    root = str(tmp_path)
    create_sample_project(root)
    return CountingProject(root)


def test_requests_within_the_max_age_share_one_snapshot_and_one_encoding(project: CountingProject) -> None:
    clock = Clock()
    live = LiveProject(project, clock, stale_after=600.0, max_age=0.05)
    first = live.status_body()
    second = live.status_body()
    assert project.snapshots == 1
    assert first is second  # the same bytes, not an equal copy
    assert json.loads(first)["total_stories"] == 8


def test_an_older_snapshot_is_retaken_and_an_unchanged_project_keeps_its_version(
    project: CountingProject,
) -> None:
    clock = Clock()
    live = LiveProject(project, clock, stale_after=600.0, max_age=0.05)
    live.stories_body()
    version = live.version
    clock.advance(0.06)
    live.stories_body()
    assert project.snapshots == 2
    assert live.version == version


def test_a_change_notice_makes_the_next_request_see_the_change(project: CountingProject) -> None:
    clock = Clock()
    live = LiveProject(project, clock, stale_after=600.0, max_age=60.0)
    before = json.loads(live.stories_body())
    path = os.path.join(project.root, "prd.json")
    document = json.load(open(path))
    document["userStories"][7]["passes"] = True
    with open(path, "w") as f:
        json.dump(document, f)
    # Within the max age and without a notice, the shared snapshot still answers.
    assert json.loads(live.stories_body()) == before
    live.invalidate()
    after = json.loads(live.stories_body())
    assert after["completed"] == before["completed"] + 1
    assert after["stories"][7]["status"] == "completed"


def test_status_is_recomputed_when_the_second_turns(project: CountingProject) -> None:
    clock = Clock()
    clock.advance(1_800_000_000.1)  # .1, .4, 1.4: never a half second to round
    live = LiveProject(project, clock, stale_after=1e12, max_age=60.0)
    first = live.status_body()
    clock.advance(0.3)
    assert live.status_body() is first
    clock.advance(1.0)
    later = live.status_body()
    assert json.loads(later)["elapsed_time"] == json.loads(first)["elapsed_time"] + 1


def test_a_cold_log_is_indexed_in_steps_and_pages_wait_for_it(tmp_path: Any) -> None:
    root = str(tmp_path)
    entries = "".join(
        progress_entry(
            f"2026-01-13 14:{n % 60:02d}:00", f"US-{n:03d}", "A story", "Complete", ["x" * 200] * 5
        )
        for n in range(3000)
    )
    with open(os.path.join(root, "progress.txt"), "w") as f:
        f.write("# preamble\n\n" + entries)
    clock = Clock()
    project = Project(root)
    steps: list[int] = []
    refresh = project.log.refresh

    def counted(budget: int | None = None) -> Any:
        steps.append(budget or 0)
        return refresh(budget)

    project.log.refresh = counted  # type: ignore[method-assign]
    live = LiveProject(project, clock, stale_after=600.0, log_step=256 * 1024)
    assert live.snapshot().log.complete is False
    ready = live.log_ready()
    assert not ready.called
    clock.advance(0)  # Clock runs each step the reactor would run in turn
    assert ready.called
    # Over 3 MB in steps (a step reads whole 1 MB chunks), each a separate reactor call.
    size = os.path.getsize(os.path.join(root, "progress.txt"))
    assert size > 3 << 20
    assert len(steps) >= size // (1 << 20) and set(steps) == {256 * 1024}
    page = json.loads(live.logs_body(2990, 20))
    expected = parse_log_entries(entries)
    assert page["total"] == len(expected) == 3000
    assert [e["lines"] for e in page["logs"]] == [list(e.lines) for e in expected[2990:]]


@pytest_twisted.ensureDeferred
async def test_the_first_logs_page_of_a_cold_big_log_has_the_full_total(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    root = str(tmp_path)
    create_sample_project(root)
    block = progress_entry("2026-01-13 14:40:00", "US-201", "Skills", "Complete", ["y" * 300] * 10)
    with open(os.path.join(root, "progress.txt"), "a") as f:
        f.write(block * 4000)  # about 13 MB: several indexing steps
    daemon = await daemon_factory(root)
    answer = await daemon.get("/api/logs?limit=1")
    status = await daemon.get("/api/status")
    assert answer.code == 200 and status.code == 200
    assert answer.json()["total"] == 7 + 4000
    last = (await daemon.get(f"/api/logs?limit=10&offset={7 + 4000 - 10}")).json()
    assert len(last["logs"]) == 10 and last["logs"][-1]["lines"][0] == "**Story**: US-201 - Skills"


def test_encoded_answers_stay_within_their_byte_budget(project: CountingProject, monkeypatch: Any) -> None:
    import loopdash.server.live

    monkeypatch.setattr(loopdash.server.live, "MAX_CACHED_BYTES", 64 * 1024)
    clock = Clock()
    clock.advance(1_800_000_000.0)
    live = LiveProject(project, clock, stale_after=600.0)
    for _second in range(300):
        clock.advance(1.0)  # a new version of everything that moves with the clock
        live.runs_body()
        live.status_body()
        for offset in range(0, 7):
            live.logs_body(offset, 1)
    assert live._cached_bytes <= 64 * 1024
    assert live._cached_bytes == sum(len(body) for _, body in live._bodies.values())
    # One answer per slot: the runs list is cached once, not once per second.
    assert sum(1 for slot in live._bodies if slot[0] == "runs") == 1


def test_an_older_runs_details_are_revalidated_once_per_max_age_not_per_request(
    project: CountingProject,
) -> None:
    clock = Clock()
    live = LiveProject(project, clock, stale_after=600.0, max_age=0.05)
    oldest = live.snapshot().run_ids[0]
    checks: list[str] = []
    identity_of_run = project.run_files_identity

    def counted(run_id: str) -> tuple[object, ...]:
        checks.append(run_id)
        return identity_of_run(run_id)

    project.run_files_identity = counted  # type: ignore[method-assign]
    first = live.run_body(oldest)
    assert live.run_body(oldest) is first and checks == [oldest]
    # The run gets a new summary (an older run: no watch of its own).
    summary = os.path.join(project.runs_path, oldest, "summary.json")
    document = json.load(open(summary))
    document["total_cost"] = 9.5
    with open(summary, "w") as f:
        json.dump(document, f)
    clock.advance(0.06)
    assert json.loads(live.run_body(oldest))["summary"]["total_cost"] == 9.5
    assert checks == [oldest, oldest]


def test_known_runs_come_from_the_shared_run_list(project: CountingProject) -> None:
    live = LiveProject(project, Clock(), stale_after=600.0)
    run_ids = live.snapshot().run_ids
    assert all(live.has_run(r) for r in run_ids)
    assert not live.has_run("20000101_000000")
    assert not live.has_run("../../etc/passwd")


class RowCountingProject(Project):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.rows_read: list[str] = []

    def run_row(self, run_id: str) -> Any:
        self.rows_read.append(run_id)
        return super().run_row(run_id)


def many_runs(root: str, count: int) -> list[str]:
    started = datetime(2026, 11, 1, tzinfo=UTC)
    run_ids = []
    for n in range(count):
        run = RealRun(root, started + timedelta(hours=n))
        run.start()
        run.add_iteration("US-001", "A story", run.started_at + timedelta(minutes=5), 300000)
        run.write_metrics(run.started_at + timedelta(minutes=5))
        run_ids.append(run.run_id)
    return run_ids


def test_the_first_full_run_list_is_read_in_steps_that_yield_to_the_reactor(tmp_path: Any) -> None:
    run_ids = many_runs(str(tmp_path), 35)
    project = RowCountingProject(str(tmp_path))
    clock = Clock()
    live = LiveProject(project, clock, stale_after=600.0, row_step=10)

    yielded_after: list[int] = []  # rows read each time a step hands the reactor back
    call_later = clock.callLater

    def recording_call_later(delay: float, f: Any, *args: Any) -> Any:
        yielded_after.append(len(project.rows_read))
        return call_later(delay, f, *args)

    clock.callLater = recording_call_later  # type: ignore[method-assign]

    ready = live.rows_ready()
    assert not ready.called and len(project.rows_read) == 10  # one step at once, then the reactor's turn
    clock.advance(0)
    assert ready.called
    assert yielded_after == [10, 20, 30]
    assert sorted(project.rows_read) == run_ids  # each row read once

    project.rows_read.clear()
    assert live.rows_ready().called and project.rows_read == []  # warm: nothing to wait for
    body = live.runs_body()
    rows = json.loads(body)
    assert [row["run_id"] for row in rows] == run_ids[::-1]
    assert all(row["total_iterations"] == 1 for row in rows)
    # Joined from each row's kept JSON: the same bytes as encoding the list whole.
    assert body == encode_json([live.row_json(r) for r in run_ids[::-1]])
    # A row that changes is encoded again; the others are kept.
    newest = RealRun(str(tmp_path), datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=34))
    newest.add_iteration("US-001", "A story", newest.started_at + timedelta(minutes=5), 300000)
    newest.add_iteration("US-002", "Another", newest.started_at + timedelta(minutes=9), 300000)
    newest.write_metrics(newest.started_at + timedelta(minutes=9))
    clock.advance(1.0)
    assert json.loads(live.runs_body())[0]["total_iterations"] == 2


def test_a_history_page_waits_only_for_its_own_rows(tmp_path: Any) -> None:
    run_ids = many_runs(str(tmp_path), 35)
    project = RowCountingProject(str(tmp_path))
    live = LiveProject(project, Clock(), stale_after=600.0, row_step=10)

    page = live.history_runs(offset=5, limit=8)
    ready = live.rows_ready(page)

    assert ready.called
    assert page == tuple(run_ids[::-1][5:13])
    assert project.rows_read == list(page)


def test_waiting_for_rows_already_read_leaves_no_garbage_cycle(tmp_path: Any) -> None:
    """Every history page and run list of a warm project asks; that must not leave
    reference cycles for the cyclic collector (request after request, all day)."""
    many_runs(str(tmp_path), 5)
    live = LiveProject(Project(str(tmp_path)), Clock(), stale_after=600.0)
    assert live.rows_ready().called  # the first look reads the rows
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            assert live.rows_ready(live.history_runs(0, 3)).called
            assert live.rows_ready().called
        assert gc.collect() == 0
    finally:
        gc.enable()


@given(st.integers(0, 12), st.integers(0, 15), st.integers(0, 15))
def test_a_history_page_is_the_newest_first_slice(count: int, offset: int, limit: int) -> None:
    run_ids = tuple(f"2026110{n // 10}_{n % 10:06d}" for n in range(count))
    assert history_page(run_ids, offset, limit) == run_ids[::-1][offset : offset + limit]


def test_older_rows_of_the_full_run_list_are_checked_every_few_seconds_and_the_current_at_once(
    tmp_path: Any,
) -> None:
    run_ids = many_runs(str(tmp_path), 35)
    project = RowCountingProject(str(tmp_path))
    clock = Clock()
    clock.advance(1000.0)
    live = LiveProject(project, clock, stale_after=600.0)
    live.runs_body()

    due = {run_id: live._run_list.check_after(run_id) or 0.0 for run_id in run_ids}
    # Spread over the period, so a tenth or so fall due in any one second.
    assert all(1000.0 < when <= 1000.0 + ROW_RECHECK for when in due.values())
    assert len({int(when) for when in due.values()}) >= 5

    index = max(range(len(run_ids) - 1), key=lambda n: due[run_ids[n]])  # an older run due late
    older = run_ids[index]
    assert due[older] > 1002.0
    run = RealRun(str(tmp_path), datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=index))
    run.add_iteration("US-001", "A story", run.started_at + timedelta(minutes=5), 300000)
    run.add_iteration("US-002", "Another", run.started_at + timedelta(minutes=9), 300000)
    run.write_metrics(run.started_at + timedelta(minutes=9))
    assert run.run_id == older

    def row_of(run_id: str) -> Any:
        clock.advance(0)
        return next(row for row in json.loads(live.runs_body()) if row["run_id"] == run_id)

    clock.advance(due[older] - clock.seconds() - 0.01)
    project.rows_read.clear()
    assert row_of(older)["total_iterations"] == 1  # not due: its files are not even looked at
    assert older not in project.rows_read
    assert run_ids[-1] in project.rows_read  # the current run is looked at every time
    clock.advance(1.0)  # past due, and a new second (the list itself is kept for a second)
    assert row_of(older)["total_iterations"] == 2


def _bytes_held_for_runs(root: str, count: int) -> int:
    """Bytes a LiveProject holds after serving ``count`` runs read while they ran, then finished."""
    import tracemalloc

    runs = []
    for k in range(count):
        run = RealRun(root, datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=k))
        run.start()
        run.add_iteration("US-001", "A story", run.started_at + timedelta(seconds=5), 300000)
        run.write_metrics(run.started_at + timedelta(seconds=5))
        runs.append(run)
    clock = Clock()
    clock.advance(1_800_000_000)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        live = LiveProject(Project(root), clock, 600.0)
        live.runs_body()
        clock.advance(ROW_RECHECK + 1)
        for run in runs:
            run.write_summary(run.started_at + timedelta(seconds=6))
        for _ in range(2):
            live.invalidate()
            live.runs_body()
            live.history_body(0, 20)
            clock.advance(ROW_RECHECK + 1)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert live.runs_body().count(b'"run_id"') == count
    return held


def test_each_finished_run_on_disk_holds_under_a_kilobyte(tmp_path: Any) -> None:
    """The daemon keeps something per run on disk for as long as it runs (a row for
    /api/runs, the summary's identity): a steady growth in the soak, which finishes
    a run every 14 s. Measured here (tracemalloc, Python 3.11) on 2026-12-03: 1,530
    to 1,550 bytes a run with the row, its liveness and a tuple of four ints kept;
    1,220 to 1,280 with the row's JSON once and a packed identity; 1,110 to 1,130
    with the summary's cache entry keyed on the run's id, not its path; 740 to 790
    with the row's JSON kept only in the /api/runs answer. Bounded at 950."""
    _bytes_held_for_runs(str(tmp_path / "first"), 20)  # what a first use sets up once
    few = _bytes_held_for_runs(str(tmp_path / "few"), 50)
    many = _bytes_held_for_runs(str(tmp_path / "many"), 250)
    per_run = (many - few) / 200
    assert per_run < 950, (per_run, few, many)

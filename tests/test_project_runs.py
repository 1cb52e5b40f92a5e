"""The run list: scanned once, then kept up to date one directory at a time."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

from loopdash.cli.sample import RealRun
from loopdash.loop.project import Project


class CountingScans(Project):
    scans = 0

    def _scan_runs(self) -> tuple[str, ...]:
        self.scans += 1
        return super()._scan_runs()


def make_runs(root: str, count: int) -> list[str]:
    names = [f"202601{day:02d}_{n:06d}" for day in (1, 2) for n in range(count // 2)]
    for name in names:
        os.makedirs(os.path.join(root, ".claude-loop", "runs", name))
    return sorted(names)


def test_a_noticed_new_run_is_added_without_a_rescan(tmp_path: Any) -> None:
    root = str(tmp_path)
    names = make_runs(root, 500)
    project = CountingScans(root)
    assert project.run_ids() == tuple(names)
    assert project.scans == 1
    new = "20260103_000000"
    os.makedirs(os.path.join(project.runs_path, new))
    middle = "20260101_999999"  # sorts between existing runs
    os.makedirs(os.path.join(project.runs_path, middle))
    project.note_run_directory(new)
    project.note_run_directory(middle)
    assert project.run_ids() == tuple(sorted(names + [new, middle]))
    assert project.scans == 1


def test_a_noticed_removed_run_is_dropped_without_a_rescan(tmp_path: Any) -> None:
    root = str(tmp_path)
    names = make_runs(root, 20)
    project = CountingScans(root)
    project.run_ids()
    shutil.rmtree(os.path.join(project.runs_path, names[3]))
    project.note_run_directory(names[3])
    assert project.run_ids() == tuple(names[:3] + names[4:])
    assert project.scans == 1


def test_an_unnoticed_change_is_found_by_a_rescan(tmp_path: Any) -> None:
    root = str(tmp_path)
    names = make_runs(root, 20)
    project = CountingScans(root)
    project.run_ids()
    os.makedirs(os.path.join(project.runs_path, "20260105_000000"))
    os.makedirs(os.path.join(project.runs_path, "20260106_000000"))
    project.note_run_directory("20260105_000000")  # the other notice was lost
    project.forget_run_list()  # what the watcher does on an inotify queue overflow
    assert project.run_ids() == tuple(names + ["20260105_000000", "20260106_000000"])
    assert project.scans == 2


def test_notices_of_things_that_are_not_runs_change_nothing(tmp_path: Any) -> None:
    root = str(tmp_path)
    names = make_runs(root, 4)
    project = CountingScans(root)
    project.run_ids()
    os.makedirs(os.path.join(project.runs_path, "scratch"))
    os.symlink("/tmp", os.path.join(project.runs_path, "20260109_000000"))
    project.note_run_directory("scratch")
    project.note_run_directory("20260109_000000")  # a symlink is never followed
    project.note_run_directory("../../etc")
    assert project.run_ids() == tuple(names)


def test_a_finished_runs_row_is_kept_once_from_its_summary(tmp_path: Any) -> None:
    """A row read from metrics.json while the run ran is dropped once summary.json gives it:
    one kept row per run on disk, not two (memory that grew with every finished run)."""
    root = str(tmp_path)
    started = datetime(2026, 11, 1, tzinfo=UTC)
    runs = [RealRun(root, started + timedelta(hours=n)) for n in range(3)]
    project = Project(root)
    for run in runs:
        run.start()
        run.add_iteration("US-001", "A story", run.started_at + timedelta(minutes=5), 300000)
        run.write_metrics(run.started_at + timedelta(minutes=5))
        assert project.run_row(run.run_id).total_iterations == 1
    assert len(project._metrics_rows) == 3 and len(project._summary_rows) == 0
    for run in runs:
        run.write_summary(run.started_at + timedelta(minutes=6))
        finished = project.run_row(run.run_id)
        assert finished.total_iterations == 1
    assert len(project._metrics_rows) == 0 and len(project._summary_rows) == 3
    # Without its summary, the row comes from metrics.json again.
    os.remove(os.path.join(runs[0].directory, "summary.json"))
    assert project.run_row(runs[0].run_id).total_iterations == 1

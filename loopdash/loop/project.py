"""A project directory as a source of readings: the only module that opens loop files.

:class:`Project` knows the layout of ``loop-data.md`` and keeps one cache per
kind of file, so that a request or a watcher poll over an unchanged project
costs a few ``stat`` calls. It never imports Twisted; the daemon hands it a
reporter for files that do not parse.
"""

from __future__ import annotations

import bisect
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from loopdash.loop.activity import FamilyRun, parse_metrics_jsonl, parse_status_file
from loopdash.loop.filecache import FileCache, Handoff, Reading, Reporter, _ignore, identity_of
from loopdash.loop.formats import Source, detect
from loopdash.loop.models import Prd, RunMetrics, RunSummary
from loopdash.loop.parsing import parse_metrics, parse_prd, parse_summary
from loopdash.loop.progress import LogState, ProgressLog

#: Seconds between looks for a loop's files while the project's source is not forced.
DETECT_EVERY = 2.0

RUN_ID_PATTERN = re.compile(r"\A\d{8}_\d{6}\Z")


def is_run_id(value: str) -> bool:
    """Whether ``value`` has the form of a run directory name (and is safe in a path)."""
    return RUN_ID_PATTERN.match(value) is not None


def run_id_start(run_id: str) -> float | None:
    """The local time a run id names, as seconds since the epoch."""
    try:
        return time.mktime(time.strptime(run_id, "%Y%m%d_%H%M%S"))
    except (ValueError, OverflowError):
        return None


def _mtime(path: str | None) -> float | None:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as one row of /api/history and /api/runs."""

    run_id: str
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    elapsed_time_s: float


def row_from_summary(run_id: str, summary: RunSummary) -> RunRow:
    return RunRow(
        run_id,
        summary.total_cost,
        summary.total_iterations,
        summary.success_count,
        summary.failure_count,
        summary.elapsed_time_s,
    )


def row_from_metrics(run_id: str, metrics: RunMetrics) -> RunRow:
    return RunRow(
        run_id,
        metrics.total_cost,
        metrics.total_iterations,
        metrics.success_count,
        metrics.failure_count,
        metrics.elapsed_time_s,
    )


@dataclass(frozen=True, slots=True)
class _RowTotals:
    """A row's numbers without its id, so the cache parses each file once."""

    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    elapsed_time_s: float


def _summary_totals(data: bytes) -> _RowTotals:
    s = parse_summary(data)
    return _RowTotals(s.total_cost, s.total_iterations, s.success_count, s.failure_count, s.elapsed_time_s)


def _parse_plan(data: bytes) -> Prd:
    """A plan with what is O(stories) in it computed by the parse (in its thread, when handed off)."""
    return parse_prd(data).warm()


def _metrics_totals(data: bytes) -> _RowTotals:
    m = parse_metrics(data)
    return _RowTotals(m.total_cost, m.total_iterations, m.success_count, m.failure_count, m.elapsed_time_s)


@dataclass(frozen=True)
class ProjectSnapshot:
    """Everything status derivation and the change diff need, read at one moment."""

    prd: Reading[Prd]
    run_ids: tuple[str, ...]
    current_run: str | None
    metrics: Reading[RunMetrics]
    summary: Reading[RunSummary]
    log: LogState
    #: The root directory's own modification time: the fallback for "last update".
    root_mtime: float | None
    #: The runs directory's (inode, mtime_ns): it changes when a run appears or goes.
    runs_identity: tuple[int, int] | None = None
    #: The loop family and the paths read (None: claude-loop's, as before families).
    source: Source | None = None
    #: For families without run directories: their status and metrics files.
    family_run: FamilyRun | None = None

    def key(self) -> tuple[object, ...]:
        """Equal keys mean equal snapshots (up to the clock): cheap to compare."""
        log = self.log
        return (
            self.prd.identity,
            self.prd.mtime,
            self.runs_identity,
            self.current_run,
            self.metrics.identity,
            self.metrics.mtime,
            self.summary.identity,
            self.summary.mtime,
            # The generation too: a rewrite at the same size, entry count and
            # mtime (seen by its ctime, or within one mtime tick) changes nothing else.
            (log.inode, log.size, log.total, log.mtime, log.complete, log.generation),
            self.root_mtime,
            self.source,
            self.family_run,
        )

    @property
    def activity(self) -> float | None:
        """The newest modification among the files that show a loop at work."""
        times = [
            t
            for t in (self.prd.mtime, self.metrics.mtime, self.summary.mtime, self.log.mtime)
            if t is not None
        ]
        return max(times) if times else None


class Project:
    """The loop files under one root directory."""

    def __init__(
        self,
        root: str,
        report: Reporter = _ignore,
        layout: str | None = None,
        prd: str | None = None,
        progress: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        plan: tuple[str, Reading[Prd]] | None = None,
    ) -> None:
        """``layout`` forces a loop family; ``prd`` and ``progress`` (relative to the
        root) point at files in unusual places; otherwise the family is detected
        from what is on disk, and looked for again while its files are missing.
        ``plan``: a plan's path and a reading of it already made (discovery's,
        :attr:`loopdash.loop.discovery.FoundProject.plan`), kept while the file is
        that version, so a discovered project's plan is not parsed twice."""
        self.root = os.path.abspath(root)
        self._forced = (layout, prd, progress)
        self._clock = clock
        self.source = detect(self.root, layout, prd, progress)
        self._detected_at = clock()
        self._root_mtime_ns: int | None = None
        self.prd_path = self.source.prd_path
        self.progress_path = self.source.progress_path
        self.runs_path = os.path.join(self.root, ".claude-loop", "runs")
        self._prd = FileCache(_parse_plan, report)
        if plan is not None:
            path, reading = plan
            if path == self.prd_path and reading.value is not None:
                # Warmed here as a parse of this cache's would have been (_parse_plan).
                self._prd.keep(path, replace(reading, value=reading.value.warm()))
        # Full metrics are large (every iteration); keep a few runs' worth.
        self._metrics = FileCache(parse_metrics, report, max_entries=16)
        self._summaries = FileCache(parse_summary, report, max_entries=16)
        # History rows are small: keep one per run, computed once per file version.
        self._summary_rows = FileCache(_summary_totals, report)
        self._metrics_rows = FileCache(_metrics_totals, report)
        self.log = ProgressLog(self.progress_path, whole_file=self.source.family != "claude-loop")
        self._status_files = FileCache(parse_status_file, report)
        self._jsonl_files = FileCache(parse_metrics_jsonl, report)
        self._runs_identity: tuple[int, int] | None = None
        self._run_ids: tuple[str, ...] = ()

    def hand_off_large_parses(self, handoff: Handoff | None) -> None:
        """Parse new versions of large files (plan, metrics, summaries, status files) via ``handoff``
        (None: in the read again).

        See :mod:`loopdash.loop.filecache`: a read then answers the last good
        reading until the handoff lands the new one.
        """
        for cache in (
            self._prd,
            self._metrics,
            self._summaries,
            self._summary_rows,
            self._metrics_rows,
            self._status_files,
            self._jsonl_files,
        ):
            cache.hand_off(handoff)

    # -- runs ------------------------------------------------------------------

    def run_ids(self) -> tuple[str, ...]:
        """Run directory names, oldest first; rescanned only when runs/ changes."""
        try:
            st = os.stat(self.runs_path)
        except OSError:
            self._runs_identity, self._run_ids = None, ()
            return ()
        identity = (st.st_ino, st.st_mtime_ns)
        if identity != self._runs_identity:
            self._run_ids = self._scan_runs()
            self._runs_identity = identity
        return self._run_ids

    def note_run_directory(self, name: str) -> None:
        """``name`` appeared in or vanished from runs/ (the watcher heard it):
        update the run list with two stats instead of rescanning thousands.

        If anything else changed in runs/ meanwhile, its own notice follows;
        without notices (no inotify), run_ids() rescans on the next change.
        """
        if self._runs_identity is None or not is_run_id(name):
            return
        try:
            st = os.stat(self.runs_path)
        except OSError:
            return
        ids = self._run_ids
        index = bisect.bisect_left(ids, name)
        listed = index < len(ids) and ids[index] == name
        present = self.has_run(name)
        if present and not listed:
            ids = ids[:index] + (name,) + ids[index:]
        elif listed and not present:
            ids = ids[:index] + ids[index + 1 :]
        self._run_ids = ids
        self._runs_identity = (st.st_ino, st.st_mtime_ns)

    def forget_run_list(self) -> None:
        """Rescan runs/ on the next look (the watcher lost notices, e.g. a queue overflow)."""
        self._runs_identity = None

    def _scan_runs(self) -> tuple[str, ...]:
        # The caches keep a run's id as given when they first saw it: a run listed
        # again is given the same string, not a copy of it kept besides.
        known = {name: name for name in self._run_ids}
        names = []
        try:
            with os.scandir(self.runs_path) as it:
                for entry in it:
                    # A symlinked run directory may point outside the root: not followed.
                    if is_run_id(entry.name) and entry.is_dir(follow_symlinks=False):
                        names.append(known.get(entry.name, entry.name))
        except OSError:
            return ()
        names.sort()
        return tuple(names)

    def has_run(self, run_id: str) -> bool:
        if not is_run_id(run_id):
            return False
        try:
            st = os.lstat(os.path.join(self.runs_path, run_id))
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode)

    def _run_file(self, run_id: str, name: str) -> str:
        if not is_run_id(run_id):
            # Callers check first; this guards the path join all the same.
            raise ValueError(f"not a run id: {run_id!r}")
        return os.path.join(self.runs_path, run_id, name)

    def metrics(self, run_id: str) -> Reading[RunMetrics]:
        return self._metrics.read(self._run_file(run_id, "metrics.json"))

    def summary(self, run_id: str) -> Reading[RunSummary]:
        return self._summaries.read(self._run_file(run_id, "summary.json"))

    def run_row(self, run_id: str) -> RunRow:
        """The run's history row: from summary.json, else from metrics.json, else zeros."""
        # Keyed on the run's id (the run list's string), not a path: kept per run on disk.
        totals = self._summary_rows.read(self._run_file(run_id, "summary.json"), run_id).value
        if totals is not None:
            # A finished run's row comes from its summary from now on: the row
            # read from its metrics while it ran is not kept as well (a second
            # entry per run, kept for every run on disk, was a steady growth).
            self._metrics_rows.forget(run_id)
        else:
            totals = self._metrics_rows.read(self._run_file(run_id, "metrics.json"), run_id).value
        if totals is None:
            # The row cache never saw a good version (its first look caught a
            # rewrite half-way), but /api/metrics may have: its last good
            # reading is true, a row of zeros is not.
            full = self._metrics.read(self._run_file(run_id, "metrics.json")).value
            if full is not None:
                return row_from_metrics(run_id, full)
            return RunRow(run_id, 0.0, 0, 0, 0, 0.0)
        return RunRow(
            run_id,
            totals.total_cost,
            totals.total_iterations,
            totals.success_count,
            totals.failure_count,
            totals.elapsed_time_s,
        )

    # -- the plan and the whole ----------------------------------------------------

    def prd(self) -> Reading[Prd]:
        return self._prd.read(self.prd_path)

    def _look_for_source(self) -> None:
        """Detect the family again when the root changed or the source's files are
        missing (a loop started after the daemon), at most every DETECT_EVERY s."""
        layout, prd, progress = self._forced
        if layout is not None or (prd is not None and progress is not None):
            return
        now = self._clock()
        try:
            root_mtime_ns: int | None = os.stat(self.root).st_mtime_ns
        except OSError:
            root_mtime_ns = None
        changed = root_mtime_ns != self._root_mtime_ns
        missing = not any(os.path.isfile(p) for p in self.source.paths())
        if not changed and not (missing and now - self._detected_at >= DETECT_EVERY):
            return
        self._root_mtime_ns, self._detected_at = root_mtime_ns, now
        source = detect(self.root, layout, prd, progress)
        if source == self.source:
            return
        self.source = source
        self.prd_path = source.prd_path
        if source.progress_path != self.progress_path:
            self.progress_path = source.progress_path
            self.log = ProgressLog(self.progress_path, whole_file=source.family != "claude-loop")

    def snapshot(self, log_budget: int | None = None) -> ProjectSnapshot:
        """Everything status and diff need; ``log_budget`` bounds a cold progress.txt scan."""
        self._look_for_source()
        run_ids = self.run_ids()
        current = run_ids[-1] if run_ids else None
        try:
            root_mtime: float | None = os.stat(self.root).st_mtime
        except OSError:
            root_mtime = None
        return ProjectSnapshot(
            prd=self.prd(),
            run_ids=run_ids,
            current_run=current,
            metrics=self.metrics(current) if current else Reading[RunMetrics](None, None),
            summary=self.summary(current) if current else Reading[RunSummary](None, None),
            log=self.log.refresh(log_budget),
            root_mtime=root_mtime,
            runs_identity=self._runs_identity,
            source=self.source,
            family_run=None if self.source.run_directories else self._family_run(),
        )

    def _family_run(self) -> FamilyRun:
        """The status and metrics files of a family without run directories."""
        source = self.source
        status = self._status_files.read(source.status_path).value if source.status_path else None
        metrics = self._jsonl_files.read(source.metrics_path).value if source.metrics_path else None
        return FamilyRun(
            run_id=source.run_id,
            status_mtime=_mtime(source.status_path),
            metrics_mtime=_mtime(source.metrics_path),
            status=status,
            metrics=metrics,
        )

    def run_activity(self, run_id: str) -> tuple[float | None, float | None]:
        """The modification times of a run's metrics.json and summary.json (None: missing)."""
        times: list[float | None] = []
        for name in ("metrics.json", "summary.json"):
            try:
                times.append(os.stat(self._run_file(run_id, name)).st_mtime)
            except OSError:
                times.append(None)
        return times[0], times[1]

    def run_files_identity(self, run_id: str) -> tuple[object, ...]:
        """The identities of a run's two files, for keying caches of what is derived from them."""
        identities: list[object] = []
        for name in ("metrics.json", "summary.json"):
            try:
                identities.append(identity_of(os.stat(self._run_file(run_id, name))))
            except OSError:
                identities.append(None)
        return tuple(identities)

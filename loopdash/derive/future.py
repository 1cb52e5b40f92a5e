"""File times from the future, counted from when they were first seen.

``touch -d '+30 minutes' progress.txt`` (or a clock set wrong on the machine
that wrote a file) gives a modification time ahead of ours. Taken at face
value it is activity for as long as the future lasts: a dead run looks live
for half an hour. Clamped to "now" at every look it is the same lie. So a
future time counts as the moment loopdash first saw it, for as long as the
file keeps that time; a new write gives a new first sighting. Pure: the
caller passes ``now`` and logs what :meth:`FutureTimes.clamp` reports.
"""

from __future__ import annotations

from dataclasses import replace

from loopdash.loop.project import ProjectSnapshot


class FutureTimes:
    """Remembers, per file, a future modification time and when it was first seen."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, float]] = {}

    def time(self, name: str, mtime: float | None, now: float) -> tuple[float | None, bool]:
        """The time to believe for ``name``, and whether its future time is new (say so once)."""
        if mtime is None:
            self._seen.pop(name, None)
            return None, False
        seen = self._seen.get(name)
        if seen is not None and seen[0] == mtime:
            return seen[1], False
        if mtime <= now:
            self._seen.pop(name, None)
            return mtime, False
        self._seen[name] = (mtime, now)
        return now, True

    def clamp(self, snapshot: ProjectSnapshot, now: float) -> tuple[ProjectSnapshot, list[tuple[str, float]]]:
        """The snapshot with future file times replaced; the files newly found ahead, with how far."""
        newly: list[tuple[str, float]] = []

        def believe(name: str, mtime: float | None) -> float | None:
            believed, new = self.time(name, mtime, now)
            if new and mtime is not None:
                newly.append((name, mtime - now))
            return believed

        prd_time = believe("prd.json", snapshot.prd.mtime)
        metrics_time = believe("metrics.json", snapshot.metrics.mtime)
        summary_time = believe("summary.json", snapshot.summary.mtime)
        log_time = believe("progress.txt", snapshot.log.mtime)
        root_time = believe("the project directory", snapshot.root_mtime)
        if not newly and (prd_time, metrics_time, summary_time, log_time, root_time) == (
            snapshot.prd.mtime,
            snapshot.metrics.mtime,
            snapshot.summary.mtime,
            snapshot.log.mtime,
            snapshot.root_mtime,
        ):
            return snapshot, newly
        clamped = replace(
            snapshot,
            prd=replace(snapshot.prd, mtime=prd_time),
            metrics=replace(snapshot.metrics, mtime=metrics_time),
            summary=replace(snapshot.summary, mtime=summary_time),
            log=replace(snapshot.log, mtime=log_time),
            root_mtime=root_time,
        )
        return clamped, newly

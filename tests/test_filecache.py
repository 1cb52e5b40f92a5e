"""The last-good-reading cache on real files in a temp directory."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopdash.cli.sample import RealRun, write_in_place
from loopdash.loop.filecache import FileCache, Parsed, Reading
from loopdash.loop.models import RunMetrics
from loopdash.loop.parsing import parse_metrics


class CountingParser:
    """parse_metrics, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes) -> RunMetrics:
        self.calls += 1
        return parse_metrics(data)


class Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, path: str, reason: str) -> None:
        self.seen.append((path, reason))


def bump_mtime(path: str, seconds: int) -> None:
    """A later mtime, so the file's identity changes even within one clock tick."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


@pytest.fixture
def run(tmp_path: Any) -> RealRun:
    start = datetime(2026, 1, 24, 10, 20, tzinfo=UTC)
    run = RealRun(str(tmp_path), start)
    run.start()
    run.add_iteration("US-001", "Log tokens", start + timedelta(minutes=4), 240000)
    return run


def metrics_path(run: RealRun) -> str:
    return os.path.join(run.directory, "metrics.json")


def test_missing_file_reads_as_nothing(tmp_path: Any) -> None:
    cache = FileCache(parse_metrics)
    reading = cache.read(os.path.join(str(tmp_path), "absent.json"))
    assert (reading.value, reading.mtime, reading.error) == (None, None, None)


def test_good_file_is_read_with_its_mtime(run: RealRun) -> None:
    run.write_metrics(run.started_at + timedelta(minutes=5))
    reading = FileCache(parse_metrics).read(metrics_path(run))
    assert reading.value is not None and reading.value.total_iterations == 1
    assert reading.mtime == os.stat(metrics_path(run)).st_mtime
    assert reading.error is None


def test_half_written_file_keeps_the_last_good_reading(run: RealRun) -> None:
    cache = FileCache(parse_metrics)
    text = run.write_metrics(run.started_at + timedelta(minutes=5))
    good = cache.read(metrics_path(run)).value
    assert good is not None
    # The loop's next `cat > metrics.json`, caught half-way.
    run.add_iteration("US-002", "Metrics", run.started_at + timedelta(minutes=9), 200000)
    whole = run.write_metrics(run.started_at + timedelta(minutes=9))
    write_in_place(metrics_path(run), whole[: len(whole) // 2])
    bump_mtime(metrics_path(run), 1)
    reading = cache.read(metrics_path(run))
    assert reading.value == good
    assert reading.error is not None
    assert reading.mtime == os.stat(metrics_path(run)).st_mtime  # a write is still activity
    # Once the write completes, the new content is served.
    write_in_place(metrics_path(run), whole)
    bump_mtime(metrics_path(run), 2)
    fresh = cache.read(metrics_path(run))
    assert fresh.value is not None and fresh.value.total_iterations == 2 and fresh.error is None
    assert text != whole


def test_empty_file_after_truncation_keeps_the_last_good_reading(run: RealRun) -> None:
    cache = FileCache(parse_metrics)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    good = cache.read(metrics_path(run)).value
    write_in_place(metrics_path(run), "")
    assert cache.read(metrics_path(run)).value == good


def test_file_that_never_parsed_reads_as_nothing_but_reports(run: RealRun) -> None:
    reports = Reports()
    cache = FileCache(parse_metrics, reports)
    write_in_place(metrics_path(run), '{"session_id": "20260124_1')
    reading = cache.read(metrics_path(run))
    assert reading.value is None and reading.error is not None
    assert reports.seen == [(metrics_path(run), reading.error)]


def test_bad_file_is_reported_once_not_on_every_read(run: RealRun) -> None:
    reports = Reports()
    cache = FileCache(parse_metrics, reports)
    write_in_place(metrics_path(run), "{")
    for seconds in range(1, 6):
        # Still bad, and changing: every poll sees another bad version.
        write_in_place(metrics_path(run), "{" * seconds)
        bump_mtime(metrics_path(run), seconds)
        cache.read(metrics_path(run))
    assert len(reports.seen) == 1


def test_bad_file_is_reported_again_only_after_it_parsed_in_between(run: RealRun) -> None:
    reports = Reports()
    now = [0.0]
    cache = FileCache(parse_metrics, reports, grace=5.0, clock=lambda: now[0])
    write_in_place(metrics_path(run), "{")
    cache.read(metrics_path(run))
    run.write_metrics(run.started_at + timedelta(minutes=5))
    bump_mtime(metrics_path(run), 1)
    assert cache.read(metrics_path(run)).value is not None
    assert len(reports.seen) == 1
    write_in_place(metrics_path(run), "[")
    bump_mtime(metrics_path(run), 2)
    for _ in range(3):
        now[0] += 3.0  # bad for 0, 3, 6, 9 seconds: reported once past the grace
        cache.read(metrics_path(run))
    cache.read(metrics_path(run))
    assert len(reports.seen) == 2


def test_a_good_file_caught_mid_rewrite_is_not_reported_within_the_grace(run: RealRun) -> None:
    reports = Reports()
    now = [100.0]
    cache = FileCache(parse_metrics, reports, grace=5.0, clock=lambda: now[0])
    run.write_metrics(run.started_at + timedelta(minutes=5))
    good = cache.read(metrics_path(run)).value
    text = open(metrics_path(run)).read()
    write_in_place(metrics_path(run), text[: len(text) // 2])
    bump_mtime(metrics_path(run), 1)
    now[0] += 4.0
    reading = cache.read(metrics_path(run))
    assert reading.value == good and reading.error is not None
    assert reports.seen == []
    now[0] += 6.0  # still half-written 6 s after we first saw it so: that is news
    cache.read(metrics_path(run))
    assert len(reports.seen) == 1


def test_unchanged_file_is_parsed_once(run: RealRun) -> None:
    parser = CountingParser()
    cache = FileCache(parser)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    first = cache.read(metrics_path(run)).value
    for _ in range(5):
        assert cache.read(metrics_path(run)).value is first
    assert parser.calls == 1


@pytest.mark.parametrize("change", ["mtime", "size", "inode"])
def test_any_change_of_identity_parses_again(run: RealRun, change: str) -> None:
    parser = CountingParser()
    cache = FileCache(parser)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    path = metrics_path(run)
    cache.read(path)
    if change == "mtime":
        bump_mtime(path, 1)
    elif change == "size":
        st = os.stat(path)
        with open(path, "a") as f:
            f.write("\n")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, other size
    else:
        st = os.stat(path)
        replacement = path + ".new"
        with open(path, "rb") as src, open(replacement, "wb") as dst:
            dst.write(src.read())
        os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime and size
        os.replace(replacement, path)
        assert os.stat(path).st_ino != st.st_ino
    assert cache.read(path).value is not None
    assert parser.calls == 2


def test_file_that_disappears_reads_as_nothing_and_reappears(run: RealRun) -> None:
    cache = FileCache(parse_metrics)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    assert cache.read(metrics_path(run)).value is not None
    os.remove(metrics_path(run))
    assert cache.read(metrics_path(run)).value is None
    assert len(cache) == 0
    run.write_metrics(run.started_at + timedelta(minutes=6))
    assert cache.read(metrics_path(run)).value is not None


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink-loop", "dangling-symlink"])
def test_odd_things_at_the_path_raise_nothing(tmp_path: Any, kind: str) -> None:
    path = os.path.join(str(tmp_path), "metrics.json")
    if kind == "directory":
        os.mkdir(path)
    elif kind == "fifo":
        os.mkfifo(path)  # opening it must not block the reader
    elif kind == "symlink-loop":
        os.symlink(path, path)
    else:
        os.symlink(os.path.join(str(tmp_path), "nowhere"), path)
    reports = Reports()
    cache = FileCache(parse_metrics, reports)
    for _ in range(3):
        reading = cache.read(path)
        assert reading.value is None
    assert len(reports.seen) <= 1


def test_file_larger_than_the_limit_is_refused_not_read(run: RealRun) -> None:
    reports = Reports()
    cache = FileCache(parse_metrics, reports, max_bytes=100)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    reading = cache.read(metrics_path(run))
    assert reading.value is None and reading.error is not None and "large" in reading.error
    assert len(reports.seen) == 1


def test_cache_keeps_at_most_max_entries(tmp_path: Any) -> None:
    parser = CountingParser()
    cache = FileCache(parser, max_entries=2)
    paths = []
    for index in range(3):
        path = os.path.join(str(tmp_path), f"m{index}.json")
        write_in_place(path, '{"iterations": []}')
        paths.append(path)
        cache.read(path)
    assert len(cache) == 2
    cache.read(paths[2])  # still cached: no parse
    assert parser.calls == 3
    cache.read(paths[0])  # evicted: parsed again
    assert parser.calls == 4


# -- large files: a new version is parsed by the handoff, in another thread ------------------


class ThreadHandoff:
    """Runs each job in a thread of its own, and lands its outcome when the test says so."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[[], Parsed[Any]], Callable[[Parsed[Any]], None]]] = []
        self.parsed_in: list[threading.Thread] = []

    def __call__(self, job: Callable[[], Parsed[Any]], land: Callable[[Parsed[Any]], None]) -> None:
        self.jobs.append((job, land))

    def finish(self) -> None:
        """Run the oldest job in a worker thread, then land it here (the reading thread)."""
        job, land = self.jobs.pop(0)
        outcome: list[Parsed[Any]] = []
        worker = threading.Thread(target=lambda: outcome.append(job()), name="test-parse")
        worker.start()
        worker.join(10)
        land(outcome[0])


class ThreadNoting(CountingParser):
    def __init__(self, handoff: ThreadHandoff) -> None:
        super().__init__()
        self.handoff = handoff

    def __call__(self, data: bytes) -> RunMetrics:
        self.handoff.parsed_in.append(threading.current_thread())
        return super().__call__(data)


def test_a_large_files_first_reading_is_parsed_in_the_read(run: RealRun) -> None:
    handoff = ThreadHandoff()
    cache = FileCache(ThreadNoting(handoff), handoff=handoff, inline_bytes=10)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    assert cache.read(metrics_path(run)).value is not None  # nothing known yet: a false "nothing"
    assert handoff.jobs == [] and handoff.parsed_in == [threading.current_thread()]


def test_a_new_version_of_a_large_file_is_parsed_off_the_reading_thread(run: RealRun) -> None:
    handoff = ThreadHandoff()
    parser = ThreadNoting(handoff)
    cache = FileCache(parser, handoff=handoff, inline_bytes=10)
    path = metrics_path(run)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    old = cache.read(path)
    run.add_iteration("US-002", "More", run.started_at + timedelta(minutes=6), 60000)
    run.write_metrics(run.started_at + timedelta(minutes=7))
    bump_mtime(path, 1)
    for _ in range(3):
        reading = cache.read(path)
        # The last good reading until the job lands, and one job however many reads.
        assert (reading.value, reading.identity, reading.error) == (old.value, old.identity, None)
        assert reading.mtime == os.stat(path).st_mtime
    assert len(handoff.jobs) == 1 and parser.calls == 1
    handoff.finish()
    assert [t.name for t in handoff.parsed_in] == [threading.current_thread().name, "test-parse"]
    new = cache.read(path)
    assert new.value is not None and new.value.total_iterations == 2
    assert new.identity != old.identity and handoff.jobs == []


def test_a_small_file_is_parsed_in_the_read_even_with_a_handoff(run: RealRun) -> None:
    handoff = ThreadHandoff()
    cache = FileCache(parse_metrics, handoff=handoff, inline_bytes=1 << 20)
    path = metrics_path(run)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    cache.read(path)
    run.add_iteration("US-002", "More", run.started_at + timedelta(minutes=6), 60000)
    run.write_metrics(run.started_at + timedelta(minutes=7))
    bump_mtime(path, 1)
    reading = cache.read(path)
    assert reading.value is not None and reading.value.total_iterations == 2 and handoff.jobs == []


def test_a_large_file_whose_job_failed_keeps_its_reading_and_is_not_parsed_again_until_it_changes(
    run: RealRun,
) -> None:
    handoff = ThreadHandoff()
    reports = Reports()
    now = [0.0]
    cache = FileCache(
        parse_metrics, reports, grace=5.0, clock=lambda: now[0], handoff=handoff, inline_bytes=1
    )
    path = metrics_path(run)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    good = cache.read(path).value
    write_in_place(path, "{" * 20)
    bump_mtime(path, 1)
    cache.read(path)
    handoff.finish()
    now[0] += 10.0  # bad for longer than the grace: news
    for _ in range(3):
        assert cache.read(path).value is good
    assert handoff.jobs == [] and len(reports.seen) == 1
    bump_mtime(path, 2)
    cache.read(path)  # a new version: one more job
    assert len(handoff.jobs) == 1


def test_a_kept_reading_is_answered_without_parsing_until_the_file_changes(run: RealRun) -> None:
    path = metrics_path(run)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    first = FileCache(parse_metrics).read(path)
    assert first.value is not None and first.value.total_iterations == 1
    parser = CountingParser()
    cache = FileCache(parser)

    cache.keep(path, first)

    assert cache.read(path).value is first.value and parser.calls == 0
    run.add_iteration("US-002", "Second", run.started_at + timedelta(minutes=9), 1000)
    run.write_metrics(run.started_at + timedelta(minutes=9))
    bump_mtime(path, 5)
    changed = cache.read(path).value
    assert parser.calls == 1 and changed is not None and changed.total_iterations == 2


def test_a_reading_of_a_version_that_did_not_parse_is_not_kept(run: RealRun) -> None:
    path = metrics_path(run)
    run.write_metrics(run.started_at + timedelta(minutes=5))
    good = FileCache(parse_metrics).read(path)
    assert good.value is not None and good.identity is not None
    parser = CountingParser()
    cache = FileCache(parser)

    cache.keep(path, Reading(good.value, good.mtime, "Expecting value", good.identity))
    cache.keep(path, Reading(None, good.mtime, None, good.identity))

    assert cache.read(path).value is not None and parser.calls == 1


def write_metrics(run: RealRun) -> str:
    run.write_metrics(run.started_at + timedelta(minutes=4))
    return metrics_path(run)


class _Shrunk:
    """An fstat result that reports ``missing`` bytes fewer: the file grew after it was taken."""

    def __init__(self, st: os.stat_result, missing: int) -> None:
        self._st = st
        self.st_size = st.st_size - missing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._st, name)


def grown_after_fstat(monkeypatch: pytest.MonkeyPatch, missing: int) -> None:
    """From now on, fstat reports ``missing`` bytes fewer than a file holds."""
    real_fstat = os.fstat
    monkeypatch.setattr(os, "fstat", lambda fd: _Shrunk(real_fstat(fd), missing))


def record_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes os.read is asked for from now on, in order."""
    asked: list[int] = []
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    return asked


def test_a_file_is_read_with_one_read_of_its_size_and_a_byte_more(
    run: RealRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read asked os.read for 1 MiB and then 1 MiB more to see the end: a 1 MiB
    buffer made and shrunk twice per poll, holes in glibc's heap (soak, 2026-12-03)."""
    path = write_metrics(run)
    size = os.path.getsize(path)
    asked = record_reads(monkeypatch)
    reading = FileCache(parse_metrics).read(path)
    assert reading.value is not None and reading.value.total_iterations == 1
    assert asked == [size + 1]


def test_a_file_that_grew_after_its_fstat_is_read_to_its_end(
    run: RealRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_metrics(run)
    size = os.path.getsize(path)
    grown_after_fstat(monkeypatch, size // 2)
    asked = record_reads(monkeypatch)
    reading = FileCache(parse_metrics).read(path)
    assert reading.error is None
    assert reading.value is not None and reading.value.total_iterations == 1
    # The first read got all it asked for, so the rest was read on, to the end.
    assert asked[0] == size - size // 2 + 1 and len(asked) == 3


def test_a_file_that_grew_past_the_limit_while_read_is_too_large(
    run: RealRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_metrics(run)
    size = os.path.getsize(path)
    grown_after_fstat(monkeypatch, size - 10)
    reading = FileCache(parse_metrics, max_bytes=100).read(path)
    assert reading.value is None
    assert reading.error == "file too large"

"""Files read truthfully (issue 15): a BOM, a rewrite that restores mtime, a write
through a file kept open, a log rewritten under a reader. Each asserts the value."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, append_progress, progress_entry, write_prd
from loopdash.derive.changes import LogAppended, LogRewritten, diff
from loopdash.local.token import TokenFile
from loopdash.loop.filecache import FileCache
from loopdash.loop.parsing import parse_metrics
from loopdash.loop.progress import ProgressLog
from loopdash.loop.project import Project
from loopdash.server.api import EVENT_ID_HEADER
from loopdash.server.watcher import observe
from tests.conftest import DaemonFactory
from tests.support import EventStream, RunningDaemon, open_stream

BOM = b"\xef\xbb\xbf"
INOTIFY_ONLY = {"watched_poll_interval": 3600.0, "stale_after": 86400.0, "keepalive": 600.0}


def entry(title: str) -> str:
    return progress_entry("2026-11-28 10:20 AM", "US-001", title, "Complete", ["did it"])


async def streaming_over_entries(
    daemon_factory: DaemonFactory, root: str, count: int
) -> tuple[RunningDaemon, EventStream]:
    """A daemon (inotify only) on a log of ``count`` entries titled ``old 0``...,
    and a stream of it past its first status."""
    for i in range(count):
        append_progress(root, entry(f"old {i}"))
    daemon = await daemon_factory(root, **INOTIFY_ONLY)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    return daemon, stream


@pytest.fixture
def root(tmp_path: Any) -> str:
    path = os.path.join(str(tmp_path), "project")
    os.makedirs(path)
    write_prd(path, [dict(story, passes=i < 3, notes="") for i, story in enumerate(SAMPLE_STORIES)])
    run = RealRun(path, datetime.now(UTC) - timedelta(minutes=5))
    run.start()
    run.add_iteration("US-001", "t", datetime.now(UTC), 60000, "complete")
    run.write_metrics(datetime.now(UTC))
    return path


def prepend_bom(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(BOM + data)


# -- byte-order marks ----------------------------------------------------------------


def test_a_prd_with_a_bom_is_read(root: str) -> None:
    prepend_bom(os.path.join(root, "prd.json"))
    prd = Project(root).prd()
    assert prd.error is None and prd.value is not None
    assert (len(prd.value.stories), prd.value.completed) == (len(SAMPLE_STORIES), 3)


def test_a_metrics_file_with_a_bom_is_read(root: str) -> None:
    project = Project(root)
    run_id = project.run_ids()[-1]
    prepend_bom(os.path.join(project.runs_path, run_id, "metrics.json"))
    metrics = project.metrics(run_id).value
    assert metrics is not None and metrics.total_iterations == 1


def test_a_progress_log_with_a_bom_keeps_its_first_entry(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "progress.txt")
    with open(path, "wb") as f:
        f.write(BOM + (entry("first") + entry("second")).encode())
    log = ProgressLog(path)
    assert log.refresh().total == 2
    first, second = log.entries(0, 2)
    assert first.timestamp == "2026-11-28 10:20 AM" and "US-001 - first" in first.lines[0]
    assert "US-001 - second" in second.lines[0]


def test_a_token_file_with_a_bom_holds_the_token(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "auth_token.txt")
    with open(path, "wb") as f:
        f.write(BOM + b"s3cret-token\n")
    os.chmod(path, 0o600)
    assert TokenFile(path).current() == "s3cret-token"


# -- a rewrite that keeps size and mtime --------------------------------------------------


def test_a_rewrite_that_restores_size_and_mtime_is_seen(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "metrics.json")
    with open(path, "w") as f:
        json.dump({"total_cost": 3.242535}, f)
    cache = FileCache(parse_metrics)
    assert cache.read(path).value is not None
    assert cache.read(path).value.total_cost == 3.242535  # type: ignore[union-attr]
    before = os.stat(path)
    time.sleep(0.01)  # ctime has nanoseconds here; a new write moves it
    with open(path, "r+") as f:
        f.write(json.dumps({"total_cost": 3.242536}))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert cache.read(path).value.total_cost == 3.242536  # type: ignore[union-attr]


def test_a_log_rewritten_with_its_old_size_and_mtime_is_indexed_again(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "progress.txt")
    with open(path, "w") as f:
        f.write(entry("aaaa") + entry("bbbb"))
    log = ProgressLog(path)
    first = log.refresh()
    before = os.stat(path)
    time.sleep(0.01)
    with open(path, "r+") as f:
        f.write(entry("cccc"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = log.refresh()
    assert again.generation != first.generation
    assert "US-001 - cccc" in log.entries(0, 1)[0].lines[0]


def test_a_log_rewritten_with_its_old_size_and_mtime_changes_the_snapshot_key(tmp_path: Any) -> None:
    # Equal keys tell the daemon nothing changed (no diff, no log_reset, cached answers kept).
    path = os.path.join(str(tmp_path), "progress.txt")
    with open(path, "w") as f:
        f.write(entry("aaaa") + entry("bbbb"))
    project = Project(str(tmp_path), layout="claude-loop")
    first = project.snapshot()
    before = os.stat(path)
    time.sleep(0.01)  # ctime has nanoseconds here; a new write moves it
    with open(path, "r+") as f:
        f.write(entry("cccc"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = project.snapshot()
    same = ("inode", "size", "total", "mtime")
    assert [getattr(again.log, name) for name in same] == [getattr(first.log, name) for name in same]
    assert again.key() != first.key()


# -- log_reset ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncate", "replace", "edit"])
def test_a_log_truncated_replaced_or_edited_is_one_reset_then_its_entries(root: str, how: str) -> None:
    path = os.path.join(root, "progress.txt")
    for i in range(15):
        append_progress(root, entry(f"old {i:02d}"))
    project = Project(root)
    clock = Clock()
    before = observe(project.snapshot(), clock.seconds(), 600.0)
    if how == "truncate":
        with open(path, "w") as f:  # printf '### Iteration: X\nA\n' > progress.txt
            f.write("### Iteration: X\nA\n")
        expected_total = 1
    elif how == "replace":
        with open(path + ".new", "w") as f:
            f.write(entry("new 0") + entry("new 1"))
        os.replace(path + ".new", path)
        expected_total = 2
    else:
        with open(path) as f:
            text = f.read()
        time.sleep(0.01)
        with open(path, "w") as f:  # an old entry edited in place, same length
            f.write(text.replace("old 03", "OLD 03"))
        expected_total = 15
    after = observe(project.snapshot(), clock.seconds(), 600.0)
    changes = [c for c in diff(before, after) if isinstance(c, (LogRewritten, LogAppended))]
    assert changes == [LogRewritten(expected_total), LogAppended(0)]


def test_appending_is_not_a_reset(root: str) -> None:
    append_progress(root, entry("one"))
    project = Project(root)
    before = observe(project.snapshot(), 0.0, 600.0)
    append_progress(root, entry("two"))
    after = observe(project.snapshot(), 0.0, 600.0)
    assert [c for c in diff(before, after) if isinstance(c, (LogRewritten, LogAppended))] == [LogAppended(1)]


# -- through the daemon ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_write_through_a_file_kept_open_is_seen_at_once(
    daemon_factory: DaemonFactory, root: str
) -> None:
    append_progress(root, entry("first"))
    daemon = await daemon_factory(root, **INOTIFY_ONLY)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    polls_before = daemon.dashboard.watcher.polls
    handle = open(os.path.join(root, "progress.txt"), "ab")
    try:
        for i in range(50):  # a burst of flushes, never a close
            handle.write(entry(f"held open {i}").encode())
            handle.flush()
        started = time.monotonic()
        while True:
            message = await stream.next_of_type("log_appended", timeout=3)
            if message.data["data"]["index"] == 50:
                break
        assert time.monotonic() - started < 3
    finally:
        handle.close()
    # Fifty writes, coalesced: a handful of polls, not fifty.
    assert daemon.dashboard.watcher.polls - polls_before < 10
    body = (await daemon.get("/api/logs", params={"offset": "50", "limit": "1"})).json()
    assert body["total"] == 51 and "held open 49" in body["logs"][0]["lines"][0]
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_truncated_log_sends_one_log_reset_on_the_stream(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon, stream = await streaming_over_entries(daemon_factory, root, 15)
    with open(os.path.join(root, "progress.txt"), "w") as f:
        f.write("### Iteration: X\nA\n")
    reset = await stream.next_of_type("log_reset")
    assert reset.data["data"] == {"total": 1}
    appended = await stream.next_of_type("log_appended")
    assert appended.data["data"] == {"timestamp": "X", "lines": ["A"], "index": 0}
    assert [m.type for m in stream.pending_events()].count("log_reset") == 0
    assert (await daemon.get("/api/logs")).json()["total"] == 1
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_log_edited_in_place_at_the_same_length_is_served_as_edited(
    daemon_factory: DaemonFactory, root: str
) -> None:
    # The same inode, size and entry count as the page read before the edit: only
    # the text differs, and an answer kept from before must not be served again.
    daemon, stream = await streaming_over_entries(daemon_factory, root, 3)
    before = (await daemon.get("/api/logs")).json()
    assert "US-001 - old 1" in before["logs"][1]["lines"][0]
    path = os.path.join(root, "progress.txt")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("old 1", "OLD 1"))
    assert (await stream.next_of_type("log_reset")).data["data"] == {"total": 3}
    appended = [(await stream.next_of_type("log_appended")).data["data"] for _ in range(3)]
    assert "US-001 - OLD 1" in appended[1]["lines"][0]
    after = (await daemon.get("/api/logs")).json()
    assert after["total"] == before["total"] == 3
    assert "US-001 - OLD 1" in after["logs"][1]["lines"][0]
    assert after["logs"] == [{k: v for k, v in e.items() if k != "index"} for e in appended]
    stream.close()


@pytest_twisted.ensureDeferred
async def test_every_json_answer_names_the_event_it_is_as_new_as(
    daemon_factory: DaemonFactory, root: str
) -> None:
    daemon = await daemon_factory(root, **INOTIFY_ONLY)
    hub = daemon.dashboard.hub
    for path in ("/api/status", "/api/stories", "/api/logs", "/api/history", "/api/runs", "/api/metrics"):
        answer = await daemon.get(path)
        assert answer.header(EVENT_ID_HEADER.decode()) == hub.last_id, path
    before = hub.last_id
    hub.publish("status_update", {})
    assert (await daemon.get("/api/status")).header(EVENT_ID_HEADER.decode()) == hub.last_id != before

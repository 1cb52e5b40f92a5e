"""The incremental byte-offset index of progress.txt, on real files."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopdash.cli.sample import append_progress, progress_entry, write_in_place
from loopdash.loop.models import LogEntry
from loopdash.loop.parsing import parse_log_entries
from loopdash.loop.progress import ProgressLog

PREAMBLE = "# claude-loop progress\n\nProject: claude-loop-p2-features\n\n"


def entry(n: int, status: str = "Complete") -> str:
    return progress_entry(
        f"2026-01-24 10:{n:02d} AM", f"US-{n:03d}", f"Story {n}", status, [f"Did thing {n}", "Ran the tests"]
    )


def complete_lines(data: bytes) -> bytes:
    """What a reader may index: the file up to its last newline."""
    return data[: data.rfind(b"\n") + 1]


def expected_entries(path: str) -> list[LogEntry]:
    with open(path, "rb") as f:
        data = f.read()
    return parse_log_entries(complete_lines(data).decode("utf-8", errors="replace"))


def all_entries(log: ProgressLog) -> list[LogEntry]:
    return log.entries(0, log.total)


def each_entry(log: ProgressLog) -> list[LogEntry]:
    """Every entry read as a page of its own: each header offset looked up on its own."""
    return [e for i in range(log.total) for e in log.entries(i, i + 1)]


def write_raw(path: str, mode: str, data: bytes) -> None:
    with open(path, mode) as f:
        f.write(data)


@pytest.fixture
def path(tmp_path: Any) -> str:
    return os.path.join(str(tmp_path), "progress.txt")


def test_missing_file_has_no_entries(path: str) -> None:
    log = ProgressLog(path)
    state = log.refresh()
    assert (state.total, state.size, state.inode, state.mtime) == (0, 0, None, None)
    assert log.entries(0, 100) == []


def test_preamble_before_the_first_header_is_not_an_entry(path: str) -> None:
    write_in_place(path, PREAMBLE)
    log = ProgressLog(path)
    assert log.refresh().total == 0
    append_progress(os.path.dirname(path), entry(1))
    assert log.refresh().total == 1
    (only,) = all_entries(log)
    assert only.timestamp == "2026-01-24 10:01 AM"
    assert only.lines[0] == "**Story**: US-001 - Story 1"
    assert not any("claude-loop progress" in line for line in only.lines)


def test_separators_and_trailing_blank_lines_are_dropped(path: str) -> None:
    write_in_place(path, PREAMBLE + entry(1) + entry(2))
    log = ProgressLog(path)
    log.refresh()
    for e in all_entries(log):
        assert e.lines[-1] == "- Ran the tests"
        assert "---" not in e.lines


def test_appends_are_indexed_one_by_one(path: str) -> None:
    root = os.path.dirname(path)
    write_in_place(path, PREAMBLE)
    log = ProgressLog(path)
    for n in range(1, 8):
        append_progress(root, entry(n))
        state = log.refresh()
        assert state.total == n
        assert state.size == os.path.getsize(path)
        assert all_entries(log) == expected_entries(path)
    assert [e.timestamp for e in log.entries(5, 7)] == ["2026-01-24 10:06 AM", "2026-01-24 10:07 AM"]


def test_header_written_in_two_parts_counts_once_whole(path: str) -> None:
    write_in_place(path, PREAMBLE + entry(1))
    log = ProgressLog(path)
    assert log.refresh().total == 1
    before = all_entries(log)
    write_raw(path, "ab", b"### Itera")
    assert log.refresh().total == 1
    # Half a header is not a line of the previous entry either.
    assert all_entries(log) == before
    write_raw(path, "ab", b"tion: 2026-01-24 10:02 AM\n**Story**: US-002 - Story 2\n")
    assert log.refresh().total == 2
    assert log.entries(1, 2) == [LogEntry("2026-01-24 10:02 AM", ("**Story**: US-002 - Story 2",))]


def test_header_timestamp_split_mid_line_is_read_whole(path: str) -> None:
    write_in_place(path, PREAMBLE)
    log = ProgressLog(path)
    write_raw(path, "ab", b"### Iteration: 2026-01-")
    assert log.refresh().total == 0
    write_raw(path, "ab", b"24 10:20 AM\n")
    assert log.refresh().total == 1
    assert all_entries(log)[0].timestamp == "2026-01-24 10:20 AM"


def test_unfinished_body_line_is_not_served_until_whole(path: str) -> None:
    write_in_place(path, entry(1))
    log = ProgressLog(path)
    log.refresh()
    write_raw(path, "ab", b"### Iteration: t\n- Added `log_pro")
    log.refresh()
    assert log.entries(1, 2) == [LogEntry("t", ())]
    write_raw(path, "ab", b"vider_usage()`\n")
    log.refresh()
    assert log.entries(1, 2) == [LogEntry("t", ("- Added `log_provider_usage()`",))]


def test_truncation_reindexes_from_the_start(path: str) -> None:
    write_in_place(path, PREAMBLE + entry(1) + entry(2) + entry(3))
    log = ProgressLog(path)
    assert log.refresh().total == 3
    write_in_place(path, "")
    assert log.refresh().total == 0
    assert log.entries(0, 10) == []
    write_in_place(path, entry(9))
    assert log.refresh().total == 1
    assert all_entries(log) == expected_entries(path)


def test_replaced_file_with_a_new_inode_is_reindexed(path: str) -> None:
    write_in_place(path, PREAMBLE + entry(1) + entry(2))
    log = ProgressLog(path)
    log.refresh()
    # Same size, other content, atomically renamed over the old file.
    other = path + ".new"
    content = (PREAMBLE + entry(1) + entry(2)).replace("Did thing", "Made item")
    write_in_place(other, content)
    old_inode = os.stat(path).st_ino
    os.replace(other, path)
    assert os.stat(path).st_ino != old_inode
    state = log.refresh()
    assert state.inode == os.stat(path).st_ino
    assert all_entries(log) == expected_entries(path)
    assert all_entries(log)[0].lines[-2] == "- Made item 1"


def test_rewritten_in_place_larger_with_headers_elsewhere_is_reindexed(path: str) -> None:
    # Old file: headers at 0 and at N. New file, same inode, larger: headers at
    # 0, somewhere before N, and at N again, so the last known header still looks intact.
    first = "### Iteration: A\n" + "a" * 40 + "\n"
    second = "### Iteration: B\nb\n"
    write_in_place(path, first + second)
    log = ProgressLog(path)
    assert log.refresh().total == 2
    n = len(first)
    new_first = "### Iteration: X\nx\n"
    new_second = "### Iteration: Y\n" + "y" * (n - len(new_first) - len("### Iteration: Y\n") - 1) + "\n"
    assert len(new_first + new_second) == n
    new = new_first + new_second + "### Iteration: Z\nz\n" + entry(4)
    write_in_place(path, new)
    state = log.refresh()
    assert [e.timestamp for e in all_entries(log)] == ["X", "Y", "Z", "2026-01-24 10:04 AM"]
    assert state.total == 4
    assert all_entries(log) == expected_entries(path)


def test_rewritten_in_place_same_size_other_content_is_reindexed(path: str) -> None:
    write_in_place(path, "### Iteration: A\nxxxxxxxxxxxx\n### Iteration: B\nb\n")
    log = ProgressLog(path)
    log.refresh()
    st = os.stat(path)
    write_in_place(path, "### Iteration: C\nc\n### Iteration: D\ndddddddddddd\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert os.path.getsize(path) == st.st_size
    log.refresh()
    assert [e.timestamp for e in all_entries(log)] == ["C", "D"]


def test_pages_at_the_edges(path: str) -> None:
    write_in_place(path, PREAMBLE + "".join(entry(n) for n in range(1, 6)))
    log = ProgressLog(path)
    log.refresh()
    whole = all_entries(log)
    assert len(whole) == 5
    assert log.entries(0, 0) == []  # limit 0
    assert log.entries(5, 105) == []  # offset == total
    assert log.entries(99, 199) == []  # offset past the end
    assert log.entries(4, 104) == whole[4:]  # the last page is short
    assert log.entries(-3, 2) == whole[:2]
    assert log.entries(3, 2) == []
    assert log.entries(1, 3) == whole[1:3]


def test_file_that_becomes_a_directory_has_no_entries(path: str) -> None:
    write_in_place(path, entry(1))
    log = ProgressLog(path)
    assert log.refresh().total == 1
    os.remove(path)
    os.mkdir(path)
    assert log.refresh().total == 0
    assert log.entries(0, 10) == []


def test_crlf_and_non_utf8_bytes_do_not_break_the_index(path: str) -> None:
    write_raw(
        path, "wb", b"pre\r\n### Iteration: one\r\n\xff\xfe bad bytes\r\n---\r\n### Iteration: two\r\nok\r\n"
    )
    log = ProgressLog(path)
    assert log.refresh().total == 2
    one, two = all_entries(log)
    assert one == LogEntry("one", ("\ufffd\ufffd bad bytes",))
    assert two == LogEntry("two", ("ok",))


@pytest.mark.parametrize("chunk_size", [15, 16, 17, 32, 1 << 20])
def test_small_chunks_and_a_line_longer_than_a_chunk(path: str, chunk_size: int) -> None:
    long_line = "- " + "z" * 100
    content = (
        PREAMBLE
        + entry(1)
        + f"### Iteration: long\n{long_line}\n"
        + entry(2)
        + "### Iteration: "
        + "t" * 80
        + "\n"
    )
    write_in_place(path, content)
    log = ProgressLog(path, chunk_size=chunk_size)
    log.refresh()
    assert all_entries(log) == expected_entries(path)
    assert log.total == 4


def test_every_page_of_a_many_block_log_equals_a_fresh_parse(path: str) -> None:
    # 60 entries over blocks of 64 bytes, some with no header, a cache of 3 blocks.
    write_in_place(path, PREAMBLE + "".join(entry(n) for n in range(60)))
    log = ProgressLog(path, chunk_size=64, cached_blocks=3)
    log.refresh()
    expected = expected_entries(path)
    assert log.total == 60 and log.blocks > 20
    for start in range(0, 61, 7):
        for stop in range(start, 61, 5):
            assert log.entries(start, stop) == expected[start:stop]
    assert each_entry(log) == expected
    assert log.entries(55, 1000) == expected[55:]


def test_appends_extend_the_last_block_instead_of_adding_one_each(path: str) -> None:
    write_in_place(path, PREAMBLE)
    log = ProgressLog(path, chunk_size=4096)
    log.refresh()
    for n in range(200):
        append_progress(os.path.dirname(path), entry(n))
        log.refresh()
        assert log.entries(n, n + 1) == expected_entries(path)[n : n + 1]
    size = os.path.getsize(path)
    assert log.total == 200
    # One block per chunk (filled by appends), not one per append.
    assert log.blocks <= size // 4096 + 2
    assert each_entry(log) == expected_entries(path)


def test_a_file_rewritten_after_the_refresh_gives_no_false_entries(path: str) -> None:
    write_in_place(path, PREAMBLE + "".join(entry(n) for n in range(10)))
    log = ProgressLog(path, chunk_size=64, cached_blocks=1)
    log.refresh()
    assert log.entries(0, 1) == expected_entries(path)[:1]
    # The same size, headers elsewhere, and no refresh yet: a page says less, not something false.
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data.replace(b"### Iteration:", b"#- Iteration:"))
    assert expected_entries(path) == []
    for start in range(10):
        assert log.entries(start, 10) == []
    log.refresh()
    assert log.total == 0 and all_entries(log) == []


@pytest.mark.parametrize("chunk_size", range(15, 64))  # chunks hold at least a header
def test_header_text_inside_a_line_is_not_a_header_at_a_chunk_boundary(path: str, chunk_size: int) -> None:
    # Long lines quoting the header text, shifted byte by byte: some chunk begins
    # right at a quote (mid-line), which must not count as an entry, neither when
    # the block is counted nor when its offsets are found for a page.
    for pad in range(22):
        quoting = "-" + " " * pad + "### Iteration: quoted " * 8
        # A bare header right after each: the block that ends a long line holds it.
        write_in_place(path, PREAMBLE + entry(1) + quoting + "\n### Iteration:\n" + quoting + "\n" + entry(3))
        log = ProgressLog(path, chunk_size=chunk_size, cached_blocks=1)
        log.refresh()
        assert log.total == 3
        assert each_entry(log) == expected_entries(path) == all_entries(log)


# -- Hypothesis: built over many appends == parsed whole ------------------------------

LINES = st.sampled_from(
    [
        "### Iteration: 2026-01-24 10:20 AM",
        "### Iteration: 2026-01-13 14:40:00",
        "### Iteration:",
        "**Story**: US-001 - Always log tokens",
        "**Status**: Complete",
        "- café ✓",
        "---",
        "",
        "### Iter",
        "  ### Iteration: indented",
        "# title",
        "x\r",
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(LINES, min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    chunk_size=st.sampled_from([15, 24, 64, 1 << 20]),
)
def test_index_built_over_many_appends_equals_parsing_the_whole(
    tmp_path: Any, lines: list[str], cuts: list[int], chunk_size: int
) -> None:
    path = os.path.join(str(tmp_path), f"progress-{len(lines)}-{len(cuts)}-{chunk_size}.txt")
    data = ("\n".join(lines) + "\n").encode()
    points = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    write_raw(path, "wb", b"")
    log = ProgressLog(path, chunk_size=chunk_size, cached_blocks=2)
    written = 0
    for point in points:
        # Any split point, even inside a header or a multi-byte character.
        write_raw(path, "ab", data[written:point])
        written = point
        log.refresh()
        expected = expected_entries(path)
        assert all_entries(log) == expected
        # Pages that begin and end anywhere, through blocks found again after eviction.
        assert each_entry(log) == expected
        assert log.entries(len(expected) // 3, len(expected) // 3 + 3) == expected[len(expected) // 3 :][:3]
    assert log.total == sum(1 for line in lines if line.startswith("### Iteration:"))
    os.remove(path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["append", "rewrite", "truncate", "replace"]),
            st.lists(LINES, min_size=0, max_size=8),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_index_follows_appends_rewrites_truncations_and_replacements(
    tmp_path: Any, steps: list[tuple[str, list[str]]]
) -> None:
    path = os.path.join(str(tmp_path), "progress.txt")
    write_raw(path, "wb", b"")
    log = ProgressLog(path, chunk_size=24)
    for when, (kind, lines) in enumerate(steps):
        text = "".join(line + "\n" for line in lines).encode()
        if kind == "append":
            write_raw(path, "ab", text)
        elif kind in ("rewrite", "truncate"):
            write_raw(path, "wb", text if kind == "rewrite" else b"")
            # A rewrite is a write: its mtime moves (as it would a tick later).
            st_ = os.stat(path)
            os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + (when + 1) * 1_000_000_000))
        else:
            write_raw(path + ".new", "wb", text)
            os.replace(path + ".new", path)
        log.refresh()
        assert all_entries(log) == expected_entries(path)
        assert each_entry(log) == expected_entries(path)
    os.remove(path)

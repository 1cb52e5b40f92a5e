"""Progress logs in every shape seen in the wild, through the incremental index.

Invented text in the shapes of real logs (docs/loop-families.md): one test per
shape and per quirk, and Hypothesis for the index against a whole parse.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopdash.derive.status import log_entry_json
from loopdash.loop.logformats import BY_NAME, normalise_time, parse_header, sniff
from loopdash.loop.models import LogEntry
from loopdash.loop.progress import ProgressLog

SNARKTANK = """# Ralph Progress Log
Started: today

## Codebase Patterns
- Use the widget factory
- Tests live beside the code

---

## 2026-01-10 - US-001
- Built the skeleton
### Learnings for future iterations
- The factory hides a cache
---

## [2026-01-11] - US-002: Parser (partial)
- Half of the parser

## 2026-01-12T09:40:00+07:00 - T006, T007
**Status**: Complete
- Two tasks at once

## Codebase Patterns
- A second patterns section is not part of the entry above
"""


def read(
    tmp_path: Any, text: str | bytes, whole_file: bool = True, chunk_size: int = 256 << 10
) -> ProgressLog:
    path = os.path.join(str(tmp_path), "progress.txt")
    with open(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    log = ProgressLog(path, chunk_size=chunk_size, whole_file=whole_file)
    log.refresh()
    return log


def entries(log: ProgressLog) -> list[LogEntry]:
    return log.entries(0, log.total)


def test_snarktank_dated_headers_skip_patterns_and_keep_subsections(tmp_path: Any) -> None:
    log = read(tmp_path, SNARKTANK)
    assert log.state.format == "dated-headers"
    first, second, third = entries(log)
    assert first.timestamp == "2026-01-10"
    assert first.lines == (
        "- Built the skeleton",
        "### Learnings for future iterations",
        "- The factory hides a cache",
    )
    assert first.details is not None and first.details.story_ids == ("US-001",)
    assert second.details is not None
    assert (second.timestamp, second.details.title, second.details.status) == (
        "2026-01-11",
        "Parser",
        "partial",
    )
    assert third.details is not None and third.details.story_ids == ("T006", "T007")
    assert third.details.status == "complete"
    assert third.details.time == "2026-01-12T02:40:00Z"
    assert third.lines[-1] == "- Two tasks at once"  # the second Codebase Patterns is cut off


def test_entry_json_adds_time_story_ids_title_status(tmp_path: Any) -> None:
    (first, *_) = entries(read(tmp_path, SNARKTANK))
    assert log_entry_json(first) == {
        "timestamp": "2026-01-10",
        "lines": list(first.lines),
        "time": "2026-01-10",
        "story_ids": ["US-001"],
        "title": None,
        "status": None,
    }


def test_claude_loop_entries_keep_the_contract_shape(tmp_path: Any) -> None:
    log = read(
        tmp_path, "# progress\n\n### Iteration: 2026-01-24 10:20 AM\n**Status**: Complete\n", whole_file=False
    )
    (only,) = entries(log)
    assert log.state.format == "claude-loop"
    assert log_entry_json(only) == {"timestamp": "2026-01-24 10:20 AM", "lines": ["**Status**: Complete"]}


def test_numbered_iteration_headers_with_time_story_and_status(tmp_path: Any) -> None:
    text = "## Iteration History\n\n### Iteration 1: 2026-01-20 09:00 - US-006 Provider Glue (Partial)\n#### Done\n- a\n"
    (only,) = entries(read(tmp_path, text))
    assert only.details is not None
    assert (only.timestamp, only.details.story_ids, only.details.title, only.details.status) == (
        "2026-01-20 09:00",
        ("US-006",),
        "Provider Glue",
        "partial",
    )
    assert only.lines == ("#### Done", "- a")


@pytest.mark.parametrize(
    ("header", "timestamp", "ids", "title"),
    [
        ("## 2026-01-14: Initial package setup", "2026-01-14", (), "Initial package setup"),
        ("## [2026-01-16 15:59] - UT-003: Detail view", "2026-01-16 15:59", ("UT-003",), "Detail view"),
        ("## 2026-06-29T14:31:30Z - SEAM-001", "2026-06-29T14:31:30Z", ("SEAM-001",), None),
        ("### 2026-01-24 10:20 AM - US-4: Title", "2026-01-24 10:20 AM", ("US-4",), "Title"),
        ("## Ticket #12: Fix login", "", (), "Fix login"),
        ("## Iteration 3 - US-9: Thing", "", ("US-9",), "Thing"),
    ],
)
def test_header_shapes(
    tmp_path: Any, header: str, timestamp: str, ids: tuple[str, ...], title: str | None
) -> None:
    (only,) = entries(read(tmp_path, f"# Log\n\n{header}\n- body\n"))
    assert only.details is not None
    assert (only.timestamp, only.details.story_ids, only.details.title) == (timestamp, ids, title)
    assert only.lines == ("- body",)


def test_twelve_hour_time_is_normalised() -> None:
    assert normalise_time("2026-01-24 10:20 PM") == "2026-01-24T22:20:00"
    assert normalise_time("20260119T115317Z") == "2026-01-19T11:53:17Z"
    assert normalise_time("sometime") is None


def test_status_word_in_capitals_at_the_end() -> None:
    _, details = parse_header("2026-02-01 - US-7: Wire it - COMPLETE")
    assert (details.title, details.status) == ("Wire it", "complete")


def test_headerless_lines_with_timestamps(tmp_path: Any) -> None:
    text = (
        "- [20260119T115317Z] iter 48 mode=prd status=CONTINUE story=S12\n"
        "[2026-01-19T11:53:25Z] BLOCKED task 12 after 3 attempts\n"
        "  continued detail\n"
        "2026-01-14: plain dated line\n"
    )
    log = read(tmp_path, text)
    assert log.state.format == "dated-lines"
    one, two, three = entries(log)
    assert one.details is not None and (one.details.story_ids, one.details.status) == (("S12",), "continue")
    assert two.timestamp == "2026-01-19T11:53:25Z"
    assert two.lines == ("BLOCKED task 12 after 3 attempts", "  continued detail")
    assert two.details is not None and two.details.status == "blocked"
    assert (three.timestamp, three.lines) == ("2026-01-14", ("plain dated line",))


def test_a_log_with_no_entry_shape_is_one_entry(tmp_path: Any) -> None:
    log = read(tmp_path, "=== Progress ===\n--- Section ---\nDid things.\n")
    assert log.state.format == "whole-file"
    (only,) = entries(log)
    assert only.lines == ("=== Progress ===", "--- Section ---", "Did things.")


def test_claude_loop_preamble_alone_is_still_no_entry(tmp_path: Any) -> None:
    assert read(tmp_path, "# claude-loop progress\n\nProject: x\n", whole_file=False).total == 0


def test_state_document_sections_are_one_entry(tmp_path: Any) -> None:
    log = read(tmp_path, "# Progress\n## Current State\n- phase 2\n## Iteration History\n- 1 done\n")
    assert (log.state.format, log.total) == ("whole-file", 1)


def test_empty_and_blank_logs_have_no_entry(tmp_path: Any) -> None:
    assert read(tmp_path, "").total == 0
    assert read(tmp_path, "\n  \n").total == 0


def test_crlf_bom_no_final_newline_and_non_latin_text(tmp_path: Any) -> None:
    text = "\ufeff## 2026-02-02 - US-001\r\n- 完成了安装\r\n## 2026-02-03 - US-002\n- تم الإصلاح\n## 2026-02-04 - US-003\n- half"
    log = read(tmp_path, text)
    one, two, three = entries(log)
    assert one.lines == ("- 完成了安装",) and one.timestamp == "2026-02-02"
    assert two.lines == ("- تم الإصلاح",)
    assert three.lines == ()  # the unfinished last line is not served yet


def test_a_log_grows_from_nothing_to_lines_to_headers(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "progress.txt")
    log = ProgressLog(path, whole_file=True)
    with open(path, "w") as f:
        f.write("notes\n")
    assert (log.refresh().format, log.total) == ("whole-file", 1)
    with open(path, "a") as f:
        f.write("2026-01-14: first dated line\n")
    assert (log.refresh().format, log.total) == ("dated-lines", 1)
    with open(path, "a") as f:
        f.write("## 2026-01-15 - US-1\n- body\n")
    state = log.refresh()
    assert (state.format, state.total) == ("dated-headers", 1)
    assert entries(log)[0].lines == ("- body",)


def test_appends_read_only_their_own_bytes(tmp_path: Any) -> None:
    log = read(tmp_path, SNARKTANK * 50, chunk_size=4096)
    before = log.total
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        reads.append(n)
        return real_pread(fd, n, offset)

    with open(log.path, "a") as f:
        f.write("## 2026-03-01 - US-099\n- appended\n")
    os.pread = counting_pread  # type: ignore[assignment]
    try:
        log.refresh()
    finally:
        os.pread = real_pread  # type: ignore[assignment]
    assert log.total == before + 1
    # The new bytes, plus the fixed-size head/tail/last-header samples: never the file.
    assert sum(reads) < 4 * 4096 + 64 + 512
    assert entries(log)[-1].lines == ("- appended",)


def test_sniff_prefers_claude_loop_over_dated_headers() -> None:
    data = b"## 2026-01-01 - US-1\n### Iteration: now\n"
    assert sniff(data, True) is BY_NAME["claude-loop"]


LINES = st.sampled_from(
    [
        "## 2026-01-10 - US-001",
        "### [2026-01-11 10:00] - T1, T2: x (partial)",
        "## Codebase Patterns",
        "### Learnings",
        "- [20260119T115317Z] iter 1 status=OK",
        "2026-01-14: dated line",
        "text",
        "",
        "---",
        "\ufeff## 2026-01-12 - US-3",
        "  ## 2026-01-13 indented",
        "é\r",
        "## Iteration 2: 2026-01-20 09:00 - US-6",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(LINES, min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=1500), max_size=8),
    chunk_size=st.sampled_from([16, 40, 128, 1 << 20]),
)
def test_index_over_appends_equals_a_whole_parse_in_every_shape(
    tmp_path: Any, lines: list[str], cuts: list[int], chunk_size: int
) -> None:
    path = os.path.join(str(tmp_path), f"log-{len(lines)}-{len(cuts)}-{chunk_size}.txt")
    data = ("\n".join(lines) + "\n").encode()
    # Appends of whole lines (a line longer than a chunk is noted before it ends,
    # as claude-loop's index always did: tests/test_progress.py covers that case).
    points = sorted({data.find(b"\n", min(c, len(data) - 1)) + 1 for c in cuts} | {len(data)})
    open(path, "wb").close()
    log = ProgressLog(path, chunk_size=chunk_size, cached_blocks=2, whole_file=True)
    written = 0
    for point in points:
        with open(path, "ab") as f:
            f.write(data[written:point])
        written = point
        state = log.refresh()
        whole = data[: data.rfind(b"\n", 0, point) + 1]
        fmt = sniff(whole, True)
        expected = (
            []
            if fmt is None
            else fmt.parse(whole[fmt.offsets(whole, True)[0] :])
            if fmt.offsets(whole, True)
            else []
        )
        assert state.format == (fmt.name if fmt is not None else None)
        assert entries(log) == expected
        assert [e for i in range(log.total) for e in log.entries(i, i + 1)] == expected
    os.remove(path)


# The grammar of where an entry begins, spelled as plainly as regexes
# go: the formats' own patterns are written for speed, and must find the same.
_HEADER_START = (
    rb"(?:\[?\d{4}-\d{2}-\d{2}|\[?\d{8}T\d|\[?\d{1,2}:\d{2}"
    rb"|(?i:iteration[ \t]*(?:#?[ \t]*\d|:)|ticket[ \t]*#?[ \t]*\d))"
)
_LINE_START = rb"(?:[-*][ \t]+)?\[?(?:\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}|\]|:|[ \t])|\d{8}T\d{4})"
_GRAMMAR = {
    "dated-headers": re.compile(rb"(?:(?<=\n)|^(?:\xef\xbb\xbf)?)#{2,3}[ \t]+" + _HEADER_START),
    "dated-lines": re.compile(rb"(?:(?<=\n)|^(?:\xef\xbb\xbf)?)" + _LINE_START),
}
# Lines built from pieces that sit near the patterns' edges: '#' runs, bullets,
# brackets, tabs, digits one short, 12-hour and compact times, words of the
# Iteration/Ticket headers; then joined by LF or CRLF, a BOM now and then.
LEADS = st.sampled_from(
    ["", "#", "##", "###", "####", "- ", "* ", "-\t", "-", "*  ", " ", "x", "\ufeff", "é"]
)
GAPS = st.sampled_from(["", " ", "\t", "  ", " \t"])
STAMPS = st.sampled_from(
    [
        "",
        "2026-01-10",
        "[2026-01-10]",
        "2026-01-1",
        "2026-01-10T9:05",
        "2026-01-10T09:0",
        "2026-01-10 10:20 AM",
        "2026-01-14:",
        "2026-01-10\t",
        "[2026-01-16 15:59]",
        "20260119T115317Z",
        "[20260119T1153",
        "20260119T115",
        "2026011T1153",
        "10:20",
        "9:05",
        "1:2",
        "Iteration",
        "iteration #3",
        "Iteration:",
        "ITERATION\t7",
        "Ticket #12",
        "ticket12",
        "Ticket #",
        "[",
        "]",
        "T",
        "US-001",
    ]
)
TAILS = st.sampled_from(["", " - US-1: title", "x", "]", ":", " ", "é"])
LINE = st.tuples(LEADS, GAPS, STAMPS, TAILS).map("".join)


@settings(max_examples=500, deadline=None)
@given(
    lines=st.lists(LINE, max_size=12),
    crlf=st.booleans(),
    first=st.booleans(),
    cut=st.integers(min_value=0, max_value=300),
)
def test_entry_patterns_find_what_the_grammar_finds(
    lines: list[str], crlf: bool, first: bool, cut: int
) -> None:
    data = ("\r\n" if crlf else "\n").join(lines).encode()
    for name, grammar in _GRAMMAR.items():
        fmt = BY_NAME[name]
        # At 0 a BOM may stand before a header only when the bytes begin the file.
        expected = [
            m.start()
            for m in grammar.finditer(data)
            if m.start() > 0 or first or not data.startswith(b"\xef\xbb\xbf")
        ]
        assert fmt.offsets(data, first) == expected, name
        # Counting the complete lines up to ``end`` (the index's use) agrees with them.
        end = data.rfind(b"\n", 0, min(cut, len(data))) + 1
        if end:
            below = [offset for offset in expected if data.rfind(b"\n", offset, end) != -1]
            assert fmt.count(data, end, first) == (len(below), below[-1] if below else -1), name


def _cut_at_section_line_by_line(body: list[str], level: int) -> list[str]:
    """The rule for where an entry's body ends, as it was first written (a loop
    over lines): the reference the one-regex version is held to."""
    fenced = False
    for index, line in enumerate(body):
        first = line[:1]
        if first not in "#`~ \t" or not first:
            continue
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = None if fenced or first != "#" else re.match(r"^(#{1,6})[ \t]", line)
        if match and len(match.group(1)) <= level:
            return body[:index]
    return body


BODY_LINES = st.tuples(
    st.sampled_from(["", " ", "\t", "  ", " \u00a0", "\u00a0", "#", "##", "###", "####", "#######", "x"]),
    st.sampled_from(["", " ", "\t", "```", "~~~", "``", "`", "~~", "```py", "Codebase Patterns", "é", "\r"]),
).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(BODY_LINES, max_size=14), level=st.integers(min_value=2, max_value=3), crlf=st.booleans()
)
def test_an_entry_body_ends_where_the_line_rule_ends_it(lines: list[str], level: int, crlf: bool) -> None:
    header = "#" * level + " 2026-01-10 - US-1"
    text = (("\r\n" if crlf else "\n").join([header, *lines]) + "\n").encode()
    (entry,) = BY_NAME["dated-headers"].parse(text)
    body = [line.rstrip("\r") for line in text.decode().split("\n")][1:]
    expected = _cut_at_section_line_by_line(body, level)
    while expected and (not expected[-1].strip() or expected[-1].strip() == "---"):
        expected.pop()
    assert list(entry.lines) == expected

"""The shapes progress logs take, each as one rule for where an entry begins.

A format says three things, all over bytes so that the incremental index
(:mod:`.progress`) and the parser can never disagree: how many entry headers a
run of complete lines holds (``count``), where they are (``offsets``), and the
entries of bytes that begin at a header (``parse``). The shapes, from the
corpus of real logs in shared/realdata (see docs/loop-families.md):

- ``claude-loop``: ``### Iteration: <timestamp>`` headers, answered exactly as
  the contract shows (timestamp and lines, nothing more);
- ``dated-headers``: level-2 or level-3 Markdown headers that begin with a date
  or time (``2026-01-10``, ``[2026-03-04]``, ``2026-01-16T09:40:00+07:00``,
  ``2026-01-24 10:20 AM``), or with ``Iteration``/``Ticket #N`` (the snarktank
  ralph family and its descendants);
- ``dated-lines``: no Markdown headers; an entry begins at each line that starts
  with a timestamp (``[2026-01-19T11:53:17Z] ...``, ``- [20260119T115317Z] ...``,
  ``2026-01-14: ...``);
- ``whole-file``: a non-empty log with none of these is one entry, so nothing
  written is invisible.

:func:`sniff` picks the format from the bytes read so far; a log only ever moves
up that list (``whole-file`` to ``dated-lines`` to a header format) as it grows.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from loopdash.loop.models import EntryDetails, LogEntry
from loopdash.loop.parsing import LOG_HEADER_BYTES, parse_log_entries

_BOM = b"\xef\xbb\xbf"
_CLAUDE_NEEDLE = b"\n" + LOG_HEADER_BYTES

#: What may begin a dated header, after the ``## `` or ``### ``:
#: ``\[?\d{4}-\d{2}-\d{2}|\[?\d{8}T\d|\[?\d{1,2}:\d{2}|(?i:iteration[ \t]*(?:#?[ \t]*\d|:)|ticket[ \t]*#?[ \t]*\d)``,
#: written out so that the regex engine tries less at each ``##`` line that is
#: not one (a ``### Learnings`` subsection): the three digit shapes share their
#: first digit, every branch begins with the one byte it needs (so a header
#: that begins with none of them fails at its first byte, not in each branch),
#: and the runs of blanks are possessive (no blank may follow them, so giving
#: one back could never match). About half the work per ``##`` line; only
#: whether a header matches counts, so the two spellings agree.
_HEADER_DIGITS = rb"\d(?:\d\d\d(?:-\d\d-\d\d|\d\d\d\dT\d)|\d?+:\d\d)"
_HEADER_START = (
    rb"(?:\["
    + _HEADER_DIGITS
    + rb"|"
    + _HEADER_DIGITS
    + rb"|[iI](?i:teration[ \t]*+(?:#?[ \t]*+\d|:))|[tT](?i:icket[ \t]*+#?+[ \t]*+\d))"
)
#: A dated header anywhere but at the very start of the bytes (after its newline).
# ``\n##`` is a literal prefix: the regex engine skips from one to the next in
# C and tries the rest only there, not after every newline as
# ``\n(?=#{2,3}[ \t]+...)`` did (twice as fast on a 50 MB log). The header's
# start is consumed, not looked ahead at (a lookahead costs the engine a nested
# context per try), and the empty group makes ``findall`` give an empty bytes
# per match, not a new object: counting is what these patterns are for. The
# header's start holds no newline, so consuming it never hides the next one.
_DATED_PREFIX = b"\n##"
_DATED_AFTER_NEWLINE = re.compile(re.escape(_DATED_PREFIX) + rb"()#?+[ \t]++" + _HEADER_START)
_DATED_AT_START = re.compile(rb"#{2,3}[ \t]+" + _HEADER_START)
#: A line that begins with a timestamp, for logs without Markdown headers:
#: ``(?:[-*][ \t]+)?\[?(?:\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}|\]|:|[ \t])|\d{8}T\d{4})``,
#: written out so that the regex engine does less per line: each run of digits
#: one possessive repeat (one step of the engine where ``\d\d\d\d`` is four;
#: the counts are fixed but for ``{1,2}``, which only a ``:`` may follow, so
#: there is never a digit to give back), the two ``[T ]`` branches folded (a
#: space alone already matches), and one branch per first byte (``[``, a digit,
#: a bullet), so that a line that begins with none fails at its first byte and a
#: dated one takes no optional step. Only whether a line matches counts, so the
#: two spellings agree (tests/test_log_shapes.py holds the plain one). Consumed
#: after an empty group, as for dated headers (no newline in it).
_DATE = rb"[0-9]{4}+(?:-[0-9]{2}+-[0-9]{2}+(?:[\]: \t]|T[0-9]{1,2}+:[0-9]{2}+)|[0-9]{4}+T[0-9]{4}+)"
_LINE_START = rb"(?:\[" + _DATE + rb"|" + _DATE + rb"|[-*][ \t]++\[?" + _DATE + rb")"
_LINES_AFTER_NEWLINE = re.compile(rb"\n()" + _LINE_START)
_LINES_AT_START = re.compile(_LINE_START)


@dataclass(frozen=True)
class LogFormat(ABC):
    """One rule for where entries begin; ``rank`` orders formats for :func:`sniff`.

    Every method takes bytes that begin at the start of a line; ``first`` says
    they begin the file (where a UTF-8 BOM may stand before a header, and where
    the one entry of a ``whole-file`` log begins).
    """

    name: str
    rank: int

    @abstractmethod
    def offsets(self, data: bytes, first: bool) -> list[int]:
        """Where the headers in ``data`` begin, in order."""

    def count(self, data: bytes, end: int, first: bool) -> tuple[int, int]:
        """Headers in ``data[:end]`` and the offset of the last one (-1 if none)."""
        offsets = self.offsets(data[:end] if end < len(data) else data, first)
        return len(offsets), (offsets[-1] if offsets else -1)

    def is_header(self, data: bytes, first: bool) -> bool:
        """Whether ``data`` begins with a header."""
        line = data.split(b"\n", 1)[0]
        return bool(line) and self.offsets(line, first)[:1] == [0]

    @abstractmethod
    def parse(self, data: bytes) -> list[LogEntry]:
        """The entries of ``data``, which begins at a header."""


class _ClaudeLoop(LogFormat):
    def count(self, data: bytes, end: int, first: bool) -> tuple[int, int]:
        # One bytes.count per chunk, in C: what keeps a 50 MB log cheap to index.
        starts = self.is_header(data, first)
        count = data.count(_CLAUDE_NEEDLE, 0, end)
        if count:
            return count + starts, data.rfind(_CLAUDE_NEEDLE, 0, end) + 1
        return int(starts), (0 if starts else -1)

    def offsets(self, data: bytes, first: bool) -> list[int]:
        found = [0] if self.is_header(data, first) else []
        index = data.find(_CLAUDE_NEEDLE)
        while index != -1:
            found.append(index + 1)
            index = data.find(_CLAUDE_NEEDLE, index + 1)
        return found

    def is_header(self, data: bytes, first: bool) -> bool:
        # At the file's first byte an editor's BOM may stand before the header
        # (the entry then begins at 0; parsing drops the BOM).
        return data.startswith(LOG_HEADER_BYTES) or (first and data.startswith(_BOM + LOG_HEADER_BYTES))

    def parse(self, data: bytes) -> list[LogEntry]:
        return parse_log_entries(data.decode("utf-8", errors="replace"))


#: How far back from the end of a chunk the last header is looked for first.
_TAIL = 1 << 10


class _Regex(LogFormat):
    """Headers found by a pattern after a newline, plus one at the start of the bytes."""

    after_newline: re.Pattern[bytes]
    at_start: re.Pattern[bytes]

    def offsets(self, data: bytes, first: bool) -> list[int]:
        found = [m.start() + 1 for m in self.after_newline.finditer(data)]
        if self._starts(data, first):
            found.insert(0, 0)
        return found

    def count(self, data: bytes, end: int, first: bool) -> tuple[int, int]:
        # findall in C counts; match objects only near the end, for the last one.
        count = len(self.after_newline.findall(data, 0, end))
        starts = self._starts(data, first)
        if count:
            return count + starts, self._last(data, end)
        return int(starts), (0 if starts else -1)

    def _last(self, data: bytes, end: int) -> int:
        """Where the last header after a newline in ``data[:end]`` begins (there is one)."""
        last = -1
        window = _TAIL
        while last < 0:
            # Back from the end in windows 16 times wider each: a log of one-line
            # entries makes few match objects, a sparse one still ends its search.
            tail = max(end - window, 0)
            tail = max(data.rfind(b"\n", 0, tail), 0) if tail else 0
            for match in self.after_newline.finditer(data, tail, end):
                last = match.start() + 1
            if tail == 0:
                break
            window <<= 4
        return last

    def found_in(self, data: bytes, first: bool) -> bool:
        """Whether ``data`` holds at least one header (stops at the first)."""
        return self._starts(data, first) or self.after_newline.search(data) is not None

    def _starts(self, data: bytes, first: bool) -> bool:
        skip = 3 if first and data.startswith(_BOM) else 0
        return self.at_start.match(data, skip) is not None


class _DatedHeaders(_Regex):
    after_newline = _DATED_AFTER_NEWLINE
    at_start = _DATED_AT_START

    def _last(self, data: bytes, end: int) -> int:
        # Only a line that begins with '##' may be one: back from the end by
        # them (rfind, in C), not by a regex over the chunk's last kilobytes.
        candidate = data.rfind(_DATED_PREFIX, 0, end)
        while candidate >= 0:
            if self.after_newline.match(data, candidate, end):
                return candidate + 1
            candidate = data.rfind(_DATED_PREFIX, 0, candidate)
        return -1

    def parse(self, data: bytes) -> list[LogEntry]:
        entries = []
        bounds = self.offsets(data, first=True) + [len(data)]
        for begin, end in zip(bounds, bounds[1:], strict=False):
            text = data[begin:end].decode("utf-8", errors="replace")
            newline = text.find("\n")
            header = (text if newline < 0 else text[:newline]).rstrip("\r").lstrip("\ufeff")
            level = len(header) - len(header.lstrip("#"))
            body = [] if newline < 0 else _body_lines(text, newline + 1, level)
            timestamp, details = parse_header(header.lstrip("#").strip())
            status = details.status or _status_line(body)
            entries.append(LogEntry(timestamp, tuple(_trim(body)), _with_status(details, status)))
        return entries


class _DatedLines(_Regex):
    after_newline = _LINES_AFTER_NEWLINE
    at_start = _LINES_AT_START

    def parse(self, data: bytes) -> list[LogEntry]:
        entries = []
        bounds = self.offsets(data, first=True) + [len(data)]
        for begin, end in zip(bounds, bounds[1:], strict=False):
            lines = _lines(data[begin:end])
            first_line = re.sub(r"^[-*][ \t]+", "", lines[0].lstrip("\ufeff"))
            timestamp, details = parse_header(first_line)
            rest = first_line
            if timestamp:
                rest = first_line[first_line.find(timestamp) + len(timestamp) :].lstrip("]")
            rest = rest.strip().lstrip(":-–— \t")
            body = ([rest] if rest else []) + lines[1:]
            leading = re.match(r"([A-Z]{4,})\b", rest)
            status = details.status or _key_value(rest, "status")
            if status is None and leading and leading.group(1).lower() in STATUS_WORDS:
                status = leading.group(1).lower()
            story = _key_value(rest, "story")
            if story and not details.story_ids:
                details = EntryDetails((story,), details.title, details.status, details.time)
            entries.append(LogEntry(timestamp, tuple(_trim(body)), _with_status(details, status)))
        return entries


class _WholeFile(LogFormat):
    def offsets(self, data: bytes, first: bool) -> list[int]:
        return [0] if first and data else []

    def count(self, data: bytes, end: int, first: bool) -> tuple[int, int]:
        # No copy of the chunk: only whether it begins the file and holds bytes.
        return (1, 0) if first and end > 0 else (0, -1)

    def is_header(self, data: bytes, first: bool) -> bool:
        return first

    def parse(self, data: bytes) -> list[LogEntry]:
        if not data:
            return []
        lines = _lines(data)
        lines[0] = lines[0].lstrip("\ufeff")
        return [LogEntry("", tuple(_trim(lines)), EntryDetails())]


CLAUDE_LOOP = _ClaudeLoop("claude-loop", 3)
DATED_HEADERS = _DatedHeaders("dated-headers", 2)
DATED_LINES = _DatedLines("dated-lines", 1)
WHOLE_FILE = _WholeFile("whole-file", 0)
FORMATS: Sequence[LogFormat] = (CLAUDE_LOOP, DATED_HEADERS, DATED_LINES, WHOLE_FILE)
BY_NAME = {f.name: f for f in FORMATS}


def sniff(data: bytes, first: bool) -> LogFormat | None:
    """The highest-ranked format whose header appears in ``data`` (complete lines), or None.

    ``whole-file`` is the answer for non-empty data with no header of any kind
    only when ``data`` begins the file (``first``); None for nothing at all.
    ``data`` begins at the start of a line.
    """
    if data.startswith(LOG_HEADER_BYTES) or _CLAUDE_NEEDLE in data:
        return CLAUDE_LOOP
    if DATED_HEADERS.found_in(data, first):
        return DATED_HEADERS
    if DATED_LINES.found_in(data, first):
        return DATED_LINES
    if data.strip(_BOM + b" \t\r\n"):
        return WHOLE_FILE
    return None


# -- the parts of a header line ---------------------------------------------------

_TIMESTAMP = re.compile(
    r"\[?(?P<ts>"
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?(?:\s?(?:Z|UTC|[+-]\d{2}:?\d{2}))?)?"
    r"|\d{8}T\d{4,6}Z?"
    r"|\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp][Mm])?"
    r")\]?"
)
_ITERATION = re.compile(r"^(?i:iteration)\s*#?\s*(?P<n>\d+)?\s*[:\-–—]?\s*")
_TICKET = re.compile(r"^(?i:ticket)\s*#?\s*(?P<n>\d+)\s*[:\-–—]?\s*")
_ID = r"(?:[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-\d+[A-Za-z]?|[A-Z]{1,4}\d{1,5})"
_IDS = re.compile(rf"^(?P<ids>{_ID}(?:\s*(?:,|/|&|\+|and)\s*{_ID})*)\b\s*[:\-–—]?\s*")
_SEPARATORS = " \t:-–—|"
STATUS_WORDS = frozenset(
    {
        "complete",
        "completed",
        "done",
        "partial",
        "blocked",
        "failed",
        "in progress",
        "wip",
        "passed",
        "skipped",
    }
)
_SUFFIX = re.compile(r"\s*[\(\[](?P<word>[A-Za-z][A-Za-z \-_]*)[\)\]]\s*$")
_TRAILING_CAPS = re.compile(r"\s*[-–—:]?\s*\b(?P<word>[A-Z][A-Z_ ]+[A-Z])\s*$")
#: Characters at the end of a header searched for a status word.
_STATUS_TAIL = 48
_STATUS_LINE = re.compile(r"^\W*status\W*[:=]\W*(?P<word>[A-Za-z][A-Za-z \-_]*)", re.IGNORECASE)


def parse_header(text: str) -> tuple[str, EntryDetails]:
    """The timestamp as written and the details of a header line (without its ``#``).

    ``Iteration 1: 2026-01-20 09:00 - US-006 Title (Partial)`` gives the timestamp
    ``2026-01-20 09:00``, story ids ``("US-006",)``, title ``Title`` and status
    ``partial``.
    """
    rest = text.strip()
    title_prefix = ""
    for pattern, label in ((_ITERATION, "Iteration"), (_TICKET, "Ticket #")):
        match = pattern.match(rest)
        if match:
            number = match.group("n")
            title_prefix = f"{label}{' ' + number if number and label == 'Iteration' else number or ''}"
            rest = rest[match.end() :]
            break
    timestamp = ""
    match = _TIMESTAMP.match(rest)
    if match:
        timestamp = match.group("ts")
        rest = rest[match.end() :].lstrip(_SEPARATORS)
    ids: tuple[str, ...] = ()
    match = _IDS.match(rest)
    if match:
        ids = tuple(_ID_SEPARATOR.split(match.group("ids")))
        rest = rest[match.end() :]
    status = None
    # Only the end of the line is looked at: a status word is short, and a
    # pathological 10 KB header must not cost a quadratic search.
    cut = max(len(rest) - _STATUS_TAIL, 0)
    tail = rest[cut:]
    suffix = _SUFFIX.search(tail)
    if suffix and suffix.group("word").strip().lower() in STATUS_WORDS:
        status = suffix.group("word").strip().lower()
        rest = rest[: cut + suffix.start()]
    else:
        caps = _TRAILING_CAPS.search(tail)
        if caps and caps.group("word").strip().lower().replace("_", " ") in STATUS_WORDS:
            status = caps.group("word").strip().lower().replace("_", " ")
            rest = rest[: cut + caps.start()]
    title = rest.strip(_SEPARATORS) or title_prefix or None
    return timestamp, EntryDetails(ids, title, status, normalise_time(timestamp))


_ID_SEPARATOR = re.compile(r"\s*(?:,|/|&|\+|\band\b)\s*")
_COMPACT_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})?(Z?)")
_TWELVE_HOUR = re.compile(r"(.*\d)\s?([AaPp][Mm])(.*)")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def normalise_time(written: str) -> str | None:
    """A timestamp as ISO-8601: UTC with ``Z`` when it names an offset, else as local time."""
    raw = written.strip().replace("UTC", "Z").replace(" Z", "Z")
    if not raw:
        return None
    compact = _COMPACT_TIME.fullmatch(raw)
    if compact:
        y, mo, d, h, mi, s, z = compact.groups()
        raw = f"{y}-{mo}-{d}T{h}:{mi}:{s or '00'}{z}"
    twelve = _TWELVE_HOUR.fullmatch(raw)
    try:
        if twelve:
            base, half, tail = twelve.groups()
            moment = datetime.strptime(
                base.strip(), "%Y-%m-%d %H:%M" if base.count(":") == 1 else "%Y-%m-%d %H:%M:%S"
            )
            hour = moment.hour % 12 + (12 if half.lower() == "pm" else 0)
            moment = moment.replace(hour=hour)
            raw = moment.isoformat() + tail.strip()
        if _DATE_ONLY.fullmatch(raw):
            # A check that it is a real day; fromisoformat is C, strptime is not
            # (and reads other scripts' digits, which fromisoformat refuses).
            if raw.isascii():
                date.fromisoformat(raw)
            else:
                datetime.strptime(raw, "%Y-%m-%d")
            return raw
        if raw.endswith(("Z", "z")):
            raw = raw[:-1] + "+00:00"
        moment = datetime.fromisoformat(raw.replace(" ", "T", 1))
    except (ValueError, OverflowError):
        return None
    if moment.tzinfo is None:
        return moment.isoformat(timespec="seconds")
    try:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        return None


def _lines(data: bytes) -> list[str]:
    return _split(data.decode("utf-8", errors="replace"))


def _split(text: str) -> list[str]:
    # Newlines only, as the index splits; a CR before one is line-ending, not content.
    lines = text.split("\n")
    return [line.rstrip("\r") for line in lines] if "\r" in text else lines


def _trim(lines: list[str]) -> list[str]:
    while lines and (not lines[-1].strip() or lines[-1].strip() == "---"):
        lines.pop()
    return lines


#: The lines that matter to where an entry's body ends, from the newline before
#: them: a fence (``` or ~~~, perhaps indented) or a Markdown header (group 1,
#: its ``#``s). One regex over the body finds them in C (the newline is a
#: literal prefix it skips to); every other line costs nothing in Python.
_FENCE_OR_SECTION = re.compile(r"\n(?:[ \t][^\S\n]*(?:```|~~~)|```|~~~|(#{1,6})[ \t])")


def _body_lines(text: str, start: int, level: int) -> list[str]:
    """The lines of ``text[start:]`` (``start`` just past a newline) up to a header of the entry's ``level`` or
    above that is not an entry (``## Codebase Patterns`` after the last entry is
    not part of it); deeper ``###`` subsections belong to the entry. Fenced code
    is not scanned: a ``#`` line in a fence is code."""
    fenced = False
    for match in _FENCE_OR_SECTION.finditer(text, start - 1):
        hashes = match.group(1)
        if hashes is None:
            fenced = not fenced
        elif not fenced and len(hashes) <= level:
            return _split(text[start : match.start() + 1])[:-1]
    return _split(text[start:])


def _status_line(body: list[str]) -> str | None:
    for line in body[:12]:
        match = _STATUS_LINE.match(line.strip())
        if match:
            word = match.group("word").strip().lower()
            return word.split()[0] if word.split()[0] in STATUS_WORDS else word[:40]
    return None


def _key_value(text: str, key: str) -> str | None:
    match = re.search(rf"\b{key}=(\S+)", text)
    return match.group(1).lower() if match and key == "status" else (match.group(1) if match else None)


def _with_status(details: EntryDetails, status: str | None) -> EntryDetails:
    if status == details.status:
        return details
    return EntryDetails(details.story_ids, details.title, status, details.time)


__all__ = [
    "BY_NAME",
    "CLAUDE_LOOP",
    "DATED_HEADERS",
    "DATED_LINES",
    "FORMATS",
    "WHOLE_FILE",
    "LogFormat",
    "normalise_time",
    "parse_header",
    "sniff",
]

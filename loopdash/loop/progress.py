"""An incremental index of progress.txt: where its entry headers are, in blocks.

progress.txt only grows during a run and can reach tens of megabytes, so a
page of entries must not cost a parse of the whole file. The index cuts the
file into blocks of about ``chunk_size`` bytes and remembers, for each, where
it starts and how many ``### Iteration:`` headers it holds: counting headers is
one ``bytes.count`` per block, in C, about seven times faster than noting each
header's offset (a cold 50 MB log is indexed in about 35 ms, not 130). The
offsets inside a block are found when a page first needs them, and the blocks
used last keep theirs. A refresh scans only the bytes appended since the last
one (small appends extend the last block), and a page reads only its own bytes.
A file that shrank, was replaced (new inode), was rewritten at the same size, or
whose first or last indexed bytes (or last header) changed, is indexed again
from the start.

Only complete lines are indexed and served: a header split across two writes is
found once its line is whole, and half a line is never shown as content.
Plain ``os`` calls, no reactor.
"""

from __future__ import annotations

import os
import stat
from array import array
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, replace

from loopdash.loop.logformats import CLAUDE_LOOP, DATED_HEADERS, WHOLE_FILE, LogFormat, sniff
from loopdash.loop.models import LogEntry

#: Bytes of one entry served (/api/logs) or sent (log_appended) at most by
#: default (``--max-entry-bytes``): a longer one is cut there and marked
#: ``truncated`` with its ``size``.
MAX_ENTRY_BYTES = 64 << 10

#: Bytes read at the last header to check it is still one.
_HEADER_PROBE = 512
#: A log's shape is sniffed in its first bytes only: past them, a log read whole
#: or by dated lines keeps its shape (a 50 MB plain log costs no regex scans).
SNIFF_LIMIT = 1 << 20
#: Bytes at the head and at the end of the indexed region compared on each
#: change: a file rewritten in place, not appended to, almost always differs there.
_SAMPLE = 4096


@dataclass(frozen=True)
class LogState:
    """What the index knew after a refresh: enough to notice any change."""

    inode: int | None
    size: int
    total: int
    mtime: float | None
    #: False while a refresh with a byte budget has not reached the end of the file.
    complete: bool = True
    #: The log's shape (:mod:`.logformats`), None while it holds nothing to show.
    format: str | None = None
    #: Bumped each time the index starts again from the first byte (the file was
    #: replaced, truncated or rewritten): entries read before are void.
    generation: int = 0


class ProgressLog:
    """The entries of one progress.txt, indexed by blocks and the headers they hold."""

    def __init__(
        self, path: str, chunk_size: int = 256 << 10, cached_blocks: int = 64, whole_file: bool = False
    ) -> None:
        """``whole_file``: serve a non-empty log with no entry header as one entry
        (the ralph families); claude-loop's log keeps its preamble out of the entries."""
        self.path = path
        self._whole_file = whole_file
        self._chunk_size = chunk_size
        self._cached_blocks = cached_blocks
        self._generation = 0
        self._inode: int | None = None
        self._total = 0
        self._scanned = 0
        self._reset(None)
        self._size = 0
        self._mtime: float | None = None
        self._mtime_ns: int | None = None
        self._ctime_ns: int | None = None

    def _reset(self, inode: int | None) -> None:
        if self._total or self._scanned or inode != self._inode:
            self._generation += 1  # what was read of the file before no longer stands
        self._inode = inode
        #: Where each block begins; a block ends where the next begins (the last at ``_scanned``).
        self._block_start = array("q")
        #: The number of the first entry whose header lies in each block.
        self._block_first = array("q")
        #: 1 where a block begins at the start of a line (so a header may begin it).
        self._block_at_start = bytearray()
        #: Header offsets of the blocks pages used last.
        self._block_offsets: OrderedDict[int, array[int]] = OrderedDict()
        self._total = 0
        self._last_header = -1
        self._scanned = 0
        #: The end of the last complete line: entries never show a half-written one.
        self._lines_end = 0
        self._at_line_start = True
        self._head = b""
        self._tail = b""
        self._incomplete = False
        #: A page found a block holding other headers than counted: index again.
        self._changed_under_us = False
        #: The shape of the log, sniffed from its bytes as they are scanned.
        self._format: LogFormat | None = None

    @property
    def total(self) -> int:
        return self._total

    @property
    def blocks(self) -> int:
        """How many blocks the index holds (about one per ``chunk_size`` bytes)."""
        return len(self._block_start)

    @property
    def state(self) -> LogState:
        name = self._format.name if self._format is not None else None
        return LogState(
            self._inode,
            self._size,
            self._total,
            self._mtime,
            not self._incomplete,
            name,
            generation=self._generation,
        )

    def refresh(self, budget: int | None = None) -> LogState:
        """Bring the index up to date with the file; cheap when nothing changed.

        With a ``budget``, scan at most about that many new bytes (whole chunks)
        and say ``complete=False`` if more remain: the daemon indexes a cold
        50 MB log in steps, answering requests in between.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            self._reset(None)
            self._size = 0
            self._mtime = None
            return self.state
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._reset(None)
                self._size, self._mtime = 0, None
                return self.state
            if (
                st.st_ino == self._inode
                and st.st_size == self._size
                and st.st_mtime_ns == self._mtime_ns
                # A rewrite that puts the old mtime back still moves ctime.
                and st.st_ctime_ns == self._ctime_ns
                and not self._incomplete
                and not self._changed_under_us
            ):
                return self.state
            if (
                st.st_ino != self._inode
                or st.st_size < self._scanned
                # Same size, newer write: not an append, so a rewrite.
                or (
                    st.st_size == self._size
                    and (st.st_mtime_ns != self._mtime_ns or st.st_ctime_ns != self._ctime_ns)
                )
                or self._changed_under_us
                or not self._indexed_bytes_unchanged(fd)
            ):
                self._reset(st.st_ino)
            self._size = st.st_size
            self._mtime = st.st_mtime
            self._mtime_ns = st.st_mtime_ns
            self._ctime_ns = st.st_ctime_ns
            self._scan(fd, st.st_size, budget)
            self._head = os.pread(fd, min(_SAMPLE, self._scanned), 0)
            tail_start = max(self._scanned - _SAMPLE, 0)
            self._tail = os.pread(fd, self._scanned - tail_start, tail_start)
        finally:
            os.close(fd)
        return self.state

    def _indexed_bytes_unchanged(self, fd: int) -> bool:
        """Whether what was indexed still looks the same: head, tail, last header."""
        if self._head and os.pread(fd, len(self._head), 0) != self._head:
            return False
        if self._tail and os.pread(fd, len(self._tail), self._scanned - len(self._tail)) != self._tail:
            return False
        if self._last_header < 0 or self._format is None:
            return True
        probe = os.pread(fd, _HEADER_PROBE, self._last_header)
        return self._format.is_header(probe, self._last_header == 0)

    def _upgrade(self, chunk: bytes, pos: int) -> bool:
        """Sniff a chunk of complete lines; True if the log turned out to be of a
        higher-ranked shape than indexed so far (the scan restarts from 0).

        Header shapes are final: only a log still read whole or by dated lines
        is looked at again, and only in its first SNIFF_LIMIT bytes, so a 50 MB
        log pays no second scan.
        """
        if not self._sniffing(pos):
            return False
        current = self._format
        found = sniff(chunk, pos == 0)
        if found is WHOLE_FILE and not self._whole_file:
            found = None
        if found is None or (current is not None and found.rank <= current.rank):
            return False
        inode = self._inode
        self._reset(inode)
        self._format = found
        return pos > 0

    def _sniffing(self, pos: int) -> bool:
        """Whether a chunk at ``pos`` may still change the log's shape (see :meth:`_upgrade`)."""
        current = self._format
        return not (
            current is CLAUDE_LOOP or current is DATED_HEADERS or (current is not None and pos >= SNIFF_LIMIT)
        )

    def _scan(self, fd: int, size: int, budget: int | None = None) -> None:
        pos, at_start = self._scanned, self._at_line_start
        stop_at = size if budget is None else pos + budget
        while pos < size:
            if pos >= stop_at:
                break
            chunk = os.pread(fd, min(self._chunk_size, size - pos), pos)
            if not chunk:
                break
            last_newline = chunk.rfind(b"\n")
            if last_newline == -1:
                if pos + len(chunk) >= size:
                    break  # an unfinished last line: wait for the rest of it
                # A single line longer than a chunk: note a header, move on.
                if at_start and self._upgrade(chunk, pos):
                    pos, at_start = 0, True
                    stop_at = size if budget is None else budget
                    continue
                fmt = self._format
                starts_with_header = at_start and fmt is not None and fmt.is_header(chunk, pos == 0)
                self._add_block(
                    pos, len(chunk), at_start, int(starts_with_header), pos if starts_with_header else -1
                )
                pos += len(chunk)
                at_start = False
                continue
            # Only the complete lines: up to and with the last newline.
            end = last_newline + 1
            # Mid-line (after a line longer than a chunk): sniff from the first newline on.
            # (Copied only while the shape may still change: not a copy per chunk.)
            if self._sniffing(pos) and self._upgrade(
                chunk[:end] if at_start else chunk[chunk.find(b"\n") : end], pos
            ):
                pos, at_start = 0, True  # a new shape: index again from the start
                stop_at = size if budget is None else budget
                continue
            fmt = self._format
            if fmt is None:
                count, last_header = 0, -1
            else:
                count, last_header = fmt.count(chunk, end, pos == 0)
                if not at_start and count and fmt.is_header(chunk, False):
                    # The chunk begins mid-line: what looks like a header at 0 is not one.
                    count -= 1
                    last_header = last_header if last_header > 0 else -1
                if last_header >= 0:
                    last_header += pos
            self._add_block(pos, end, at_start, count, last_header)
            pos += end
            at_start = True
            self._lines_end = pos
        self._scanned, self._at_line_start = pos, at_start
        # Stopped by the budget (not by the end of the file or an unfinished line)?
        self._incomplete = budget is not None and pos >= stop_at and pos < size

    def _add_block(self, start: int, length: int, at_start: bool, headers: int, last_header: int) -> None:
        """Count ``length`` bytes from ``start`` (just scanned) into the index.

        Small appends extend the last block while it stays within a chunk, so a
        log that grows an entry at a time keeps one block per chunk, not one per
        append. Counting the joined bytes again gives the same headers: each
        piece begins where the last one ended, and a header at a piece's start
        is one after a newline in the whole.
        """
        blocks = len(self._block_start)
        if blocks and start + length - self._block_start[-1] <= self._chunk_size:
            self._block_offsets.pop(blocks - 1, None)  # its offsets are to be found again
        else:
            self._block_start.append(start)
            self._block_first.append(self._total)
            self._block_at_start.append(at_start)
        self._total += headers
        if last_header >= 0:
            self._last_header = last_header

    def _header_offsets(self, fd: int, block: int) -> array[int] | None:
        """The offsets of the headers in ``block``; None if they are no longer what was counted."""
        offsets = self._block_offsets.get(block)
        if offsets is not None:
            self._block_offsets.move_to_end(block)
            return offsets
        last = block + 1 == len(self._block_start)
        start = self._block_start[block]
        end = self._scanned if last else self._block_start[block + 1]
        expected = (self._total if last else self._block_first[block + 1]) - self._block_first[block]
        data = os.pread(fd, end - start, start)
        offsets = array("q")
        fmt = self._format
        for found in fmt.offsets(data, start == 0) if fmt is not None else ():
            if found or self._block_at_start[block]:
                offsets.append(start + found)
        if len(data) != end - start or len(offsets) != expected:
            self._changed_under_us = True
            return None
        self._block_offsets[block] = offsets
        if len(self._block_offsets) > self._cached_blocks:
            self._block_offsets.popitem(last=False)
        return offsets

    def _offset_of(self, fd: int, entry: int) -> int | None:
        """Where entry number ``entry`` (0 <= entry < total) begins."""
        # The last block whose first entry is at or before it (blocks with no
        # header share their first entry with the next, which is the one wanted).
        block = bisect_right(self._block_first, entry) - 1
        offsets = self._header_offsets(fd, block)
        return None if offsets is None else offsets[entry - self._block_first[block]]

    def entries(self, start: int, stop: int, max_entry_bytes: int | None = None) -> list[LogEntry]:
        """Entries ``start`` to ``stop`` (exclusive) as of the last refresh.

        With ``max_entry_bytes``, an entry longer than that is read only up to it
        (cut at a character boundary) and comes back ``truncated`` with its full
        ``size``: a 1 GB line costs a 64 KB read, not a gigabyte of memory.
        """
        start = max(start, 0)
        stop = min(stop, self._total)
        if start >= stop:
            return []
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return []
        try:
            begin = self._offset_of(fd, start)
            end = self._offset_of(fd, stop) if stop < self._total else self._lines_end
            if begin is None or end is None:
                return []  # the file changed under us: the next refresh indexes it again
            if max_entry_bytes is not None and end - begin > max_entry_bytes:
                return self._entries_cut(fd, start, stop, begin, end, max_entry_bytes)
            data = os.pread(fd, max(end - begin, 0), begin)
        except OSError:
            return []
        finally:
            os.close(fd)
        fmt = self._format
        parsed = fmt.parse(data) if fmt is not None else []
        # If the file changed under us since the refresh, say less rather than
        # something false: only entries that still start with a header count.
        return parsed[: stop - start]

    def _entries_cut(self, fd: int, start: int, stop: int, begin: int, end: int, cap: int) -> list[LogEntry]:
        """Entries each at most ``cap`` bytes: in one read when none is longer, else one by one."""
        bounds = [begin]
        for entry in range(start + 1, stop):
            offset = self._offset_of(fd, entry)
            if offset is None:
                return []
            bounds.append(offset)
        bounds.append(end)
        fmt = self._format
        if fmt is not None and all(
            last - first <= cap for first, last in zip(bounds, bounds[1:], strict=False)
        ):
            # One read and one parse for the page, not one of each per entry.
            return fmt.parse(os.pread(fd, end - begin, begin))[: stop - start]
        out: list[LogEntry] = []
        for first, last in zip(bounds, bounds[1:], strict=False):
            size = max(last - first, 0)
            data = os.pread(fd, min(size, cap), first)
            cut = size > cap
            fmt = self._format
            parsed = fmt.parse(_whole_characters(data) if cut else data) if fmt is not None else []
            if len(parsed) != 1:
                break  # the file changed under us: say less rather than something false
            whole = parsed[0]
            out.append(replace(whole, truncated=True, size=size) if cut else whole)
        return out


def _whole_characters(data: bytes) -> bytes:
    """``data`` without a UTF-8 sequence cut at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data  # ASCII: whole
        if byte >= 0xC0:  # a lead byte: is its sequence whole?
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= needed else data[:-back]
    return data

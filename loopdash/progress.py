"""An incremental index of progress.txt: byte offsets of its entry headers.

progress.txt only grows during a run and can reach tens of megabytes, so a
page of entries must not cost a parse of the whole file. The index remembers
where each ``### Iteration:`` header line starts; a refresh scans only the
bytes appended since the last one, and a page reads only its own bytes. A file
that shrank, was replaced (new inode), was rewritten at the same size, or whose
first or last indexed bytes (or last header) changed, is indexed again from the
start.

Only complete lines are indexed and served: a header split across two writes is
found once its line is whole, and half a line is never shown as content.
Plain ``os`` calls, no reactor.
"""

from __future__ import annotations

import os
import stat
from array import array
from dataclasses import dataclass

from loopdash.models import LogEntry
from loopdash.parsing import LOG_HEADER_BYTES, parse_log_entries

_NEEDLE = b"\n" + LOG_HEADER_BYTES
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


class ProgressLog:
    """The entries of one progress.txt, indexed by the offsets of their headers."""

    def __init__(self, path: str, chunk_size: int = 1 << 20) -> None:
        self.path = path
        self._chunk_size = chunk_size
        self._reset(None)
        self._size = 0
        self._mtime: float | None = None
        self._mtime_ns: int | None = None

    def _reset(self, inode: int | None) -> None:
        self._inode = inode
        self._offsets = array("q")
        self._scanned = 0
        #: The end of the last complete line: entries never show a half-written one.
        self._lines_end = 0
        self._at_line_start = True
        self._head = b""
        self._tail = b""
        self._incomplete = False

    @property
    def total(self) -> int:
        return len(self._offsets)

    @property
    def state(self) -> LogState:
        return LogState(
            self._inode, self._size, len(self._offsets), self._mtime, not self._incomplete
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
                and not self._incomplete
            ):
                return self.state
            if (
                st.st_ino != self._inode
                or st.st_size < self._scanned
                # Same size, newer write: not an append, so a rewrite.
                or (st.st_size == self._size and st.st_mtime_ns != self._mtime_ns)
                or not self._indexed_bytes_unchanged(fd)
            ):
                self._reset(st.st_ino)
            self._size = st.st_size
            self._mtime = st.st_mtime
            self._mtime_ns = st.st_mtime_ns
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
        if not self._offsets:
            return True
        start = self._offsets[-1]
        return os.pread(fd, len(LOG_HEADER_BYTES), start) == LOG_HEADER_BYTES

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
                if at_start and chunk.startswith(LOG_HEADER_BYTES):
                    self._offsets.append(pos)
                pos += len(chunk)
                at_start = False
                continue
            complete = chunk[: last_newline + 1]
            if at_start and complete.startswith(LOG_HEADER_BYTES):
                self._offsets.append(pos)
            found = complete.find(_NEEDLE)
            while found != -1:
                self._offsets.append(pos + found + 1)
                found = complete.find(_NEEDLE, found + 1)
            pos += last_newline + 1
            at_start = True
            self._lines_end = pos
        self._scanned, self._at_line_start = pos, at_start
        # Stopped by the budget (not by the end of the file or an unfinished line)?
        self._incomplete = budget is not None and pos >= stop_at and pos < size

    def entries(self, start: int, stop: int) -> list[LogEntry]:
        """Entries ``start`` to ``stop`` (exclusive) as of the last refresh."""
        start = max(start, 0)
        stop = min(stop, len(self._offsets))
        if start >= stop:
            return []
        begin = self._offsets[start]
        end = self._offsets[stop] if stop < len(self._offsets) else self._lines_end
        try:
            with open(self.path, "rb") as f:
                f.seek(begin)
                data = f.read(max(end - begin, 0))
        except OSError:
            return []
        parsed = parse_log_entries(data.decode("utf-8", errors="replace"))
        # If the file changed under us since the refresh, say less rather than
        # something false: only entries that still start with a header count.
        return parsed[: stop - start]

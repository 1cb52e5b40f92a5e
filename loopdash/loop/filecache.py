"""Read-and-parse with a memory: the last good reading of each file.

A loop rewrites its files in place (``cat > metrics.json``), so a reader can
catch one empty or half-written. The cache answers every read with the last
reading that parsed, re-parses only when the file's identity
``(inode, mtime_ns, size, ctime_ns)`` changes, and reports a file that does not parse
once, not on every poll. A file that never parsed is reported at once; one
that parsed before is reported only when it stays bad for ``grace`` seconds,
since catching a rewrite half-way is the normal case, not news. Pure Python
and the ``os`` module: no reactor here.
"""

from __future__ import annotations

import os
import stat as stat_module
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from loopdash.loop.parsing import ParseError

T = TypeVar("T")

FileIdentity = tuple[int, int, int, int]

#: Metrics and summaries are kilobytes; anything past this is not one of them.
MAX_JSON_BYTES = 32 * 1024 * 1024


def identity_of(st: os.stat_result) -> FileIdentity:
    """(inode, mtime_ns, size, ctime_ns): a rewrite that restores the mtime still moves ctime."""
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


@dataclass(frozen=True)
class Reading(Generic[T]):
    """What a file holds as far as we can tell, and how fresh the file is."""

    #: The last value that parsed, or None when the file never parsed or is gone.
    value: T | None
    #: The file's modification time (seconds since the epoch) when it exists,
    #: even when its current content does not parse: a write is activity.
    mtime: float | None
    #: Why the file's current content is not ``value``'s, if it is not.
    error: str | None = None
    #: The identity of the file version ``value`` was read from: equal
    #: identities mean equal values, so callers can key caches on it.
    identity: FileIdentity | None = None


@dataclass
class _Entry(Generic[T]):
    identity: FileIdentity | None
    value: T | None
    reported: bool = False
    #: When the current run of failed reads began (clock seconds), if one is going on.
    bad_since: float | None = None


Reporter = Callable[[str, str], None]


def _ignore(path: str, reason: str) -> None:
    pass


class FileCache(Generic[T]):
    """Parsed readings of many files of one kind, keyed on their paths."""

    def __init__(
        self,
        parse: Callable[[bytes], T],
        report: Reporter = _ignore,
        max_entries: int | None = None,
        max_bytes: int = MAX_JSON_BYTES,
        grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parse = parse
        self._report = report
        self._grace = grace
        self._clock = clock
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, path: str) -> Reading[T]:
        try:
            st = os.stat(path)
        except OSError:
            # Gone (or never there): nothing to say about it.
            self._entries.pop(path, None)
            return Reading(None, None)
        entry = self._entries.get(path)
        if entry is None:
            entry = _Entry(identity=None, value=None)
            self._entries[path] = entry
            self._evict()
        else:
            self._entries.move_to_end(path)
        if entry.identity == identity_of(st):
            return Reading(entry.value, st.st_mtime, identity=entry.identity)
        try:
            identity, data = self._read_bytes(path)
            value = self._parse(data)
        except (OSError, ParseError) as e:
            reason = _describe(e)
            now = self._clock()
            if entry.bad_since is None:
                entry.bad_since = now
            overdue = entry.value is None or now - entry.bad_since >= self._grace
            if overdue and not entry.reported:
                entry.reported = True
                self._report(path, reason)
            # Keep the last good value; do not remember this identity, so the
            # next read tries again (the writer is usually mid-write).
            return Reading(entry.value, st.st_mtime, reason, entry.identity)
        entry.identity = identity
        entry.value = value
        entry.reported = False
        entry.bad_since = None
        return Reading(value, st.st_mtime, identity=identity)

    def _read_bytes(self, path: str) -> tuple[FileIdentity, bytes]:
        # O_NONBLOCK: a FIFO planted where a file should be must not hang the daemon.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise ParseError("not a regular file")
            if st.st_size > self._max_bytes:
                raise ParseError(f"file too large ({st.st_size} bytes)")
            chunks = []
            remaining = self._max_bytes + 1
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
            if len(data) > self._max_bytes:
                raise ParseError("file too large")
            return identity_of(st), data
        finally:
            os.close(fd)

    def _evict(self) -> None:
        if self._max_entries is None:
            return
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _describe(error: Exception) -> str:
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return str(error)

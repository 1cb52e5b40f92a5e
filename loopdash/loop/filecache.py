"""Read-and-parse with a memory: the last good reading of each file.

A loop rewrites its files in place (``cat > metrics.json``), so a reader can
catch one empty or half-written. The cache answers every read with the last
reading that parsed, re-parses only when the file's identity
``(inode, mtime_ns, size, ctime_ns)`` changes, and reports a file that does not parse
once, not on every poll. A file that never parsed is reported at once; one
that parsed before is reported only when it stays bad for ``grace`` seconds,
since catching a rewrite half-way is the normal case, not news. Pure Python
and the ``os`` module: no reactor here.

A new version of a file larger than ``inline_bytes`` is not parsed in
:meth:`FileCache.read` when the cache was given a ``handoff`` and holds a good
reading of it: a 23 MB plan takes seconds to parse, and the caller (the
daemon's reactor) must not stop for that long. The read answers the last good
reading at once and gives the handoff a job (read and parse, touching nothing
shared) and what to do with its outcome; the caller runs the job where it
likes (a worker thread) and hands the outcome back on its own thread, after
which reads answer the new value. A file's first reading is parsed in the
read, whatever its size: "nothing" while the file exists would be a false
answer (no plan, no metrics), where an older reading is only a late one.
"""

from __future__ import annotations

import os
import stat as stat_module
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from loopdash.loop.parsing import ParseError

T = TypeVar("T")

#: A file version's (inode, mtime_ns, size, ctime_ns), packed (see :func:`identity_of`).
FileIdentity = bytes
_IDENTITY = struct.Struct("<Qqqq")

#: Metrics and summaries are kilobytes; anything past this is not one of them.
MAX_JSON_BYTES = 32 * 1024 * 1024
#: Files larger than this are parsed through the handoff, when there is one:
#: 256 KiB of plan (about 1,100 stories) parses in about 20 ms here.
INLINE_PARSE_BYTES = 256 * 1024
#: Bytes asked of each further read of a file that grew while it was read.
GROWN_READ_BYTES = 64 * 1024


def identity_of(st: os.stat_result) -> FileIdentity:
    """(inode, mtime_ns, size, ctime_ns) as 32 bytes: a rewrite that restores the mtime still moves ctime.

    Packed because a cache keeps one per file for as long as the file is there
    (a run's summary.json, for every run on disk): 65 bytes where the tuple of
    four ints held 212, measured with tracemalloc. Compared only for equality.
    """
    return _IDENTITY.pack(st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


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


@dataclass(slots=True)
class _Entry(Generic[T]):
    identity: FileIdentity | None
    value: T | None
    reported: bool = False
    #: When the current run of failed reads began (clock seconds), if one is going on.
    bad_since: float | None = None
    #: Whether a parse job of this file is out with the handoff.
    pending: bool = False
    #: The version whose handed-off job failed last, and why, if one did.
    failed: tuple[FileIdentity, str] | None = None


Reporter = Callable[[str, str], None]


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """The outcome of a parse job: the identity read and its value, or why it failed."""

    identity: FileIdentity | None
    value: T | None
    error: OSError | ParseError | None = None


class Handoff(Protocol):
    """Runs ``job`` somewhere (a worker thread), then ``land(outcome)`` on the caller's thread.

    ``job`` never raises (its failures are in the outcome). ``land`` must be
    called exactly once per job, in the thread that calls :meth:`FileCache.read`.
    """

    def __call__(self, job: Callable[[], Parsed[Any]], land: Callable[[Parsed[Any]], None]) -> None: ...


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
        handoff: Handoff | None = None,
        inline_bytes: int = INLINE_PARSE_BYTES,
    ) -> None:
        """``handoff``: where files over ``inline_bytes`` are parsed (None: in :meth:`read`)."""
        self._parse = parse
        self._handoff = handoff
        self._inline_bytes = inline_bytes
        self._report = report
        self._grace = grace
        self._clock = clock
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()

    def hand_off(self, handoff: Handoff | None) -> None:
        """From now on, parse new versions of files over ``inline_bytes`` via ``handoff`` (None: inline)."""
        self._handoff = handoff

    def __len__(self) -> int:
        return len(self._entries)

    def forget(self, key: str) -> None:
        """Drop the entry read under ``key`` (its path, or the key given to :meth:`read`),
        if any: the caller will not ask for it again soon; a later read parses the file afresh."""
        self._entries.pop(key, None)

    def keep(self, path: str, reading: Reading[T]) -> None:
        """Start ``path``'s entry from ``reading``, a good reading another cache of the
        same parse made: reads answer its value, without parsing, while the file keeps
        ``reading.identity``; a new version is parsed as usual. A reading without a
        value or identity, or of a version that did not parse (``error``), is ignored,
        and so is a path this cache has read itself."""
        if reading.value is None or reading.identity is None or reading.error is not None:
            return
        if path in self._entries:
            return
        self._entries[path] = _Entry(identity=reading.identity, value=reading.value)
        self._evict()

    def read(self, path: str, key: str | None = None) -> Reading[T]:
        """``path``'s reading. Its entry is kept under ``key`` when given (default: the
        path): a cache of one file per run keyed on the run's id, a string the run list
        holds already, keeps no path of a hundred bytes per run on disk."""
        if key is None:
            key = path
        try:
            st = os.stat(path)
        except OSError:
            # Gone (or never there): nothing to say about it.
            self._entries.pop(key, None)
            return Reading(None, None)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(identity=None, value=None)
            self._entries[key] = entry
            self._evict()
        else:
            self._entries.move_to_end(key)
        if entry.identity == identity_of(st):
            return Reading(entry.value, st.st_mtime, identity=entry.identity)
        if self._handoff is not None and entry.value is not None and st.st_size > self._inline_bytes:
            if entry.failed is not None and entry.failed[0] == identity_of(st):
                # A version whose job failed is not parsed again until it changes
                # (a large file that stays bad must not keep a worker busy), but
                # it is reported once it stays bad past the grace, as inline.
                reason = entry.failed[1]
                self._note_bad(path, entry, reason)
                return Reading(entry.value, st.st_mtime, reason, entry.identity)
            if not entry.pending:
                entry.pending = True
                self._handoff(lambda: self._job(path), lambda outcome: self._land(path, key, outcome))
            # The last good reading until the job lands; a version written
            # meanwhile is seen by the first read after it (another job).
            return Reading(entry.value, st.st_mtime, identity=entry.identity)
        outcome = self._job(path)
        self._settle(path, entry, outcome)
        return Reading(entry.value, st.st_mtime, _reason(outcome), entry.identity)

    def _note_bad(self, path: str, entry: _Entry[T], reason: str) -> None:
        """The file does not parse now: report it, once, if it never did or stays bad past the grace."""
        now = self._clock()
        if entry.bad_since is None:
            entry.bad_since = now
        overdue = entry.value is None or now - entry.bad_since >= self._grace
        if overdue and not entry.reported:
            entry.reported = True
            self._report(path, reason)

    def _job(self, path: str) -> Parsed[T]:
        """Read and parse ``path``: touches no state of the cache, so any thread may run it."""
        identity: FileIdentity | None = None
        try:
            identity, data = self._read_bytes(path)
            return Parsed(identity, self._parse(data))
        except (OSError, ParseError) as e:
            return Parsed(identity, None, e)

    def _land(self, path: str, key: str, outcome: Parsed[T]) -> None:
        """A handed-off job's outcome, back on the reading thread."""
        entry = self._entries.get(key)
        if entry is None:
            return  # gone or evicted meanwhile: the next read starts afresh
        entry.pending = False
        entry.failed = None
        if outcome.error is not None and outcome.identity is not None:
            entry.failed = (outcome.identity, _describe(outcome.error))
        self._settle(path, entry, outcome)

    def _settle(self, path: str, entry: _Entry[T], outcome: Parsed[T]) -> None:
        if outcome.error is not None:
            # Keep the last good value; do not remember this identity, so the
            # next read tries again (the writer is usually mid-write).
            self._note_bad(path, entry, _describe(outcome.error))
            return
        entry.identity = outcome.identity
        entry.value = outcome.value
        entry.reported = False
        entry.bad_since = None

    def _read_bytes(self, path: str) -> tuple[FileIdentity, bytes]:
        # O_NONBLOCK: a FIFO planted where a file should be must not hang the daemon.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise ParseError("not a regular file")
            if st.st_size > self._max_bytes:
                raise ParseError(f"file too large ({st.st_size} bytes)")
            # One read of the size fstat gave, and a byte more. A read of a regular
            # file returns less than asked only at its end, so a shorter answer is
            # the whole file with no second read to see the end. os.read makes a
            # buffer of the size asked and shrinks it: asking 1 MiB for each 2 KB
            # metrics.json (twice, with the read that saw the end) made and gave
            # back two 1 MiB blocks on every poll; alone, 20,000 such reads grew
            # glibc's heap by 1,988 KiB against 1,280 sized (2026-12-03).
            data = os.read(fd, min(st.st_size, self._max_bytes) + 1)
            if len(data) > st.st_size:
                # It grew since the fstat (a writer appending): read on to its end.
                chunks = [data]
                total = len(data)
                while total <= self._max_bytes:
                    chunk = os.read(fd, min(self._max_bytes + 1 - total, GROWN_READ_BYTES))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
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


def _reason(outcome: Parsed[Any]) -> str | None:
    return None if outcome.error is None else _describe(outcome.error)


def _describe(error: Exception) -> str:
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return str(error)

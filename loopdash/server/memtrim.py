"""Giving freed heap memory back to the system, every minute.

A daemon that runs for days frees as much as it allocates: each request's
answer, each event, each socket read. glibc keeps what is freed in its heap
for the next allocation, and the pages of those free chunks stay resident
(counted in the RSS) whether or not they are used again. Measured in the soak
(``bench/soak.py --heap``, 2026-12-03): glibc's bytes in use stayed flat
(0.12 MB/h) while the resident part of its heap grew 1.5 MB/h, the pages of
its free chunks being touched one after another.

:class:`MemoryTrim` calls glibc's ``malloc_trim(0)`` every ``interval``
seconds (60): it hands the free pages of every arena back to the kernel
(``MADV_DONTNEED``), keeping the chunks, so the RSS follows the memory in use.
A call takes about a millisecond for a heap of tens of megabytes. Without
glibc (musl, macOS) there is nothing to call and the service does nothing.

Trimming gives back free pages, not the heap's size. Two of glibc's defaults
let that size creep up in a daemon that frees as much as it allocates, so the
service sets them first, with ``mallopt`` (:func:`glibc_malloc_tuning`), unless
the environment already chose (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``,
``GLIBC_TUNABLES``; glibc's manual, "Memory Allocation Tunables"):

- ``M_MMAP_THRESHOLD`` fixed at 64 KiB. By default the threshold rises (up to
  32 MiB) each time a large mapped block is freed, so from then on the large
  blocks a daemon makes and drops (answers, joined lists, read buffers) come
  from the heap, and a small long-lived block allocated above one pins the
  heap's top. Fixed, such blocks are mapped on their own and unmapped when freed.
- ``M_ARENA_MAX`` 2: the worker threads (parses, the git thread, notification
  senders) share one arena besides the main one, instead of up to eight per
  core, each keeping its own free memory.

Measured with ``bench/soak.py --seconds 1800 --heap``, 2026-12-03: RSS growth
after the warm-up 1.43 MB an hour with the trim alone, 1.01 with both settings;
the resident part of glibc's heap 0.78 and 0.15 MB an hour.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

#: Seconds between trims.
TRIM_INTERVAL = 60.0

#: ``mallopt`` parameters (glibc's malloc.h) and the values set, with the
#: environment variable and the tunable that, when set, leave each to the user.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 64 * 1024
ARENA_MAX = 2
_SETTINGS = (
    (
        "mmap_threshold",
        M_MMAP_THRESHOLD,
        MMAP_THRESHOLD_BYTES,
        "MALLOC_MMAP_THRESHOLD_",
        "glibc.malloc.mmap_threshold",
    ),
    ("arena_max", M_ARENA_MAX, ARENA_MAX, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
)


def _libc() -> Any | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def glibc_malloc_trim(libc: Any | None = None) -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` as a function of no arguments; None without glibc."""
    libc = libc if libc is not None else _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def glibc_malloc_tuning(
    environ: Mapping[str, str], libc: Any | None = None
) -> Callable[[], dict[str, int]] | None:
    """A function that sets the module's two ``mallopt`` settings and returns
    those it set (name to value, e.g. ``{"mmap_threshold": 65536, "arena_max": 2}``).

    A setting ``environ`` already makes (its variable, or its name in
    ``GLIBC_TUNABLES``) is left alone. None without glibc. Call it before
    threads start: an arena, once made, stays.
    """
    libc = libc if libc is not None else _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    tunables = environ.get("GLIBC_TUNABLES", "")
    chosen = {
        name: (param, value)
        for name, param, value, variable, tunable in _SETTINGS
        if variable not in environ and f"{tunable}=" not in tunables
    }

    def tune() -> dict[str, int]:
        # mallopt returns 1 on success, 0 on error.
        return {name: value for name, (param, value) in chosen.items() if mallopt(param, value) == 1}

    return tune


class MemoryTrim(Service):
    """Calls ``tune`` once when started, then ``trim`` every ``interval`` seconds
    on the reactor (the first after one interval).

    ``tuned`` holds what ``tune`` returned (the settings it made), or None.
    """

    def __init__(
        self,
        clock: Any,
        trim: Callable[[], object] | None,
        interval: float = TRIM_INTERVAL,
        tune: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.clock = clock
        self.trim = trim
        self.interval = interval
        self.tune = tune
        self.tuned: dict[str, int] | None = None
        self.trims = 0
        self._loop: LoopingCall | None = None

    def _tick(self) -> None:
        if self.trim is not None:
            self.trim()
            self.trims += 1

    def startService(self) -> None:
        Service.startService(self)
        if self.tune is not None and self.tuned is None:
            self.tuned = self.tune()
        if self.trim is None:
            return
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

"""The periodic malloc_trim: on the reactor's clock, every interval, stopped with the daemon;
and glibc's two settings, made once at start unless the environment chose them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.task import Clock

from loopdash.server.memtrim import (
    ARENA_MAX,
    M_ARENA_MAX,
    M_MMAP_THRESHOLD,
    MMAP_THRESHOLD_BYTES,
    MemoryTrim,
    glibc_malloc_trim,
    glibc_malloc_tuning,
)

ON_GLIBC = platform.libc_ver()[0] == "glibc"


def test_the_trim_runs_once_per_interval_and_stops_with_the_service() -> None:
    clock = Clock()
    calls: list[float] = []
    service = MemoryTrim(clock, lambda: calls.append(clock.seconds()), interval=60.0)
    service.startService()
    assert calls == []  # not at start: nothing was freed yet
    clock.advance(59.0)
    assert calls == []
    clock.advance(1.0)
    clock.advance(60.0)
    clock.advance(60.0)
    assert calls == [60.0, 120.0, 180.0]
    service.stopService()
    clock.advance(600.0)
    assert len(calls) == 3 and clock.getDelayedCalls() == []


def test_without_a_trim_function_nothing_is_scheduled() -> None:
    clock = Clock()
    service = MemoryTrim(clock, None)
    service.startService()
    assert clock.getDelayedCalls() == []
    service.stopService()


def test_glibcs_malloc_trim_is_found_on_glibc_and_returns_its_flag() -> None:
    trim = glibc_malloc_trim()
    if ON_GLIBC:
        assert trim is not None
        assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release
    else:
        assert trim is None or trim() in (0, 1)


def fake_libc(refuse: int | None = None) -> tuple[Any, list[tuple[int, int]]]:
    """A libc with ``mallopt`` that records its calls and answers 1 (done), 0 for ``refuse``."""
    calls: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 0 if param == refuse else 1

    return SimpleNamespace(mallopt=mallopt), calls


def test_both_settings_are_made_when_the_environment_says_nothing() -> None:
    libc, calls = fake_libc()
    tune = glibc_malloc_tuning({"PATH": "/bin"}, libc)
    assert tune is not None
    assert calls == []  # nothing until called
    assert tune() == {"mmap_threshold": 65536, "arena_max": 2}
    assert calls == [(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_ARENA_MAX, ARENA_MAX)]
    assert (M_MMAP_THRESHOLD, M_ARENA_MAX, MMAP_THRESHOLD_BYTES, ARENA_MAX) == (-3, -8, 65536, 2)


@pytest.mark.parametrize(
    ("environ", "made"),
    [
        ({"MALLOC_ARENA_MAX": "4"}, [(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)]),
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, [(M_ARENA_MAX, ARENA_MAX)]),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}, [(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)]),
        (
            {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=1048576"},
            [(M_ARENA_MAX, ARENA_MAX)],
        ),
        ({"MALLOC_ARENA_MAX": "1", "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"}, []),
    ],
)
def test_a_setting_the_environment_makes_is_left_to_it(
    environ: dict[str, str], made: list[tuple[int, int]]
) -> None:
    libc, calls = fake_libc()
    tune = glibc_malloc_tuning(environ, libc)
    assert tune is not None
    tune()
    assert calls == made


def test_a_refused_setting_is_not_reported_as_made() -> None:
    libc, _ = fake_libc(refuse=M_ARENA_MAX)
    tune = glibc_malloc_tuning({}, libc)
    assert tune is not None
    assert tune() == {"mmap_threshold": 65536}


def test_without_mallopt_there_is_no_tuning() -> None:
    class NoMallopt:
        pass

    assert glibc_malloc_tuning({}, NoMallopt()) is None
    assert glibc_malloc_trim(NoMallopt()) is None


def test_the_service_tunes_once_at_start_before_any_trim() -> None:
    clock = Clock()
    events: list[str] = []
    service = MemoryTrim(
        clock,
        lambda: events.append("trim"),
        interval=60.0,
        tune=lambda: events.append("tune") or {"arena_max": 2},
    )
    service.startService()
    assert events == ["tune"] and service.tuned == {"arena_max": 2}
    clock.advance(60.0)
    service.stopService()
    service.startService()  # a restart does not tune again: arenas made stay made
    clock.advance(60.0)
    service.stopService()
    assert events == ["tune", "trim", "trim"]


# Run in a child: the settings last for the life of a process.
_MAPPED_AFTER_A_LARGE_FREE = textwrap.dedent(
    """
    import ctypes, json, os, sys
    from loopdash.server.memtrim import glibc_malloc_tuning

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    tuned = glibc_malloc_tuning(os.environ)() if sys.argv[1] == "tuned" else {}
    # A 4 MiB block is mapped (over every threshold); freeing it raises glibc's
    # dynamic threshold to 4 MiB unless the threshold was fixed.
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(200 << 10)
    mapped = libc.mallinfo2().hblks - before
    libc.free(block)
    print(json.dumps({"tuned": tuned, "mapped": mapped}))
    """
)


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's allocator only")
def test_on_glibc_a_200_kib_block_is_mapped_on_its_own_after_a_large_free_only_when_tuned() -> None:
    """The default threshold rises after a large block is freed, and the next
    200 KiB block then comes from the heap; with the threshold fixed it is mapped."""
    import json

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    seen = {}
    for mode in ("tuned", "default"):
        out = subprocess.run(
            [sys.executable, "-c", _MAPPED_AFTER_A_LARGE_FREE, mode],
            env=environ,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        seen[mode] = json.loads(out)
    assert seen["tuned"] == {"tuned": {"mmap_threshold": 65536, "arena_max": 2}, "mapped": 1}
    assert seen["default"] == {"tuned": {}, "mapped": 0}

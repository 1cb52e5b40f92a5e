"""The periodic malloc_trim: on the reactor's clock, every interval, stopped with the daemon."""

from __future__ import annotations

import platform

from twisted.internet.task import Clock

from loopdash.server.memtrim import MemoryTrim, glibc_malloc_trim


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
    if platform.libc_ver()[0] == "glibc":
        assert trim is not None
        assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release
    else:
        assert trim is None or trim() in (0, 1)

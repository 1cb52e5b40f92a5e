"""Timers that survive wall-clock steps.

Twisted's reactor schedules every delayed call (keepalives, the watcher's
polls, the stall clock, the page's redraws) on ``time.time``, and sleeps in
epoll until the earliest one is due by that clock. When the wall clock is
stepped back an hour (NTP, a VM resumed, a hand set date), every timer waits
an extra hour; stepped forward, they all fire at once. The intervals are meant
in elapsed time, which ``time.monotonic`` measures.

:class:`ClockStepGuard` compares the two clocks from a small thread that
sleeps on the monotonic clock (``Event.wait``), so it wakes even while the
reactor sleeps for the hour a step made it think it has. When the wall clock
has moved more (or less) than the elapsed time by over ``tolerance``, it asks
the reactor (``callFromThread``, which wakes it) to move every pending call by
the step, so that each keeps the time it had left. Between steps the thread
does nothing but sleep: the reactor is woken only when a step happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

#: Seconds between comparisons of the two clocks (a step is corrected within this).
CHECK_INTERVAL = 2.0
#: A disagreement smaller than this (scheduling jitter, a slow check) is not a step.
TOLERANCE = 1.0


class ClockStepGuard(Service):
    """Keeps the reactor's pending calls on elapsed time when the wall clock steps."""

    log = Logger(namespace="loopdash.server.clockstep")

    def __init__(
        self,
        reactor: Any,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        interval: float = CHECK_INTERVAL,
        tolerance: float = TOLERANCE,
        threaded: bool = True,
    ) -> None:
        self.reactor = reactor
        self.wall = wall
        self.monotonic = monotonic
        self.interval = interval
        self.tolerance = tolerance
        #: False in tests: they call :meth:`check` themselves.
        self.threaded = threaded
        self.steps = 0
        self._base = (wall(), monotonic())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def startService(self) -> None:
        Service.startService(self)
        self._base = (self.wall(), self.monotonic())
        if self.threaded:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="loopdash-clockstep", daemon=True)
            self._thread.start()

    def stopService(self) -> None:
        Service.stopService(self)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1.0)
            self._thread = None

    def step(self) -> float:
        """Seconds the wall clock moved beyond the elapsed time since the last look (0: none)."""
        wall0, mono0 = self._base
        drift = (self.wall() - wall0) - (self.monotonic() - mono0)
        return drift if abs(drift) > self.tolerance else 0.0

    def _watch(self) -> None:
        # Event.wait times out on the monotonic clock: a wall-clock step does not stretch it.
        while not self._stop.wait(self.interval):
            if self.step():
                self.reactor.callFromThread(self.check)

    def check(self) -> float:
        """In the reactor thread: move every pending call by the step, if there was one."""
        drift = self.step()
        self._base = (self.wall(), self.monotonic())
        if not drift:
            return 0.0
        self.steps += 1
        now = self.reactor.seconds()
        moved = 0
        for call in self.reactor.getDelayedCalls():
            if not call.active():
                continue
            # Its time was set in the old frame: what was left of it then is left now.
            call.reset(max(call.getTime() - (now - drift), 0.0))
            moved += 1
        self.log.warn(
            "The wall clock stepped {direction} by {seconds:.0f} s; {moved} timers keep their intervals",
            direction="back" if drift < 0 else "forward",
            seconds=abs(drift),
            moved=moved,
        )
        return drift

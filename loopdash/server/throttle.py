"""Throttling repeated authentication failures from one address.

Each address has a leaky bucket: a failure adds one, the level drains at
``leak_per_second``. Past ``burst`` failures the address's next failures are
answered 429 with ``Retry-After`` instead of 401/403. A request with the right
credentials is never throttled: the token is 256 random bits, so guessing is
hopeless anyway; the throttle bounds the work and the log noise of a flood,
and a valid client sharing an address with a flooder (loopback, a NAT) keeps
working. Memory is bounded: at most ``max_addresses`` buckets. No reactor
here; the clock is injected.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class Verdict:
    #: Seconds for Retry-After when the failure is to be answered 429, else None.
    retry_after: int | None
    #: Whether this failure is the one that started throttling the address (log it once).
    started: bool


class FailureThrottle:
    """Per-address counters of failed authentications, with decay."""

    def __init__(
        self,
        clock: Clock,
        burst: int = 30,
        leak_per_second: float = 1.0,
        max_addresses: int = 4096,
    ) -> None:
        self.clock = clock
        self.burst = burst
        self.leak_per_second = leak_per_second
        self.max_addresses = max_addresses
        #: address -> (level, when the level was computed); least recently failed first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, address: str, now: float) -> float:
        level, then = self._buckets.get(address, (0.0, now))
        return max(level - (now - then) * self.leak_per_second, 0.0)

    def failure(self, address: str) -> Verdict:
        """Record a failure from ``address``; whether to answer 429, and for how long."""
        now = self.clock.seconds()
        before = self._level(address, now)
        # The level is capped a little above the limit, so a flooder's wait stays bounded.
        level = min(before + 1.0, self.burst + 1.0)
        self._buckets[address] = (level, now)
        self._buckets.move_to_end(address)
        self._evict(now)
        if level <= self.burst:
            return Verdict(None, False)
        # Until one more failure would fit under the limit again.
        wait = max(math.ceil((level + 1.0 - self.burst) / self.leak_per_second), 1)
        return Verdict(wait, started=before <= self.burst)

    def _evict(self, now: float) -> None:
        if len(self._buckets) <= self.max_addresses:
            return
        for address in [a for a in self._buckets if self._level(a, now) == 0.0]:
            del self._buckets[address]
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)

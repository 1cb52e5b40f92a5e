"""Repeated authentication failures from one address: 429 with Retry-After, valid clients unaffected."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from loopdash.server.api import TOO_MANY_FAILURES
from loopdash.server.throttle import FailureThrottle
from tests.contract import Contract, the_document
from tests.support import RunningDaemon


def test_failures_up_to_the_burst_are_not_throttled_the_next_one_is() -> None:
    throttle = FailureThrottle(Clock(), burst=3, leak_per_second=1.0)
    assert [throttle.failure("10.0.0.1").retry_after for _ in range(3)] == [None, None, None]
    verdict = throttle.failure("10.0.0.1")
    assert verdict.retry_after == 2 and verdict.started
    again = throttle.failure("10.0.0.1")
    assert again.retry_after == 2 and not again.started


def test_other_addresses_are_not_affected() -> None:
    throttle = FailureThrottle(Clock(), burst=2)
    for _ in range(10):
        throttle.failure("10.0.0.1")
    assert throttle.failure("10.0.0.2").retry_after is None


def test_waiting_retry_after_lets_one_more_failure_through() -> None:
    clock = Clock()
    throttle = FailureThrottle(clock, burst=5, leak_per_second=0.5)
    for _ in range(50):
        verdict = throttle.failure("a")
    assert verdict.retry_after == 4  # a flooder's wait is capped: (burst + 2 - burst) / 0.5
    clock.advance(verdict.retry_after - 0.01)
    assert throttle.failure("a").retry_after is not None
    clock.advance(4)
    assert throttle.failure("a").retry_after is None


def test_the_level_decays_to_nothing() -> None:
    clock = Clock()
    throttle = FailureThrottle(clock, burst=3, leak_per_second=1.0)
    for _ in range(3):
        throttle.failure("a")
    clock.advance(3)
    assert [throttle.failure("a").retry_after for _ in range(3)] == [None, None, None]


def test_memory_stays_bounded_under_failures_from_many_addresses() -> None:
    clock = Clock()
    throttle = FailureThrottle(clock, burst=3, leak_per_second=1.0, max_addresses=100)
    for _ in range(4):
        throttle.failure("flooder")
    clock.advance(0.5)
    for n in range(10_000):
        throttle.failure(f"10.{n // 256}.{n % 256}.1")
        assert len(throttle) <= 100
    clock.advance(10)
    for n in range(200):
        throttle.failure(f"192.168.0.{n}")
    assert len(throttle) == 100


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 5)), max_size=200))
def test_retry_after_is_always_a_small_positive_integer_when_throttled(
    steps: list[tuple[str, float]],
) -> None:
    clock = Clock()
    throttle = FailureThrottle(clock, burst=4, leak_per_second=0.25)
    for address, pause in steps:
        clock.advance(pause)
        verdict = throttle.failure(address)
        if verdict.retry_after is not None:
            assert 1 <= verdict.retry_after <= 8


async def _flood(daemon: RunningDaemon, count: int) -> list[Any]:
    return [await daemon.get("/api/status", token="not-the-token") for _ in range(count)]


@pytest_twisted.ensureDeferred
async def test_a_flood_of_wrong_tokens_gets_429_json_with_retry_after(sample_daemon: RunningDaemon) -> None:
    burst = sample_daemon.dashboard.api.throttle.burst
    answers = await _flood(sample_daemon, burst + 3)
    assert [a.code for a in answers[:burst]] == [403] * burst
    contract = Contract(the_document())
    for answer in answers[burst:]:
        assert answer.code == 429
        contract.check("/api/status", "GET", answer.code, answer.headers, answer.body)
        assert answer.json() == {"error": TOO_MANY_FAILURES}
        assert answer.header("Content-Type") == "application/json; charset=utf-8"
        assert int(answer.header("Retry-After") or "0") >= 1
    # Missing headers and bad stream tickets count as failures too.
    assert (await sample_daemon.get("/api/status", authenticated=False)).code == 429
    assert (await sample_daemon.get("/api/stream?ticket=forged", authenticated=False)).code == 429


@pytest_twisted.ensureDeferred
async def test_valid_clients_are_served_while_their_address_is_throttled(
    sample_daemon: RunningDaemon,
) -> None:
    # Every test client is 127.0.0.1: the flooder and the valid client share the address.
    await _flood(sample_daemon, sample_daemon.dashboard.api.throttle.burst + 5)
    for path in ("/api/status", "/api/stories", "/api/runs", "/metrics"):
        answer = await sample_daemon.get(path)
        assert answer.code == 200, path
    ticket = (await sample_daemon.request("POST", "/api/stream/ticket")).json()["ticket"]
    assert ticket


@pytest_twisted.ensureDeferred
async def test_throttling_ends_once_the_failures_decay_and_is_logged_once(
    sample_daemon: RunningDaemon,
) -> None:
    from twisted.logger import globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    clock = Clock()
    sample_daemon.dashboard.api.throttle = FailureThrottle(clock, burst=5, leak_per_second=1.0)
    try:
        answers = await _flood(sample_daemon, 12)
        assert [a.code for a in answers] == [403] * 5 + [429] * 7
        clock.advance(int(answers[-1].header("Retry-After") or "0"))
        assert (await sample_daemon.get("/api/status", token="not-the-token")).code == 403
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if "Throttling" in str(e.get("log_format", ""))]
    assert len(warnings) == 1 and warnings[0]["address"] == "127.0.0.1"

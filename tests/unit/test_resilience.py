import asyncio

import pytest

from core.resilience import CircuitBreaker, CircuitOpenError, retry_async


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_half_opens_and_closes():
    clock = Clock()
    cb = CircuitBreaker("x", failure_threshold=3, reset_timeout=60, success_threshold=2, clock=clock)
    for _ in range(3):
        cb.record_failure()
    assert cb.state == "open" and not cb.allow()
    clock.t = 61
    assert cb.state == "half_open" and cb.allow()
    cb.record_failure()  # a failed trial re-opens for a full timeout
    assert cb.state == "open"
    clock.t = 122
    cb.record_success()
    assert cb.state == "half_open"
    cb.record_success()
    assert cb.state == "closed"


def test_breaker_call_refuses_when_open():
    cb = CircuitBreaker("x", failure_threshold=1, clock=Clock())

    async def boom() -> None:
        raise ValueError("down")

    with pytest.raises(ValueError):
        asyncio.run(cb.call(boom))
    with pytest.raises(CircuitOpenError):
        asyncio.run(cb.call(boom))


def test_retry_gives_up_after_attempts():
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("no")
        return "ok"

    assert asyncio.run(retry_async(flaky, attempts=3, base_delay=0.001)) == "ok"
    calls.clear()
    with pytest.raises(ConnectionError):
        asyncio.run(retry_async(flaky, attempts=2, base_delay=0.001))

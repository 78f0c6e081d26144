import asyncio

import pytest

from core.resilience import CircuitBreaker, CircuitOpenError, guarded


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


def test_retry_gives_up_after_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import resilience

    monkeypatch.setenv("RETRY_BASE_DELAY", "0.001")
    resilience.reset()
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("no")
        return "ok"

    assert asyncio.run(guarded("flaky-a", flaky, attempts=3)) == "ok"
    calls.clear()
    with pytest.raises(ConnectionError):
        asyncio.run(guarded("flaky-b", flaky, attempts=2))


def test_registry_gives_one_breaker_per_name_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import resilience

    monkeypatch.setenv("CB_FAILURE_THRESHOLD", "5")
    monkeypatch.setenv("CB_TIMEOUT", "7")
    resilience.reset()
    b = resilience.breaker("prometheus")
    assert b is resilience.breaker("prometheus") and b is not resilience.breaker("redis")
    assert (b.failure_threshold, b.reset_timeout) == (5, 7.0)


def test_guarded_retries_idempotent_calls_then_opens_and_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import resilience

    monkeypatch.setenv("RETRY_BASE_DELAY", "0.001")
    monkeypatch.setenv("CB_FAILURE_THRESHOLD", "3")
    resilience.reset()
    attempts = []

    async def down() -> str:
        attempts.append(1)
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        asyncio.run(resilience.guarded("dep", down))
    assert len(attempts) == 3 and resilience.breaker("dep").state == "open"
    with pytest.raises(CircuitOpenError) as err:  # open: refused at once, the function is not called
        asyncio.run(resilience.guarded("dep", down))
    assert len(attempts) == 3 and err.value.dependency == "dep"
    assert resilience.breaker("dep").total_rejected == 1


def test_guarded_sync_does_not_retry_non_idempotent_or_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import resilience

    monkeypatch.setenv("RETRY_BASE_DELAY", "0.001")
    resilience.reset()
    calls = []

    def send() -> None:
        calls.append(1)
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        resilience.guarded_sync("chan", send, idempotent=False)
    assert len(calls) == 1

    def bad_query() -> None:
        calls.append(1)
        raise ValueError("parse error")

    with pytest.raises(ValueError):  # the dependency answered: no retry, and its breaker is not charged
        resilience.guarded_sync("prom", bad_query, counts=lambda e: not isinstance(e, ValueError))
    assert len(calls) == 2 and resilience.breaker("prom").failures == 0

    flaky = iter([ConnectionError("blip"), None])

    def once_flaky() -> str:
        exc = next(flaky)
        if exc:
            raise exc
        return "ok"

    assert resilience.guarded_sync("prom", once_flaky) == "ok" and resilience.breaker("prom").failures == 0


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    from core.resilience import backoff_delay

    for n, full in [(0, 0.2), (1, 0.4), (2, 0.8), (6, 5.0)]:
        d = backoff_delay(n, 0.2, 5.0)
        assert full / 2 <= d <= full

"""Resilience primitives: a circuit breaker and retry with exponential back-off.

A provider that keeps failing is skipped for `CB_TIMEOUT` seconds instead of being paid for (in
latency) on every request; after the timeout one trial call is let through (half-open), and
`CB_SUCCESS_THRESHOLD` successes close the breaker again.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class CircuitOpenError(RuntimeError):
    pass


# Every breaker alive in this process, so an interface can list them (GET /api/v1/circuit-breakers,
# /metrics) without each owner having to register its own.
_LIVE: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def all_breakers() -> list[CircuitBreaker]:
    return sorted(_LIVE, key=lambda b: b.name)


class CircuitBreaker:
    def __init__(self, name: str, failure_threshold: int = 3, reset_timeout: float = 60.0,
                 success_threshold: int = 2, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.success_threshold = success_threshold
        self._clock = clock
        self._failures = 0
        self._successes = 0
        self._opened_at: float | None = None
        self.opened_at_wall: float | None = None  # unix time the breaker last opened (for humans)
        _LIVE.add(self)

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_timeout:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        if self.state == "half_open":
            self._successes += 1
            if self._successes >= self.success_threshold:
                self._opened_at, self._failures, self._successes = None, 0, 0
                self.opened_at_wall = None
        else:
            self._failures = 0

    def record_failure(self) -> None:
        if self.state == "half_open":
            self._opened_at, self._successes = self._clock(), 0
            self.opened_at_wall = time.time()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self.opened_at_wall = time.time()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        if not self.allow():
            raise CircuitOpenError(f"circuit '{self.name}' is open")
        try:
            result = await fn()
        except Exception:
            self.record_failure()
            raise
        self.record_success()
        return result


async def retry_async(fn: Callable[[], Awaitable[T]], *, attempts: int = 3, base_delay: float = 0.5,
                      max_delay: float = 8.0, retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Call `fn` up to `attempts` times, sleeping base*2^n (with jitter) between failures."""
    last: BaseException | None = None
    for n in range(attempts):
        try:
            return await fn()
        except retry_on as exc:  # noqa: PERF203
            last = exc
            if n == attempts - 1:
                break
            delay = min(max_delay, base_delay * 2**n) * (0.5 + random.random() / 2)
            await asyncio.sleep(delay)
    assert last is not None
    raise last

"""Resilience primitives: one named circuit breaker per outbound dependency, and retry with
exponential back-off and jitter for idempotent calls.

Every outbound dependency (each LLM provider, Prometheus, Elasticsearch, Redis, Postgres, Milvus, the
embeddings endpoint, Proxmox, RouterOS, Ansible targets, each notification channel) is called through
`guarded()` (async) or `guarded_sync()` with its dependency name. The breaker for that name is
process-wide (`breaker(name)`), so every caller of Prometheus shares one view of whether Prometheus is
up. A dependency that keeps failing is skipped for `CB_TIMEOUT` seconds instead of being paid for (in
latency) on every request: callers get `CircuitOpenError` at once and take their fallback. After the
timeout trial calls are let through (half-open) and `CB_SUCCESS_THRESHOLD` successes close it again.

Order: retry wraps the breaker. Each attempt is one breaker call, so a dependency that is down opens
its breaker after `CB_FAILURE_THRESHOLD` failed attempts and the retry stops as soon as it is open.
Only idempotent calls are retried (`idempotent=False` gives one attempt: sending a notification or
starting an action twice is worse than failing once).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from core.settings import load_settings

T = TypeVar("T")


class DependencyUnavailable(RuntimeError):
    """A dependency could not be used (its breaker is open); callers fall back on this."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency


class CircuitOpenError(DependencyUnavailable):
    def __init__(self, name: str) -> None:
        super().__init__(name, f"circuit '{name}' is open (dependency failing; retried after CB_TIMEOUT)")


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
        self._lock = threading.Lock()  # sync callers run in worker threads
        self._failures = 0
        self._successes = 0
        self._opened_at: float | None = None
        self.opened_at_wall: float | None = None  # unix time the breaker last opened (for humans)
        self.last_error: str | None = None
        self.total_failures = 0
        self.total_rejected = 0  # calls refused at once because the breaker was open
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
        with self._lock:
            if self.state == "half_open":
                self._successes += 1
                if self._successes >= self.success_threshold:
                    self._opened_at, self._failures, self._successes = None, 0, 0
                    self.opened_at_wall = None
            else:
                self._failures = 0

    def record_failure(self, error: BaseException | str | None = None) -> None:
        with self._lock:
            self.total_failures += 1
            if error is not None:
                self.last_error = (error if isinstance(error, str)
                                   else f"{type(error).__name__}: {error}")[:300]
            if self.state == "half_open":
                self._opened_at, self._successes = self._clock(), 0
                self.opened_at_wall = time.time()
                return
            self._failures += 1
            if self._failures >= self.failure_threshold and self._opened_at is None:
                self._opened_at = self._clock()
                self.opened_at_wall = time.time()

    def _check(self) -> None:
        if not self.allow():
            self.total_rejected += 1
            raise CircuitOpenError(self.name)

    def _failed(self, exc: BaseException, counts: Callable[[BaseException], bool] | None) -> None:
        if counts is None or counts(exc):
            self.record_failure(exc)

    async def call(self, fn: Callable[[], Awaitable[T]],
                   counts: Callable[[BaseException], bool] | None = None) -> T:
        self._check()
        try:
            result = await fn()
        except Exception as exc:
            self._failed(exc, counts)
            raise
        self.record_success()
        return result

    def call_sync(self, fn: Callable[[], T], counts: Callable[[BaseException], bool] | None = None) -> T:
        self._check()
        try:
            result = fn()
        except Exception as exc:
            self._failed(exc, counts)
            raise
        self.record_success()
        return result


# --- the process-wide registry: one breaker per dependency name ------------------------------------

@dataclass
class ResilienceConfig:
    failure_threshold: int = 3
    reset_timeout: float = 60.0
    success_threshold: int = 2
    retry_attempts: int = 3
    retry_base_delay: float = 0.2
    retry_max_delay: float = 5.0


_REGISTRY: dict[str, CircuitBreaker] = {}
_REGISTRY_LOCK = threading.Lock()
_config: ResilienceConfig | None = None


def _settings_config() -> ResilienceConfig:
    try:
        s = load_settings()
    except Exception:  # an invalid environment is reported by whoever loads settings for real
        return ResilienceConfig()
    return config_from(s)


def config_from(settings: Any) -> ResilienceConfig:
    return ResilienceConfig(settings.CB_FAILURE_THRESHOLD, float(settings.CB_TIMEOUT),
                            settings.CB_SUCCESS_THRESHOLD, settings.RETRY_ATTEMPTS,
                            settings.RETRY_BASE_DELAY, settings.RETRY_MAX_DELAY)


def current_config() -> ResilienceConfig:
    global _config
    if _config is None:
        _config = _settings_config()
    return _config


def configure(settings: Any) -> None:
    """Apply `CB_*` / `RETRY_*` from settings to the registry (existing breakers are re-tuned)."""
    global _config
    _config = config_from(settings)
    with _REGISTRY_LOCK:
        for b in _REGISTRY.values():
            b.failure_threshold = _config.failure_threshold
            b.reset_timeout = _config.reset_timeout
            b.success_threshold = _config.success_threshold


def breaker(name: str) -> CircuitBreaker:
    """The process-wide breaker for dependency `name` (created on first use from the settings)."""
    with _REGISTRY_LOCK:
        b = _REGISTRY.get(name)
        if b is None:
            cfg = current_config()
            b = _REGISTRY[name] = CircuitBreaker(name, cfg.failure_threshold, cfg.reset_timeout,
                                                 cfg.success_threshold)
        return b


def reset() -> None:
    """Forget every registered breaker and the cached configuration (tests; a settings reload)."""
    global _config
    with _REGISTRY_LOCK:
        _REGISTRY.clear()
        _config = None


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential back-off with jitter: base*2^attempt capped at `cap`, then scaled into [50 %, 100 %]."""
    return min(cap, base * 2 ** attempt) * (0.5 + random.random() / 2)


def _retry_delay(n: int, tries: int, exc: BaseException, b: CircuitBreaker, cfg: ResilienceConfig,
                 retry_on: tuple[type[BaseException], ...], never_retry: tuple[type[BaseException], ...],
                 counts: Callable[[BaseException], bool] | None) -> float | None:
    """Seconds to wait before attempt n+1, or None to raise `exc` now: the last attempt, an error not
    worth retrying, a refusal not charged to the dependency, or the breaker now open."""
    if n == tries - 1 or not isinstance(exc, retry_on) or isinstance(exc, never_retry) \
            or isinstance(exc, CircuitOpenError) or not b.allow() or (counts is not None and not counts(exc)):
        return None
    return backoff_delay(n, cfg.retry_base_delay, cfg.retry_max_delay)


async def guarded(name: str, fn: Callable[[], Awaitable[T]], *, idempotent: bool = True,
                  retry_on: tuple[type[BaseException], ...] = (Exception,),
                  never_retry: tuple[type[BaseException], ...] = (),
                  counts: Callable[[BaseException], bool] | None = None,
                  attempts: int | None = None) -> T:
    """Call `fn` through the breaker for `name`, retrying idempotent calls with back-off and jitter.

    `counts(exc)` decides whether an error is the dependency's fault (default: every error); a
    refusal such as a bad query or a 4xx should not open the breaker. Errors in `never_retry` are
    raised at once. Raises `CircuitOpenError` at once while the breaker is open.
    """
    cfg = current_config()
    tries = (attempts or cfg.retry_attempts) if idempotent else 1
    b = breaker(name)
    for n in range(tries):
        try:
            return await b.call(fn, counts)
        except Exception as exc:
            delay = _retry_delay(n, tries, exc, b, cfg, retry_on, never_retry, counts)
            if delay is None:
                raise
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def guarded_sync(name: str, fn: Callable[[], T], *, idempotent: bool = True,
                 retry_on: tuple[type[BaseException], ...] = (Exception,),
                 never_retry: tuple[type[BaseException], ...] = (),
                 counts: Callable[[BaseException], bool] | None = None,
                 attempts: int | None = None) -> T:
    """`guarded` for synchronous clients (redis-py, pymilvus, psycopg, proxmoxer, librouteros)."""
    cfg = current_config()
    tries = (attempts or cfg.retry_attempts) if idempotent else 1
    b = breaker(name)
    for n in range(tries):
        try:
            return b.call_sync(fn, counts)
        except Exception as exc:
            delay = _retry_delay(n, tries, exc, b, cfg, retry_on, never_retry, counts)
            if delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")

"""Postgres connections through the "postgres" circuit breaker.

Every store that uses `DATABASE_URL` (the incident registry, the autonomy tables, the health check)
connects here. Connecting is idempotent, so it is retried with back-off (`RETRY_*`); the statements
that follow are not (a compare-and-set that may have committed must not run twice), so a connection
that breaks under them is charged to the breaker once and reported. Either way callers get
`StoreUnavailable` (a `DependencyUnavailable`): the API answers 503, a worker waits and tries again.
While the breaker is open nothing is attempted: the answer is immediate instead of a connect timeout
per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.resilience import CircuitOpenError, breaker, guarded_sync
from store.errors import StoreUnavailable

NAME = "postgres"
CONNECT_TIMEOUT = 5  # seconds; a stopped server refuses at once, a black-holed one costs this


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def is_outage(exc: BaseException) -> bool:
    """A connection-level failure (server down, restarted, unreachable), not a refused statement."""
    import psycopg
    from psycopg_pool import PoolTimeout  # a declared dependency (the checkpointer's pool)

    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, psycopg.OperationalError):
        return not isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable)
    return isinstance(exc, OSError)


def connect(url: str, **kwargs: Any) -> Any:
    """A new psycopg connection, through the breaker (retried: connecting twice is harmless)."""
    import psycopg

    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        return guarded_sync(NAME, lambda: psycopg.connect(url, **kwargs), counts=is_outage)
    except CircuitOpenError as exc:
        raise StoreUnavailable(f"postgres unavailable: {exc}") from None
    except Exception as exc:
        if is_outage(exc):
            raise StoreUnavailable(f"postgres unavailable: {_line(exc)}") from None
        raise


def charge(exc: BaseException) -> StoreUnavailable | None:
    """If `exc` is an outage, charge it to the breaker and return the `StoreUnavailable` to raise."""
    if isinstance(exc, StoreUnavailable):
        return exc
    if not is_outage(exc):
        return None
    breaker(NAME).record_failure(exc)
    return StoreUnavailable(f"postgres unavailable: {_line(exc)}")


@contextmanager
def outage_as_unavailable() -> Iterator[None]:
    """Statements in the block: a connection that breaks becomes `StoreUnavailable` (not retried)."""
    try:
        yield
    except Exception as exc:
        unavailable = charge(exc)
        if unavailable is None:
            raise
        raise unavailable from exc

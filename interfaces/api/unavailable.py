"""503 answers for a dependency that is down, with a Retry-After the sender can use.

Alertmanager re-sends a notification the receiver refused; an API client is told when trying again
makes sense: when the dependency's breaker half-opens (what is left of CB_TIMEOUT), else in a second.
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException

from core.resilience import breaker

DEFAULT_RETRY_AFTER = 1


def retry_after(dependency: str) -> int:
    """Seconds until `dependency`'s breaker lets a trial call through (at least 1)."""
    b = breaker(dependency)
    if b.state != "open" or b.opened_at_wall is None:
        return DEFAULT_RETRY_AFTER
    return max(DEFAULT_RETRY_AFTER, math.ceil(b.reset_timeout - (time.time() - b.opened_at_wall)))


def unavailable(detail: str, dependency: str) -> HTTPException:
    return HTTPException(503, detail, headers={"Retry-After": str(retry_after(dependency))})


def store_open(database_url: str | None) -> bool:
    """Postgres is configured and its breaker is open: nothing that needs it can be stored now."""
    return bool(database_url) and breaker("postgres").state == "open"

"""Which Redis errors are an outage (charged to the "redis" breaker) and which are refusals."""

from __future__ import annotations


def redis_outage(exc: BaseException) -> bool:
    """Redis itself failing (refused, reset, timed out, not speaking RESP), as opposed to a command it
    answered with an error (a ResponseError: wrong type, OOM, NOSCRIPT): only outages charge the breaker."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import InvalidResponse
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, RedisConnectionError | RedisTimeoutError | InvalidResponse | OSError)

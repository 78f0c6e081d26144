"""Is a failure an outage (retry it) or a bug or bad input (a human looks)? One answer for every caller."""

from __future__ import annotations

import errno
import sqlite3

from core.resilience import DependencyUnavailable
from store.errors import StoreError
from store.pg import is_outage

_MACHINE = {errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT, errno.ENOMEM}


def outage(exc: BaseException, postgres: str | None) -> bool:
    """A store or the machine failed (not the code, not the input): the database server is down, an
    SQLite file is locked, damaged or on a full disk, the disk itself fails. Such a failure is retried
    (a worker keeps its message, the API answers 503); anything else inside a run is a bug or bad
    input, for a human. `postgres` is DATABASE_URL: its driver's errors count when it is set."""
    seen: BaseException | None = exc
    for _ in range(5):  # raised while handling the store's own error: look at what it wraps
        if seen is None:
            return False
        if isinstance(seen, DependencyUnavailable | StoreError | MemoryError) or type(seen) is sqlite3.DatabaseError:
            return True
        if isinstance(seen, sqlite3.OperationalError) or (isinstance(seen, OSError) and seen.errno in _MACHINE):
            return True
        if postgres and type(seen).__module__.split(".")[0] in ("psycopg", "psycopg_pool") and is_outage(seen):
            return True  # classified only: the caller charges the "postgres" breaker
        seen = seen.__cause__ or seen.__context__
    return False

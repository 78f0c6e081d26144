"""One small SQL connection for the autonomy tables (correlation index, automatic-action history, switches).

The same database as the incident registry: `$AIOPS_DATA_DIR/incidents.sqlite`, or Postgres when
`DATABASE_URL` is set. Unlike the registry (a connection per call), these stores sit on the hot path
of an alert storm, so the connection is kept open. `transaction()` is *exclusive* (SQLite `BEGIN
IMMEDIATE`, a Postgres advisory lock): a look-up followed by an insert is atomic across workers and
processes, which is what makes "find the open incident or open one" and "check the rate limit and
record the action" race-free.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from core.settings import Settings
from store.pg import charge, connect, is_outage

BUSY_TIMEOUT_SECONDS = 30.0  # how long a SQLite transaction waits for another connection's write lock


class SqlStore:
    """A persistent connection with '?' placeholders on both SQLite and Postgres."""

    def __init__(self, settings: Settings, schema: Sequence[str], lock_name: str) -> None:
        self._pg_url = settings.DATABASE_URL
        self._path = settings.AIOPS_DATA_DIR / "incidents.sqlite"
        self._lock = threading.RLock()
        self._depth = 0  # transactions open on the thread holding the lock: 1 the outer one, more nested
        self._lock_id = zlib.crc32(lock_name.encode())  # one advisory lock per store
        self._conn: Any = None
        with self.transaction() as tx:
            for stmt in schema:
                tx.execute(stmt)

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        if self._pg_url:
            self._conn = connect(self._pg_url, autocommit=True)  # through the "postgres" breaker
        else:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """An exclusive transaction; inside another one on this thread (e.g. a batch of admissions held
        in one transaction, `store.correlation.CorrelationStore.batch`), a savepoint of it: its statements
        are undone alone if it raises, and are durable when the outer transaction commits."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    with self._savepoint() as tx:
                        yield tx
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                with self._outer() as tx:
                    yield tx
            finally:
                self._depth = 0

    @contextmanager
    def _savepoint(self) -> Iterator[Tx]:
        if self._pg_url:
            with self._conn.transaction():  # psycopg: a nested transaction is a savepoint
                yield Tx(self._conn, pg=True)
            return
        name = f"aiops_sp{self._depth}"
        self._conn.execute(f"SAVEPOINT {name}")
        try:
            yield Tx(self._conn, pg=False)
        except BaseException:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")
            raise
        self._conn.execute(f"RELEASE {name}")

    @contextmanager
    def _outer(self) -> Iterator[Tx]:
        if self._pg_url:
            try:
                with ExitStack() as stack:
                    conn = self._begin_pg(stack, is_outage)
                    yield Tx(conn, pg=True)
            except Exception as exc:
                unavailable = charge(exc)
                if unavailable is None:
                    raise
                # The kept connection is dead (Postgres restarted or went away): reconnect next time.
                self.close_quietly()
                raise unavailable from exc
            return
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(conn, pg=False)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # e.g. a disk I/O error: nothing of it stays, the next one starts clean
                conn.execute("ROLLBACK")
            raise

    def _begin_pg(self, stack: ExitStack, is_outage: Callable[[BaseException], bool]) -> Any:
        """BEGIN and take the store's advisory lock. The kept connection may have died while idle
        (Postgres restarted): nothing has run yet, so reconnect once (through the breaker)."""
        for attempt in (0, 1):
            conn = self._connect()
            try:
                stack.enter_context(conn.transaction())
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._lock_id])
                return conn
            except Exception as exc:
                if attempt == 1 or not is_outage(exc):
                    raise
                stack.close()
                self.close_quietly()
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def close_quietly(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass


class Tx:
    def __init__(self, conn: Any, *, pg: bool) -> None:
        self._conn = conn
        self._pg = pg

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._pg:
            return self._conn.execute(sql.replace("?", "%s"), list(params))
        return self._conn.execute(sql, list(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]


def marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))

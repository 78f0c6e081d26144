"""Checkpointer choice: SQLite file by default, Postgres when DATABASE_URL is set.

Both are durable: a graph paused at the approval gate can be resumed by another process, hours
later, after a restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver

from core.settings import Settings
from store.errors import corrupted, is_corruption


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver]:
    if settings.DATABASE_URL:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # A pool, not one connection: a connection that died with a Postgres restart is checked and
        # replaced on its next use, so the service resumes by itself once Postgres is back (one kept
        # connection would fail every later run until the process restarts).
        async with AsyncConnectionPool(settings.DATABASE_URL, min_size=1, max_size=4, open=False,
                                       timeout=10, check=AsyncConnectionPool.check_connection,
                                       kwargs={"autocommit": True, "prepare_threshold": 0,
                                               "row_factory": dict_row, "connect_timeout": 5}) as pool:
            pg_saver = AsyncPostgresSaver(conn=pool)  # type: ignore[arg-type]  # dict_row via kwargs
            await _setup_serialised(pg_saver, settings.DATABASE_URL)
            yield pg_saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = settings.checkpoint_path
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        try:
            await saver.setup()  # the first read of the file: a damaged one fails here
        except sqlite3.Error as exc:
            if is_corruption(exc):
                raise corrupted(path, "checkpoints", exc) from None
            raise
        yield saver


async def _setup_serialised(saver: BaseCheckpointSaver, url: str) -> None:
    """Two processes starting at once on a fresh database would both create the checkpoint tables and
    one would fail on Postgres' catalog; an advisory lock makes the first create and the second wait.

    The waiter polls `pg_try_advisory_lock` instead of blocking in `pg_advisory_lock`: the setup runs
    `CREATE INDEX CONCURRENTLY`, which waits for every open transaction, including a blocked lock
    call, so a blocking wait would deadlock the two."""
    import asyncio

    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as lock:
        for _ in range(1200):  # at most about two minutes, then set up anyway (and fail with its error)
            row = await (await lock.execute("SELECT pg_try_advisory_lock(7341001)")).fetchone()
            if row and row[0]:
                break
            await asyncio.sleep(0.1)
        try:
            await saver.setup()  # type: ignore[attr-defined]
        finally:
            await lock.execute("SELECT pg_advisory_unlock_all()")

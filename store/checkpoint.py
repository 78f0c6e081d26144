"""Checkpointer choice: SQLite file by default, Postgres when DATABASE_URL is set.

Both are durable: a graph paused at the approval gate can be resumed by another process, hours
later, after a restart.

The state holds pydantic models (graphs/state.py). LangGraph's serializer rebuilds a stored class only
when it is allowed; by default it allows every class with a warning per class (and refuses all under
LANGGRAPH_STRICT_MSGPACK=true, handing back plain dicts). `types` is the explicit allow-list: exactly
those classes (plus LangGraph's own safe ones: datetimes, UUIDs, ...) are rebuilt, without a warning,
whatever the environment says; anything else in a checkpoint is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from core.settings import Settings
from store.errors import corrupted, is_corruption


@asynccontextmanager
async def open_checkpointer(settings: Settings, types: Collection[type]) -> AsyncIterator[BaseCheckpointSaver]:
    """The configured checkpointer, rebuilding exactly `types` (the state's classes) from what it reads."""
    serde = serializer(types)
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
            pg_saver = AsyncPostgresSaver(conn=pool, serde=serde)  # type: ignore[arg-type]  # dict_row via kwargs
            await _setup_serialised(pg_saver, settings.DATABASE_URL)
            yield pg_saver
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = settings.checkpoint_path
    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(path)) as conn:  # AsyncSqliteSaver.from_conn_string, with our serializer
        saver = AsyncSqliteSaver(conn, serde=serde)
        try:
            await saver.setup()  # the first read of the file: a damaged one fails here
        except sqlite3.Error as exc:
            if is_corruption(exc):
                raise corrupted(path, "checkpoints", exc) from None
            raise
        yield saver


def serializer(types: Collection[type]) -> JsonPlusSerializer:
    """LangGraph's serializer, allowed to rebuild `types` and LangGraph's safe types only."""
    if not types:
        raise ValueError("name the classes a checkpoint may hold (graphs/state.py CHECKPOINT_TYPES)")
    return JsonPlusSerializer(allowed_msgpack_modules=tuple(types))


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

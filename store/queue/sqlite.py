"""The embedded durable queue: one SQLite file in `$AIOPS_DATA_DIR`, so `aiops serve` needs no server.

Same semantics as the Redis Streams backend (see `store.queue.base`). Several processes may share
the file (the API enqueues, `aiops worker` processes consume): hand-outs happen inside
`BEGIN IMMEDIATE` transactions, so two consumers never get the same message at once.

Durability: WAL with `synchronous=FULL`, so `enqueue` returns only after the commit is on disk.
Concurrent enqueues are group-committed (one transaction for all that arrived while the previous commit
was running), which is what keeps 64 concurrent webhook clients from queueing behind 64 fsyncs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from core.group_commit import GroupCommit
from store.errors import corrupted, is_corruption
from store.queue.base import DeadLetter, Message, QueueStats, QueueUnavailable, encode

T = TypeVar("T")
LOCK_TIMEOUT = 30.0  # seconds a write waits for another process's transaction before the queue is "unavailable"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS queue_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        key TEXT NOT NULL,
        body TEXT NOT NULL,
        enqueued_at REAL NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 0,
        consumer TEXT,
        claimed_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS queue_messages_q ON queue_messages (queue, consumer, id)",
    "CREATE INDEX IF NOT EXISTS queue_messages_key ON queue_messages (queue, key)",
    """CREATE TABLE IF NOT EXISTS queue_dead_letters (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        key TEXT NOT NULL,
        body TEXT NOT NULL,
        enqueued_at REAL NOT NULL,
        deliveries INTEGER NOT NULL,
        reason TEXT NOT NULL,
        failed_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS queue_dead_letters_q ON queue_dead_letters (queue, id)",
    "CREATE TABLE IF NOT EXISTS queue_probe (queue TEXT PRIMARY KEY, written_at REAL NOT NULL)",
)


class SqliteQueue:
    backend = "sqlite"

    def __init__(self, path: Path, name: str, *, claim_idle_seconds: float = 300.0, max_deliveries: int = 5,
                 poll_interval: float = 0.05) -> None:
        self.path = path
        self.name = name
        self.claim_idle_seconds = claim_idle_seconds
        self.max_deliveries = max_deliveries
        self.poll_interval = poll_interval
        # One thread owns the connection: SQLite connections are not shared across threads.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"queue-{name}")
        self._conn: sqlite3.Connection | None = None
        # Concurrent enqueues are inserted together, one transaction per batch (core/group_commit.py).
        self._inserts: GroupCommit[tuple[str, str, str, float, bool], str] = GroupCommit(
            self._insert, catches=(QueueUnavailable,))

    # ------------------------------------------------------------------------------- plumbing --
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # timeout=0: a locked database raises at once and `_run` retries with fine-grained waits (SQLite's
            # own busy handler sleeps 1, 2, 5, ... 100 ms: with two intake processes writing, p99 x6)
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                for stmt in _SCHEMA:
                    conn.execute(stmt)
            except sqlite3.Error:
                conn.close()  # `_run` tries again with a new connection (or gives up)
                raise
            self._conn = conn
        return self._conn

    async def _run(self, fn: Any, *args: Any) -> Any:
        def call() -> Any:
            deadline, wait = time.monotonic() + LOCK_TIMEOUT, 0.0002
            while True:
                try:
                    return fn(self._db(), *args)
                except sqlite3.Error as exc:
                    if self._conn is not None and self._conn.in_transaction:
                        self._conn.rollback()  # nothing of `fn` stays: running it again is safe
                    if _locked(exc) and time.monotonic() < deadline:  # another process writes: wait briefly
                        time.sleep(wait)
                        wait = min(wait * 2, 0.005)
                        continue
                    if is_corruption(exc):  # not an outage that passes: say which file and what to do
                        raise QueueUnavailable(str(corrupted(self.path, "queue", exc))) from exc
                    raise QueueUnavailable(f"queue {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    # -------------------------------------------------------------------------------- enqueue --
    async def enqueue(self, body: dict[str, Any], key: str = "", dedupe: bool = False) -> str:
        (msg_id,) = await self._inserts.submit([(self.name, key, encode(body), time.time(), dedupe)])
        return msg_id

    async def _insert(self, rows: list[tuple[str, str, str, float, bool]]) -> list[str | Exception]:
        return [str(msg_id) for msg_id in await self._run(_insert_many, rows)]

    # -------------------------------------------------------------------------------- consume --
    async def consume(self, consumer: str, count: int = 1, block: float = 1.0) -> list[Message]:
        deadline = time.monotonic() + block
        while True:
            got: list[Message] = await self._run(self._claim, consumer, count)
            if got or time.monotonic() >= deadline:
                return got
            await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def _claim(self, db: sqlite3.Connection, consumer: str, count: int) -> list[Message]:
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(
            "SELECT id, key, body, enqueued_at, deliveries, consumer FROM queue_messages "
            "WHERE queue = ? AND (consumer IS NULL OR claimed_at <= ?) ORDER BY id LIMIT ?",
            [self.name, now - self.claim_idle_seconds, count * 4]).fetchall()
        out: list[Message] = []
        for msg_id, key, body, enqueued_at, deliveries, previous in rows:
            if deliveries >= self.max_deliveries:
                reason = (f"delivered {deliveries} times without acknowledgement"
                          f"{f' (last consumer {previous})' if previous else ''}")
                _move_dead(db, msg_id, reason, now)
                continue
            if len(out) >= count:
                break
            db.execute("UPDATE queue_messages SET deliveries = deliveries + 1, consumer = ?, claimed_at = ? "
                       "WHERE id = ?", [consumer, now, msg_id])
            out.append(Message(id=str(msg_id), queue=self.name, key=key, body=json.loads(body),
                               enqueued_at=enqueued_at, deliveries=deliveries + 1, consumer=consumer))
        db.execute("COMMIT")
        return out

    # ------------------------------------------------------------------------- acknowledgement --
    async def ack(self, msg: Message) -> None:
        await self._run(lambda db: db.execute("DELETE FROM queue_messages WHERE id = ?", [int(msg.id)]))

    async def touch(self, msg: Message) -> None:
        await self._run(lambda db: db.execute(
            "UPDATE queue_messages SET claimed_at = ? WHERE id = ? AND consumer = ?",
            [time.time(), int(msg.id), msg.consumer]))

    async def release(self, msg: Message) -> None:
        await self._run(lambda db: db.execute(
            "UPDATE queue_messages SET consumer = NULL, claimed_at = NULL WHERE id = ? AND consumer = ?",
            [int(msg.id), msg.consumer]))

    async def dead_letter(self, msg: Message, reason: str) -> None:
        def move(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            _move_dead(db, int(msg.id), reason, time.time())
            db.execute("COMMIT")

        await self._run(move)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self._run(lambda db: db.execute(
            "SELECT id, key, body, enqueued_at, deliveries, reason, failed_at FROM queue_dead_letters "
            "WHERE queue = ? ORDER BY id DESC LIMIT ?", [self.name, int(limit)]).fetchall())
        return [DeadLetter(id=str(r[0]), queue=self.name, key=r[1], body=json.loads(r[2]), enqueued_at=r[3],
                           deliveries=r[4], reason=r[5], failed_at=r[6]) for r in rows]

    async def stats(self) -> QueueStats:
        def read(db: sqlite3.Connection) -> tuple[Any, ...]:
            depth, in_flight, oldest = db.execute(
                "SELECT COUNT(*), COUNT(consumer), MIN(enqueued_at) FROM queue_messages WHERE queue = ?",
                [self.name]).fetchone()
            dead = db.execute("SELECT COUNT(*) FROM queue_dead_letters WHERE queue = ?", [self.name]).fetchone()[0]
            return depth, in_flight, oldest, dead

        depth, in_flight, oldest, dead = await self._run(read)
        return QueueStats(name=self.name, backend=self.backend, depth=depth, in_flight=in_flight,
                          oldest_age_seconds=max(0.0, time.time() - oldest) if oldest else 0.0, dead_letters=dead)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def writable(self) -> None:
        # A committed one-row upsert: the same WAL append and fsync as an enqueue, no message.
        await self._run(lambda db: db.execute(
            "INSERT INTO queue_probe VALUES (?, ?) ON CONFLICT (queue) DO UPDATE SET written_at = excluded.written_at",
            [self.name, time.time()]))

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._conn = None

        if self._conn is not None:
            try:
                await self._run(shut)
            except QueueUnavailable:
                pass
        self._pool.shutdown(wait=False)


def _locked(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def _insert_many(db: sqlite3.Connection, rows: list[tuple[str, str, str, float, bool]]) -> list[int]:
    db.execute("BEGIN IMMEDIATE")
    ids = []
    for queue, key, body, at, dedupe in rows:
        if dedupe:
            found = db.execute("SELECT id FROM queue_messages WHERE queue = ? AND key = ? LIMIT 1",
                               [queue, key]).fetchone()
            if found:
                ids.append(int(found[0]))
                continue
        ids.append(int(db.execute("INSERT INTO queue_messages (queue, key, body, enqueued_at) VALUES (?, ?, ?, ?)",
                                  [queue, key, body, at]).lastrowid or 0))
    db.execute("COMMIT")
    return ids


def _move_dead(db: sqlite3.Connection, msg_id: int, reason: str, now: float) -> None:
    db.execute("INSERT OR REPLACE INTO queue_dead_letters (id, queue, key, body, enqueued_at, deliveries, reason, "
               "failed_at) SELECT id, queue, key, body, enqueued_at, deliveries, ?, ? FROM queue_messages "
               "WHERE id = ?", [reason[:500], now, msg_id])
    db.execute("DELETE FROM queue_messages WHERE id = ?", [msg_id])

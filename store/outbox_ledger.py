"""The notification outbox's ledger: each notification's delivery state, and each channel's delivery lease.

States are 'queued', 'delivered' and 'dead', keyed by (incident, event, channel); the outbox
(interfaces/notify/outbox.py) reads a key before it publishes or sends, so a redelivered message is
acknowledged without a second send. SQLite beside the embedded queue, or Redis when REDIS_URL is set.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from core.redis_errors import redis_outage
from core.resilience import guarded
from store.errors import named_if_corrupted


class Ledger(Protocol):
    """Durable per-key state ('queued', 'delivered', 'dead'), and the per-channel delivery lease."""

    async def state(self, key: str) -> str | None: ...

    async def mark(self, key: str, state: str) -> None: ...

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew `name` for `owner` for `ttl` seconds; False while someone else holds it."""
        ...

    async def unlease(self, name: str, owner: str) -> None: ...

    async def close(self) -> None: ...


class SqliteLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with named_if_corrupted(path, "notification ledger"), self._conn() as c:
            c.execute("CREATE TABLE IF NOT EXISTS notify_ledger (key TEXT PRIMARY KEY, state TEXT NOT NULL, "
                      "updated_at REAL NOT NULL)")
            c.execute("CREATE TABLE IF NOT EXISTS notify_leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                      "expires_at REAL NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def _state(self, key: str) -> str | None:
        conn = self._conn()
        try:
            row = conn.execute("SELECT state FROM notify_ledger WHERE key = ?", [key]).fetchone()
        finally:
            conn.close()
        return str(row[0]) if row else None

    def _mark(self, key: str, state: str) -> None:
        conn = self._conn()
        try:
            conn.execute("INSERT INTO notify_ledger VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                         "state = excluded.state, updated_at = excluded.updated_at", [key, state, time.time()])
        finally:
            conn.close()

    def _lease(self, name: str, owner: str, ttl: float) -> bool:
        conn = self._conn()
        try:
            now = time.time()
            cur = conn.execute("INSERT INTO notify_leases VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                               "owner = excluded.owner, expires_at = excluded.expires_at "
                               "WHERE notify_leases.owner = excluded.owner OR notify_leases.expires_at < ?",
                               [name, owner, now + ttl, now])
            return cur.rowcount == 1
        finally:
            conn.close()

    def _unlease(self, name: str, owner: str) -> None:
        conn = self._conn()
        try:
            conn.execute("DELETE FROM notify_leases WHERE name = ? AND owner = ?", [name, owner])
        finally:
            conn.close()

    async def state(self, key: str) -> str | None:
        return await asyncio.to_thread(self._state, key)

    async def mark(self, key: str, state: str) -> None:
        await asyncio.to_thread(self._mark, key, state)

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        return await asyncio.to_thread(self._lease, name, owner, ttl)

    async def unlease(self, name: str, owner: str) -> None:
        await asyncio.to_thread(self._unlease, name, owner)

    async def close(self) -> None:
        return None


class RedisLedger:
    """Delivery states and channel leases in Redis, through the "redis" breaker. Every call is
    idempotent (HGET, HSET of a state, a lease taken-or-renewed by its owner, an owner-checked
    release), so all are retried with back-off."""

    HASH = "aiops:notify:ledger"

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._r = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return await guarded("redis", fn, counts=redis_outage)

    async def state(self, key: str) -> str | None:
        value = await self._call(lambda: self._r.hget(self.HASH, key))  # type: ignore[arg-type,return-value]
        return value.decode() if isinstance(value, bytes) else value  # type: ignore[no-any-return]

    async def mark(self, key: str, state: str) -> None:
        await self._call(lambda: self._r.hset(self.HASH, key, state))  # type: ignore[arg-type,return-value]

    # take the lease if free, or renew it if it is ours (atomic)
    _LEASE = """local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0"""
    _UNLEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        return bool(await self._call(lambda: self._r.eval(  # type: ignore[arg-type,return-value]
            self._LEASE, 1, f"aiops:notify:lease:{name}", owner, int(ttl * 1000))))

    async def unlease(self, name: str, owner: str) -> None:
        await self._call(lambda: self._r.eval(  # type: ignore[arg-type,return-value]
            self._UNLEASE, 1, f"aiops:notify:lease:{name}", owner))

    async def close(self) -> None:
        await self._r.aclose()

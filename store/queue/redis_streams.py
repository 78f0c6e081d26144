"""The Redis Streams queue: one stream per named queue, one consumer group, XAUTOCLAIM for dead workers.

Keys: `aiops:queue:<name>` (the stream; acknowledged entries are deleted, so XLEN is the depth),
`aiops:queue:<name>:dead` (the dead-letter stream) and `aiops:queue:<name>:key:<sha256>` (markers of
keys waiting or in flight, for `dedupe=True`; deleted with the acknowledgement). Semantics are those of `store.queue.base`.

Durability is Redis's: with `appendonly yes` (and `appendfsync everysec` or `always`) an XADD that
answered survives a Redis restart. A Redis restarted *without* persistence loses the stream and its
group; the group is then recreated on first use (what was already acknowledged to Alertmanager is gone,
which is why production Redis needs AOF, see the README).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core.redis_errors import redis_outage
from core.resilience import CircuitOpenError, guarded
from store.queue.base import DeadLetter, Message, QueueStats, QueueUnavailable, encode

T = TypeVar("T")
GROUP = "aiops"


# XADD unless a message with this key is waiting or in flight (KEYS: stream, key marker).
_ENQUEUE_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], '*', 'key', ARGV[1], 'body', ARGV[2], 'at', ARGV[3])
redis.call('SET', KEYS[2], id)
return id
"""


class RedisStreamQueue:
    backend = "redis"

    def __init__(self, url: str, name: str, *, claim_idle_seconds: float = 300.0, max_deliveries: int = 5,
                 timeout: float = 5.0) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.name = name
        self.claim_idle_seconds = claim_idle_seconds
        self.max_deliveries = max_deliveries
        self.stream = f"aiops:queue:{name}"
        self.dead = f"aiops:queue:{name}:dead"
        # Short timeouts for writes (a webhook must answer 503 quickly when Redis hangs); the blocking
        # read gets its own client without a socket timeout shorter than its BLOCK.
        self._r = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                          decode_responses=True)
        self._blocking = aioredis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=timeout,
                                                 decode_responses=True)
        self._group_ready = False
        self._enqueue_once = self._r.register_script(_ENQUEUE_ONCE)  # EVALSHA, loaded on first use
        self._pending: list[tuple[tuple[str, str, str, bool], asyncio.Future[str]]] = []
        self._flushing = False

    async def _call(self, fn: Callable[[], Awaitable[T]], *, idempotent: bool = True) -> T:
        """One queue operation through the process-wide "redis" breaker (shared with the cache and the
        notification ledger). `idempotent` operations (reads, XACK/XDEL, XCLAIM) are retried with
        back-off; XADD is not (a retry after a lost reply would store the message twice; the sender's
        own retry, deduplicated by key, is the safe one). Redis down or the breaker open: raises
        `QueueUnavailable` (nothing stored or acknowledged) at once."""
        from redis.exceptions import RedisError, ResponseError

        async def attempt() -> T:
            for tries in (0, 1):
                try:
                    if not self._group_ready:
                        await self._ensure_group()
                    return await fn()
                except ResponseError as exc:
                    if "NOGROUP" in str(exc) and tries == 0:  # Redis restarted without persistence
                        self._group_ready = False
                        continue
                    raise
                except Exception:
                    self._group_ready = False
                    raise
            raise ResponseError("NOGROUP consumer group vanished")

        try:
            return await guarded("redis", attempt, idempotent=idempotent, counts=redis_outage)
        except CircuitOpenError as exc:
            raise QueueUnavailable(f"redis queue {self.name}: {exc}") from None
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"redis queue {self.name}: {exc}") from exc

    async def _ensure_group(self) -> None:
        from redis.exceptions import ResponseError

        try:
            await self._r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    # -------------------------------------------------------------------------------- enqueue --
    def _marker(self, key: str) -> str:
        return f"aiops:queue:{self.name}:key:{hashlib.sha256(key.encode()).hexdigest()}"

    async def enqueue(self, body: dict[str, Any], key: str = "", dedupe: bool = False) -> str:
        """Concurrent enqueues share one pipelined round trip (each still answered only once Redis has
        stored it), which is what lets 64 webhook clients through one event loop."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append(((key, encode(body), repr(time.time()), dedupe), fut))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:500], self._pending[500:]
                try:
                    ids = await self._call(lambda batch=batch: self._write(batch),  # type: ignore[misc]
                                          idempotent=False)
                except QueueUnavailable as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for msg_id, (_, fut) in zip(ids, batch, strict=True):
                    if not fut.done():
                        fut.set_result(str(msg_id))
        finally:
            self._flushing = False

    async def _write(self, batch: list[tuple[tuple[str, str, str, bool], asyncio.Future[str]]]) -> list[Any]:
        async with self._r.pipeline(transaction=False) as pipe:
            for (key, payload, at, dedupe), _ in batch:
                if dedupe:
                    await self._enqueue_once(keys=[self.stream, self._marker(key)], args=[key, payload, at],
                                             client=pipe)
                else:
                    pipe.xadd(self.stream, {"key": key, "body": payload, "at": at})
            return list(await pipe.execute())

    # -------------------------------------------------------------------------------- consume --
    async def consume(self, consumer: str, count: int = 1, block: float = 1.0) -> list[Message]:
        # Hand-outs are not retried here: a lost reply leaves the message pending (reclaimed later),
        # and the consumer's own loop waits and calls again.
        out = await self._call(lambda: self._reclaim(consumer, count), idempotent=False)
        if len(out) < count:
            want = count - len(out)
            blocking = block > 0 and not out
            client = self._blocking if blocking else self._r
            reply: Any = await self._call(lambda: client.xreadgroup(
                GROUP, consumer, {self.stream: ">"}, count=want, block=int(block * 1000) if blocking else None),
                idempotent=False)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    out.append(self._message(entry_id, fields, 1, consumer))
        return out

    async def _reclaim(self, consumer: str, count: int) -> list[Message]:
        claimed = await self._r.xautoclaim(self.stream, GROUP, consumer, int(self.claim_idle_seconds * 1000),
                                           "0-0", count=count)
        entries = claimed[1] if claimed else []
        out: list[Message] = []
        for entry_id, fields in entries:
            if not fields:  # deleted from the stream while pending
                await self._r.xack(self.stream, GROUP, entry_id)
                continue
            pending = await self._r.xpending_range(self.stream, GROUP, entry_id, entry_id, 1)
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            msg = self._message(entry_id, fields, deliveries, consumer)
            if deliveries > self.max_deliveries:  # XAUTOCLAIM already counted the hand-out it refuses
                msg.deliveries = deliveries - 1
                await self._move_dead(msg, f"delivered {msg.deliveries} times without acknowledgement")
                continue
            out.append(msg)
        return out

    def _message(self, entry_id: str, fields: dict[str, str], deliveries: int, consumer: str) -> Message:
        return Message(id=entry_id, queue=self.name, key=fields.get("key", ""),
                       body=json.loads(fields.get("body", "{}")), enqueued_at=float(fields.get("at", 0) or 0),
                       deliveries=deliveries, consumer=consumer)

    # ------------------------------------------------------------------------- acknowledgement --
    async def ack(self, msg: Message) -> None:
        async def run() -> None:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, GROUP, msg.id)
                pipe.xdel(self.stream, msg.id)
                pipe.delete(self._marker(msg.key))
                await pipe.execute()

        await self._call(run)

    async def touch(self, msg: Message) -> None:
        # XCLAIM by the holder with min-idle 0 resets the idle clock; JUSTID does not count a delivery.
        await self._call(lambda: self._r.xclaim(self.stream, GROUP, msg.consumer, 0, [msg.id], justid=True))

    async def release(self, msg: Message) -> None:
        # Mark it idle for the whole claim window: the next XAUTOCLAIM by anyone takes it.
        idle = int(self.claim_idle_seconds * 1000) + 1
        await self._call(lambda: self._r.xclaim(self.stream, GROUP, msg.consumer, 0, [msg.id], idle=idle,
                                                justid=True))

    async def dead_letter(self, msg: Message, reason: str) -> None:
        await self._call(lambda: self._move_dead(msg, reason), idempotent=False)  # XADD to the dead list

    async def _move_dead(self, msg: Message, reason: str) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead, {"id": msg.id, "key": msg.key, "body": encode(msg.body),
                                  "at": repr(msg.enqueued_at), "deliveries": str(msg.deliveries),
                                  "reason": reason[:500], "failed_at": repr(time.time())})
            pipe.xack(self.stream, GROUP, msg.id)
            pipe.xdel(self.stream, msg.id)
            pipe.delete(self._marker(msg.key))
            await pipe.execute()

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows: Any = await self._call(lambda: self._r.xrevrange(self.dead, count=int(limit)))
        return [DeadLetter(id=f.get("id", entry_id), queue=self.name, key=f.get("key", ""),
                           body=json.loads(f.get("body", "{}")), enqueued_at=float(f.get("at", 0) or 0),
                           deliveries=int(f.get("deliveries", 0) or 0), reason=f.get("reason", ""),
                           failed_at=float(f.get("failed_at", 0) or 0)) for entry_id, f in rows]

    async def stats(self) -> QueueStats:
        async def read() -> tuple[Any, ...]:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.xlen(self.stream)
                pipe.xpending(self.stream, GROUP)
                pipe.xrange(self.stream, count=1)
                pipe.xlen(self.dead)
                return tuple(await pipe.execute())

        depth, pending, first, dead = await self._call(read)
        oldest = 0.0
        if first:
            oldest = max(0.0, time.time() - int(first[0][0].split("-")[0]) / 1000)
        return QueueStats(name=self.name, backend=self.backend, depth=int(depth),
                          in_flight=int(pending.get("pending", 0) if isinstance(pending, dict) else 0),
                          oldest_age_seconds=oldest, dead_letters=int(dead))

    async def ping(self) -> None:
        await self._call(lambda: self._r.ping())  # type: ignore[arg-type]

    async def writable(self) -> None:
        # Redis answers PING while refusing writes (OOM over maxmemory, MISCONF after a failed save).
        await self._call(lambda: self._r.set(f"aiops:queue:{self.name}:probe", str(time.time()), ex=60))

    async def close(self) -> None:
        for client in (self._r, self._blocking):
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - closing a dead connection is not an error worth raising
                pass

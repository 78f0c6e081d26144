"""The durable queue's semantics, the same test for both backends: real redis-server and a SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from store.queue import MessageQueue, QueueUnavailable, RedisStreamQueue, SqliteQueue
from tests.servers import RedisServer, redis_server  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

IDLE = 0.6


@pytest_asyncio.fixture(params=["sqlite", "redis"])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MessageQueue]:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        q: MessageQueue = RedisStreamQueue(server.url, "alerts", claim_idle_seconds=IDLE, max_deliveries=2)
    else:
        q = SqliteQueue(tmp_path / "queue.sqlite", "alerts", claim_idle_seconds=IDLE, max_deliveries=2)
    yield q
    await q.close()


async def test_enqueue_consume_ack(queue: MessageQueue) -> None:
    ids = [await queue.enqueue({"n": i}, key=f"k{i}") for i in range(5)]
    assert len(set(ids)) == 5
    stats = await queue.stats()
    assert (stats.depth, stats.in_flight, stats.dead_letters) == (5, 0, 0) and stats.oldest_age_seconds >= 0
    got = await queue.consume("w1", count=3, block=0.1)
    assert [m.body["n"] for m in got] == [0, 1, 2] and [m.key for m in got] == ["k0", "k1", "k2"]
    assert all(m.deliveries == 1 and m.consumer == "w1" for m in got)
    # another consumer of the group gets the rest, never the ones w1 holds
    rest = await queue.consume("w2", count=10, block=0.1)
    assert [m.body["n"] for m in rest] == [3, 4]
    assert (await queue.stats()).in_flight == 5
    for m in got + rest:
        await queue.ack(m)
    stats = await queue.stats()
    assert (stats.depth, stats.in_flight) == (0, 0)
    assert await queue.consume("w1", count=1, block=0.2) == []


async def test_unacknowledged_message_is_reclaimed_then_dead_lettered(queue: MessageQueue) -> None:
    await queue.enqueue({"alert": "poison"}, key="g|fp")
    first = await queue.consume("dies", block=0.1)
    assert len(first) == 1
    assert await queue.consume("other", block=0.1) == []  # not idle long enough yet
    await asyncio.sleep(IDLE + 0.2)
    second = await queue.consume("other", block=0.1)
    assert [(m.id, m.deliveries, m.consumer) for m in second] == [(first[0].id, 2, "other")]
    await asyncio.sleep(IDLE + 0.2)
    # max_deliveries=2: a third hand-out does not happen, the message is dead-lettered instead
    assert await queue.consume("third", block=0.1) == []
    dead = await queue.dead_letters()
    assert [(d.key, d.body, d.deliveries) for d in dead] == [("g|fp", {"alert": "poison"}, 2)]
    assert "without acknowledgement" in dead[0].reason
    stats = await queue.stats()
    assert (stats.depth, stats.dead_letters) == (0, 1)


async def test_touch_keeps_a_live_job_and_release_gives_it_back(queue: MessageQueue) -> None:
    await queue.enqueue({"n": 1})
    [msg] = await queue.consume("slow", block=0.1)
    for _ in range(3):
        await asyncio.sleep(IDLE / 2)
        await queue.touch(msg)
        assert await queue.consume("thief", block=0) == []
    await queue.release(msg)
    [again] = await queue.consume("next", block=0.5)
    assert again.id == msg.id and again.deliveries == 2
    await queue.dead_letter(again, "handler raised ValueError")
    assert [d.reason for d in await queue.dead_letters()] == ["handler raised ValueError"]
    assert (await queue.stats()).depth == 0


async def test_blocking_consume_wakes_on_enqueue(queue: MessageQueue) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        await queue.enqueue({"late": True})

    task = asyncio.create_task(later())
    got = await queue.consume("w", block=3.0)
    await task
    assert [m.body for m in got] == [{"late": True}]


async def test_redis_down_raises_unavailable_and_recovers(redis_server: RedisServer) -> None:  # noqa: F811
    from core import resilience
    from core.settings import load_settings

    resilience.configure(load_settings(_env_file=None, CB_TIMEOUT=1, RETRY_BASE_DELAY=0.01))
    q = RedisStreamQueue(redis_server.url, "alerts", claim_idle_seconds=IDLE)
    try:
        await q.enqueue({"n": 1})
        redis_server.stop(kill=True)
        with pytest.raises(QueueUnavailable):
            await q.enqueue({"n": 2})
        with pytest.raises(QueueUnavailable):
            await q.ping()  # retried (a read): the "redis" breaker opens
        assert resilience.breaker("redis").state == "open"
        with pytest.raises(QueueUnavailable, match="circuit 'redis' is open"):
            await q.enqueue({"n": 2})  # refused at once, nothing sent
        redis_server.start()  # restarted without persistence: the group is recreated on first use
        while resilience.breaker("redis").state == "open":  # CB_TIMEOUT, then a trial call
            await asyncio.sleep(0.05)
        await q.enqueue({"n": 3})
        got = await q.consume("w", block=0.5)
        assert [m.body for m in got] == [{"n": 3}]
    finally:
        await q.close()


async def test_sqlite_queue_shared_by_two_handles(tmp_path: Path) -> None:
    """Two processes' worth of handles on one file: the API enqueues, a worker consumes."""
    api = SqliteQueue(tmp_path / "q.sqlite", "alerts")
    worker = SqliteQueue(tmp_path / "q.sqlite", "alerts")
    other = SqliteQueue(tmp_path / "q.sqlite", "notifications")
    try:
        await asyncio.gather(*(api.enqueue({"n": i}) for i in range(50)))
        await other.enqueue({"notify": 1})
        seen = []
        while batch := await worker.consume("w", count=7, block=0.05):
            seen += [m.body["n"] for m in batch]
            for m in batch:
                await worker.ack(m)
        assert seen == list(range(50))
        assert [m.body for m in await other.consume("n", block=0.05)] == [{"notify": 1}]
    finally:
        for q in (api, worker, other):
            await q.close()


async def test_dedupe_while_waiting_or_in_flight(queue: MessageQueue) -> None:
    first = await queue.enqueue({"copy": 1}, key="group|fp", dedupe=True)
    assert await queue.enqueue({"copy": 2}, key="group|fp", dedupe=True) == first  # waiting: not stored again
    [msg] = await queue.consume("w", count=5, block=0.1)
    assert await queue.enqueue({"copy": 3}, key="group|fp", dedupe=True) == first  # in flight: still not
    assert (await queue.stats()).depth == 1
    await queue.ack(msg)
    again = await queue.enqueue({"copy": 4}, key="group|fp", dedupe=True)  # acknowledged: a new message
    assert again != first
    assert [m.body for m in await queue.consume("w", block=0.1)] == [{"copy": 4}]


async def test_sqlite_writer_waits_for_another_process_lock_then_gives_up(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the write lock: an enqueue waits for it (in steps of at most 5 ms, not
    SQLite's own 1-100 ms busy sleeps), and past LOCK_TIMEOUT the queue is unavailable (503 upstream)."""
    import sqlite3

    from store.queue import sqlite as sqlite_queue

    path = tmp_path / "queue.sqlite"
    q = SqliteQueue(path, "alerts")
    await q.enqueue({"n": 0}, key="k0")  # the schema exists
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process's write transaction
    waiting = asyncio.create_task(q.enqueue({"n": 1}, key="k1"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    other.execute("COMMIT")
    assert await asyncio.wait_for(waiting, 5)  # stored as soon as the lock was released
    monkeypatch.setattr(sqlite_queue, "LOCK_TIMEOUT", 0.2)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(QueueUnavailable, match="locked"):
        await q.enqueue({"n": 2}, key="k2")
    other.execute("ROLLBACK")
    other.close()
    assert (await q.stats()).depth == 2
    await q.close()

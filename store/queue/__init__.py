"""Durable named work queues (`alerts`, `notifications`, ...) behind one typed interface.

    from store.queue import open_queue, QueueUnavailable

    queue = open_queue(settings, "alerts")      # Redis Streams if REDIS_URL is set, else SQLite in the data dir
    msg_id = await queue.enqueue({"webhook": ...}, key="group-key|fingerprints")   # durable on return
    for msg in await queue.consume("worker-1", count=1, block=1.0):               # reclaims dead workers' too
        ...do the work, make it durable...
        await queue.ack(msg)                    # only now is it gone; a crash before this redelivers it
    await queue.stats()                         # depth, in_flight, oldest_age_seconds, dead_letters
    await queue.dead_letters()                  # what exceeded WORKER_MAX_DELIVERIES (or was dead-lettered)

`MessageQueue` (in `base`) is the protocol both backends implement; see its module docstring for the
exact delivery semantics. Reclaim after `WORKER_CLAIM_IDLE_SECONDS`, dead-letter after
`WORKER_MAX_DELIVERIES` deliveries; `touch()` heartbeats a long job, `release()` gives one back.
"""

from __future__ import annotations

from core.settings import Settings
from store.queue.base import DeadLetter, Message, MessageQueue, QueueStats, QueueUnavailable
from store.queue.redis_streams import RedisStreamQueue
from store.queue.sqlite import SqliteQueue

__all__ = ["DeadLetter", "Message", "MessageQueue", "QueueStats", "QueueUnavailable", "RedisStreamQueue",
           "SqliteQueue", "open_queue", "queue_path"]


def queue_path(settings: Settings) -> str:
    return str(settings.AIOPS_DATA_DIR / "queue.sqlite")


def open_queue(settings: Settings, name: str) -> MessageQueue:
    """The configured backend for one named queue (the caller closes it)."""
    opts = {"claim_idle_seconds": float(settings.WORKER_CLAIM_IDLE_SECONDS),
            "max_deliveries": settings.WORKER_MAX_DELIVERIES}
    if settings.REDIS_URL:
        return RedisStreamQueue(settings.REDIS_URL, name, **opts)  # type: ignore[arg-type]
    return SqliteQueue(settings.AIOPS_DATA_DIR / "queue.sqlite", name, **opts)  # type: ignore[arg-type]

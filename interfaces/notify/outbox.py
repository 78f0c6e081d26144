"""The durable notification outbox: every notification is queued before anyone tries to send it.

    outbox = Outbox.from_settings(settings)
    outbox.attach(runner)          # every run outcome queues its new events, per enabled channel
    task = asyncio.create_task(outbox.run())      # deliver (the bot and the service do this)

One queue per channel (`notify.telegram`, `notify.email`, ...), the service's queue technology: Redis
Streams when REDIS_URL is set, the embedded SQLite queue otherwise. A channel that is down holds only its
own queue, and its messages stay in order (a Telegram card is never edited back to an older state).

Exactly once per (incident, event, channel), as far as the far end lets us:
- publishing: a key already in the ledger is not queued again (re-running an outcome, a redelivered run);
- delivering: a key the ledger has as delivered is acknowledged without sending (a second copy);
- a failed attempt gives the message back and waits `NOTIFY_BACKOFF_SECONDS * 2^(attempt-1)` (capped at
  `NOTIFY_BACKOFF_MAX_SECONDS`, with jitter; a server's Retry-After wins); after `NOTIFY_MAX_ATTEMPTS`
  attempts, or at once for a `Permanent` refusal, it goes to the dead-letter list (`dead_letters()`).
The one window left is a crash between a successful send and its ledger write: that message is sent
again on restart (PagerDuty folds it by dedup_key; a Telegram card edit is idempotent).

Each channel's sends go through its breaker, "notify-<channel>" (core.resilience), once per attempt:
the outbox's own back-off is the retry, so a send is never repeated inside one attempt. A `Permanent`
refusal is the service answering and is not charged. While a channel's breaker is open its loop takes
no message (nothing is consumed, so no attempt is spent and nothing is dead-lettered for an outage it
never tried): its queue keeps every notification, in order, until the breaker lets a trial through
(after CB_TIMEOUT); the other channels' loops deliver as usual.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core import resilience
from core.redis_errors import redis_outage
from core.resilience import CircuitOpenError, DependencyUnavailable
from core.settings import Settings
from interfaces.notify.channels import Channel, Permanent, RetryLater, admits, enabled_channels
from interfaces.notify.events import Notification, events_for
from store.outbox_ledger import Ledger, RedisLedger, SqliteLedger
from store.pending import PendingRecords
from store.queue import (
    DeadLetter,
    Message,
    MessageQueue,
    QueueUnavailable,
    RedisStreamQueue,
    SqliteQueue,
)

if TYPE_CHECKING:
    from service.runner import IncidentRunner, RunOutcome

log = logging.getLogger(__name__)


BACKLOG_MAX = 1000  # notifications kept while the queue's store is down (the newest win)
SPILL_FILE = "notify-pending.jsonl"  # the backlog on disk (survives a restart during a Redis outage)


def _store_down(exc: BaseException) -> bool:
    return isinstance(exc, QueueUnavailable | DependencyUnavailable | sqlite3.OperationalError) or redis_outage(exc)


def breaker_name(channel: str) -> str:
    return f"notify-{channel}"


def backoff(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential with jitter: half the step fixed, half random, so retries of many messages spread out."""
    step = min(cap, base * 2 ** max(0, attempt - 1))
    return step / 2 + rng() * step / 2


class Outbox:
    def __init__(self, settings: Settings, channels: list[Channel],
                 queue_for: Callable[[str], MessageQueue], ledger: Ledger) -> None:
        self.settings = settings
        resilience.configure(settings)  # CB_* for the "notify-<channel>" breakers
        self.channels = {c.name: c for c in channels}
        self.queues = {name: queue_for(f"notify.{name}") for name in self.channels}
        self.ledger = ledger
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-notify-{uuid.uuid4().hex[:6]}"
        # One deliverer per channel at a time (the lease), so a channel's messages go out in order even
        # with several processes running the outbox; another takes over when the holder dies.
        self.lease_ttl = max(30.0, 3 * settings.NOTIFY_TIMEOUT)
        self._stop = asyncio.Event()
        self.delivered: list[str] = []  # keys delivered by this process (logs, tests)
        self._runner: IncidentRunner | None = None  # the service it is attached to (snoozes)
        # Told of every delivery attempt as (channel, "delivered" | "failed" | "dead_lettered"): /metrics.
        self.on_attempt: Callable[[str, str], None] | None = None
        # Not queued yet because the queue's store was down. Mirrored in a file under AIOPS_DATA_DIR so
        # a restart while Redis is down does not lose them; a new outbox picks them up from there.
        self.spill: PendingRecords[Notification] = PendingRecords(
            settings.AIOPS_DATA_DIR / SPILL_FILE, Notification.model_validate)
        self.backlog: list[Notification] = self.spill.peek()[-BACKLOG_MAX:] if self.channels else []
        if self.backlog:
            log.warning("notify: %d notification(s) kept while the queue store was down (%s): queueing them",
                        len(self.backlog), self.spill.path)

    @classmethod
    def from_settings(cls, settings: Settings, *, channels: list[Channel] | None = None,
                      telegram_bot: Any | None = None) -> Outbox:
        chans = channels if channels is not None else enabled_channels(settings, telegram_bot)
        # A hanging channel holds its message up to NOTIFY_TIMEOUT: the claim must outlive that.
        opts: dict[str, Any] = {"claim_idle_seconds": max(60.0, 3 * settings.NOTIFY_TIMEOUT),
                                "max_deliveries": settings.NOTIFY_MAX_ATTEMPTS + 1}
        if settings.REDIS_URL:
            url = settings.REDIS_URL
            return cls(settings, chans, lambda name: RedisStreamQueue(url, name, **opts), RedisLedger(url))
        path = settings.AIOPS_DATA_DIR / "queue.sqlite"
        return cls(settings, chans, lambda name: SqliteQueue(path, name, **opts),
                   SqliteLedger(settings.AIOPS_DATA_DIR / "notify.sqlite"))

    @property
    def channel_names(self) -> list[str]:
        return list(self.channels)

    def attach(self, runner: IncidentRunner) -> None:
        """Queue the new events of every outcome the runner produces (analysis, decision, redelivery)."""
        if self.channels:
            self._runner = runner
            runner.subscribe(self.publish_outcome)

    async def publish_outcome(self, outcome: RunOutcome) -> int:
        """Queue the outcome's new events, unless a person snoozed the incident (POST .../snooze): then
        nothing is queued (nor marked sent), so events still true when the snooze ends go out then."""
        if self._runner is not None and await asyncio.to_thread(self._runner.snoozed, outcome.incident_id):
            log.info("notify: %s is snoozed: its notifications are held", outcome.incident_id)
            return 0
        return await self.publish(events_for(outcome.report))

    async def publish(self, notifications: list[Notification]) -> int:
        """Queue each notification on each channel that wants it and whose route admits its severity.

        When the queue's store (Redis) is down, what could not be queued is kept (`backlog`, at most
        BACKLOG_MAX, mirrored in SPILL_FILE so a restart does not lose it) and queued by the next
        `publish` or the delivery loop once the store answers, instead of being dropped with the outcome. Re-queueing is safe: the ledger and
        the queue's key dedupe skip what already made it."""
        had_backlog = bool(self.backlog)  # warned already: this outage is known
        pending, self.backlog = [*self.backlog, *notifications], []
        queued = 0
        for i, n in enumerate(pending):
            try:
                queued += await self._publish_one(n)
            except Exception as exc:
                if not _store_down(exc):
                    raise
                self.backlog = pending[i:][-BACKLOG_MAX:]
                self._spill(keep=self.backlog, done=pending[:i])
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                (log.debug if had_backlog else log.warning)(
                    "notify: queue store unavailable (%s); %d notification(s) kept in %s to queue later",
                    reason, len(self.backlog), self.spill.path)
                break
        else:
            if had_backlog:
                self._spill(keep=[], done=pending)
        return queued

    def _spill(self, keep: list[Notification], done: list[Notification]) -> None:
        """Mirror the backlog on disk: add what is kept, drop what got queued (other processes' entries
        sharing the data dir are left alone). A disk that fails here leaves the in-memory backlog."""
        done_keys = {n.key for n in done}
        keep_keys = {n.key for n in keep}

        def change(current: list[Notification]) -> list[Notification]:
            others = [n for n in current if n.key not in done_keys and n.key not in keep_keys]
            return [*others, *keep][-BACKLOG_MAX:]

        try:
            self.spill.update(change)
        except OSError as exc:
            log.warning("notify: could not write the backlog to %s (%s); it is kept in memory only",
                        self.spill.path, exc)

    async def _publish_one(self, n: Notification) -> int:
        queued = 0
        for name, channel in self.channels.items():
            if not channel.wants(n) or not admits(self.settings, name, n.severity):
                continue
            key = f"{n.key}|{name}"
            if await self.ledger.state(key) is not None:
                continue
            await self.queues[name].enqueue(n.model_dump(mode="json"), key=key, dedupe=True)
            await self.ledger.mark(key, "queued")
            queued += 1
        return queued

    async def _flush_backlog(self) -> None:
        """Queue what `publish` kept while the store was down, as soon as it answers again."""
        while not self._stop.is_set():
            await self._sleep(self.settings.NOTIFY_BACKOFF_SECONDS)
            if self.backlog:
                await self.publish([])

    # ---------------------------------------------------------------------------------- delivery --
    async def run(self) -> None:
        """Deliver until `stop()`: one loop per channel."""
        self._stop.clear()
        tasks = [asyncio.create_task(self._loop(name), name=f"notify-{name}") for name in self.channels]
        tasks.append(asyncio.create_task(self._flush_backlog(), name="notify-backlog"))
        try:
            await self._stop.wait()
            # let an attempt in progress finish (a send cut off half-way may have reached the far end)
            await asyncio.wait(tasks, timeout=self.settings.NOTIFY_TIMEOUT + 1)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        self._stop.set()

    async def _loop(self, name: str) -> None:
        try:
            await self._deliver(name)
        finally:
            with suppress(Exception):
                await self.ledger.unlease(f"channel:{name}", self.consumer)

    async def _deliver(self, name: str) -> None:
        queue = self.queues[name]
        b = resilience.breaker(breaker_name(name))
        held = False  # logged once per outage, not once per poll
        while not self._stop.is_set():
            try:
                if not await self.ledger.lease(f"channel:{name}", self.consumer, self.lease_ttl):
                    await self._sleep(0.2)  # another process delivers this channel
                    continue
                if not b.allow():  # the channel is down: its messages wait in the queue, unspent
                    if not held:
                        held = True
                        log.warning("notify: %s is down (breaker %s open: %s); its notifications stay queued "
                                    "until it answers again", name, b.name, b.last_error)
                    await self._sleep(0.2)
                    continue
                held = False
                msgs = await queue.consume(f"{self.consumer}-{name}", count=1, block=0.5)
            except Exception as exc:  # the queue's store is down: wait and try again
                log.warning("notify: %s queue unavailable: %s", name, exc)
                await self._sleep(self.settings.NOTIFY_BACKOFF_SECONDS)
                continue
            for msg in msgs:
                delay = await self._attempt(name, queue, msg)
                if delay:
                    await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _attempt(self, name: str, queue: MessageQueue, msg: Message) -> float:
        """Try one delivery; returns how long to wait before the next attempt (0 when done)."""
        if await self.ledger.state(msg.key) == "delivered":
            await queue.ack(msg)  # a second copy of something already sent
            return 0.0
        try:
            n = Notification.model_validate(msg.body)
        except ValidationError as exc:
            await queue.dead_letter(msg, f"not a notification: {exc.error_count()} problems")
            return 0.0
        s = self.settings
        channel = self.channels[name]

        async def send() -> None:
            await asyncio.wait_for(channel.send(n), timeout=s.NOTIFY_TIMEOUT)

        try:
            if getattr(channel, "guards_itself", False):  # its client charges its own breaker per request
                try:
                    await send()
                except TimeoutError as exc:  # the hung request was cancelled inside: charge the hang here
                    resilience.breaker(breaker_name(name)).record_failure(exc)
                    raise
            else:
                await resilience.guarded(breaker_name(name), send, idempotent=False,
                                         counts=lambda e: not isinstance(e, Permanent))
        except asyncio.CancelledError:  # shutting down mid-send: give it back now, not after the claim expires
            with suppress(Exception):
                await asyncio.shield(queue.release(msg))
            raise
        except CircuitOpenError:  # opened by another sender meanwhile: give it back; not an attempt
            await queue.release(msg)
            return 0.0
        except Permanent as exc:
            log.error("notify: %s refused %s permanently: %s", name, msg.key, exc)
            await queue.dead_letter(msg, f"permanent: {exc}")
            await self.ledger.mark(msg.key, "dead")
            self._count(name, "dead_lettered")
            return 0.0
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
            if msg.deliveries >= s.NOTIFY_MAX_ATTEMPTS:
                log.error("notify: %s gave up on %s after %d attempts: %s", name, msg.key, msg.deliveries, reason)
                await queue.dead_letter(msg, f"{msg.deliveries} attempts, last: {reason}")
                await self.ledger.mark(msg.key, "dead")
                self._count(name, "dead_lettered")
                return 0.0
            wait = backoff(msg.deliveries, s.NOTIFY_BACKOFF_SECONDS, s.NOTIFY_BACKOFF_MAX_SECONDS)
            if isinstance(exc, RetryLater) and exc.after:
                wait = min(max(wait, exc.after), s.NOTIFY_BACKOFF_MAX_SECONDS)
            log.warning("notify: %s attempt %d for %s failed (%s); retrying in %.1f s", name, msg.deliveries,
                        msg.key, reason, wait)
            await queue.release(msg)
            self._count(name, "failed")
            return wait
        await self.ledger.mark(msg.key, "delivered")
        await queue.ack(msg)
        self.delivered.append(msg.key)
        self._count(name, "delivered")
        return 0.0

    def _count(self, channel: str, outcome: str) -> None:
        if self.on_attempt is not None:
            self.on_attempt(channel, outcome)

    async def drain(self, timeout: float = 30.0) -> bool:
        """Deliver until every channel queue is empty (True) or `timeout` passes (False): the CLI and tests."""
        deadline = time.monotonic() + timeout
        runner = asyncio.create_task(self.run())
        await asyncio.sleep(0)  # let run() reset the stop flag first: a stop() below must not be lost (a hang)
        try:
            while time.monotonic() < deadline:
                depths = [(await q.stats()).depth for q in self.queues.values()]
                if not any(depths):
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            await self.stop()
            await runner

    async def dead_letters(self) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for q in self.queues.values():
            out += await q.dead_letters()
        return out

    async def stats(self) -> dict[str, Any]:
        return {name: (await q.stats()).model_dump() for name, q in self.queues.items()}

    async def close(self) -> None:
        for c in self.channels.values():
            with suppress(Exception):
                await c.close()
        for q in self.queues.values():
            with suppress(Exception):
                await q.close()
        with suppress(Exception):
            await self.ledger.close()

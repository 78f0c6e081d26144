"""Workers: take alerts off the durable queue and run them through the incident runner.

    aiops worker [--concurrency N]     workers alone (the API runs elsewhere: `aiops serve --no-worker`)
    aiops serve                        the API with these workers embedded in the same process

A message is acknowledged only after its run is checkpointed and registered, so a worker killed
mid-run loses nothing: after `WORKER_CLAIM_IDLE_SECONDS` another worker reclaims the message and
finishes the *same* incident (the incident id comes from the message's idempotency key, see
`service.intake`). While a run is alive its worker heartbeats the message so it is not reclaimed
under it. A run that keeps failing goes to the dead-letter list after `WORKER_MAX_DELIVERIES`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.models import AlertmanagerWebhook, IncidentStatus
from core.resilience import DependencyUnavailable, backoff_delay, breaker, current_config
from core.settings import Settings
from service.discovery import find_service
from service.intake import QUEUE, AlertJob
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory
from store.pg import charge
from store.queue import Message, MessageQueue, QueueUnavailable, open_queue

if TYPE_CHECKING:
    from service.runner import IncidentRunner

log = logging.getLogger(__name__)

OutcomeHook = Callable[[Any, float], None]  # (the run's outcome, when its message was enqueued: unix s)


class Worker:
    """`concurrency` consumers of the `alerts` queue sharing one runner (one process)."""

    def __init__(self, settings: Settings, runner: IncidentRunner, queue: MessageQueue, *, concurrency: int = 1,
                 on_outcome: OutcomeHook | None = None, name: str | None = None) -> None:
        self.settings = settings
        self.runner = runner
        self.queue = queue
        self.concurrency = concurrency
        self.on_outcome = on_outcome
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.processed = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume(f"{self.name}-{i}"), name=f"worker-{i}")
                       for i in range(self.concurrency)]

    async def stop(self, grace: float = 30.0) -> None:
        """Stop taking messages; let runs in progress finish for `grace` seconds, then cancel them
        (a cancelled run is simply not acknowledged: another worker redoes it)."""
        self._stopping.set()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def run_forever(self) -> None:
        self.start()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _consume(self, consumer: str) -> None:
        failures = 0
        while not self._stopping.is_set():
            if self._store_open():  # Postgres is down: take nothing we could not register; wait
                failures += 1
                await self._pause(failures, "incident store (postgres) unavailable, circuit open")
                continue
            try:
                batch = await self.queue.consume(consumer, count=1, block=1.0)
                failures = 0
            except QueueUnavailable as exc:
                failures += 1
                await self._pause(failures, f"queue unavailable: {exc}")
                continue
            for msg in batch:
                await self.handle(msg)

    def _store_open(self) -> bool:
        return bool(self.settings.DATABASE_URL) and breaker("postgres").state == "open"

    async def _pause(self, failures: int, reason: str) -> None:
        """Back off (RETRY_BASE_DELAY doubling to RETRY_MAX_DELAY, with jitter) while a store is down;
        the breaker's half-open trial then decides whether to carry on. Logged once per outage."""
        cfg = current_config()
        delay = backoff_delay(failures - 1, cfg.retry_base_delay, max(cfg.retry_max_delay, cfg.retry_base_delay))
        (log.warning if failures == 1 else log.debug)("worker paused (%s); retrying every <= %.1fs",
                                                      reason, cfg.retry_max_delay)
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except TimeoutError:
            pass

    async def handle(self, msg: Message) -> None:
        try:
            job = AlertJob.model_validate(msg.body)
            webhook = AlertmanagerWebhook.model_validate(job.webhook, context=self.settings.payload_limits)
        except ValidationError as exc:  # no run can succeed: dead-letter at once
            await self._dead(msg, f"invalid message: {exc.error_count()} problem(s), first: "
                                  f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}")
            return
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        try:
            outcome = await self._run_while_store_down(msg, job, webhook)
        except _Stopped:
            return  # stopping while the store was down: not acknowledged, redelivered later
        except asyncio.CancelledError:
            raise  # not acknowledged: redelivered to another worker
        except Exception as exc:  # noqa: BLE001 - any failure of a run: retry, then dead-letter
            log.warning("run of %s failed (delivery %d): %s: %s", msg.id, msg.deliveries, type(exc).__name__, exc,
                        exc_info=self.settings.DEBUG)
            if msg.deliveries >= self.queue.max_deliveries:
                await self._dead(msg, f"run failed {msg.deliveries} times, last: {type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0][:200] if str(exc) else ''}")
            else:
                await asyncio.sleep(min(5.0, 0.5 * msg.deliveries))
                await self._quiet(self.queue.release(msg))
            return
        finally:
            heartbeat.cancel()
        await self._quiet(self.queue.ack(msg))  # not acked (queue down)? redelivered later, idempotently
        self.processed += 1
        if outcome is not None and self.on_outcome is not None:
            self.on_outcome(outcome, msg.enqueued_at)

    async def _run_while_store_down(self, msg: Message, job: AlertJob, webhook: AlertmanagerWebhook) -> Any:
        """Run; when the incident store (Postgres) is down, keep the message (heartbeating it), wait and
        run it again once the store is back. An outage is not the alert's fault: it does not count as
        a failed delivery, so it is never dead-lettered for it."""
        failures = 0
        while True:
            try:
                return await self._run(msg, job, webhook)
            except Exception as exc:
                down = _store_outage(self.settings, exc)
                if down is None:
                    raise
                failures += 1
                await self._pause(failures, f"run of {msg.id} waits for the incident store: {down}")
                while self._store_open() and not self._stopping.is_set():
                    failures += 1
                    await self._pause(failures, "incident store (postgres) unavailable, circuit open")
                if self._stopping.is_set():
                    raise _Stopped from exc

    async def _run(self, msg: Message, job: AlertJob, webhook: AlertmanagerWebhook) -> Any:
        row = self.runner.incident(job.incident_id)
        # The row is claimed when a run starts: `running`, or `interrupted` once its dead owner was noticed.
        if row is not None and row.status not in (IncidentStatus.RUNNING.value, IncidentStatus.INTERRUPTED.value):
            log.info("message %s: incident %s already %s (redelivery), acknowledging", msg.id,
                     job.incident_id, row.status)
            return None
        if msg.deliveries > 1:  # a worker died with it: finish that run rather than start another
            finished = await self.runner.resume_unfinished(job.incident_id, job.source)
            if finished is not None:
                return finished
        return await self.runner.analyze(webhook, job.source, incident_id=job.incident_id)

    async def _heartbeat(self, msg: Message) -> None:
        every = max(0.5, self.queue.claim_idle_seconds / 3)
        while True:
            await asyncio.sleep(every)
            await self._quiet(self.queue.touch(msg))

    async def _dead(self, msg: Message, reason: str) -> None:
        log.warning("dead-lettering %s: %s", msg.id, reason)
        await self._quiet(self.queue.dead_letter(msg, reason))

    @staticmethod
    async def _quiet(coro: Any) -> None:
        try:
            await coro
        except QueueUnavailable as exc:
            log.warning("queue: %s", exc)


class _Stopped(Exception):
    """The worker stopped while waiting for a store: leave the message unacknowledged."""


def _store_outage(settings: Settings, exc: BaseException) -> DependencyUnavailable | None:
    """The run failed because the incident store is down (registry, autonomy tables or checkpoints)."""
    seen: BaseException | None = exc
    for _ in range(5):  # the failure may be wrapped (raised while handling the store's error)
        if seen is None:
            return None
        if isinstance(seen, DependencyUnavailable) and seen.dependency == "postgres":
            return seen
        if settings.DATABASE_URL:
            down = charge(seen)
            if down is not None:
                return down
        seen = seen.__cause__ or seen.__context__
    return None


async def run_workers(settings: Settings, concurrency: int) -> int:
    """`aiops worker`: consume until SIGTERM/SIGINT, then finish what is in progress."""
    import signal

    if settings.ENABLE_MEMORY and "://" not in settings.milvus_uri and find_service(settings) is not None:
        # milvus-lite: one process per file, and `aiops serve` has it. Runs still work; remembering and
        # recalling incidents in this process may fail (logged) until memory is a Milvus server.
        print(f"aiops worker: warning: memory is the milvus-lite file {settings.milvus_uri}, which the running "
              "aiops serve owns; set MILVUS_URI to a Milvus server (or ENABLE_MEMORY=false) for extra workers",
              file=sys.stderr, flush=True)
    queue = open_queue(settings, QUEUE)
    try:
        await queue.ping()
    except QueueUnavailable as exc:
        log.warning("queue not reachable yet (%s); the worker keeps retrying", exc)
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        worker = Worker(settings, runner, queue, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker.start()
        print(f"aiops worker: {concurrency} consumer(s) on the {queue.backend} queue '{QUEUE}'", flush=True)
        await stop.wait()
        await worker.stop()
    await queue.close()
    return 0

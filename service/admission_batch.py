"""Group commit for the webhook's admissions: the concurrent requests' admissions in one transaction.

Each accepted notification is admitted (`service.admission.Admission.admit`: where it lands, recorded
in the correlation store) before its 202 names the incident. One transaction and one thread hand-off
per request made that about a quarter of a one-alert request's CPU; here the admissions that arrive
while the previous batch is being committed wait for it and then go together: one hand-off to the
admission thread and one transaction (`Admission.admit_many`) for all of them, at most `max_batch`.
No request waits for a timer: an idle service commits a lone admission at once, and a busy one
commits larger batches (the same scheme as the SQLite queue's inserts, `store.queue.sqlite`).

What a request is told is what was committed: its future resolves only after its batch's commit
returned. If the commit fails (the store is locked for too long, a disk error, Postgres down) every
request of the batch gets `AdmissionFailed` (the webhook answers 503, so Alertmanager re-sends, and
the queue deduplicates the re-sent notification); a notification whose own admission raised (undone
alone: a savepoint) gets its own exception, and the rest of its batch is committed. Batches run one
at a time, in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from core.models import AlertmanagerWebhook

AdmitMany = Callable[[Sequence[tuple[AlertmanagerWebhook, str]]], list[str | Exception]]


class AdmissionFailed(RuntimeError):
    """The batch this admission was in could not be committed: nothing of it was recorded."""


class AdmissionBatch:
    def __init__(self, admit_many: AdmitMany, max_batch: int = 256) -> None:
        self._admit_many = admit_many
        self.max_batch = max_batch
        # One thread: the correlation store takes one transaction at a time anyway (its lock).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="admission")
        self._pending: list[tuple[AlertmanagerWebhook, str, asyncio.Future[str]]] = []
        self._flushing = False
        self.batches = 0  # committed or failed, for tests and the benchmark's curiosity
        self.admitted = 0

    async def admit(self, items: Sequence[tuple[AlertmanagerWebhook, str]]) -> list[str]:
        """Where each (notification, the incident id it would open) lands, once recorded: all of one
        request's parts go in the same batch. Raises the first failure among them."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[str]] = []
        for webhook, incident_id in items:
            fut: asyncio.Future[str] = loop.create_future()
            self._pending.append((webhook, incident_id, fut))
            futures.append(fut)
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return [await fut for fut in futures]

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                self.batches += 1
                try:
                    results = await loop.run_in_executor(self._pool, self._admit_many,
                                                         [(webhook, incident_id) for webhook, incident_id, _ in batch])
                except Exception as exc:  # noqa: BLE001 - the commit failed: every request of the batch is told
                    line = (str(exc).splitlines() or [""])[0][:300]
                    for _, _, fut in batch:
                        if not fut.done():
                            failed = AdmissionFailed(f"{type(exc).__name__}: {line}")
                            failed.__cause__ = exc
                            fut.set_exception(failed)
                    continue
                self.admitted += len(batch)
                for result, (_, _, fut) in zip(results, batch, strict=True):
                    if fut.done():  # its request was cancelled meanwhile
                        continue
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._flushing = False

    def close(self) -> None:
        self._pool.shutdown(wait=False)

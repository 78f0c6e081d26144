"""Group commit for the webhook's admissions: the concurrent requests' admissions in one transaction.

Each accepted notification is admitted (`service.admission.Admission.admit`: where it lands, recorded
in the correlation store) before its 202 names the incident. One transaction and one thread hand-off
per request made that about a quarter of a one-alert request's CPU; here the admissions that arrive
while the previous batch is being committed wait for it and then go together: one hand-off to the
admission thread and one transaction (`Admission.admit_many`) for all of them, at most `max_batch`.
No request waits for a timer: an idle service commits a lone admission at once, and a busy one
commits larger batches (core/group_commit.py, which the SQLite queue's inserts use too).

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

from core.group_commit import GroupCommit
from core.models import AlertmanagerWebhook

AdmitMany = Callable[[Sequence[tuple[AlertmanagerWebhook, str]]], list[str | Exception]]


class AdmissionFailed(RuntimeError):
    """The batch this admission was in could not be committed: nothing of it was recorded."""


def _failed(exc: Exception) -> AdmissionFailed:
    line = (str(exc).splitlines() or [""])[0][:300]
    failed = AdmissionFailed(f"{type(exc).__name__}: {line}")
    failed.__cause__ = exc
    return failed


class AdmissionBatch:
    def __init__(self, admit_many: AdmitMany, max_batch: int = 256) -> None:
        self._admit_many = admit_many
        # One thread: the correlation store takes one transaction at a time anyway (its lock).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="admission")
        self._group: GroupCommit[tuple[AlertmanagerWebhook, str], str] = GroupCommit(
            self._commit, max_batch=max_batch, failed=_failed)

    @property
    def batches(self) -> int:  # committed or failed, for tests and the benchmark's curiosity
        return self._group.batches

    @property
    def admitted(self) -> int:
        return self._group.committed

    async def _commit(self, items: list[tuple[AlertmanagerWebhook, str]]) -> list[str | Exception]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._admit_many, items)

    async def admit(self, items: Sequence[tuple[AlertmanagerWebhook, str]]) -> list[str]:
        """Where each (notification, the incident id it would open) lands, once recorded: all of one
        request's parts go in the same batch. Raises the first failure among them."""
        return await self._group.submit(items)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

"""Group commit: the items that arrive while one batch is being committed go together in the next one.

No item waits for a timer: an idle caller commits a lone item at once, a busy one commits larger
batches (one transaction and one thread hand-off for all of them). Each caller's `submit` returns only
once its batch's commit returned, so what a caller is told is what was committed. Batches run one at a
time, in arrival order. Used by the embedded queue's inserts (store/queue/sqlite.py) and the webhook's
admissions (service/admission_batch.py).

`commit(items)` gives one result per item; a result that is an exception is that item's own failure
(the others stand). If `commit` itself raises one of `catches`, the whole batch failed: every item of
it gets `failed(exc)`. Anything else is not caught here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, commit: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], *,
                 max_batch: int | None = None, catches: tuple[type[Exception], ...] = (Exception,),
                 failed: Callable[[Exception], Exception] = lambda exc: exc) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self._catches = catches
        self._failed = failed
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = False
        self.batches = 0  # committed or failed
        self.committed = 0  # items in batches whose commit returned

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Each item's result once its batch committed (all of one call's items go in the same batch when
        `max_batch` allows). Raises the first failure among them."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            fut: asyncio.Future[R] = loop.create_future()
            self._pending.append((item, fut))
            futures.append(fut)
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return [await fut for fut in futures]

    async def _flush(self) -> None:
        try:
            while self._pending:
                cut = len(self._pending) if self.max_batch is None else self.max_batch
                batch, self._pending = self._pending[:cut], self._pending[cut:]
                self.batches += 1
                try:
                    results = await self._commit([item for item, _ in batch])
                except self._catches as exc:  # the commit failed: every caller of the batch is told
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(self._failed(exc))
                    continue
                self.committed += len(batch)
                for result, (_, fut) in zip(results, batch, strict=True):
                    if fut.done():  # its caller was cancelled meanwhile
                        continue
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._flushing = False

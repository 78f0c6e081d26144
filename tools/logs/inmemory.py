"""Log records held in memory: a recorded incident's replay, a test's fixture."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from tools.log_types import LogQuery, LogRecord


class InMemoryLogSource:
    """Records held in memory (a recorded incident replay). Never returns records after `now`."""

    name = "recorded"

    def __init__(self, records: Iterable[LogRecord], now: datetime | None = None) -> None:
        self._records = sorted(records, key=lambda r: r.timestamp)
        self.now = now

    async def search(self, query: LogQuery) -> list[LogRecord]:
        end = min(query.end, self.now) if self.now is not None else query.end
        text = re.compile(re.escape(query.text), re.I) if query.text else None
        out = []
        for r in self._records:
            if not (query.start <= r.timestamp <= end):
                continue
            if query.service and r.service != query.service:
                continue
            if query.level and r.level.lower() != query.level.lower():
                continue
            if text and not text.search(r.message):
                continue
            out.append(r)
            if len(out) >= query.limit:
                break
        return out


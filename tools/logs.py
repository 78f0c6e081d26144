"""Log tools: a `LogSource` protocol, its backends, and LangChain tool wrappers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field


class LogRecord(BaseModel):
    timestamp: datetime
    message: str
    service: str = ""
    level: str = ""
    host: str = ""
    fields: dict[str, str] = Field(default_factory=dict)


class LogQuery(BaseModel):
    start: datetime
    end: datetime
    service: str | None = None
    level: str | None = None  # minimum is not implied: an exact level name, case-insensitive
    text: str | None = None  # substring (backends may treat it as a full-text query)
    limit: int = Field(default=500, ge=1, le=100_000)


@runtime_checkable
class LogSource(Protocol):
    name: str

    async def search(self, query: LogQuery) -> list[LogRecord]: ...


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

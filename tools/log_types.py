"""What every log backend speaks: `LogRecord`, `LogQuery`, the `LogSource` protocol, its error type.

One of the tools' shared modules; imports nothing of ours: the logs toolset (its backends and read
tools), the analysis code over records (`tools.analysis.log_templates`) and every layer above read
logs through it, so the analysis sits below the toolset that uses it instead of beside it in a loop.
"""

from __future__ import annotations

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



class LogSourceError(RuntimeError):
    """A backend failed in a way the caller should see as one readable line (bad URL, timeout, 4xx)."""


class LogsUnavailable(LogSourceError):
    """The backend cannot answer at all (down, hanging, 5xx, its circuit breaker open), as opposed to
    refusing one query: callers degrade instead of failing. `reason` is the short why."""

    def __init__(self, dependency: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.reason = reason

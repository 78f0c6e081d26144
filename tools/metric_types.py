"""What every metrics backend speaks: `Series`, the `MetricsSource` protocol, and its one error type.

Queries are PromQL. Backends that are not Prometheus (recorded data, replays) support the subset the
agents use: an instant-vector selector (`tools.metrics.selector`). This module is one of the tools'
shared modules and imports nothing of ours: the metrics toolset (its backends and read tools), the
analysis code over series (`tools.analysis`) and every layer above read metrics through it, so the
analysis sits below the toolset that uses it instead of beside it in a loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field


class Series(BaseModel):
    """One time series: a metric name, its labels and (time, value) points in time order."""

    metric: str
    labels: dict[str, str] = Field(default_factory=dict)
    points: list[tuple[datetime, float]] = Field(default_factory=list)

    def values(self) -> list[float]:
        return [v for _, v in self.points]


@runtime_checkable
class MetricsSource(Protocol):
    """What the diagnosis agent needs from a metrics backend."""

    name: str

    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]: ...

    async def list_metrics(self, component: str | None = None) -> list[str]: ...

    async def list_components(self) -> list[str]: ...



class MetricsQueryError(RuntimeError):
    """A backend refused or failed a query; the message says which query and why, in one line."""


class MetricsUnavailable(MetricsQueryError):
    """The backend cannot answer at all (down, hanging, 5xx, its circuit breaker open), as opposed to
    refusing one query: callers degrade (diagnose without metrics, skip a watch cycle, "could not
    verify") instead of failing. `reason` is the short why ("breaker open", "connection refused")."""

    def __init__(self, dependency: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.reason = reason


def back_to_baseline(value: float, baseline: float, after: float) -> bool:
    """Has a series that moved from `baseline` to `value` recovered, now that it reads `after`? Yes when it
    is back within half the distance to the baseline, or past the baseline in the good direction (a
    cleanup that frees more than the incident filled, a resize that spreads the same load thinner)."""
    direction = 1.0 if value >= baseline else -1.0
    return direction * (after - baseline) <= 0.5 * abs(value - baseline) + 1e-9


def escape_label_value(value: str) -> str:
    """A string as the inside of a PromQL label-value literal (`"..."`)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')

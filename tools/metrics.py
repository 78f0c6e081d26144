"""Metrics tools: a `MetricsSource` protocol, its backends, and LangChain tool wrappers.

Queries are PromQL. Backends that are not Prometheus (recorded data, replays) support the subset the
agents use: an instant-vector selector `metric_name{label="value", other=~"regex"}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


_SELECTOR = re.compile(r"^\s*(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(?P<matchers>.*)\})?\s*$")
_MATCHER = re.compile(r'\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')


class Selector(BaseModel):
    """A parsed PromQL instant-vector selector (the subset non-Prometheus backends support)."""

    name: str | None = None
    matchers: list[tuple[str, str, str]] = Field(default_factory=list)

    @classmethod
    def parse(cls, query: str) -> Selector:
        m = _SELECTOR.match(query)
        if not m:
            raise ValueError(f"unsupported query for a recorded source (only selectors): {query!r}")
        matchers: list[tuple[str, str, str]] = []
        rest = m.group("matchers") or ""
        pos = 0
        while pos < len(rest.strip()):
            mm = _MATCHER.match(rest, pos)
            if not mm:
                raise ValueError(f"cannot parse label matchers in {query!r}")
            matchers.append((mm.group("label"), mm.group("op"), mm.group("value")))
            pos = mm.end()
        if not m.group("name") and not matchers:
            raise ValueError(f"empty selector: {query!r}")
        return cls(name=m.group("name"), matchers=matchers)

    def matches(self, metric: str, labels: dict[str, str]) -> bool:
        if self.name and self.name != metric:
            return False
        for label, op, value in self.matchers:
            actual = metric if label == "__name__" else labels.get(label, "")
            if op == "=" and actual != value:
                return False
            if op == "!=" and actual == value:
                return False
            if op == "=~" and not re.fullmatch(value, actual):
                return False
            if op == "!~" and re.fullmatch(value, actual):
                return False
        return True


class InMemoryMetricsSource:
    """Series held in memory, e.g. a recorded incident replayed by `aiops demo`.

    `now` bounds what can be read: a query never sees points after it (no future data), which is how
    a replay advances time for verification after a remediation ran.
    """

    name = "recorded"

    def __init__(self, series: Iterable[Series], now: datetime | None = None,
                 component_label: str = "service") -> None:
        self._series = list(series)
        self.now = now
        self.component_label = component_label

    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]:
        sel = Selector.parse(query)
        if self.now is not None:
            end = min(end, self.now)
        out = []
        for s in self._series:
            if sel.matches(s.metric, s.labels):
                pts = [(t, v) for t, v in s.points if start <= t <= end]
                if pts:
                    out.append(Series(metric=s.metric, labels=s.labels, points=pts))
        return out

    async def list_metrics(self, component: str | None = None) -> list[str]:
        return sorted({s.metric for s in self._series
                       if component is None or s.labels.get(self.component_label) == component})

    async def list_components(self) -> list[str]:
        return sorted({s.labels[self.component_label] for s in self._series
                       if self.component_label in s.labels})

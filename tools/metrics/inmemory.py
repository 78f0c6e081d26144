"""Series held in memory: a recorded incident's replay, a PVE RRD read, a test's fixture."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tools.metric_types import Series
from tools.metrics.selector import Selector


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


"""A stand-in for node_exporter's filesystem series on the local stand-in hosts (tests/evals).

A stand-in host is a sandbox directory (tools/replay/standins.py); nothing exports its filesystem
usage, so this source does what node_exporter scraped by Prometheus would: `filesystem_used_percent`
per host and mount (labels `service` = the host, `mountpoint`), one point a minute.

Until `alert_time` the series is the incident's history: `baseline_percent` for an hour, then rising
over `fill_minutes` to the usage at set-up. After `alert_time` every point is the *live* usage: the
logical size of the stand-in's files under the mount (what a cleanup really frees) plus the mount's
`other_bytes`, over `capacity_bytes`. The toolbox's clock is pinned to `alert_time` and advanced for
verification (as in a replay), so a fix shows in the series the way it would a few scrapes later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource
from tools.metrics.selector import Selector

STEP = timedelta(minutes=1)
METRIC = "filesystem_used_percent"


@dataclass
class StandInMount:
    host: str
    mount: str
    root: Path  # the stand-in host's sandbox root
    capacity_bytes: int
    other_bytes: int  # what else fills the mount (not the stand-in's files)

    def used_percent(self) -> float:
        base = self.root / self.mount.lstrip("/")
        size = 0
        for dirpath, _, names in os.walk(base):
            for n in names:
                try:
                    size += (Path(dirpath) / n).stat().st_size
                except OSError:
                    continue
        return round(100.0 * (self.other_bytes + size) / self.capacity_bytes, 3)


class NodeExporterSim(InMemoryMetricsSource):
    name = "node-exporter-sim"

    def __init__(self, mounts: list[StandInMount], alert_time: datetime, baseline_percent: float = 71.0,
                 fill_minutes: int = 25) -> None:
        super().__init__([], now=alert_time)
        self.mounts = mounts
        self.alert_time = alert_time
        self.baseline = baseline_percent
        self.fill = timedelta(minutes=fill_minutes)
        self.at_alert = {(m.host, m.mount): m.used_percent() for m in mounts}

    def _series_of(self, m: StandInMount, start: datetime, end: datetime) -> Series:
        peak = self.at_alert[(m.host, m.mount)]
        live = m.used_percent()
        pts = []
        t = start - (start - datetime.min.replace(tzinfo=start.tzinfo)) % STEP
        while t <= end:
            if t > self.alert_time:
                v = live
            elif t <= self.alert_time - self.fill:
                v = self.baseline
            else:
                frac = 1 - (self.alert_time - t) / self.fill
                v = self.baseline + frac * (peak - self.baseline)
            pts.append((t, round(v, 3)))
            t += STEP
        return Series(metric=METRIC, labels={"service": m.host, "mountpoint": m.mount}, points=pts)

    async def query_range(self, query: str, start: datetime, end: datetime,
                          step_seconds: float | None = None) -> list[Series]:
        sel = Selector.parse(query)
        end = min(end, self.now) if self.now is not None else end
        out = []
        for m in self.mounts:
            labels = {"service": m.host, "mountpoint": m.mount}
            if sel.matches(METRIC, labels):
                s = self._series_of(m, start, end)
                if s.points:
                    out.append(s)
        return out

    async def list_metrics(self, component: str | None = None) -> list[str]:
        return [METRIC] if any(component in (None, m.host) for m in self.mounts) else []

    async def list_components(self) -> list[str]:
        return sorted({m.host for m in self.mounts})

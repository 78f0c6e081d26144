"""Metric anomaly ranking: which components look most abnormal in a window, and on which metrics.

Every (component, metric) series is compared with its own recent baseline using a robust z-score
(median and MAD, so a previous incident inside the baseline does not hide this one); the series
scores are aggregated per component, and where a call graph is known, a caller whose anomalies are
explained by an anomalous callee is discounted (a slow callee makes its callers slow).

The diagnosis agent calls `rank_components` in both LLM and rule mode.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from tools.metrics import MetricsSource, Series


class MetricAnomaly(BaseModel):
    """One abnormal series: the evidence behind a suspect."""

    component: str
    metric: str
    query: str
    score: float
    value: float
    baseline: float
    direction: Literal["up", "down"]
    start: datetime
    end: datetime


class Suspect(BaseModel):
    """A ranked component with the metric evidence for it (anomalies sorted by score, desc)."""

    component: str
    score: float
    anomalies: list[MetricAnomaly] = Field(default_factory=list)


# A series whose robust z stays below this is not reported as evidence.
MIN_SCORE = 3.0
# Cap one series' contribution: a flat baseline makes z explode, and one explosion must not
# outweigh consistent evidence on several metrics.
MAX_SERIES_SCORE = 20.0
DEFAULT_BASELINE = timedelta(minutes=30)
_MAD_TO_SIGMA = 1.4826


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def score_series(baseline: list[float], window: list[float]) -> tuple[float, float, float, str]:
    """(score, value, baseline_median, direction) of the most abnormal window point.

    Robust z: (x - median) / (1.4826 * MAD), with a floor on the scale so a flat baseline (MAD 0)
    does not turn noise into infinity.
    """
    if not baseline or not window:
        return 0.0, window[-1] if window else math.nan, math.nan, "up"
    med = _median(baseline)
    mad = _median([abs(x - med) for x in baseline]) * _MAD_TO_SIGMA
    scale = max(mad, 0.05 * abs(med), 1e-9)
    best = max(window, key=lambda x: abs(x - med))
    z = (best - med) / scale
    return min(abs(z), MAX_SERIES_SCORE), best, med, "up" if z >= 0 else "down"


def _selector(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


async def rank_components(source: MetricsSource, start: datetime, end: datetime, *,
                          baseline_start: datetime | None = None,
                          components: list[str] | None = None,
                          call_graph: dict[str, list[str]] | None = None,
                          component_label: str = "service") -> list[Suspect]:
    """Rank components by how abnormal their metrics are in [start, end] vs [baseline_start, start)."""
    start, end = _utc(start), _utc(end)
    baseline_start = _utc(baseline_start) if baseline_start else start - DEFAULT_BASELINE
    wanted = set(components) if components else None
    metrics = await source.list_metrics()
    sem = asyncio.Semaphore(8)

    async def fetch(metric: str) -> list[Series]:
        async with sem:
            return await source.query_range(f'{metric}{{{component_label}=~".+"}}', baseline_start, end)

    results = await asyncio.gather(*(fetch(m) for m in metrics))
    by_comp: dict[str, list[MetricAnomaly]] = {}
    for series_list in results:
        for s in series_list:
            comp = s.labels.get(component_label)
            if not comp or (wanted is not None and comp not in wanted):
                continue
            base = [v for t, v in s.points if t < start and math.isfinite(v)]
            win = [v for t, v in s.points if t >= start and math.isfinite(v)]
            score, value, med, direction = score_series(base, win)
            by_comp.setdefault(comp, [])
            if score >= MIN_SCORE:
                by_comp[comp].append(MetricAnomaly(
                    component=comp, metric=s.metric, query=_selector(s.metric, s.labels), score=score,
                    value=value, baseline=med, direction=direction, start=start, end=end))
    scores = {c: _aggregate(a) for c, a in by_comp.items()}
    if call_graph:
        scores = _discount_callers(scores, call_graph)
    suspects = [Suspect(component=c, score=round(scores[c], 4),
                        anomalies=sorted(a, key=lambda x: -x.score)) for c, a in by_comp.items()]
    suspects.sort(key=lambda s: (-s.score, s.component))
    return suspects


def _aggregate(anomalies: list[MetricAnomaly]) -> float:
    """Strongest series plus a small share of the rest: breadth of evidence breaks ties."""
    if not anomalies:
        return 0.0
    ss = sorted((a.score for a in anomalies), reverse=True)
    return ss[0] + 0.1 * sum(ss[1:])


def _discount_callers(scores: dict[str, float], call_graph: dict[str, list[str]]) -> dict[str, float]:
    """A caller whose anomalous callee scores at least as high is probably a victim: halve it."""
    out = dict(scores)
    for caller, callees in call_graph.items():
        if caller not in scores:
            continue
        worst = max((scores.get(c, 0.0) for c in callees if c != caller), default=0.0)
        if worst >= MIN_SCORE and worst >= 0.5 * scores[caller]:
            out[caller] = scores[caller] * 0.5
    return out

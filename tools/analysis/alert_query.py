"""The alert's own query: read the rule's PromQL from `generatorURL` and run it over the incident window.

This is how a person starts: open the alert's graph, see what the expression did before and during
the incident. Prometheus puts the rule's expression in `generatorURL` as `/graph?g0.expr=<url-encoded>`.
That URL comes from the alert, so it is untrusted: it is length-bounded, URL-decoded once, must be
printable text, and is only ever sent as a query to the configured metrics backend (never fetched,
never used as a URL). A backend that cannot run it (a recorded source speaks only selectors, a
Prometheus that refuses it) simply gives no reading.

Each series the expression returns is scored like any other series (`metric_anomaly.score_series`:
the window against the baseline before it) and described by its shape: still there at the end of
the window, already back to the baseline, or a single spike.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np
from pydantic import BaseModel

from core.models import MetricSeries, utc
from tools.analysis.metric_anomaly import (
    MIN_SCORE,
    _chartable,
    _fetch,
    _selector,
    _to_minutes,
    score_series,
    unit_ceiling,
    unit_floor,
)
from tools.metric_types import MetricsSource, Series, escape_label_value

MAX_GENERATOR_URL = 8192  # longer: not a Prometheus graph link, ignored
MAX_EXPR = 2048  # longer decoded expression: ignored
MAX_SERIES = 20  # the alert query's series scored (the strongest first)
MAX_TARGET_SERIES = 500  # the target's other series read (a node exporter has a few hundred)
_PRINTABLE = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f]+")

# Labels that name the target machine or workload (an alert without `service`), most specific first.
TARGET_LABELS = ("instance", "pod", "container", "nodename", "host", "node", "job")

Shape = Literal["sustained", "recovered", "spike", "flat"]


def alert_expression(generator_url: str) -> str:
    """The rule's PromQL from a Prometheus `generatorURL` (`g0.expr`), or "" when absent or unsafe."""
    if not generator_url or len(generator_url) > MAX_GENERATOR_URL:
        return ""
    try:
        query = parse_qs(urlsplit(generator_url).query, max_num_fields=64)
    except ValueError:
        return ""
    expr = (query.get("g0.expr") or [""])[0].strip()
    if not expr or len(expr) > MAX_EXPR or not _PRINTABLE.fullmatch(expr):
        return ""
    return expr


_THRESHOLD = re.compile(r"^(?P<value>.+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?:bool\s+)?(?P<limit>[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*$",
                        re.IGNORECASE | re.DOTALL)


def value_expression(expr: str) -> tuple[str, str]:
    """(the value the rule compares, the comparison): `rate(x[5m]) > 1` -> (`rate(x[5m])`, `> 1`).

    A threshold filters the series out while the rule is not firing, so there would be no baseline
    to compare with: the value itself is what a person graphs. Only a trailing comparison with a
    number literal is split off; anything else is run as it is.
    """
    m = _THRESHOLD.match(expr)
    if not m or m.group("value").count("(") != m.group("value").count(")"):
        return expr, ""
    return m.group("value").strip(), f"{m.group('op')} {m.group('limit')}"


class QueryReading(BaseModel):
    """One series of the alert's expression over the baseline and the incident window."""

    labels: dict[str, str]
    score: float  # the anomaly score of the window against the baseline (metric_anomaly's scale)
    value: float  # the value at the end of the window (the last point)
    peak: float  # the value farthest from the baseline in the window
    baseline: float  # the median before the window
    shape: Shape
    anomalous: bool
    series: MetricSeries | None = None

    def describe(self, expr: str) -> str:
        if self.shape == "flat":
            return f"alert query {expr[:120]} reads {self.value:.4g} (baseline {self.baseline:.4g}): no change"
        moved = "rose" if self.peak >= self.baseline else "dropped"
        how = {"sustained": "and stays there", "recovered": "and is back near the baseline",
               "spike": "for a single point"}[self.shape]
        return (f"alert query {expr[:120]} {moved} from {self.baseline:.4g} to {self.peak:.4g} {how} "
                f"(now {self.value:.4g}, anomaly score {self.score:.1f})")


def _shape(v_window: np.ndarray, baseline: float, peak: float, anomalous: bool) -> Shape:
    if not anomalous or len(v_window) == 0:
        return "flat"
    moved = abs(peak - baseline) or 1e-9
    away = np.abs(v_window - baseline) >= 0.5 * moved
    if away[-1]:
        return "sustained"
    return "spike" if int(away.sum()) <= 1 else "recovered"


def read_series(s: Series, baseline_start: datetime, start: datetime, end: datetime) -> QueryReading | None:
    """Score one series: its window [start, end] against the baseline [baseline_start, start)."""
    pts = [(t.timestamp(), v) for t, v in s.points if math.isfinite(v) and t >= baseline_start]
    if not pts:
        return None
    start_ts, end_ts = utc(start).timestamp(), utc(end).timestamp()
    t = np.fromiter((p[0] for p in pts), float, len(pts))
    v = np.fromiter((p[1] for p in pts), float, len(pts))
    t, v = _to_minutes(t, v, end_ts)
    window = (t >= start_ts) & (t <= end_ts)
    if not window.any():
        return None
    base = v[t < start_ts]
    baseline = float(np.median(base)) if len(base) else math.nan
    best = score_series(t, v, start_ts, end_ts, unit_floor(s.metric), unit_ceiling(s.metric))
    vw = v[window]
    ref = baseline if math.isfinite(baseline) else float(vw[0])
    peak = float(vw[int(np.argmax(np.abs(vw - ref)))])
    anomalous = best.score >= MIN_SCORE
    return QueryReading(labels=dict(s.labels), score=round(best.score, 3), value=float(vw[-1]), peak=peak,
                        baseline=ref, shape=_shape(vw, ref, peak, anomalous), anomalous=anomalous,
                        series=_chartable(t, v, best, datetime.fromtimestamp(start_ts, UTC)))


async def run_alert_query(source: MetricsSource, expr: str, baseline_start: datetime, start: datetime,
                          end: datetime) -> list[QueryReading]:
    """Run the alert's expression (its value, without a trailing threshold) over [baseline_start, end];
    its series, most abnormal first."""
    series = await source.query_range(value_expression(expr)[0], baseline_start, end)
    readings = [r for s in series[: MAX_SERIES * 5] if (r := read_series(s, baseline_start, start, end))]
    readings.sort(key=lambda r: -r.score)
    return readings[:MAX_SERIES]


def target_selector(labels: dict[str, str]) -> str:
    """`{instance="web-01:9100"}`: every series of the alert's target, from its most specific label."""
    for key in TARGET_LABELS:
        if labels.get(key):
            return f'{{{key}="{escape_label_value(labels[key])}"}}'
    return ""


class TargetAnomaly(BaseModel):
    metric: str
    query: str
    reading: QueryReading


async def read_target_series(source: MetricsSource, selector: str, baseline_start: datetime, start: datetime,
                             end: datetime) -> list[TargetAnomaly]:
    """The target's other series (one selector query, bounded): the anomalous ones, strongest first."""

    series = await _fetch(source, selector, baseline_start, end)
    out = []
    for s in series[:MAX_TARGET_SERIES]:
        if s.metric == "ALERTS" or s.metric.startswith("ALERTS_"):
            continue
        r = read_series(s, baseline_start, start, end)
        if r is not None and r.anomalous:
            out.append(TargetAnomaly(metric=s.metric, query=_selector(s.metric, s.labels), reading=r))
    out.sort(key=lambda a: (-a.reading.score, a.metric))
    return out

"""Metric anomaly ranking: which components look most abnormal right now, and on which metrics.

Method (chosen on the Nezha Online Boutique 2022-08-22 eval; see docs/metrics.md for the ablation):

1. **Per series, a trailing robust z-score at every point of the window.** The reference level for a
   point is the median of the few points just before it (skipping one, so a fault's ramp-up does not
   become its own reference); the noise scale is a robust sigma from the *first differences* of the
   whole history before it (MAD of diffs / sqrt 2). Differences make the scale immune to level
   shifts, so an earlier incident inside the baseline (faults here recur every ~8 minutes) neither
   inflates the scale nor hides this one, which a plain median/MAD over the baseline does.
2. **Recency.** The alert fires now, so what matters is what is abnormal at the end of the window:
   points in the last `RECENT` minutes count fully, older ones decay with a half-life of `HALF_LIFE`.
   A neighbour's anomaly that already recovered does not outrank the current one.
3. **Soft cap.** |z| is squashed with `CAP * tanh(z / CAP)`: a near-flat series makes z explode, and
   one explosion must not beat consistent evidence, but a larger move should still rank higher.
4. **Metric families.** Scores are grouped by what a metric means (resource, latency, client-side
   latency, traffic, node, errors). Client-side latency is how slow a component's *callees* are, so
   it counts only 0.3 towards the component itself; node metrics are shared by every pod on a node
   (0.5); a latency *drop* is weak evidence (0.3).
5. **Call graph.** A caller whose latency anomaly is matched by an anomalous callee (>= 70 % of its
   own) is probably a victim: its latency score is cut to 30 %. Resource anomalies are not discounted
   (a slow callee does not burn its caller's CPU).
6. **Component score** = its strongest family plus 0.1 x the next two: breadth breaks ties.

The diagnosis agent calls `rank_components` in both LLM and rule mode.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
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


# --- parameters (tuned on Nezha OB 2022-08-22 only; held-out days are reported, not tuned on) ----
DEFAULT_BASELINE = timedelta(minutes=60)  # used when the caller gives no baseline_start
RESOLUTION_SECONDS = 60.0  # finer series are averaged into 1-minute buckets first
LEVEL_POINTS = 5  # reference level: median of this many points before the scored one ...
GAP_POINTS = 1  # ... skipping this many (a fault's partial first minute)
MIN_HISTORY = 3  # fewer points before a point: it is not scored
SCALE_FLOOR = 0.05  # the noise scale is at least 5 % of the level (flat series)
CAP = 20.0  # soft cap on |z|
RECENT = timedelta(minutes=2)  # full weight for points this close to the window end
HALF_LIFE = timedelta(minutes=3)  # older points: weight halves every HALF_LIFE
MIN_SCORE = 3.0  # a series below this is not reported as evidence
FAMILY_WEIGHT = {"client": 0.3, "node": 0.5}
LATENCY_DOWN_WEIGHT = 0.3
CALLEE_EXPLAINS = 0.7  # a callee with >= 70 % of the caller's latency score explains it ...
VICTIM_FACTOR = 0.3  # ... and the caller keeps 30 % of it
BREADTH = 0.1  # weight of the 2nd and 3rd strongest families

_FAMILIES: list[tuple[tuple[str, ...], str]] = [
    (("client_latency", "client_duration", "client_request_duration"), "client"),
    (("node_",), "node"),
    (("cpu", "memory", "mem_", "fs_", "disk", "restart", "oom"), "resource"),
    (("latency", "duration", "response_time"), "latency"),
    (("success", "error", "fail", "5xx"), "errors"),
    (("network", "syscall", "workload", "request", "bytes", "ops", "qps", "rps"), "traffic"),
]


def metric_family(metric: str) -> str:
    """What a metric means for root-causing: resource, latency, client, errors, traffic, node, other."""
    low = metric.lower()
    for keys, fam in _FAMILIES:
        if any(k in low for k in keys):
            return fam
    return "other"


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class _Point(BaseModel):
    score: float = 0.0
    z: float = 0.0
    value: float = math.nan
    level: float = math.nan


def _to_minutes(t: np.ndarray, v: np.ndarray, end_ts: float) -> tuple[np.ndarray, np.ndarray]:
    """Average a finer-than-RESOLUTION series into buckets ending at `end_ts` (coarser: unchanged)."""
    if len(t) < 3 or np.median(np.diff(t)) >= RESOLUTION_SECONDS * 0.9:
        return t, v
    bucket = np.floor((t - end_ts) / RESOLUTION_SECONDS)
    keys, inv = np.unique(bucket, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    counts = np.bincount(inv)
    return end_ts + keys * RESOLUTION_SECONDS, sums / counts


def score_points(t: np.ndarray, v: np.ndarray, start_ts: float, end_ts: float) -> _Point:
    """The most abnormal (recency-weighted) point of [start_ts, end_ts] against its trailing history."""
    best = _Point()
    for i in np.nonzero(t >= start_ts)[0]:
        hist = v[: max(0, i - GAP_POINTS)]
        if len(hist) < MIN_HISTORY:
            continue
        level = float(np.median(hist[-LEVEL_POINTS:]))
        sigma = float(np.median(np.abs(np.diff(hist)))) * 1.4826 / math.sqrt(2)
        scale = max(sigma, SCALE_FLOOR * abs(level), 1e-9)
        z = (float(v[i]) - level) / scale
        age = end_ts - float(t[i])
        recent = RECENT.total_seconds()
        weight = 1.0 if age <= recent else 0.5 ** ((age - recent) / HALF_LIFE.total_seconds())
        score = CAP * math.tanh(abs(z) / CAP) * weight
        if score > best.score:
            best = _Point(score=score, z=z, value=float(v[i]), level=level)
    return best


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _selector(metric: str, labels: dict[str, str]) -> str:
    """The exact PromQL selector of one series: evidence a human (or the LLM) can re-run."""
    inner = ",".join(f'{k}="{_quote(v)}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def _component_matcher(label: str, components: set[str] | None) -> str:
    """`service=~"a|b"` when the wanted names are plain, so the backend filters; else any value."""
    if components and all(re.fullmatch(r"[A-Za-z0-9_:.\-]+", c) for c in components):
        return f'{label}=~"{"|".join(sorted(components))}"'
    return f'{label}=~".+"'


async def _fetch(source: MetricsSource, query: str, start: datetime, end: datetime) -> list[Series]:
    """Raw samples where the backend can give them (no resampling), else a range query."""
    raw = getattr(source, "query_samples", None)
    if raw is not None:
        return list(await raw(query, start, end))
    return await source.query_range(query, start, end)


async def rank_components(source: MetricsSource, start: datetime, end: datetime, *,
                          baseline_start: datetime | None = None,
                          components: list[str] | None = None,
                          call_graph: dict[str, list[str]] | None = None,
                          component_label: str = "service") -> list[Suspect]:
    """Rank components by how abnormal their metrics are in [start, end].

    History from `baseline_start` (default: 60 minutes before `start`) defines normal. Every metric
    carrying `component_label` is read (one query per metric name); `components` restricts the
    ranking; `call_graph` (caller -> callees) discounts callers that are only victims of a slow
    callee. Returns every component seen, best suspect first, each with its anomalous series.
    """
    start, end = _utc(start), _utc(end)
    baseline_start = _utc(baseline_start) if baseline_start else start - DEFAULT_BASELINE
    if end <= start:
        raise ValueError(f"empty window: start {start.isoformat()} is not before end {end.isoformat()}")
    wanted = set(components) if components else None
    metrics = await source.list_metrics()
    matcher = _component_matcher(component_label, wanted)
    sem = asyncio.Semaphore(8)

    async def fetch(metric: str) -> list[Series]:
        async with sem:
            return await _fetch(source, f"{metric}{{{matcher}}}", baseline_start, end)

    results = await asyncio.gather(*(fetch(m) for m in metrics))
    start_ts, end_ts = start.timestamp(), end.timestamp()
    families: dict[str, dict[str, float]] = {}
    evidence: dict[str, list[MetricAnomaly]] = {}
    for series_list in results:
        for s in series_list:
            comp = s.labels.get(component_label)
            if not comp or (wanted is not None and comp not in wanted):
                continue
            pts = [(t.timestamp(), v) for t, v in s.points if math.isfinite(v)]
            families.setdefault(comp, {})
            evidence.setdefault(comp, [])
            if not pts:
                continue
            t = np.fromiter((p[0] for p in pts), float, len(pts))
            v = np.fromiter((p[1] for p in pts), float, len(pts))
            t, v = _to_minutes(t, v, end_ts)
            best = score_points(t, v, start_ts, end_ts)
            fam = metric_family(s.metric)
            score = best.score * FAMILY_WEIGHT.get(fam, 1.0)
            if fam == "latency" and best.z < 0:
                score *= LATENCY_DOWN_WEIGHT
            families[comp][fam] = max(families[comp].get(fam, 0.0), score)
            if score >= MIN_SCORE:
                evidence[comp].append(MetricAnomaly(
                    component=comp, metric=s.metric, query=_selector(s.metric, s.labels),
                    score=round(score, 3), value=best.value, baseline=best.level,
                    direction="up" if best.z >= 0 else "down", start=start, end=end))
    if call_graph:
        families = _discount_victims(families, call_graph)
    suspects = []
    for comp, fams in families.items():
        ranked = sorted(fams.values(), reverse=True)
        score = (ranked[0] + BREADTH * sum(ranked[1:3])) if ranked else 0.0
        suspects.append(Suspect(component=comp, score=round(score, 4),
                                anomalies=sorted(evidence[comp], key=lambda a: (-a.score, a.metric))))
    suspects.sort(key=lambda s: (-s.score, s.component))
    return suspects


def _discount_victims(families: dict[str, dict[str, float]],
                      call_graph: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """A caller whose latency anomaly is matched by a callee's is a victim: keep 30 % of it.

    Decided on the undiscounted scores, so a chain a -> b -> c discounts a and b for c, not a for b.
    """
    out = {c: dict(f) for c, f in families.items()}
    for caller, fams in families.items():
        own = fams.get("latency", 0.0)
        if own <= 0:
            continue
        worst = max((families.get(c, {}).get("latency", 0.0) for c in call_graph.get(caller, [])
                     if c != caller), default=0.0)
        if worst >= CALLEE_EXPLAINS * own:
            out[caller]["latency"] = own * VICTIM_FACTOR
    return out

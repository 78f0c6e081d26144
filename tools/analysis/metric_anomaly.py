"""Metric anomaly ranking: which components look most abnormal right now, and on which metrics.

Method (the change detector was chosen on the Nezha Online Boutique 2022-08-22 eval; the level
detector and the generalised victim rule were added for sustained and slow anomalies; see
docs/metrics.md for the ablation and the calibration):

1. **Change detector: per series, a trailing robust z-score at every point of the window.** The
   reference level for a point is the median of the few points just before it (skipping one, so a
   fault's ramp-up does not become its own reference); the noise scale is a robust sigma from the
   *first differences* of the whole history before it (MAD of diffs / sqrt 2). Differences make the
   scale immune to level shifts, so an earlier incident inside the baseline (faults in Nezha recur
   every ~8 minutes) neither inflates the scale nor hides this one. It sees *abrupt, fresh* changes.
   Three refinements of that scale: a series that routinely jumps (20 % of its minute-to-minute steps
   are large: a bimodal latency) is as noisy as its 80th-percentile step says, not its median one;
   a latency never counts a move under its resolution (1 ms) as signal; a success ratio
   (`*success*_percent`, `*success*_ratio`) is healthy at its ceiling, so its relative floor is a fraction of
   its failures, not of its level, and a move under half a percent of the requests is not signal
   (100 % -> 95.7 % is errors from nothing, not a 4 % dip; chosen on the dev day, where 1 % left a
   frontend exception explained away by a callee's small latency move); and with less than
   `SHORT_HISTORY` points (a recording or a service that just started) it uses what there is, the
   point just before included, on a wider floor (10 % of the level instead of 5 %).
2. **Recency** (change detector only). Points in the last `RECENT` minutes count fully, older ones
   decay with a half-life of `HALF_LIFE`: a neighbour's spike that already recovered does not
   outrank the current one.
3. **Level detector: where the series is now versus the baseline window.** The current level (median
   of the window's last `LEVEL_NOW_POINTS` points: the shift must hold for most of the last minutes)
   against the median of the baseline window, on the larger of two robust scales of the baseline
   (MAD of its values; MAD of its first differences / sqrt 2). It sees what the change detector is
   blind to: a shift older than the recency window (an alert with `for: 5m`, CPU pinned for ten
   minutes: the trailing reference has caught up and the recency weight has decayed) and a slow
   ramp (every step is small next to the noise, the sum is not). The baseline median and MAD stay
   put with an earlier incident covering less than half the baseline, and taking the larger scale
   keeps the detector quiet on drifting series: on Nezha, where no sustained shift is older than 2
   minutes, it scores >= 3 for 0.8 % of the non-root-cause series (the change detector: 23 %).
   A series' score is the larger of the two detectors' (they share the z scale and the soft cap).
4. **Soft cap.** |z| is squashed with `CAP * tanh(z / CAP)`: a near-flat series makes z explode, and
   one explosion must not beat consistent evidence, but a larger move should still rank higher.
4. **Metric families.** Scores are grouped by what a metric means (resource, latency, client-side
   latency, traffic, node, errors). Client-side latency is how slow a component's *callees* are, so
   it counts only 0.3 towards the component itself; node metrics are shared by every pod on a node
   (0.5); a latency *drop* is weak evidence (0.3).
5. **Call graph.** A caller's *symptoms* (latency, errors) are what a bad callee causes upstream. A
   caller whose symptom score is matched (>= 70 %) by a callee's possible *cause* (its latency or
   errors, or a resource anomaly going up: CPU pinned, restarts, memory) is probably a victim: that
   symptom keeps 30 %. Both detectors feed this, so it holds for sustained anomalies too. The
   caller's own resource anomalies are not discounted (a slow callee does not burn its caller's
   CPU), and a callee's resource *drop* explains nothing (it is what a failing caller causes).
6. **Calls that stopped.** A call edge (a series with a `source_service`-like label) that had a
   sample nearly every minute of the baseline and has none for the last minute(s), while the same
   metric of other edges goes on, means the caller stopped calling: evidence against the *caller*
   (it fails before it gets there), unless the callee has a cause of its own (a callee so slow that
   no call completes). Exceptions show up this way: no latency moves, but the calls are gone.
7. **Component score** = its strongest family plus 0.1 x the next two: breadth breaks ties.

The diagnosis agent calls `rank_components` in both LLM and rule mode.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from core.models import MetricSeries, utc
from tools.metric_types import MetricsSource, Series


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
    series: MetricSeries | None = None  # baseline + window, downsampled, with the band it was compared to
    note: str = ""  # what the anomaly is when not a value against a baseline (calls that stopped)


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
MIN_HISTORY = 3  # fewer points than this before the gap: the point just before is used too
SHORT_HISTORY = 10  # fewer history points than this: a short history, scored on SHORT_FLOOR
SHORT_FLOOR = 0.10  # ... a wider floor, as little history says little about the noise
SCALE_FLOOR = 0.05  # the noise scale is at least 5 % of the level (flat series); both detectors
SPIKE_QUANTILE = 0.8  # the noise scale is also at least the 80th-percentile step (as a Gaussian sigma) ...
SPIKE_MIN_STEPS = 20  # ... once the history has this many steps (fewer: the quantile is one earlier fault)
LATENCY_RESOLUTION_SECONDS = 0.001  # a latency move below 1 ms is not signal (histogram resolution)
SUCCESS_RESOLUTION = 0.005  # a success-rate move below half a percent of the requests is not signal (a fraction)
LEVEL_NOW_POINTS = 5  # level detector: "now" is the median of the window's last 5 points (minutes) ...
LEVEL_MIN_NOW = 3  # ... of at least 3 (a shorter window: no level score)
LEVEL_MIN_BASELINE = 10  # ... against a baseline of at least 10 points (less: no level score)
CAP = 20.0  # soft cap on |z|
RECENT = timedelta(minutes=2)  # full weight for points this close to the window end
HALF_LIFE = timedelta(minutes=3)  # older points: weight halves every HALF_LIFE
MIN_SCORE = 3.0  # a series below this is not reported as evidence
FAMILY_WEIGHT = {"client": 0.3, "node": 0.5}
LATENCY_DOWN_WEIGHT = 0.3
CALLEE_EXPLAINS = 0.7  # a callee cause with >= 70 % of the caller's symptom score explains it ...
VICTIM_FACTOR = 0.3  # ... and the caller keeps 30 % of it
SYMPTOM_FAMILIES = ("latency", "errors")  # what a bad callee shows up as in its callers
CAUSE_FAMILIES = ("latency", "errors", "resource")  # what, in a callee, can explain them (resource: up only)
BREADTH = 0.1  # weight of the 2nd and 3rd strongest families
EDGE_SOURCE_LABELS = ("source_service", "source_canonical_service", "source_workload")  # the caller of an edge
SILENT_COVERAGE = 0.9  # an edge with a sample in >= 90 % of its baseline minutes is regular ...
SILENT_Z = 10.0  # ... and each minute it has been silent since counts as |z| = 10 for its caller
STOPPED_NOTE = "calls from "  # how the evidence of calls that stopped begins (`MetricAnomaly.note`)

_FAMILIES: list[tuple[tuple[str, ...], str]] = [
    (("client_latency", "client_duration", "client_request_duration"), "client"),
    (("node_",), "node"),
    (("cpu", "memory", "mem_", "fs_", "filesystem", "disk", "restart", "oom"), "resource"),
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


def unit_ceiling(metric: str) -> float | None:
    """The top of a bounded success ratio (100 for `*success*_percent`, 1 for `*success*_ratio`), else None.

    Such a series is healthy at its ceiling, so its noise floor is relative to the failures (the distance
    to the ceiling), not to the level: 100 % -> 95 % is a twentyfold error rate, not a 5 % dip."""
    if "success" not in metric.lower():
        return None
    if metric.endswith("_percent"):
        return 100.0
    if metric.endswith("_ratio"):
        return 1.0
    return None


def unit_floor(metric: str) -> float:
    """The smallest move of a metric that means anything, from its unit suffix (0: none known)."""
    if metric.endswith("_seconds"):
        return LATENCY_RESOLUTION_SECONDS
    if metric.endswith("_milliseconds"):
        return LATENCY_RESOLUTION_SECONDS * 1000
    ceiling = unit_ceiling(metric)
    if ceiling is not None:
        return SUCCESS_RESOLUTION * ceiling
    return 0.0


def _magnitude(level: float, ceiling: float | None) -> float:
    """What the relative noise floor is a fraction of: the level, or for a success ratio its failures."""
    return abs(level) if ceiling is None else abs(ceiling - level)


_SPIKE_K = NormalDist().inv_cdf(0.5 + SPIKE_QUANTILE / 2) * math.sqrt(2)  # that quantile of |N(0, 2)|


def diff_sigma(x: np.ndarray) -> float:
    """The noise of a series from its minute-to-minute steps: the MAD of the first differences / sqrt 2
    (immune to level shifts). 0 for fewer than two points."""
    return float(np.median(np.abs(np.diff(x)))) * 1.4826 / math.sqrt(2) if len(x) > 1 else 0.0


def step_sigma(hist: np.ndarray) -> float:
    """`diff_sigma`, or, for a series that routinely jumps, its 80th-percentile step read as a Gaussian
    sigma."""
    sigma = diff_sigma(hist)
    if len(hist) - 1 >= SPIKE_MIN_STEPS:
        steps = np.abs(np.diff(hist))
        sigma = max(sigma, float(np.quantile(steps, SPIKE_QUANTILE)) / _SPIKE_K)
    return sigma


class _Point(BaseModel):
    score: float = 0.0
    z: float = 0.0
    value: float = math.nan
    level: float = math.nan  # the reference `value` was compared with (reported as the baseline)
    scale: float = math.nan  # the noise scale z was measured in
    at: float = math.nan  # when: the scored point (change), the farthest point of the window (level)


def _to_minutes(t: np.ndarray, v: np.ndarray, end_ts: float) -> tuple[np.ndarray, np.ndarray]:
    """Average a finer-than-RESOLUTION series into buckets ending at `end_ts` (coarser: unchanged)."""
    if len(t) < 3 or np.median(np.diff(t)) >= RESOLUTION_SECONDS * 0.9:
        return t, v
    bucket = np.floor((t - end_ts) / RESOLUTION_SECONDS)
    keys, inv = np.unique(bucket, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    counts = np.bincount(inv)
    return end_ts + keys * RESOLUTION_SECONDS, sums / counts


def score_points(t: np.ndarray, v: np.ndarray, start_ts: float, end_ts: float, floor: float = 0.0,
                 ceiling: float | None = None) -> _Point:
    """The most abnormal (recency-weighted) point of [start_ts, end_ts] against its trailing history.

    `floor`: the smallest meaningful move in the metric's unit (`unit_floor`); `ceiling`: the top of a
    success ratio (`unit_ceiling`)."""
    best = _Point()
    for i in np.nonzero(t >= start_ts)[0]:
        hist = v[: max(0, i - GAP_POINTS)]
        relative_floor = SCALE_FLOOR if len(hist) >= SHORT_HISTORY else SHORT_FLOOR
        if len(hist) < MIN_HISTORY:  # too little history to spare the point just before
            hist = v[:i]
        if not len(hist):
            continue
        level = float(np.median(hist[-LEVEL_POINTS:]))
        scale = max(step_sigma(hist), relative_floor * _magnitude(level, ceiling), floor, 1e-9)
        z = (float(v[i]) - level) / scale
        age = end_ts - float(t[i])
        recent = RECENT.total_seconds()
        weight = 1.0 if age <= recent else 0.5 ** ((age - recent) / HALF_LIFE.total_seconds())
        score = CAP * math.tanh(abs(z) / CAP) * weight
        if score > best.score:
            best = _Point(score=score, z=z, value=float(v[i]), level=level, scale=scale, at=float(t[i]))
    return best


def _mad_sigma(x: np.ndarray) -> float:
    return float(np.median(np.abs(x - np.median(x)))) * 1.4826


def score_level(t: np.ndarray, v: np.ndarray, start_ts: float, end_ts: float, floor: float = 0.0,
                ceiling: float | None = None) -> _Point:
    """Where the series is now (median of the window's last points) against the baseline before it.

    The scale is the larger of the baseline's MAD and its first-difference sigma, floored like the
    change detector's: conservative on purpose, this detector is for shifts that last.
    """
    base = v[t < start_ts]
    recent = v[(t >= start_ts) & (t <= end_ts)][-LEVEL_NOW_POINTS:]
    if len(base) < LEVEL_MIN_BASELINE or len(recent) < LEVEL_MIN_NOW:
        return _Point()
    now = float(np.median(recent))
    ref = float(np.median(base))
    spread = _mad_sigma(base)
    noise = diff_sigma(base)
    scale = max(spread, noise, SCALE_FLOOR * _magnitude(ref, ceiling), floor, 1e-9)
    z = (now - ref) / scale
    window = (t >= start_ts) & (t <= end_ts)
    far = float(t[window][int(np.argmax(np.abs(v[window] - ref)))])
    return _Point(score=CAP * math.tanh(abs(z) / CAP), z=z, value=now, level=ref, scale=scale, at=far)


def score_series(t: np.ndarray, v: np.ndarray, start_ts: float, end_ts: float, floor: float = 0.0,
                 ceiling: float | None = None) -> _Point:
    """The stronger of the two detectors: a fresh change (recency-weighted) or a lasting shift."""
    change = score_points(t, v, start_ts, end_ts, floor, ceiling)
    level = score_level(t, v, start_ts, end_ts, floor, ceiling)
    return level if level.score > change.score else change


def silent_minutes(t: np.ndarray, start_ts: float, latest: float) -> tuple[int, float]:
    """(whole minutes without a sample before `latest`, the baseline's coverage) for a series that was
    regular before `start_ts` (a sample in >= SILENT_COVERAGE of its minutes, or of its scrapes when
    finer); (0, coverage) otherwise.

    `t` are raw sample times; `latest` is the newest sample of the same metric (so a collector that
    lags as a whole silences nothing)."""
    base = t[t < start_ts]
    if len(base) < LEVEL_MIN_BASELINE or not len(t):
        return 0, 0.0
    step = min(float(np.median(np.diff(base))), RESOLUTION_SECONDS)
    coverage = min(1.0, len(base) / ((base[-1] - base[0]) / step + 1)) if step > 0 else 0.0
    minutes = int((latest - float(t[-1])) / RESOLUTION_SECONDS + 0.25)
    return (minutes if coverage >= SILENT_COVERAGE else 0), coverage


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
    start, end = utc(start), utc(end)
    baseline_start = utc(baseline_start) if baseline_start else start - DEFAULT_BASELINE
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
    causes: dict[str, float] = {}  # per component: its strongest anomaly that can explain a caller's symptoms
    evidence: dict[str, list[MetricAnomaly]] = {}
    silent: list[tuple[str, MetricAnomaly]] = []  # (callee, evidence against the caller that stopped calling it)
    for series_list in results:
        latest = max((s.points[-1][0].timestamp() for s in series_list if s.points), default=end_ts)
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
            caller = next((s.labels[k] for k in EDGE_SOURCE_LABELS if s.labels.get(k)), "")
            if caller and caller != comp and (wanted is None or caller in wanted):
                minutes, coverage = silent_minutes(t, start_ts, latest)
                if minutes:
                    score = CAP * math.tanh(SILENT_Z * minutes / CAP)
                    stopped = datetime.fromtimestamp(float(t[-1]), UTC)
                    silent.append((comp, MetricAnomaly(
                        component=caller, metric=s.metric, query=_selector(s.metric, s.labels),
                        score=round(score, 3), value=0.0, baseline=round(coverage, 3), direction="down",
                        start=start, end=end, note=f"{STOPPED_NOTE}{caller} to {comp} stopped: no sample since "
                                                    f"{stopped:%H:%M}Z ({minutes} min; a sample in "
                                                    f"{coverage:.0%} of the baseline minutes)")))
            t, v = _to_minutes(t, v, end_ts)
            best = score_series(t, v, start_ts, end_ts, unit_floor(s.metric), unit_ceiling(s.metric))
            fam = metric_family(s.metric)
            score = best.score * FAMILY_WEIGHT.get(fam, 1.0)
            if fam == "latency" and best.z < 0:
                score *= LATENCY_DOWN_WEIGHT
            families[comp][fam] = max(families[comp].get(fam, 0.0), score)
            if fam in CAUSE_FAMILIES and (fam != "resource" or best.z > 0):
                causes[comp] = max(causes.get(comp, 0.0), score)
            if score >= MIN_SCORE:
                evidence[comp].append(MetricAnomaly(
                    component=comp, metric=s.metric, query=_selector(s.metric, s.labels),
                    score=round(score, 3), value=best.value, baseline=best.level,
                    direction="up" if best.z >= 0 else "down", start=start, end=end,
                    series=_chartable(t, v, best, start)))
    for callee, a in silent:  # the caller stopped calling: its doing, unless the callee has a cause
        if causes.get(callee, 0.0) < CALLEE_EXPLAINS * a.score:
            fams = families.setdefault(a.component, {})
            fams["calls"] = max(fams.get("calls", 0.0), a.score)
            evidence.setdefault(a.component, []).append(a)
    if call_graph:
        families = _discount_victims(families, causes, call_graph)
    suspects = []
    for comp, fams in families.items():
        ranked = sorted(fams.values(), reverse=True)
        score = (ranked[0] + BREADTH * sum(ranked[1:3])) if ranked else 0.0
        suspects.append(Suspect(component=comp, score=round(score, 4),
                                anomalies=sorted(evidence[comp], key=lambda a: (-a.score, a.metric))))
    suspects.sort(key=lambda s: (-s.score, s.component))
    return suspects


BAND_Z = 3.0  # the band drawn around the reference: |z| below this scores under MIN_SCORE (CAP tanh(3/CAP) ~ 3)


def _chartable(t: np.ndarray, v: np.ndarray, best: _Point, start: datetime) -> MetricSeries | None:
    """The series as scored (1-minute buckets, baseline and window), bounded for the evidence it backs."""
    band = ((best.level - BAND_Z * best.scale, best.level + BAND_Z * best.scale)
            if math.isfinite(best.level) and math.isfinite(best.scale) else None)
    peak = datetime.fromtimestamp(best.at, UTC) if math.isfinite(best.at) else None
    return MetricSeries.from_points([(datetime.fromtimestamp(float(x), UTC), float(y)) for x, y in zip(t, v, strict=True)],
                                    band=band, window_start=start, peak_at=peak)


def _discount_victims(families: dict[str, dict[str, float]], causes: dict[str, float],
                      call_graph: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """A caller whose symptom (latency, errors) is matched by a callee's cause is a victim: keep 30 %.

    `causes[c]` is c's strongest latency, errors or upward resource anomaly. Decided on the
    undiscounted scores, so a chain a -> b -> c discounts a and b for c, not a for b.
    """
    out = {c: dict(f) for c, f in families.items()}
    for caller, fams in families.items():
        worst = max((causes.get(c, 0.0) for c in call_graph.get(caller, []) if c != caller), default=0.0)
        for fam in SYMPTOM_FAMILIES:
            own = fams.get(fam, 0.0)
            if own > 0 and worst >= CALLEE_EXPLAINS * own:
                out[caller][fam] = own * VICTIM_FACTOR
    return out

"""Read-only LangChain tools over a `MetricsSource`, for the diagnosis (and chat) model.

Every tool answers relative to the source's clock (`now` for replays), has typed (Pydantic)
arguments, and returns one `ToolResult` (ok / no_data / error, with the evidence it produced):
summaries and comparisons, never thousands of raw points. A backend failure is an `error` result
naming the query, never an exception the caller has to catch.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from core.models import utc
from tools.analysis.metric_anomaly import rank_components
from tools.metric_types import MetricsQueryError, MetricsSource, Series, escape_label_value
from tools.result import ToolResult, result_tool


def _source_now(source: MetricsSource) -> datetime:
    """The source's pinned clock (replays, evals) or the wall clock: tools never look past it."""
    now = getattr(source, "now", None)
    return utc(now) if now is not None else datetime.now(UTC)


def _selector_for(metric: str, service: str | None, pod: str | None, component_label: str) -> str:
    matchers = []
    if service:
        matchers.append(f'{component_label}="{escape_label_value(service)}"')
    if pod:
        matchers.append(f'pod="{escape_label_value(pod)}"')
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def _fmt(x: float) -> float:
    return float(f"{x:.4g}") if math.isfinite(x) else x


def summarize_series(s: Series, buckets: int = 12) -> dict[str, Any]:
    """A few numbers and a coarse shape instead of every point: what an LLM can actually read."""
    vals = s.values()
    out: dict[str, Any] = {"metric": s.metric, "labels": s.labels, "points": len(vals)}
    if not vals:
        return out
    srt = sorted(vals)
    out.update(first=s.points[0][0].isoformat(), last_time=s.points[-1][0].isoformat(),
               min=_fmt(srt[0]), median=_fmt(srt[len(srt) // 2]), max=_fmt(srt[-1]), last=_fmt(vals[-1]))
    step = max(1, math.ceil(len(vals) / buckets))
    out["shape"] = [_fmt(sum(vals[i:i + step]) / len(vals[i:i + step])) for i in range(0, len(vals), step)]
    return out


class QueryMetricArgs(BaseModel):
    metric: str = Field(description="metric name, e.g. cpu_usage_rate_percent (see list_metrics)")
    service: str | None = Field(None, description="only this service/component")
    pod: str | None = Field(None, description="only this pod")
    minutes: int = Field(30, ge=1, le=24 * 60, description="how far back from now to look")


class ListMetricsArgs(BaseModel):
    service: str | None = Field(None, description="only metrics this service/component has")


class CompareBaselineArgs(BaseModel):
    metric: str = Field(description="metric name (see list_metrics)")
    service: str | None = Field(None, description="only this service/component")
    window_minutes: int = Field(10, ge=1, le=24 * 60, description="recent window, ending now")
    baseline_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="baseline just before the window")


class RankSuspectsArgs(BaseModel):
    window_minutes: int = Field(10, ge=1, le=24 * 60, description="recent window, ending now")
    baseline_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="baseline before the window")
    top: int = Field(5, ge=1, le=50, description="how many suspects to return")


def make_metric_tools(source: MetricsSource, *, call_graph: dict[str, list[str]] | None = None,
                      component_label: str = "service", max_series: int = 20) -> list[Any]:
    """LangChain tools over a `MetricsSource`, each returning a `ToolResult` (see `tools.result`)."""
    failures = (MetricsQueryError, ValueError)  # a backend's refusal; a selector the source cannot parse

    async def query_metric(metric: str, service: str | None = None, pod: str | None = None,
                           minutes: int = 30) -> ToolResult:
        end = _source_now(source)
        start = end - timedelta(minutes=minutes)
        q = _selector_for(metric, service, pod, component_label)
        try:
            series = await source.query_range(q, start, end)
        except failures as exc:
            return ToolResult.failed("query_metric", q, str(exc))
        window = {"start": start.isoformat(), "end": end.isoformat()}
        if not series:
            return ToolResult.empty("query_metric", q, window, signal="metric", component=service or "")
        return ToolResult.ok("query_metric", q, {**window, "series": [summarize_series(s) for s in series[:max_series]],
                                                 "omitted_series": max(0, len(series) - max_series)},
                             signal="metric", component=service or "")

    async def list_metrics(service: str | None = None) -> ToolResult:
        query = f"list_metrics service={service or '*'}"
        try:
            metrics = await source.list_metrics(service)
            out: dict[str, Any] = {"service": service, "metrics": metrics}
            if service is None:
                out["services"] = await source.list_components()
        except failures as exc:
            return ToolResult.failed("list_metrics", query, str(exc))
        if not metrics:
            return ToolResult.empty("list_metrics", query, out, signal="metric", component=service or "")
        return ToolResult.ok("list_metrics", query, out, signal="metric", component=service or "")

    async def compare_to_baseline(metric: str, service: str | None = None, window_minutes: int = 10,
                                  baseline_minutes: int = 60) -> ToolResult:
        end = _source_now(source)
        start = end - timedelta(minutes=window_minutes)
        base_start = start - timedelta(minutes=baseline_minutes)
        q = _selector_for(metric, service, None, component_label)
        try:
            series = await source.query_range(q, base_start, end)
        except failures as exc:
            return ToolResult.failed("compare_to_baseline", q, str(exc))
        rows: list[dict[str, Any]] = []
        for s in series[:max_series]:
            base = [v for t, v in s.points if t < start and math.isfinite(v)]
            win = [v for t, v in s.points if t >= start and math.isfinite(v)]
            if not win:
                continue
            b_med = statistics.median(base) if base else math.nan
            mad = statistics.median([abs(x - b_med) for x in base]) * 1.4826 if base else math.nan
            w_med = statistics.median(win)
            peak = max(win, key=lambda x: abs(x - b_med)) if base else win[-1]
            scale = max(mad, 0.05 * abs(b_med), 1e-9) if base else math.nan
            z = (peak - b_med) / scale if base else math.nan
            rows.append({"labels": s.labels, "baseline_median": _fmt(b_med), "baseline_mad": _fmt(mad),
                         "window_median": _fmt(w_med), "window_peak": _fmt(peak), "window_last": _fmt(win[-1]),
                         "robust_z": _fmt(z), "direction": "up" if (z if math.isfinite(z) else 0) >= 0 else "down",
                         "anomalous": bool(math.isfinite(z) and abs(z) >= 3.0)})
        rows.sort(key=lambda r: -abs(r["robust_z"]) if math.isfinite(r["robust_z"]) else 0)
        data = {"window": [start.isoformat(), end.isoformat()],
                "baseline": [base_start.isoformat(), start.isoformat()], "series": rows}
        if not rows:
            return ToolResult.empty("compare_to_baseline", q, data, signal="metric", component=service or "")
        top = rows[0]
        result = ToolResult(status="ok", tool="compare_to_baseline", query=q, data=data)
        return result.observed(signal="metric", component=service or "", anomalous=top["anomalous"],
                               value=_finite(top["window_peak"]), baseline=_finite(top["baseline_median"]),
                               score=_finite(abs(top["robust_z"])))

    async def rank_suspects(window_minutes: int = 10, baseline_minutes: int = 60, top: int = 5) -> ToolResult:
        end = _source_now(source)
        start = end - timedelta(minutes=window_minutes)
        query = f"rank_components window={window_minutes}m baseline={baseline_minutes}m"
        try:
            suspects = await rank_components(source, start, end,
                                             baseline_start=start - timedelta(minutes=baseline_minutes),
                                             call_graph=call_graph, component_label=component_label)
        except failures as exc:
            return ToolResult.failed("rank_suspects", query, str(exc))
        data = [{"component": s.component, "score": round(s.score, 2),
                 "evidence": [{"metric": a.metric, "query": a.query, "direction": a.direction,
                               "value": _fmt(a.value), "baseline": _fmt(a.baseline), "score": round(a.score, 1),
                               **({"note": a.note} if a.note else {})}
                              for a in s.anomalies[:3]]} for s in suspects[:top]]
        return ToolResult.ok("rank_suspects", query, data, signal="metric")

    return [
        result_tool(query_metric, name="query_metric", args_schema=QueryMetricArgs,
                    description="Summarise one metric (optionally for one service/pod) over the last N minutes: "
                                "min/median/max/last and a coarse shape per series."),
        result_tool(list_metrics, name="list_metrics", args_schema=ListMetricsArgs,
                    description="List the metric names that exist (for one service, or all, with the services)."),
        result_tool(compare_to_baseline, name="compare_to_baseline", args_schema=CompareBaselineArgs,
                    description="Compare a metric's recent window with the baseline just before it, per series: "
                                "medians, peak, robust z-score, direction, anomalous or not."),
        result_tool(rank_suspects, name="rank_suspects", args_schema=RankSuspectsArgs,
                    description="Rank the components whose metrics are most abnormal now, with the metric evidence."),
    ]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None

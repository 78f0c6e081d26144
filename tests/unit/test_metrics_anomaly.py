"""rank_components on synthetic series where the answer is known, and call-graph propagation."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tools.analysis.metric_anomaly import metric_family, rank_components, score_points
from tools.metrics import InMemoryMetricsSource, Series

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
END = T0 + timedelta(minutes=70)
START = END - timedelta(minutes=10)


def series(metric: str, service: str, base: float, *, shift_at: int | None = None, factor: float = 1.0,
           seed: int = 0, noise: float = 0.05) -> Series:
    """70 one-minute points of `base` with 5 % noise; multiplied by `factor` from minute `shift_at`."""
    rng = np.random.default_rng(seed)
    pts = []
    for i in range(71):
        v = base * (1 + noise * rng.standard_normal())
        if shift_at is not None and i >= shift_at:
            v *= factor
        pts.append((T0 + timedelta(minutes=i), float(v)))
    return Series(metric=metric, labels={"service": service, "pod": f"{service}-abc12de34f-xyz12"}, points=pts)


def rank(source: InMemoryMetricsSource, **kw):  # type: ignore[no-untyped-def]
    return asyncio.run(rank_components(source, START, END, baseline_start=T0, **kw))


def test_the_component_that_shifted_ranks_first_with_its_evidence() -> None:
    src = InMemoryMetricsSource([
        series("cpu_usage_rate_percent", "a", 20, seed=1),
        series("cpu_usage_rate_percent", "b", 20, seed=2, shift_at=68, factor=4),
        series("cpu_usage_rate_percent", "c", 20, seed=3),
        series("memory_usage_bytes", "a", 1e8, seed=4),
        series("memory_usage_bytes", "b", 1e8, seed=5),
    ])
    ranked = rank(src)
    assert [s.component for s in ranked][0] == "b"
    top = ranked[0].anomalies[0]
    assert top.metric == "cpu_usage_rate_percent" and top.direction == "up"
    assert top.value > 3 * top.baseline
    assert 'service="b"' in top.query and top.start == START and top.end == END
    assert ranked[0].score > 3 * ranked[1].score
    assert all(not s.anomalies for s in ranked[1:])  # noise is not reported as evidence


def test_a_drop_is_reported_as_down() -> None:
    src = InMemoryMetricsSource([series("pod_workload_ops", "a", 100, shift_at=67, factor=0.1),
                                 series("pod_workload_ops", "b", 100, seed=9)])
    (top, _) = rank(src)
    assert top.component == "a" and top.anomalies[0].direction == "down"


def test_an_earlier_incident_in_the_baseline_does_not_hide_the_current_one() -> None:
    # b had a big excursion 30 minutes ago (inside the baseline) and shifts again now
    s = series("cpu_usage_rate_percent", "b", 20, seed=2, shift_at=68, factor=4)
    s.points = [(t, v * (4 if 30 <= i < 37 else 1)) for i, (t, v) in enumerate(s.points)]
    src = InMemoryMetricsSource([s, series("cpu_usage_rate_percent", "a", 20, seed=1)])
    ranked = rank(src)
    assert ranked[0].component == "b" and ranked[0].score > 10


def test_a_recovered_anomaly_weighs_less_than_a_current_one() -> None:
    old = series("cpu_usage_rate_percent", "old", 20, seed=1)
    old.points = [(t, v * (4 if 61 <= i < 63 else 1)) for i, (t, v) in enumerate(old.points)]
    src = InMemoryMetricsSource([old, series("cpu_usage_rate_percent", "now", 20, seed=2, shift_at=69, factor=4)])
    assert [s.component for s in rank(src)][:2] == ["now", "old"]


def test_a_slow_callee_makes_its_caller_a_victim_not_a_suspect() -> None:
    # the caller's latency jumps more (it adds its own time), the callee's less; nothing else moves
    caller = series("pod_server_latency_p90_seconds", "frontend", 0.5, seed=1, shift_at=68, factor=6)
    callee = series("pod_server_latency_p90_seconds", "catalog", 0.01, seed=2, shift_at=68, factor=5)
    other = series("pod_server_latency_p90_seconds", "cart", 0.01, seed=3)
    src = InMemoryMetricsSource([caller, callee, other])
    without = rank(src)
    assert {without[0].component, without[1].component} == {"frontend", "catalog"}
    graph = {"frontend": ["catalog", "cart"]}
    with_graph = rank(src, call_graph=graph)
    assert [s.component for s in with_graph][:2] == ["catalog", "frontend"]
    assert with_graph[1].score < 0.5 * with_graph[0].score
    # a caller whose callees are all healthy keeps its score
    healthy = rank(InMemoryMetricsSource([caller, other]), call_graph=graph)
    assert healthy[0].component == "frontend" and healthy[0].score > 10


def test_resource_anomalies_are_not_discounted_by_the_graph() -> None:
    src = InMemoryMetricsSource([
        series("cpu_usage_rate_percent", "frontend", 20, seed=1, shift_at=68, factor=5),
        series("pod_server_latency_p90_seconds", "catalog", 0.01, seed=2, shift_at=68, factor=3),
    ])
    ranked = rank(src, call_graph={"frontend": ["catalog"]})
    assert ranked[0].component == "frontend"


def test_components_filter_and_empty_window() -> None:
    src = InMemoryMetricsSource([series("cpu_usage_rate_percent", "a", 20, seed=1, shift_at=68, factor=4),
                                 series("cpu_usage_rate_percent", "b", 20, seed=2)])
    assert [s.component for s in rank(src, components=["b"])] == ["b"]
    with pytest.raises(ValueError, match="empty window"):
        asyncio.run(rank_components(src, END, START))


def test_no_future_data_reaches_the_ranking() -> None:
    # a huge move after `now` must not count: the source clamps, the ranking never asks past `end`
    future = series("cpu_usage_rate_percent", "a", 20, seed=1)
    future.points.append((END + timedelta(minutes=1), 1e6))
    src = InMemoryMetricsSource([future, series("cpu_usage_rate_percent", "b", 20, seed=2, shift_at=69, factor=3)],
                                now=END)
    ranked = asyncio.run(rank_components(src, START, END + timedelta(minutes=5), baseline_start=T0))
    assert ranked[0].component == "b"


def test_score_points_uses_a_difference_scale_and_soft_cap() -> None:
    t = np.arange(30, dtype=float) * 60
    flat = np.full(30, 10.0)
    flat[-1] = 1e6
    s = score_points(t, flat, t[-3], t[-1])
    assert 19 < s.score <= 20 and s.z > 0 and s.level == 10.0
    assert math.isclose(score_points(t, np.full(30, 10.0), t[-3], t[-1]).score, 0.0)


@pytest.mark.parametrize(("metric", "family"), [
    ("cpu_usage_rate_percent", "resource"), ("pod_client_latency_p90_seconds", "client"),
    ("pod_server_latency_p99_seconds", "latency"), ("edge_latency_p50_seconds", "latency"),
    ("node_cpu_usage_rate_percent", "node"), ("pod_success_rate_percent", "errors"),
    ("network_receive_bytes", "traffic"), ("http_request_duration_seconds", "latency"),
])
def test_metric_families(metric: str, family: str) -> None:
    assert metric_family(metric) == family

"""rank_components on synthetic series where the answer is known, and call-graph propagation."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tools.analysis.metric_anomaly import (
    MIN_SCORE,
    STOPPED_NOTE,
    metric_family,
    rank_components,
    score_level,
    score_points,
    step_sigma,
    unit_ceiling,
    unit_floor,
)
from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource

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


# --- sustained and slow anomalies (level detector) and victims of them ---------------------------
def _reshape(s: Series, shape) -> Series:  # type: ignore[no-untyped-def]
    """Multiply each point i (minute i) by shape(i)."""
    s.points = [(t, v * shape(i)) for i, (t, v) in enumerate(s.points)]
    return s


def test_a_slow_ramp_is_found_although_no_single_step_is_abnormal() -> None:
    # a disk filling from 60 % to ~90 % over the last 35 minutes, 0.5 % noise: each minute moves it by
    # less than the change detector's noise floor, the whole move is far outside the baseline
    disk = _reshape(series("filesystem_used_percent", "backup", 60, seed=1, noise=0.005),
                    lambda i: 1.0 if i < 35 else 1 + 0.5 * (i - 35) / 35)
    other = series("cpu_usage_rate_percent", "db", 10, seed=2, shift_at=69, factor=1.15)  # a modest fresh blip
    src = InMemoryMetricsSource([disk, other, series("filesystem_used_percent", "db", 40, seed=3, noise=0.005)])
    t = np.array([p[0].timestamp() for p in disk.points])
    v = np.array([p[1] for p in disk.points])
    assert score_points(t, v, START.timestamp(), END.timestamp()).score < 3  # the change detector alone misses it
    ranked = rank(src)
    assert ranked[0].component == "backup"
    top = ranked[0].anomalies[0]
    assert top.metric == "filesystem_used_percent" and top.direction == "up"
    assert top.value > 85 and 59 < top.baseline < 63  # compared with the baseline, not a trailing level
    assert ranked[0].score > 8


def test_a_sustained_plateau_older_than_the_recency_window_still_ranks_first() -> None:
    # CPU x4 since 9 minutes (an alert with `for: 5m` fires late): the trailing reference has caught up
    # and the recency weight has decayed; a neighbour has a fresh but modest blip in the last minute
    pinned = series("cpu_usage_rate_percent", "worker", 20, seed=1, shift_at=61, factor=4)
    blip = series("cpu_usage_rate_percent", "web", 20, seed=2, shift_at=70, factor=1.5)
    src = InMemoryMetricsSource([pinned, blip, series("cpu_usage_rate_percent", "db", 20, seed=3)])
    t = np.array([p[0].timestamp() for p in pinned.points])
    v = np.array([p[1] for p in pinned.points])
    change_only = score_points(t, v, START.timestamp(), END.timestamp()).score
    ranked = rank(src)
    assert [s.component for s in ranked][:2] == ["worker", "web"]
    assert ranked[0].score > 15 > change_only  # the level detector carries it, not the decayed change
    top = ranked[0].anomalies[0]
    assert top.value > 3 * top.baseline and 18 < top.baseline < 22


def test_a_recovered_old_plateau_is_not_a_sustained_anomaly() -> None:
    # x4 between minutes 61 and 64, back to normal since: nothing is abnormal *now*
    old = _reshape(series("cpu_usage_rate_percent", "old", 20, seed=1), lambda i: 4 if 61 <= i < 65 else 1)
    now = series("cpu_usage_rate_percent", "now", 20, seed=2, shift_at=69, factor=3)
    assert [s.component for s in rank(InMemoryMetricsSource([old, now]))][:2] == ["now", "old"]


def test_a_caller_of_a_saturated_callee_is_discounted_as_a_victim() -> None:
    # the callee's CPU has been pinned for 10 minutes; the caller's latency and errors rose a minute
    # later and more steeply. The caller's symptoms are explained by the callee's resource anomaly.
    callee_cpu = series("cpu_usage_percent", "php", 20, seed=1, shift_at=60, factor=4.5)
    caller_lat = series("request_latency_p95_seconds", "web", 0.2, seed=2, shift_at=61, factor=12)
    caller_err = series("http_error_ratio", "web", 0.01, seed=3, shift_at=62, factor=20)
    other = series("request_latency_p95_seconds", "db", 0.004, seed=4)
    src = InMemoryMetricsSource([callee_cpu, caller_lat, caller_err, other])
    without = rank(src)
    assert without[0].component == "web"  # without the graph the loudest symptom wins
    graph = {"web": ["php"], "php": ["db"]}
    ranked = rank(src, call_graph=graph)
    assert [s.component for s in ranked][:2] == ["php", "web"]
    assert ranked[1].score < 0.5 * ranked[0].score
    assert {a.metric for a in ranked[1].anomalies} >= {"request_latency_p95_seconds", "http_error_ratio"}
    # a caller whose callee is healthy keeps its sustained score
    alone = rank(InMemoryMetricsSource([caller_lat, other]), call_graph=graph)
    assert alone[0].component == "web" and alone[0].score > 15


def test_a_callee_whose_resource_usage_dropped_does_not_explain_its_caller() -> None:
    # the caller fails, so its callee gets less work: the callee's CPU drop is a consequence, not a cause
    caller_err = series("http_error_ratio", "web", 0.01, seed=1, shift_at=61, factor=30)
    callee_cpu = series("cpu_usage_percent", "api", 40, seed=2, shift_at=61, factor=0.2)
    ranked = rank(InMemoryMetricsSource([caller_err, callee_cpu]), call_graph={"web": ["api"]})
    assert ranked[0].component == "web"


def test_score_level_needs_enough_baseline_and_recent_points() -> None:
    t = np.arange(30, dtype=float) * 60
    v = np.full(30, 10.0)
    v[-6:] = 40.0
    full = score_level(t, v, t[-10], t[-1])
    assert full.score > 19 and full.value == 40.0 and full.level == 10.0
    assert score_level(t, v, t[5], t[-1]).score == 0.0  # 5 baseline points: too few
    assert score_level(t, v, t[-2], t[-1]).score == 0.0  # 2 points in the window: too few


def test_a_filling_filesystem_is_a_resource() -> None:
    assert metric_family("filesystem_used_percent") == "resource"
    assert metric_family("node_filesystem_avail_bytes") == "node"  # shared by the node's pods


def test_an_anomaly_keeps_a_bounded_chartable_series_with_its_band_and_peak() -> None:
    src = InMemoryMetricsSource([series("cpu_usage_rate_percent", "a", 20, seed=1),
                                 series("cpu_usage_rate_percent", "b", 20, seed=2, shift_at=67, factor=4)])
    top = rank(src)[0].anomalies[0]
    s = top.series
    assert s is not None and s.window_start == START and s.start == T0
    assert len(s.values) == 71 and s.step_seconds == 60.0  # 1-minute points over baseline + window: all kept
    low, high = s.band  # type: ignore[misc]
    assert low < top.baseline < high < top.value  # the reference it was compared with, and the peak outside
    assert s.peak_at is not None and START <= s.peak_at <= END
    peak = dict(s.points())[s.peak_at]
    assert peak > high
    assert len(s.model_dump_json()) < 1000  # what each metric evidence item adds to a checkpoint


# --- issue 21 item 4: noise of jumpy series, latency resolution, short histories, calls that stopped ----

def test_step_sigma_reads_a_jumpy_series_by_its_80th_percentile_step() -> None:
    rng = np.random.default_rng(3)
    steady = 10 + rng.standard_normal(60)
    assert step_sigma(steady) == pytest.approx(1.0, rel=0.35)  # Gaussian: both estimates agree on ~sigma
    jumpy = np.where(rng.random(60) < 0.25, 60.0, 5.0) + 0.1 * rng.standard_normal(60)  # a bimodal latency
    median_only = float(np.median(np.abs(np.diff(jumpy)))) * 1.4826 / math.sqrt(2)
    assert step_sigma(jumpy) > 10 * median_only  # its routine jumps are its noise
    assert step_sigma(jumpy[:15]) == pytest.approx(float(np.median(np.abs(np.diff(jumpy[:15])))) * 1.4826
                                                   / math.sqrt(2))  # too few steps: the median step alone


def test_a_series_that_routinely_jumps_loses_to_a_steady_one_that_moved() -> None:
    rng = np.random.default_rng(5)
    jumpy = series("edge_latency_p50_seconds", "currency", 0.005, seed=1)
    jumpy.points = [(t, 0.06 if (rng.random() < 0.25 or i == 70) else v) for i, (t, v) in enumerate(jumpy.points)]
    moved = series("cpu_usage_rate_percent", "checkout", 20, seed=2, shift_at=69, factor=2)
    ranked = rank(InMemoryMetricsSource([jumpy, moved]))
    assert ranked[0].component == "checkout"
    assert ranked[1].score < 0.5 * ranked[0].score


def test_a_latency_move_under_its_resolution_is_not_signal() -> None:
    assert unit_floor("edge_latency_p50_seconds") == 0.001
    assert unit_floor("http_request_duration_milliseconds") == 1.0
    assert unit_floor("cpu_usage_rate_percent") == 0.0
    t = np.array([T0.timestamp() + 60 * i for i in range(40)])
    v = np.full(40, 0.003)
    v[-1] = 0.004  # +1 ms on a flat 3 ms p50: a histogram bucket boundary, not an incident
    assert score_points(t, v, t[-3], t[-1]).score > MIN_SCORE  # relative to its level alone it looks huge
    assert score_points(t, v, t[-3], t[-1], floor=unit_floor("edge_latency_p50_seconds")).score < MIN_SCORE
    v[-1] = 0.2  # a 200 ms p50 is signal whatever the floor
    assert score_points(t, v, t[-3], t[-1], floor=0.001).score > 15


def test_a_success_rate_is_scored_on_its_failures_not_its_level() -> None:
    assert unit_ceiling("success_rate_percent") == 100.0 and unit_ceiling("request_success_ratio") == 1.0
    assert unit_ceiling("cpu_usage_rate_percent") is None and unit_ceiling("success_total") is None
    assert unit_floor("success_rate_percent") == pytest.approx(0.5)  # half a percent of the requests
    t = np.array([T0.timestamp() + 60 * i for i in range(40)])
    v = np.full(40, 100.0)
    v[-1] = 95.7  # 4.3 % of the requests fail where none did: the error rate is up from 0
    floor, ceiling = unit_floor("success_rate_percent"), unit_ceiling("success_rate_percent")
    assert score_points(t, v, t[-3], t[-1]).score < 1  # read as a 4 % dip of a level, it is noise
    assert score_points(t, v, t[-3], t[-1], floor, ceiling).score > 8
    v[-1] = 99.3  # one failed request among ~140 in a minute is not an incident
    assert score_points(t, v, t[-3], t[-1], floor, ceiling).score < MIN_SCORE
    # the ceiling also rules the level detector: failing 5 % of requests for five minutes is a shift
    v[-5:] = 95.0
    assert score_level(t, v, t[-5], t[-1], floor, ceiling).score > 8


def test_an_entry_success_rate_drop_is_not_blamed_on_a_callees_small_latency_move() -> None:
    rate = series("success_rate_percent", "frontend", 100.0, noise=0.0)
    rate.labels = {"service": "frontend", "scope": "entry"}
    rate.points = [(t, 95.7 if i >= 69 else v) for i, (t, v) in enumerate(rate.points)]
    catalog = series("pod_server_latency_p90_seconds", "catalog", 0.016, seed=3, noise=0.3, shift_at=69,
                     factor=2.0)  # a noisy p90 doubling: a move, but weaker than 4 % of the requests failing
    ranked = rank(InMemoryMetricsSource([rate, catalog]), call_graph=GRAPH)
    assert ranked[0].component == "frontend"
    assert ranked[0].anomalies[0].metric == "success_rate_percent" and ranked[0].anomalies[0].direction == "down"
    # a callee that moved as strongly as the failures did still explains them (the victim rule)
    catalog = series("pod_server_latency_p90_seconds", "catalog", 0.016, seed=3, noise=0.3, shift_at=69, factor=2.4)
    assert rank(InMemoryMetricsSource([rate, catalog]), call_graph=GRAPH)[0].component == "catalog"


def test_a_short_history_is_scored_on_what_there_is_with_a_wider_floor() -> None:
    t = np.array([T0.timestamp() + 60 * i for i in range(3)])
    # two points of history (a recording that starts just before the fault): the point just before is
    # used too, instead of scoring nothing
    assert score_points(t, np.array([20.0, 21.0, 90.0]), t[-1], t[-1]).score > 15
    # and small moves stay small: the floor is 10 % of the level, not 5 %
    assert score_points(t, np.array([20.0, 21.0, 24.0]), t[-1], t[-1]).score < MIN_SCORE
    long_t = np.array([T0.timestamp() + 60 * i for i in range(30)])
    long_v = np.full(30, 20.0)
    long_v[-1] = 23.5
    assert score_points(long_t, long_v, long_t[-1], long_t[-1]).score > MIN_SCORE  # a long history: 5 %


def edge(caller: str, callee: str, base: float, *, seed: int, stop_at: int | None = None) -> Series:
    """Per-minute latency of the calls caller -> callee (Istio-style labels), with no sample from `stop_at`."""
    s = series("edge_latency_p50_seconds", callee, base, seed=seed)
    s.labels = {"service": callee, "source_service": caller, "destination_service": callee, "reporter": "source"}
    if stop_at is not None:
        s.points = s.points[:stop_at]
    return s


GRAPH = {"frontend": ["checkout", "catalog"], "checkout": ["payment", "email", "catalog"]}


def test_calls_that_stopped_are_evidence_against_the_caller() -> None:
    # checkout fails before it calls payment and email: their edges go silent, no latency moves anywhere
    src = InMemoryMetricsSource([
        edge("frontend", "checkout", 0.2, seed=1), edge("frontend", "catalog", 0.01, seed=2),
        edge("checkout", "payment", 0.004, seed=3, stop_at=69), edge("checkout", "email", 0.004, seed=4, stop_at=69),
        edge("checkout", "catalog", 0.01, seed=5),
    ])
    ranked = rank(src, call_graph=GRAPH)
    assert ranked[0].component == "checkout"
    top = ranked[0].anomalies[0]
    assert top.note.startswith(STOPPED_NOTE + "checkout to ") and "no sample since 13:08Z (2 min" in top.note
    assert 'source_service="checkout"' in top.query and top.direction == "down"
    assert ranked[0].score > 10 and all(s.score < MIN_SCORE for s in ranked[1:])


def test_a_callee_too_slow_to_answer_explains_its_silent_edge() -> None:
    # no call to payment completes because payment is pinned: payment is the suspect, not its caller
    src = InMemoryMetricsSource([
        edge("checkout", "payment", 0.004, seed=3, stop_at=69), edge("checkout", "email", 0.004, seed=4),
        series("cpu_usage_rate_percent", "payment", 10, seed=6, shift_at=68, factor=9),
    ])
    ranked = rank(src, call_graph=GRAPH)
    assert ranked[0].component == "payment"
    assert not any(a.note for s in ranked for a in s.anomalies)


def test_a_collector_that_lags_as_a_whole_silences_no_edge() -> None:
    # every edge one minute behind (the edge file lacks its last row): not every caller stopped calling
    src = InMemoryMetricsSource([edge("checkout", "payment", 0.004, seed=3, stop_at=70),
                                 edge("checkout", "email", 0.004, seed=4, stop_at=70),
                                 series("cpu_usage_rate_percent", "checkout", 20, seed=7)])
    assert all(not s.anomalies for s in rank(src, call_graph=GRAPH))


def test_an_irregular_edge_going_quiet_is_not_evidence() -> None:
    sparse = edge("checkout", "payment", 0.004, seed=3, stop_at=69)
    sparse.points = sparse.points[::3]  # a call every third minute: a quiet minute is normal for it
    src = InMemoryMetricsSource([sparse, edge("checkout", "email", 0.004, seed=4)])
    assert all(not s.anomalies for s in rank(src, call_graph=GRAPH))

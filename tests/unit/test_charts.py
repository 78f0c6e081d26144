"""Charts of metric evidence: the bounded series kept on evidence, and the PNG/SVG drawn from it."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta

from core.models import (
    MAX_SERIES_POINTS,
    Evidence,
    ExecutionResult,
    Hypothesis,
    IncidentReport,
    IncidentStatus,
    MetricSeries,
    TriageVerdict,
    Verification,
    VerificationCheck,
)
from interfaces import charts

T0 = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def test_from_points_buckets_into_at_most_the_cap_and_keeps_means() -> None:
    pts = [(T0 + timedelta(seconds=15 * i), float(i % 4)) for i in range(1000)]  # 15 s for 4 h 10 min
    s = MetricSeries.from_points(pts)
    assert s is not None and len(s.values) <= MAX_SERIES_POINTS
    assert s.start == T0 and s.step_seconds >= 15
    assert all(v is not None and 0.0 <= v <= 3.0 for v in s.values)
    assert abs(sum(v for v in s.values if v is not None) / len(s.values) - 1.5) < 0.2
    assert len(s.model_dump_json()) < 1000


def test_from_points_drops_non_finite_and_marks_empty_buckets() -> None:
    pts = [(T0 + timedelta(minutes=i), float("nan") if i in (3, 4) else 1.0) for i in range(10)]
    s = MetricSeries.from_points(pts)
    assert s is not None and s.values[3] is None and s.values[4] is None and s.values[5] == 1.0
    assert MetricSeries.from_points([(T0, math.inf)]) is None
    assert [v for _, v in s.points()] == [1.0] * 8


def report(*, verified: bool = False, query: str = 'cpu_usage_percent{service="api"}') -> IncidentReport:
    values = [30.0 + (i % 3) for i in range(60)] + [90.0 + i for i in range(10)]
    series = MetricSeries.from_points([(T0 + timedelta(minutes=i), v) for i, v in enumerate(values)],
                                      band=(25.0, 36.0), window_start=T0 + timedelta(minutes=60),
                                      peak_at=T0 + timedelta(minutes=69))
    evidence = [
        Evidence(id="ev-1", tool="alertmanager", query='ALERTS{alertname="HighCpu"}', excerpt="firing",
                 signal="state", anomalous=False, start=T0 + timedelta(minutes=63)),
        Evidence(id="ev-2", tool="metrics", query='latency{service="web"}', excerpt="latency up", score=5.0,
                 series=series, component="web"),
        Evidence(id="ev-3", tool="metrics", query=query, excerpt="cpu up", score=19.0, series=series,
                 component="api", value=99.0, baseline=31.0),
        Evidence(id="ev-4", tool="logs", query="{}", excerpt="log", signal="log", component="api"),
    ]
    r = IncidentReport(incident_id="inc-1", title="HighCpu", status=IncidentStatus.AWAITING_APPROVAL, mode="rules",
                       triage=TriageVerdict(kind="incident", reason="cpu"), evidence=evidence,
                       hypotheses=[Hypothesis(component="api", cause="CPU", confidence=0.6,
                                              evidence_ids=["ev-1", "ev-3", "ev-4"])])
    if verified:
        after = MetricSeries.from_points([(T0 + timedelta(minutes=75 + i), 31.0) for i in range(5)])
        r.executions = [ExecutionResult(action="restart_service", target="api", status="ok")]
        r.verification = Verification(recovered=True, checks=[VerificationCheck(
            evidence_id="ev-3", query=query, before=99.0, after=31.0, recovered=True, series=after,
            checked_at=T0 + timedelta(minutes=80))])
    return r


def test_the_top_evidence_is_the_strongest_metric_the_likely_cause_cites() -> None:
    r = report()
    assert [e.id for e in charts.chartable(r)] == ["ev-3", "ev-2"]  # cited first; no state/log items
    assert charts.top_evidence(r).id == "ev-3"  # type: ignore[union-attr]
    assert charts.alert_start(r) == T0 + timedelta(minutes=63)
    assert charts.verified_evidence(r) is None
    assert charts.verified_evidence(report(verified=True)).id == "ev-3"  # type: ignore[union-attr]


def test_png_and_svg_are_drawn_with_every_marker() -> None:
    r = report(verified=True)
    png = charts.render(r, "ev-3", "png")
    assert png is not None and png_size(png) == (880, 374)
    svg = charts.render(r, "ev-3", "svg")
    assert svg is not None and svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    text = svg.decode()
    for shown in ("baseline band", "alert started 09:03Z", "peak 99", "after the fix: 31 (recovered)",
                  'cpu_usage_percent{service="api"}'):
        assert shown in text, shown
    assert charts.render(r, "ev-4") is None and charts.render(r, "ev-9") is None  # a log item, an unknown id


def test_untrusted_text_is_drawn_as_text() -> None:
    r = report(query='cpu{service="$\\frac{a}{b}$ <script>alert(1)</script>"}')
    svg = charts.render(r, "ev-3", "svg")
    assert svg is not None
    assert b"<script>" not in svg and b"&lt;script&gt;" in svg and b"$\\frac{a}{b}$" in svg

"""The alert's own query, run live against a real Prometheus (issue 21, items 1 and 2).

A real `prometheus` is backfilled (promtool) with an nginx on web-01 whose error counter starts
climbing 5 minutes before the alert, and a `payments-api` service whose series are flat. The alert
carries no `service` label and a PromQL rule expression (a `rate()`, which only a real Prometheus
can evaluate) in its generatorURL. The diagnosis must run that expression first, see it rise from
its baseline, read the instance's other series, rank web-01 first and not rank payments-api at all
(the issue's reproduction ranked "payments-api, aggregate anomaly score 0.00" first).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from agents.diagnosis import gather_evidence, rank_rules
from agents.subject import alert_subject
from agents.toolbox import Toolbox
from agents.triage import triage_rules
from core.llm import LLMChain
from core.models import Alert, Incident
from tests.servers import PrometheusServer, free_port
from tools.metric_types import Series
from tools.metrics.openmetrics import to_openmetrics
from tools.metrics.prometheus import PrometheusSource

pytestmark = pytest.mark.integration

ALERT_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAULT_AT = ALERT_AT - timedelta(minutes=5)
EXPR = 'sum by (instance) (rate(nginx_http_errors_total{instance="web-01:9113"}[2m])) > 1'
LABELS = {"alertname": "NginxHighErrorRate", "instance": "web-01:9113", "job": "nginx", "severity": "critical"}


def _counter(labels: dict[str, str], rate_before: float, rate_after: float) -> Series:
    pts, v, t = [], 0.0, ALERT_AT - timedelta(minutes=100)
    while t <= ALERT_AT + timedelta(minutes=10):
        v += 15 * (rate_after if t >= FAULT_AT else rate_before)
        pts.append((t, v))
        t += timedelta(seconds=15)
    return Series(metric="nginx_http_errors_total", labels=labels, points=pts)


def _gauge(metric: str, labels: dict[str, str], before: float, after: float | None = None) -> Series:
    pts, t, i = [], ALERT_AT - timedelta(minutes=100), 0
    while t <= ALERT_AT + timedelta(minutes=10):
        wobble = 0.02 * before * (1 if i % 2 else -1)
        pts.append((t, (after if after is not None and t >= FAULT_AT else before) + wobble))
        t += timedelta(seconds=15)
        i += 1
    return Series(metric=metric, labels=labels, points=pts)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    prom, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not promtool:
        pytest.skip("prometheus/promtool binaries not installed (Debian package `prometheus`)")
    work: Path = tmp_path_factory.mktemp("prom-alert-query")
    series = [
        _counter({"instance": "web-01:9113", "job": "nginx"}, 0.1, 20.0),
        _gauge("nginx_connections_active", {"instance": "web-01:9113", "job": "nginx"}, 50.0, 900.0),
        _gauge("http_requests_in_flight", {"service": "payments-api", "job": "payments"}, 12.0),
        _gauge("process_cpu_seconds", {"service": "payments-api", "job": "payments"}, 3.0),
    ]
    om = work / "data.om"
    om.write_text(to_openmetrics(series), encoding="utf-8")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(work / "tsdb")],
                   check=True, capture_output=True, timeout=120)
    server = PrometheusServer(free_port(), work, prom)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _incident(expr: str) -> Incident:
    url = f"http://prometheus:9090/graph?g0.expr={quote(expr, safe='')}&g0.tab=1"
    alert = Alert(status="firing", labels=LABELS, annotations={"summary": "nginx on web-01 returns errors"},
                  startsAt=ALERT_AT - timedelta(minutes=1), generatorURL=url)
    return Incident(title=LABELS["alertname"], fingerprint="fp-web01", alerts=[alert], service=alert.target)


def test_the_alert_query_runs_first_and_the_subject_ranks_first(prometheus: PrometheusServer) -> None:
    inc = _incident(EXPR)
    toolbox = Toolbox(metrics=PrometheusSource(prometheus.url, now=ALERT_AT), now=ALERT_AT, llm=LLMChain([]))
    verdict = triage_rules(inc, None)
    f = asyncio.run(gather_evidence(inc, toolbox, verdict))
    target = alert_subject(inc, verdict)
    first = f.book.items[1]  # after the alert itself
    assert first.tool == "metrics" and first.query == EXPR
    assert first.anomalous and first.component == target
    assert first.baseline is not None and first.baseline < 1 and first.value is not None and first.value > 10
    assert "rose from" in first.excerpt and "stays there" in first.excerpt
    assert first.series is not None  # the shape is kept for the chart
    others = [e for e in f.book.items if e.query.startswith("nginx_connections_active{")]
    assert others and others[0].anomalous and others[0].component == target
    d = rank_rules(inc, verdict, f)
    ranking = [h.component for h in d.hypotheses]
    assert ranking[0] == target and "payments-api" not in ranking
    assert first.id in d.hypotheses[0].evidence_ids


def test_an_alert_query_with_no_series_leaves_the_subject_as_the_default(prometheus: PrometheusServer) -> None:
    expr = 'rate(nginx_http_errors_total{instance="web-09:9113"}[2m]) > 1'
    inc = _incident(expr)
    toolbox = Toolbox(metrics=PrometheusSource(prometheus.url, now=ALERT_AT), now=ALERT_AT, llm=LLMChain([]))
    verdict = triage_rules(inc, None)
    f = asyncio.run(gather_evidence(inc, toolbox, verdict))
    assert f.book.items[1].query == expr and not f.book.items[1].anomalous
    assert "no series" in f.book.items[1].excerpt
    d = rank_rules(inc, verdict, f)
    assert d.hypotheses[0].component == alert_subject(inc, verdict)
    assert "payments-api" not in [h.component for h in d.hypotheses]

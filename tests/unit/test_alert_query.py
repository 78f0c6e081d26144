"""The alert's own query (issue 21, item 2): `g0.expr` parsed safely from generatorURL, run over the
window as the first evidence, then the target's other series, for a rule without a `service` label."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from agents.diagnosis import gather_evidence, rank_rules
from agents.subject import alert_subject
from agents.toolbox import Toolbox
from agents.triage import triage_rules
from core.llm import LLMChain
from core.models import Alert, Incident
from tools.analysis.alert_query import (
    MAX_EXPR,
    MAX_GENERATOR_URL,
    alert_expression,
    read_series,
    run_alert_query,
    target_selector,
    value_expression,
)
from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EXPR = 'nginx_up{instance="web-01:9113"} == 0'


def _url(expr: str) -> str:
    return f"http://prometheus:9090/graph?g0.expr={quote(expr, safe='')}&g0.tab=1"


@pytest.mark.parametrize(("url", "expected"), [
    (_url(EXPR), EXPR),
    ("http://p:9090/graph?g0.expr=rate%28x_total%5B5m%5D%29+%3E+1&g0.tab=1", "rate(x_total[5m]) > 1"),
    ("http://p:9090/graph?g0.tab=1", ""),
    ("", ""),
    ("not a url at all", ""),
    ("http://p:9090/graph?g0.expr=up%00%0d%0aX-Injected:1", ""),  # control characters: refused
    ("http://p:9090/graph?g0.expr=" + "a" * (MAX_EXPR + 1), ""),
    ("http://p:9090/graph?x=" + "a" * MAX_GENERATOR_URL + "&g0.expr=up", ""),
    ("http://p:9090/graph?g0.expr=%20%20", ""),
])
def test_alert_expression(url: str, expected: str) -> None:
    assert alert_expression(url) == expected


def test_only_the_first_g0_expr_counts() -> None:
    assert alert_expression("http://p/graph?g0.expr=up&g0.expr=evil") == "up"


def _series(metric: str, labels: dict[str, str], jump_at: datetime | None = None, to: float = 100.0,
            back_at: datetime | None = None) -> Series:
    pts = []
    t = NOW - timedelta(minutes=90)
    i = 0
    while t <= NOW:
        v = 10.0 + (0.3 if i % 2 else -0.3)
        if jump_at is not None and t >= jump_at and (back_at is None or t < back_at):
            v = to
        pts.append((t, v))
        t += timedelta(minutes=1)
        i += 1
    return Series(metric=metric, labels=labels, points=pts)


def test_read_series_shapes() -> None:
    base, start = NOW - timedelta(minutes=70), NOW - timedelta(minutes=10)
    sustained = read_series(_series("m", {}, jump_at=NOW - timedelta(minutes=5)), base, start, NOW)
    assert sustained is not None and sustained.anomalous and sustained.shape == "sustained"
    assert sustained.peak == 100.0 and abs(sustained.baseline - 10.0) < 0.5
    recovered = read_series(_series("m", {}, jump_at=NOW - timedelta(minutes=6), back_at=NOW - timedelta(minutes=2)),
                            base, start, NOW)
    assert recovered is not None and recovered.shape == "recovered"
    flat = read_series(_series("m", {}), base, start, NOW)
    assert flat is not None and not flat.anomalous and flat.shape == "flat"


def test_target_selector_escapes_and_prefers_instance() -> None:
    assert target_selector({"instance": 'a"b', "job": "x"}) == '{instance="a\\"b"}'
    assert target_selector({"job": "nginx"}) == '{job="nginx"}'
    assert target_selector({"alertname": "X"}) == ""


def test_run_alert_query_orders_by_score() -> None:
    src = InMemoryMetricsSource([_series("nginx_up", {"instance": "web-01:9113"}, jump_at=NOW - timedelta(minutes=4),
                                         to=0.0),
                                 _series("nginx_up", {"instance": "web-02:9113"})], now=NOW)
    out = asyncio.run(run_alert_query(src, "nginx_up", NOW - timedelta(minutes=70), NOW - timedelta(minutes=10), NOW))
    assert [r.labels["instance"] for r in out] == ["web-01:9113", "web-02:9113"]
    assert out[0].anomalous and not out[1].anomalous


def test_alert_query_is_the_first_evidence_and_target_series_follow() -> None:
    """A rule with no `service` label: its own selector runs first, then the instance's other series."""
    labels = {"alertname": "NginxHighErrors", "instance": "web-01:9113", "job": "nginx", "severity": "critical"}
    expr = 'nginx_errors{instance="web-01:9113"}'
    alert = Alert(status="firing", labels=labels, annotations={}, startsAt=NOW - timedelta(minutes=2),
                  generatorURL=_url(expr))
    inc = Incident(title="NginxHighErrors", fingerprint="fp", alerts=[alert], service=alert.target)
    src = InMemoryMetricsSource([
        _series("nginx_errors", {"instance": "web-01:9113", "job": "nginx"}, jump_at=NOW - timedelta(minutes=5)),
        _series("nginx_connections", {"instance": "web-01:9113", "job": "nginx"}, jump_at=NOW - timedelta(minutes=5),
                to=500.0),
        _series("http_requests", {"service": "payments-api"}),
    ], now=NOW)
    verdict = triage_rules(inc, None)
    f = asyncio.run(gather_evidence(inc, Toolbox(metrics=src, now=NOW, llm=LLMChain([])), verdict))
    target = alert_subject(inc, verdict)
    assert f.book.items[0].tool == "alertmanager"
    first = f.book.items[1]
    assert first.query == expr and first.anomalous and first.component == target
    assert "rose from" in first.excerpt and "stays there" in first.excerpt
    assert any(e.query.startswith("nginx_connections{") and e.component == target for e in f.book.items)
    d = rank_rules(inc, verdict, f)
    assert [h.component for h in d.hypotheses] == [target]
    assert first.id in d.hypotheses[0].evidence_ids


def test_an_expression_a_recorded_source_cannot_run_is_noted_not_fatal() -> None:
    labels = {"alertname": "NginxHighErrors", "instance": "web-01:9113", "severity": "critical"}
    alert = Alert(status="firing", labels=labels, annotations={}, startsAt=NOW - timedelta(minutes=2),
                  generatorURL=_url("rate(nginx_errors[5m]) > 1"))
    inc = Incident(title="x", fingerprint="fp", alerts=[alert], service=alert.target)
    src = InMemoryMetricsSource([_series("nginx_errors", {"instance": "web-01:9113"})], now=NOW)
    verdict = triage_rules(inc, None)
    f = asyncio.run(gather_evidence(inc, Toolbox(metrics=src, now=NOW, llm=LLMChain([])), verdict))
    assert not f.book.items[1].anomalous and "could not be run" in f.book.items[1].excerpt


@pytest.mark.parametrize(("expr", "value", "cmp"), [
    ("rate(x_total[5m]) > 1", "rate(x_total[5m])", "> 1"),
    ('nginx_up{instance="a"} == 0', 'nginx_up{instance="a"}', "== 0"),
    ("(1 - avail / size) * 100 >= 9.5e1", "(1 - avail / size) * 100", ">= 9.5e1"),
    ("up == bool 0", "up", "== 0"),
    ("a > b", "a > b", ""),  # not a number literal: run as it is
    ("sum(rate(x[5m]))", "sum(rate(x[5m]))", ""),
    ("max(x) by (job) < 0.5", "max(x) by (job)", "< 0.5"),
])
def test_value_expression_splits_a_trailing_threshold(expr: str, value: str, cmp: str) -> None:
    assert value_expression(expr) == (value, cmp)

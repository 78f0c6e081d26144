"""Subject first: a component without evidence is not ranked; the alert's own subject is the default
hypothesis and is outranked only by stronger cited evidence (issue 21, item 1)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from agents.diagnosis import gather_evidence, rank_rules
from agents.subject import SUBJECT_PRIOR, alert_subject, subject_first
from agents.toolbox import Toolbox
from agents.triage import triage_rules
from core.llm import LLMChain
from core.models import Alert, Evidence, Incident
from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _incident(labels: dict[str, str], url: str = "") -> Incident:
    alert = Alert(status="firing", labels=labels, annotations={"summary": "nginx is failing"},
                  startsAt=NOW - timedelta(minutes=2), generatorURL=url)
    return Incident(title=labels["alertname"], fingerprint="fp", alerts=[alert], service=alert.target)


def _series(metric: str, labels: dict[str, str], jump_at: datetime | None = None, to: float = 100.0) -> Series:
    pts = []
    t = NOW - timedelta(minutes=90)
    i = 0
    while t <= NOW:
        base = 10.0 + (0.3 if i % 2 else -0.3)
        pts.append((t, to if jump_at is not None and t >= jump_at else base))
        t += timedelta(minutes=1)
        i += 1
    return Series(metric=metric, labels=labels, points=pts)


def _ev(i: int, comp: str, anomalous: bool = True, tool: str = "metrics") -> Evidence:
    return Evidence(id=f"ev-{i}", tool=tool, query="q", excerpt="x", component=comp, anomalous=anomalous)


def test_component_without_evidence_is_not_ranked_and_subject_stands_alone() -> None:
    evidence = {"payments-api": [_ev(1, "payments-api", anomalous=False)],
                "web-01": [_ev(2, "web-01", tool="alertmanager", anomalous=False)]}
    ranking = subject_first({"payments-api": 0.01}, evidence, "web-01")
    assert [c for c, _ in ranking] == ["web-01"]


def test_subject_outranked_only_by_stronger_evidence() -> None:
    evidence = {"db": [_ev(1, "db")], "web-01": [_ev(2, "web-01")]}
    # db's evidence is stronger than the subject's own plus the prior: db first
    assert [c for c, _ in subject_first({"db": 0.6, "web-01": 0.3}, evidence, "web-01")] == ["db", "web-01"]
    # weaker than the subject's own evidence plus the prior: the subject stays first
    ranking = subject_first({"db": 0.45, "web-01": 0.3}, evidence, "web-01")
    assert [c for c, _ in ranking] == ["web-01", "db"]
    assert ranking[0][1] == 0.3 + SUBJECT_PRIOR


def test_subject_without_evidence_comes_after_components_with_evidence() -> None:
    evidence = {"db": [_ev(1, "db")]}
    assert [c for c, _ in subject_first({"db": 0.05}, evidence, "web-01")] == ["db", "web-01"]


def test_no_subject_named_and_nothing_else_gives_the_target() -> None:
    assert [c for c, _ in subject_first({}, {}, "unknown")] == ["unknown"]
    assert [c for c, _ in subject_first({"db": 0.5}, {"db": [_ev(1, "db")]}, "unknown")] == ["db"]


def test_alert_subject_prefers_the_host_over_an_instance_address() -> None:
    inc = _incident({"alertname": "NginxDown", "instance": "web-01:9113", "job": "node", "severity": "critical"})
    verdict = triage_rules(inc, None)
    assert alert_subject(inc, verdict) in ("web-01", verdict.service)


def test_nginx_alert_with_live_series_for_another_service_ranks_the_subject_first() -> None:
    """The issue's reproduction: the backend holds only a flat `payments-api` series; the alert on
    web-01 must rank web-01 first and not rank payments-api at all."""
    labels = {"alertname": "NginxDown", "instance": "web-01:9113", "job": "nginx", "severity": "critical"}
    inc = _incident(labels)
    source = InMemoryMetricsSource([_series("http_requests", {"service": "payments-api"})], now=NOW)
    toolbox = Toolbox(metrics=source, now=NOW, llm=LLMChain([]))
    verdict = triage_rules(inc, None)
    f = asyncio.run(gather_evidence(inc, toolbox, verdict))
    d = rank_rules(inc, verdict, f)
    assert [h.component for h in d.hypotheses] == [alert_subject(inc, verdict)]
    assert "payments-api" not in {h.component for h in d.hypotheses}


def test_a_component_with_a_real_anomaly_outranks_a_subject_without_evidence() -> None:
    labels = {"alertname": "NginxDown", "instance": "web-01:9113", "job": "nginx", "severity": "critical"}
    inc = _incident(labels)
    source = InMemoryMetricsSource([_series("cpu_usage", {"service": "payments-api"},
                                            jump_at=NOW - timedelta(minutes=4))], now=NOW)
    toolbox = Toolbox(metrics=source, now=NOW, llm=LLMChain([]))
    verdict = triage_rules(inc, None)
    d = rank_rules(inc, verdict, asyncio.run(gather_evidence(inc, toolbox, verdict)))
    assert [h.component for h in d.hypotheses] == ["payments-api", alert_subject(inc, verdict)]

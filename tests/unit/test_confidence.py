"""Honest confidence: the alert alone is a claim; corroboration from other evidence raises confidence."""

from __future__ import annotations

from agents.diagnosis import ALERT_ONLY_CONFIDENCE, Findings, corroboration, honest_confidence, rank_rules
from core.models import AlertmanagerWebhook, Evidence, TriageVerdict
from graphs.incident import incident_from_webhook


def _incident():
    wh = AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
        "alerts": [{"status": "firing", "startsAt": "2026-03-10T03:45:00Z",
                    "labels": {"alertname": "HostSystemdServiceCrashed", "instance": "web-01:9100", "job": "node",
                               "name": "nginx.service"}}]})
    return incident_from_webhook(wh)


VERDICT = TriageVerdict(kind="incident", category="service_down", reason="r", host="web-01", service="nginx")


def _alert_ev(f: Findings) -> None:
    f.book.add(tool="alertmanager", signal="state", component="nginx", anomalous=False, query="ALERTS",
               excerpt="firing")


def test_a_lone_alert_is_scored_low_and_says_so():
    f = Findings()
    _alert_ev(f)
    d = rank_rules(_incident(), VERDICT, f)
    top = d.hypotheses[0]
    assert top.component == "nginx"  # the service, not "web-01:9100"
    assert top.confidence <= 0.3 and top.confidence == ALERT_ONLY_CONFIDENCE
    assert "only by the alert itself" in top.rationale


def test_confidence_rises_with_independent_evidence():
    f = Findings()
    _alert_ev(f)
    f.book.add(tool="logs", signal="log", component="nginx", query="{}", excerpt="nginx: bind() failed")
    one = rank_rules(_incident(), VERDICT, f).hypotheses[0]
    f.book.add(tool="metrics", signal="metric", component="nginx", query="restarts", excerpt="restarts up",
               value=5, baseline=0)
    two = rank_rules(_incident(), VERDICT, f).hypotheses[0]
    assert ALERT_ONLY_CONFIDENCE < one.confidence <= 0.6 < two.confidence <= 0.8
    assert "corroborated by log, metric" in two.rationale


def test_corroboration_ignores_the_alert_and_flat_series():
    items = [Evidence(id="ev-1", tool="alertmanager", query="q", excerpt="e", signal="state", anomalous=False),
             Evidence(id="ev-2", tool="metrics", query="q", excerpt="flat", signal="metric", anomalous=False)]
    assert corroboration(items) == []
    assert corroboration(items, remembered=True) == ["memory"]
    assert honest_confidence(1.0, []) == ALERT_ONLY_CONFIDENCE and honest_confidence(0.9, ["a", "b", "c"]) == 0.9

"""Escalation notifies through the toolbox hook and never fails the incident when a channel does."""

from __future__ import annotations

import asyncio

from agents.escalation import escalate
from agents.toolbox import Toolbox
from core.models import AlertmanagerWebhook, Diagnosis, Escalation, Hypothesis, Plan, TriageVerdict
from graphs.incident import incident_from_webhook
from tools.catalog import CATALOG

WH = AlertmanagerWebhook.model_validate({
    "version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
    "alerts": [{"status": "firing", "startsAt": "2026-03-10T03:45:00Z",
                "labels": {"alertname": "SmartCriticalWarning", "instance": "web-01:9633", "severity": "critical"}}]})
VERDICT = TriageVerdict(kind="incident", category="hardware", reason="r", domain="hardware", host="web-01")
DIAG = Diagnosis(hypotheses=[Hypothesis(component="web-01", cause="hardware alert", confidence=0.25)])


def _plan(incident_id: str) -> Plan:
    return Plan(incident_id=incident_id, actions=[CATALOG["escalate_to_oncall"].action("web-01")],
                rationale="no catalog action fits", fit=["restart_service: suggestion only (a human decides)"])


def test_escalation_calls_sync_and_async_hooks_and_survives_a_failing_one():
    incident = incident_from_webhook(WH)
    seen: list[Escalation] = []

    async def async_hook(esc: Escalation) -> None:
        seen.append(esc)

    def broken(esc: Escalation) -> None:
        raise ConnectionError("channel down")

    for hook in (seen.append, async_hook, broken, None):
        esc = asyncio.run(escalate(incident, VERDICT, DIAG, _plan(incident.id), Toolbox(on_escalation=hook)))
        assert esc.incident_id == incident.id and esc.severity == "critical" and esc.host == "web-01"
        assert esc.reason == "no catalog action fits" and "25%" in esc.summary
        assert esc.suggestions == ["restart_service: suggestion only (a human decides)"]
    assert len(seen) == 2

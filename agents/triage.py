"""Triage: dedupe, drop resolved and noise alerts, group, and classify.

Duplicates, resolved alerts and noise end here without spending an LLM call. Classification uses
keyword rules first; an LLM is asked only when the rules cannot place the alert.
"""

from __future__ import annotations

import re

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from agents import understanding
from agents.prompts import TRIAGE_SYSTEM, fence
from agents.toolbox import Toolbox
from core.models import Category, Incident, LLMCall, TriageVerdict

NOISE_ALERTS = {"Watchdog", "InfoInhibitor", "DeadMansSwitch", "DeadMansSnitch"}
_HEARTBEAT = re.compile(r"dead ?mans? ?(switch|snitch)|\bwatchdog\b|always firing")


def is_heartbeat(name: str) -> bool:
    """Always-firing end-to-end test alerts (any prefix: "PrometheusAlertmanagerE2eDeadManSwitch")."""
    return name in NOISE_ALERTS or bool(_HEARTBEAT.search(understanding.words(name)))


def classify(text: str) -> Category:
    """The category of an alert name or text (rules in agents/understanding.py)."""
    return understanding.classify(text)


class TriageOutput(BaseModel):
    category: Category
    reason: str


def triage_rules(incident: Incident, open_incident_id: str | None) -> TriageVerdict:
    alert = incident.alert
    group = incident.group_key
    if all(a.status == "resolved" for a in incident.alerts):
        closes = f"; closes {open_incident_id}" if open_incident_id else ""
        return TriageVerdict(kind="resolved", reason=f"{alert.name} resolved at {alert.ends_at}{closes}",
                             group=group, severity=alert.severity, duplicate_of=open_incident_id)
    if open_incident_id and open_incident_id != incident.id:
        return TriageVerdict(kind="duplicate", reason=f"same fingerprint {incident.fingerprint} is already "
                             f"open as {open_incident_id}", duplicate_of=open_incident_id, group=group,
                             severity=alert.severity)
    if is_heartbeat(alert.name) or alert.severity in ("none", "info"):
        return TriageVerdict(kind="noise", reason=f"{alert.name} (severity {alert.severity}) is a heartbeat/info "
                             "alert, not an incident", group=group, severity=alert.severity)
    r = understanding.understand(alert)
    where = " / ".join(x for x in (r.service, r.host) if x) or alert.target
    how = f" (from the {r.matched})" if r.matched else ""
    return TriageVerdict(kind="incident", category=r.category, severity=alert.severity, group=group,
                         domain=r.domain, host=r.host, service=r.service, exporter=r.exporter, metrics=r.metrics,
                         reason=f"{alert.name} firing on {where} since {alert.starts_at:%Y-%m-%d %H:%M}Z: "
                                f"{r.category.replace('_', ' ')}{how}, {r.domain.replace('_', ' ')}")


async def triage(incident: Incident, toolbox: Toolbox, calls: list[LLMCall]) -> tuple[TriageVerdict, bool]:
    """Returns the verdict and whether an LLM answer shaped it."""
    open_id = toolbox.open_incident(incident.fingerprint) if toolbox.open_incident else None
    verdict = triage_rules(incident, open_id)
    if verdict.kind != "incident" or verdict.category != "unknown" or not toolbox.llm.providers:
        return verdict, False
    alert = incident.alert
    key = {"node": "triage", "alert": alert.name, "labels": alert.labels, "annotations": alert.annotations}
    out = await toolbox.cached("analysis", key, lambda: toolbox.llm.structured("triage", [
        SystemMessage(TRIAGE_SYSTEM),
        HumanMessage("Classify this alert.\n" + fence("alert labels", alert.labels) + "\n"
                     + fence("alert annotations", alert.annotations)),
    ], TriageOutput, calls), TriageOutput)
    if out is None:
        return verdict, False
    return verdict.model_copy(update={"category": out.category, "reason": f"{verdict.reason}; {out.reason}"}), True

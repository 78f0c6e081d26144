"""Triage: dedupe, drop resolved and noise alerts, group, and classify.

Duplicates, resolved alerts and noise end here without spending an LLM call. Classification uses
keyword rules first; an LLM is asked only when the rules cannot place the alert.
"""

from __future__ import annotations

import re
from typing import Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from agents.prompts import TRIAGE_SYSTEM, fence
from agents.toolbox import Toolbox
from core.models import Incident, LLMCall, TriageVerdict

NOISE_ALERTS = {"Watchdog", "InfoInhibitor", "DeadMansSwitch", "DeadMansSnitch"}

Category = Literal["cpu", "memory", "disk", "crashloop", "network", "latency", "errors", "availability",
                   "anomaly", "unknown"]

# Order matters: the first match wins (crash loops often mention memory, OOM kills mention restarts).
_RULES: list[tuple[str, str]] = [
    ("crashloop", r"crash.?loop|restart|backoff|oom.?kill"),
    ("disk", r"disk|filesystem|inode|volume.*(full|space)|out.?of.?space|storage"),
    ("cpu", r"\bcpu|load.?(average|high)|throttl"),
    ("memory", r"memory|\boom\b|swap"),
    ("network", r"interface|link|uplink|flap|packet|network|bgp|ospf|dns|latency.*(wan|isp)"),
    ("latency", r"latency|slow|duration|response.?time"),
    ("errors", r"error|5xx|failure.?rate|exception"),
    ("availability", r"\bdown\b|unreachable|unavailable|absent|target.?missing"),
    ("anomaly", r"anomal"),
]


def classify(text: str) -> str:
    # Alert names are CamelCase: split them so word boundaries work ("HostHighCpuLoad" -> "host high cpu load").
    low = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text).lower()
    for category, pattern in _RULES:
        if re.search(pattern, low):
            return category
    return "unknown"


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
    if alert.name in NOISE_ALERTS or alert.severity in ("none", "info"):
        return TriageVerdict(kind="noise", reason=f"{alert.name} (severity {alert.severity}) is a heartbeat/info "
                             "alert, not an incident", group=group, severity=alert.severity)
    text = " ".join([alert.name, *alert.annotations.values()])
    category = classify(alert.name) if classify(alert.name) != "unknown" else classify(text)
    return TriageVerdict(kind="incident", category=category, severity=alert.severity, group=group,
                         reason=f"{alert.name} firing on {alert.target} since {alert.starts_at:%Y-%m-%d %H:%M}Z")


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

"""Escalation: hand the incident to a human and end it, instead of asking anyone to approve "nothing".

When no catalog action fits (or every candidate was refused by its fit), the honest outcome is a
notification with the diagnosis and the reason, and an incident that ends as `escalated`. The
notification itself is a hook on the toolbox (`on_escalation`): the notification channels plug in
there; without one the escalation is still recorded in the report.
"""

from __future__ import annotations

import inspect
import logging

from agents.toolbox import Toolbox
from core.models import Diagnosis, Escalation, Incident, Plan, TriageVerdict

log = logging.getLogger(__name__)


def build_escalation(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis, plan: Plan) -> Escalation:
    top = diagnosis.hypotheses[0] if diagnosis.hypotheses else None
    summary = (f"{top.component}: {top.cause} (confidence {top.confidence:.0%})" if top else diagnosis.summary)
    return Escalation(incident_id=incident.id, title=incident.title, severity=incident.severity,
                      category=verdict.category, host=verdict.host, service=verdict.service,
                      reason=plan.rationale, summary=summary,
                      suggestions=[n for n in plan.fit if ": suggestion" in n])


async def escalate(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis, plan: Plan,
                   toolbox: Toolbox) -> Escalation:
    """Record the escalation and notify through the toolbox hook (a failing hook never fails the incident)."""
    esc = build_escalation(incident, verdict, diagnosis, plan)
    hook = toolbox.on_escalation
    if hook is not None:
        try:
            result = hook(esc)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the escalation is in the report either way; a channel outage is logged
            log.exception("escalation hook failed for %s", incident.id)
    return esc

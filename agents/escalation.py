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
from tools.catalog import escalation

log = logging.getLogger(__name__)


def build_escalation(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis, plan: Plan,
                     failed_step: str | None = None) -> Escalation:
    top = diagnosis.hypotheses[0] if diagnosis.hypotheses else None
    summary = (f"{top.component}: {top.cause} (confidence {top.confidence:.0%})" if top else diagnosis.summary)
    return Escalation(incident_id=incident.id, title=incident.title, severity=incident.severity,
                      category=verdict.category, host=verdict.host, service=verdict.service,
                      reason=plan.rationale, summary=summary,
                      suggestions=[n for n in plan.fit if ": suggestion" in n], failed_step=failed_step)


async def escalate(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis, plan: Plan,
                   toolbox: Toolbox, failed_step: str | None = None) -> Escalation:
    """Record the escalation and notify through the toolbox hook (a failing hook never fails the incident)."""
    esc = build_escalation(incident, verdict, diagnosis, plan, failed_step)
    hook = toolbox.on_escalation
    if hook is not None:
        try:
            result = hook(esc)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the escalation is in the report either way; a channel outage is logged
            log.exception("escalation hook failed for %s", incident.id)
    return esc


def after_crash(incident: Incident, verdict: TriageVerdict | None, step: str, error: BaseException,
                ttl_seconds: int) -> tuple[Plan, TriageVerdict]:
    """A step failed unexpectedly before anything acted (a bug, a RecursionError on a model's deeply
    nested output): the plan that hands the incident to a human, saying which step failed and how, and
    the triage verdict to report it under (the one the run had, else a neutral one when triage itself
    failed)."""
    text = " ".join(str(error).split())[:200]
    why = f"the {step} step failed unexpectedly ({type(error).__name__}{': ' + text if text else ''})"
    verdict = verdict or TriageVerdict(kind="incident", reason=why, severity=incident.severity)
    target = verdict.host or verdict.service or incident.alert.target
    plan = Plan(incident_id=incident.id, actions=[escalation(target)],
                rationale=f"{why}; nothing after it ran: escalating to a human")
    return plan.with_expiry(ttl_seconds), verdict

"""Notification events, derived from a run's outcome.

`events_for(outcome)` lists every event that is true of the incident's report right now (opened,
awaiting approval, decided, auto-fixed, executed, verified / not recovered, escalated; and what people did
to it: acknowledged, assigned, commented, closed). The outbox keeps
only the ones it has not queued before for that (incident, event, channel), so calling it after every
outcome (analysis, decision, a redelivered run) sends each event exactly once and in order, without the
runner having to say what changed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from core.models import IncidentReport, utcnow


class EventKind(StrEnum):
    OPENED = "incident_opened"
    AWAITING = "plan_awaiting_approval"
    DECISION = "decision"
    AUTO_FIX = "auto_fix_applied"
    EXECUTED = "executed"
    VERIFIED = "verified"
    NOT_RECOVERED = "not_recovered"
    ESCALATION = "escalation"
    # what people did (service/lifecycle.py), from the report's on_call and comments
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    COMMENTED = "commented"
    CLOSED = "closed"


LIFECYCLE = (EventKind.ACKNOWLEDGED, EventKind.ASSIGNED, EventKind.COMMENTED, EventKind.CLOSED)


class Notification(BaseModel):
    """One event of one incident, as every channel receives it (the report is the state at that moment)."""

    incident_id: str
    event: EventKind
    severity: str  # the alert's (escalations are critical)
    title: str
    summary: str  # one plain-text line: what happened
    report: IncidentReport
    created_at: datetime = Field(default_factory=utcnow)
    # Which one of an event that can happen more than once (assigned to bob, then to carol; the n-th comment)
    variant: str = ""

    @property
    def key(self) -> str:
        return f"{self.incident_id}|{self.event.value}" + (f"|{self.variant}" if self.variant else "")

    @property
    def pending(self) -> bool:
        return self.report.status.value == "awaiting_approval"


def _summary(kind: EventKind, r: IncidentReport) -> str:
    p, a, v = r.plan, r.approval, r.verification
    plan = f"plan {p.id} (risk {p.risk.value}): " + ", ".join(f"{x.name} on {x.target}" for x in p.actions) if p else ""
    top = r.hypotheses[0] if r.hypotheses else None
    cause = f"likely cause: {top.component}: {top.cause}" if top else "no diagnosis yet"
    if kind is EventKind.OPENED:
        return f"incident {r.incident_id} opened: {r.triage.reason}; {cause}"
    if kind is EventKind.AWAITING:
        return f"{plan} awaits approval" + (f" until {p.expires_at:%Y-%m-%d %H:%M} UTC" if p and p.expires_at else "")
    if kind is EventKind.DECISION and a:
        if not a.valid:
            return f"decision by {a.approver} via {a.channel} refused: {a.reason}; nothing executed"
        return f"{'approved' if a.decision == 'approve' else 'rejected'} by {a.approver} via {a.channel}: {plan}"
    if kind is EventKind.AUTO_FIX:
        return f"automatic fix applied by policy (low-risk known fix): {plan}"
    if kind is EventKind.EXECUTED:
        return "executed: " + "; ".join(f"{e.action} on {e.target}: {e.status}" for e in r.executions)
    if kind is EventKind.VERIFIED and v:
        return f"verified: recovered. {v.note}"
    if kind is EventKind.NOT_RECOVERED and v:
        return f"NOT recovered after the fix: {v.note}"
    if kind is EventKind.ESCALATION:
        return f"incident {r.incident_id} needs a human: {_escalation_reason(r)}"
    o = r.on_call
    if kind is EventKind.ACKNOWLEDGED:
        return f"incident {r.incident_id} acknowledged by {o.acknowledged_by}"
    if kind is EventKind.ASSIGNED:
        return f"incident {r.incident_id} assigned to {o.assignee}"
    if kind is EventKind.COMMENTED and r.comments:
        c = r.comments[-1]
        return f"{c.by} commented on {r.incident_id}: {c.text[:300]}"
    if kind is EventKind.CLOSED:
        withdrawn = f"; plan {p.id} withdrawn, it will never run" if p and not r.executions and not a else ""
        return f"incident {r.incident_id} closed by {o.closed_by}: {o.close_reason}{withdrawn}"
    return kind.value


def _escalation_reason(r: IncidentReport) -> str | None:
    if r.on_call.closed_by:  # a person closed it: nobody else needs to be called for it
        return None
    if r.escalation is not None and r.escalation.failed_step:  # a step crashed: the run was handed over
        return "escalated: " + r.escalation.reason[:300]
    if r.status.value == "interrupted" and r.plan is not None and r.plan.actions:
        return ("its execution was interrupted (the process or a step failed): an action may have run; check the "
                "target, then decide again with --after-interruption")
    if r.status.value == "escalated" and not (r.plan and r.plan.actions and all(
            a.kind == "notify_only" for a in r.plan.actions)):
        return "escalated: " + (r.plan.rationale if r.plan else r.triage.reason)[:300]
    if r.status.value == "failed" or any(e.status == "failed" for e in r.executions):
        bad = next((e for e in r.executions if e.status == "failed"), None)  # the step that failed, and why
        return "an action failed" + (f": {bad.action} on {bad.target}: {bad.output}"[:300] if bad else "")
    if r.verification is not None and r.verification.recovered is False and r.executions:
        return "the fix did not recover the service"
    if r.plan is not None and r.plan.actions and all(a.kind == "notify_only" for a in r.plan.actions):
        return "no catalog action fits this diagnosis: on-call must look"
    if r.status.value not in ("awaiting_approval", "resolved", "rejected") and (r.plan is None or not r.plan.actions):
        return "no automatic remediation is available"
    return None


def events_for(report: IncidentReport) -> list[Notification]:
    """Every event this report shows, in the order they happened. Triage that ended the run (duplicate,
    noise, an alert that cleared) is not an event."""
    if report.triage.kind != "incident":
        return []
    kinds: list[EventKind] = [EventKind.OPENED]
    a = report.approval
    if report.status.value == "awaiting_approval":
        kinds.append(EventKind.AWAITING)
    if a is not None:
        kinds.append(EventKind.AUTO_FIX if a.channel == "policy" else EventKind.DECISION)
    if report.executions:
        kinds.append(EventKind.EXECUTED)
        v = report.verification
        if v is not None and v.recovered is True:
            kinds.append(EventKind.VERIFIED)
        elif v is not None and v.recovered is False:
            kinds.append(EventKind.NOT_RECOVERED)
    if _escalation_reason(report):
        kinds.append(EventKind.ESCALATION)
    o = report.on_call
    variants: dict[EventKind, str] = {}
    if o.acknowledged_by:
        kinds.append(EventKind.ACKNOWLEDGED)
    if o.assignee:
        kinds.append(EventKind.ASSIGNED)
        variants[EventKind.ASSIGNED] = o.assignee  # to bob, then to carol: two events
    if report.comments:
        kinds.append(EventKind.COMMENTED)
        variants[EventKind.COMMENTED] = str(len(report.comments))
    if o.closed_by:
        kinds.append(EventKind.CLOSED)
    severity = report.triage.severity or "warning"
    return [Notification(incident_id=report.incident_id, event=k, title=report.title,
                         severity="critical" if k is EventKind.ESCALATION else severity,
                         summary=_summary(k, report), report=report, variant=variants.get(k, ""))
            for k in kinds]


def body(n: Notification) -> dict[str, Any]:
    return n.model_dump(mode="json")

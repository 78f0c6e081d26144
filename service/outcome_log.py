"""The event lines of a run (see `core.events`): what a run segment of the incident graph did, read
from its report once it pauses or ends, so every entry point (webhook, CLI, chat, decision) logs the
same way: a plan proposed, a decision, each action executed, the verification, the incident closed or
escalated. Opening and joining an incident are logged where the runner decides them."""

from __future__ import annotations

from agents.approval import SHORT_HASH
from core.events import event
from core.models import Alert, IncidentReport


def alert_fields(alert: Alert) -> dict[str, str]:
    return {"alertname": alert.name, "target": alert.target, "severity": alert.severity,
            "fingerprint": alert.effective_fingerprint()}


def log_outcome(report: IncidentReport, paused_for_approval: bool, open_statuses: tuple[str, ...]) -> None:
    iid, plan = report.incident_id, report.plan
    plan_id = plan.id if plan else None
    if paused_for_approval and plan is not None:
        event("plan.proposed", f"incident {iid}: plan {plan_id} awaits approval ({plan.risk.value} risk)",
              incident_id=iid, plan_id=plan_id, plan_hash=plan.content_hash[:SHORT_HASH], risk=plan.risk.value,
              actions=[f"{a.name} {a.target}" for a in plan.actions],
              expires_at=plan.expires_at.isoformat() if plan.expires_at else None)
    a = report.approval
    if a is not None and not paused_for_approval:
        event("decision", f"incident {iid}: plan {a.plan_id} {a.decision} by {a.approver} via {a.channel}"
              + ("" if a.valid else f", refused at the gate: {a.reason}"),
              incident_id=iid, plan_id=a.plan_id, decision=a.decision, approver=a.approver, channel=a.channel,
              valid=a.valid, reason=a.reason or None)
    for ex in report.executions:
        event("action.executed", f"incident {iid}: {ex.action} on {ex.target}: {ex.status}",
              incident_id=iid, plan_id=plan_id, action=ex.action, target=ex.target, status=ex.status,
              dry_run=ex.dry_run)
    v = report.verification
    if v is not None and report.executions:
        outcome = {True: "recovered", False: "not recovered", None: "nothing to verify"}[v.recovered]
        event("verification", f"incident {iid}: {outcome}", incident_id=iid, plan_id=plan_id,
              recovered=v.recovered, checks=len(v.checks), note=v.note or None)
    status = report.status.value
    if status == "escalated":
        event("incident.escalated", f"incident {iid} escalated to a human", incident_id=iid,
              reason=report.escalation.reason if report.escalation else None)
    elif status not in open_statuses and report.triage.kind not in ("duplicate",):
        event("incident.closed", f"incident {iid} closed: {status}", incident_id=iid, status=status)

"""Renders an incident report as the notes an SRE would write: what fired, why, what we did, did it work."""

from __future__ import annotations

from typing import Any

from agents.approval import SHORT_HASH
from agents.degraded import UNAVAILABLE_QUERY
from core.models import IncidentReport, SelfHealingDecision

_W = 11


def _row(label: str, text: str) -> str:
    return f"{label:<{_W}}{text}"


def _indent(text: str, n: int = _W + 2) -> str:
    return " " * n + text


def render_report(report: IncidentReport, *, pending: dict[str, Any] | None = None,
                  name: str | None = None, seconds: float | None = None, resumed: bool = False) -> str:
    """Full notes; with `resumed`, only what happened after the approval gate (the rest was shown)."""
    out: list[str] = []
    if resumed:
        _tail(out, report, None, seconds)
        return "\n".join(out)
    head = f" {name} — {report.title} " if name else f" {report.title} "
    out.append(f"━━{head}".ljust(100, "━"))
    t = report.triage
    out.append(_row("INCIDENT", f"{report.incident_id}"))
    for link in report.links:  # checked http(s) URLs (core.links): runbook, rule, silence, Alertmanager
        out.append(_row("LINK", f"{link.label}: {link.url}"))
    out.append(_row("TRIAGE", f"{t.kind} · category {t.category} · severity {t.severity} · {t.reason}"))
    if t.kind != "incident":
        out.append(_row("OUTCOME", f"{report.status.value} — ended at triage, no LLM call, nothing executed"))
        return "\n".join(out)
    _related(out, report)
    evidence = {e.id: e for e in report.evidence}
    out.append(_row("DIAGNOSIS", f"mode {report.mode} · {len(report.evidence)} evidence items"))
    for ev in report.evidence:
        if ev.query == UNAVAILABLE_QUERY:  # a source that could not be read: said before any conclusion
            out.append(_row("DEGRADED", ev.excerpt[:200]))
    for i, h in enumerate(report.hypotheses[:3], 1):
        out.append(_indent(f"{i}. {h.component} ({h.confidence:.0%}): {h.cause}", _W))
        cited = [evidence[e] for e in h.evidence_ids if e in evidence]
        recalled = [e for e in cited if e.signal in ("memory", "runbook")]
        observed = [e for e in cited if e.signal in ("metric", "log")] or [e for e in cited if e.signal == "state"]
        for ev in observed[:3] + recalled:
            out.append(_indent(f"{ev.id} [{ev.tool}] {ev.excerpt[:150]}", _W + 3))
    p = report.plan
    if p:
        out.append(_row("PLAN", f"{p.id} · risk {p.risk.value.upper()} · hash {p.content_hash[:SHORT_HASH]}"
                        f"{' · known fix' if p.known_fix else ''}"))
        for a in p.actions:
            params = ", ".join(f"{k}={v}" for k, v in a.parameters.items())
            out.append(_indent(f"- {a.name} on {a.target} ({params}) [{a.risk.value}]", _W))
        out.append(_indent(f"why: {p.rationale}", _W))
        for c in p.checks:
            out.append(_indent(f"pre-check: {c[:160]}", _W))
        for f in p.fit:
            out.append(_indent(f"fit: {f[:200]}", _W))
    _tail(out, report, pending, seconds)
    return "\n".join(out)


def _related(out: list[str], report: IncidentReport, shown: int = 10) -> None:
    """Alerts that joined this incident (storm correlation), and why each joined."""
    if not report.related_total:
        return
    out.append(_row("RELATED", f"{report.related_total} more alert{'s' if report.related_total != 1 else ''} "
                               "joined this incident (no LLM call each)"))
    for r in report.related_alerts[:shown]:
        where = r.service or r.target
        out.append(_indent(f"- {r.alertname} {where} [{r.status}]: {r.reason}", _W))
    if report.related_total > shown:
        out.append(_indent(f"... and {report.related_total - shown} more (aiops show --json lists the first 100)", _W))


def _attempts(out: list[str], report: IncidentReport) -> None:
    for t in report.attempts:
        what = ", ".join(f"{a.name} on {a.target}" for a in t.plan.actions)
        state = {True: "recovered", False: "NOT recovered", None: "not verified"}[
            t.verification.recovered if t.verification else None]
        who = f"{t.approval.approver} via {t.approval.channel}" if t.approval else "?"
        out.append(_row("ATTEMPT", f"{t.plan.id}: {what} ({who}) — {state}; not retried automatically"))


def _tail(out: list[str], report: IncidentReport, pending: dict[str, Any] | None, seconds: float | None) -> None:
    p = report.plan
    a = report.approval
    _attempts(out, report)
    _on_call(out, report)
    heal = report.self_healing
    if heal is None and pending and pending.get("self_healing"):  # paused: the gate's answer is in the request
        heal = SelfHealingDecision.model_validate(pending["self_healing"])
    if heal is not None:
        out.append(_row("AUTONOMY", f"{'allowed' if heal.allowed else 'needs a human'} · rule {heal.rule} · "
                                    f"{heal.reason[:200]}"))
    if pending is not None:
        out.append(_row("APPROVAL", f"AWAITING a human (risk {p.risk.value if p else '?'}, expires "
                        f"{(p.expires_at.strftime('%Y-%m-%d %H:%MZ') if p and p.expires_at else 'never')})"))
        out.append(_indent(f"aiops approve {p.id if p else '?'} --by NAME   |   aiops reject {p.id if p else '?'} --by NAME",
                           _W))
    elif a:
        who = f"{a.approver} via {a.channel}"
        if not a.valid:
            out.append(_row("APPROVAL", f"REFUSED ({who}): {a.reason} — plan not executed"))
        else:
            out.append(_row("APPROVAL", f"{'approved' if a.decision == 'approve' else 'rejected'} by {who}"
                            f"{' — ' + a.comment if a.comment else ''}"))
    if report.escalation is not None:
        esc = report.escalation
        out.append(_row("ESCALATED", f"to a human ({esc.severity}): {esc.reason[:200]}"))
    for e in report.executions:
        label = {"ok": "done", "dry_run": "DRY RUN", "failed": "FAILED", "skipped": "skipped"}[e.status]
        out.append(_row("EXECUTE", f"{label}: {e.action} on {e.target} — {e.output[:180]}"))
    v = report.verification
    if v:
        state = {True: "RECOVERED", False: "NOT RECOVERED", None: "not verified"}[v.recovered]
        out.append(_row("VERIFY", f"{state} · {v.note}"))
        for c in v.checks[:4]:
            out.append(_indent(f"{c.evidence_id} {'ok ' if c.recovered else 'BAD'} {c.note[:150]}", _W))
    calls = report.llm_calls
    tokens = sum(c.input_tokens + c.output_tokens for c in calls)
    cost = f"{len(calls)} LLM calls, {tokens} tokens" if calls else "0 LLM calls"
    out.append(_row("OUTCOME", f"{report.status.value} · {cost}" + (f" · {seconds:.1f} s" if seconds is not None else "")))


def render_decisions(decisions: list[Any]) -> str:
    """The audit trail: every decision attempt on the incident's plan, won, lost or refused."""
    out = [_row("DECISIONS", f"{len(decisions)} attempt{'s' if len(decisions) != 1 else ''}")]
    for d in decisions:
        reason = f" — {d.reason}" if d.reason else ""
        out.append(_indent(f"{d.at:%Y-%m-%d %H:%M:%S}Z {d.outcome:<11} {d.decision} by {d.approver} via "
                           f"{d.channel}{reason}"[:220], _W))
    return "\n".join(out)


def _on_call(out: list[str], report: IncidentReport) -> None:
    """Who is on it (service/lifecycle.py): acknowledged, assigned, snoozed, closed; and the comments."""
    o = report.on_call
    if o.acknowledged_by:
        out.append(_row("ON CALL", f"acknowledged by {o.acknowledged_by} at {o.acknowledged_at:%Y-%m-%d %H:%M:%S}Z"
                        + (f" · assigned to {o.assignee}" if o.assignee else "")))
    elif o.assignee:
        out.append(_row("ON CALL", f"assigned to {o.assignee} (not acknowledged)"))
    if o.snoozed_until:
        out.append(_row("SNOOZED", f"notifications held until {o.snoozed_until:%Y-%m-%d %H:%M:%S}Z"))
    if o.closed_by:
        out.append(_row("CLOSED", f"by {o.closed_by} at {o.closed_at:%Y-%m-%d %H:%M:%S}Z: {o.close_reason}"))
    for c in report.comments[-10:]:
        out.append(_row("COMMENT", f"{c.at:%Y-%m-%d %H:%M}Z {c.by}: {c.text[:200]}"))

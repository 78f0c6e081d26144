"""The incident graph: triage -> diagnosis -> planning -> approval gate -> execute -> verify -> report.

A plan that only escalates skips the gate: it notifies and ends the incident as `escalated`.

Wiring only: each node converts state to models, calls its agent, and returns a state update. The
approval gate pauses with LangGraph `interrupt()`; with a durable checkpointer the pending plan
survives restarts and is resumed from any process with `Command(resume=decision)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents import approval as approval_agent
from agents import diagnosis as diagnosis_agent
from agents import escalation as escalation_agent
from agents import remediation as remediation_agent
from agents import self_healing
from agents import triage as triage_agent
from agents.toolbox import Toolbox
from agents.verification import verify
from core.links import incident_links
from core.models import (
    AlertmanagerWebhook,
    Approval,
    Attempt,
    Diagnosis,
    Escalation,
    Evidence,
    ExecutionResult,
    Hypothesis,
    Incident,
    IncidentReport,
    IncidentStatus,
    LLMCall,
    Plan,
    SelfHealingDecision,
    TriageVerdict,
    Verification,
)
from graphs.state import IncidentState


def incident_from_webhook(webhook: AlertmanagerWebhook) -> Incident:
    firing = [a for a in webhook.alerts if a.status == "firing"] or webhook.alerts
    first = firing[0]
    summary = first.annotations.get("summary") or first.annotations.get("description") or first.name
    title = f"{first.name}: {summary}"[:200]
    if webhook.omitted_alerts:  # beyond MAX_ALERTS_PER_PAYLOAD: counted, named, never silently dropped
        n = sum(webhook.omitted_alerts.values())
        top = ", ".join(f"{k} x{v}" for k, v in sorted(webhook.omitted_alerts.items(), key=lambda kv: -kv[1])[:3])
        title = f"{title[:120]} (+{n} more alerts not analysed one by one: {top})"[:240]
    return Incident(title=title, fingerprint=first.effective_fingerprint(), group_key=webhook.group_key,
                    alerts=firing, service=first.target, severity=first.severity,
                    omitted_alerts=webhook.omitted_alerts)


def _calls(calls: list[LLMCall]) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json") for c in calls]


# ---------------------------------------------------------------------------------------- nodes --
async def triage_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    webhook = AlertmanagerWebhook.model_validate(state["webhook"])
    incident = (Incident.model_validate(state["incident"]) if state.get("incident")
                else incident_from_webhook(webhook))
    calls: list[LLMCall] = []
    verdict, used = await triage_agent.triage(incident, runtime.context, calls)
    status = {"duplicate": IncidentStatus.DUPLICATE, "resolved": IncidentStatus.RESOLVED,
              "noise": IncidentStatus.RESOLVED}.get(verdict.kind, IncidentStatus.RUNNING)
    return {"incident": incident.model_dump(mode="json"), "triage": verdict.model_dump(mode="json"),
            "status": status.value, "llm_calls": _calls(calls), "llm_used": ["triage"] if used else []}


async def diagnosis_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    incident = Incident.model_validate(state["incident"])
    verdict = TriageVerdict.model_validate(state["triage"])
    calls: list[LLMCall] = []
    res = await diagnosis_agent.diagnose(incident, verdict, runtime.context, calls)
    return {"hypotheses": [h.model_dump(mode="json") for h in res.diagnosis.hypotheses],
            "summary": res.diagnosis.summary, "known_fix": res.known_fix,
            "evidence": [e.model_dump(mode="json") for e in res.evidence], "llm_calls": _calls(calls),
            "llm_used": ["diagnosis"] if res.used_llm else []}


async def plan_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    incident = Incident.model_validate(state["incident"])
    verdict = TriageVerdict.model_validate(state["triage"])
    diag = Diagnosis(hypotheses=[Hypothesis.model_validate(h) for h in state.get("hypotheses", [])],
                     summary=state.get("summary", ""))
    evidence = [Evidence.model_validate(e) for e in state.get("evidence", [])]
    calls: list[LLMCall] = []
    plan, used = await remediation_agent.plan(incident, verdict, diag, evidence, runtime.context, calls,
                                              known_fix=state.get("known_fix"))
    if not remediation_agent.is_escalation(plan):
        plan.checks = await remediation_agent.preflight(plan, runtime.context)
        _, why = approval_agent.auto_approval_verdict(plan, runtime.context.settings)
        plan.checks.append(f"auto-approval: {why}")  # recorded either way, shown to the approver
    return {"plan": plan.model_dump(mode="json"), "llm_calls": _calls(calls),
            "llm_used": ["remediation"] if used else []}


async def escalate_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    incident = Incident.model_validate(state["incident"])
    diag = Diagnosis(hypotheses=[Hypothesis.model_validate(h) for h in state.get("hypotheses", [])],
                     summary=state.get("summary", ""))
    esc = await escalation_agent.escalate(incident, TriageVerdict.model_validate(state["triage"]), diag,
                                          Plan.model_validate(state["plan"]), runtime.context,
                                          failed_step=state.get("failed_step"))
    return {"escalation": esc.model_dump(mode="json"), "status": IncidentStatus.ESCALATED.value}


async def autonomy_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    """May the plan run without a human? The parameter bounds first, then the self-healing policy
    (which records the action when it allows it); the answer is in the state, so reports show it."""
    plan = Plan.model_validate(state["plan"])
    ok, why = approval_agent.auto_approval_verdict(plan, runtime.context.settings)
    if not ok:
        heal = SelfHealingDecision(allowed=False, rule="auto-approval-bounds", reason=why)
    else:
        heal = await asyncio.to_thread(self_healing.authorize, plan, Incident.model_validate(state["incident"]),
                                       runtime.context)
    return {"self_healing": heal.model_dump(mode="json")}


async def approval_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    settings = runtime.context.settings
    plan = Plan.model_validate(state["plan"])
    # After a failed automatic fix (attempts) the follow-up plan always goes to a human.
    heal = (SelfHealingDecision.model_validate(state["self_healing"])
            if state.get("self_healing") and not state.get("attempts") else None)
    auto = approval_agent.auto_approval(plan, settings, heal) if heal is not None else None
    if heal is not None and heal.allowed and auto is None:  # another gate check refused: the action never ran
        await asyncio.to_thread(self_healing.forget, plan, settings)
    if auto is not None:
        return {"approval": auto.model_dump(mode="json")}
    # Pauses here; the value is what approvers are shown. On resume, interrupt() returns the decision.
    decision = interrupt({"plan_id": plan.id, "plan_hash": plan.content_hash, "risk": plan.risk.value,
                          "expires_at": plan.expires_at.isoformat() if plan.expires_at else None,
                          "actions": [a.model_dump(mode="json") for a in plan.actions],
                          "rationale": plan.rationale, "checks": plan.checks,
                          "self_healing": heal.model_dump(mode="json") if heal else None})
    return gate_update(decision, plan, settings)


def gate_update(decision: Any, plan: Plan, settings: Any) -> dict[str, Any]:
    """The approval gate's state update for a decision (also used to record a decision taken after an
    interrupted execution, which resumes past the gate rather than through it)."""
    approval = approval_agent.check_decision(decision, plan, settings)
    status = None if approval.valid and approval.decision == "approve" else IncidentStatus.REJECTED.value
    update: dict[str, Any] = {"approval": approval.model_dump(mode="json")}
    if status:
        update["status"] = status
    return update


async def execute_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    plan = Plan.model_validate(state["plan"])
    approval = Approval.model_validate(state["approval"])
    # Belt and braces: the edge already routes only valid approvals of this exact plan here.
    if not (approval.valid and approval.decision == "approve"
            and approval_agent.names_plan(approval.plan_hash, plan.content_hash)):
        return {"status": IncidentStatus.REJECTED.value, "executions": []}
    if runtime.context.before_execute is not None:
        runtime.context.before_execute(plan, approval)
    executor = runtime.context.executor
    results: list[ExecutionResult] = []
    for action in plan.actions:
        if executor is None:
            results.append(ExecutionResult(action=action.name, target=action.target, status="dry_run",
                                           dry_run=True, output="no executor configured"))
            continue
        result = await asyncio.to_thread(executor.execute, action)
        results.append(result)
        if result.status == "failed":
            break  # do not run later steps on top of a failed one
    failed = any(r.status == "failed" for r in results)
    return {"executions": [r.model_dump(mode="json") for r in results],
            "status": (IncidentStatus.FAILED if failed else IncidentStatus.EXECUTED).value}


async def verify_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    executions = [ExecutionResult.model_validate(e) for e in state.get("executions", [])]
    evidence = [Evidence.model_validate(e) for e in state.get("evidence", [])]
    hyps = state.get("hypotheses") or []
    component = hyps[0]["component"] if hyps else ""
    result = await verify(evidence, component, executions, runtime.context)
    status = state.get("status", IncidentStatus.EXECUTED.value)
    if status == IncidentStatus.EXECUTED.value and result.recovered:
        status = IncidentStatus.RESOLVED.value
    if (state.get("approval") or {}).get("channel") == "policy":  # the self-healing history learns the outcome
        await asyncio.to_thread(self_healing.record_verification, Plan.model_validate(state["plan"]), executions,
                                result, runtime.context.settings)
    return {"verification": result.model_dump(mode="json"), "status": status}


async def fallback_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    """An automatic fix failed verification: never retried automatically; its inverse goes to a human,
    or, without one, the incident escalates."""
    plan = Plan.model_validate(state["plan"])
    executions = [ExecutionResult.model_validate(e) for e in state.get("executions") or []]
    attempt = Attempt(plan=plan, approval=Approval.model_validate(state["approval"]), executions=executions,
                      verification=Verification.model_validate(state["verification"]))
    follow = self_healing.inverse_plan(plan, executions, runtime.context.settings)
    if not remediation_agent.is_escalation(follow):
        follow.checks = await remediation_agent.preflight(follow, runtime.context)
    return {"attempts": [*(state.get("attempts") or []), attempt.model_dump(mode="json")],
            "plan": follow.model_dump(mode="json"), "approval": None, "executions": [], "verification": None}


def build_report(state: IncidentState, mode: str) -> IncidentReport:
    incident = Incident.model_validate(state["incident"])
    evidence = [Evidence.model_validate(e) for e in state.get("evidence") or []]
    return IncidentReport(
        incident_id=incident.id, title=incident.title,
        status=IncidentStatus(state.get("status", IncidentStatus.RUNNING.value)), mode=mode,
        triage=TriageVerdict.model_validate(state["triage"]),
        hypotheses=[Hypothesis.model_validate(h) for h in state.get("hypotheses") or []],
        evidence=evidence,
        plan=Plan.model_validate(state["plan"]) if state.get("plan") else None,
        approval=Approval.model_validate(state["approval"]) if state.get("approval") else None,
        executions=[ExecutionResult.model_validate(e) for e in state.get("executions") or []],
        verification=Verification.model_validate(state["verification"]) if state.get("verification") else None,
        escalation=Escalation.model_validate(state["escalation"]) if state.get("escalation") else None,
        llm_calls=[LLMCall.model_validate(c) for c in state.get("llm_calls") or []],
        created_at=incident.created_at,
        self_healing=SelfHealingDecision.model_validate(state["self_healing"]) if state.get("self_healing") else None,
        attempts=[Attempt.model_validate(a) for a in state.get("attempts") or []],
        links=incident_links(incident, str((state.get("webhook") or {}).get("externalURL") or ""), evidence))


def report_mode(state: IncidentState, toolbox: Toolbox) -> str:
    return toolbox.llm.mode if state.get("llm_used") else "rules"


async def report_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    report = build_report(state, report_mode(state, runtime.context))
    from agents.recall import remember_report  # the learning loop: remember incidents with their outcome

    if not state.get("read_only"):  # a read-only investigation answers a question: no incident happened
        await asyncio.to_thread(remember_report, report, Incident.model_validate(state["incident"]), runtime.context)
    return {"report": report.model_dump(mode="json")}


# ---------------------------------------------------------------------------------------- edges --
def after_triage(state: IncidentState) -> str:
    return "diagnosis" if state["triage"]["kind"] == "incident" else "report"


def after_plan(state: IncidentState) -> str:
    plan = state.get("plan")
    return "escalate" if plan and remediation_agent.is_escalation(Plan.model_validate(plan)) else "approval"


def after_approval(state: IncidentState) -> str:
    a = state.get("approval") or {}
    return "execute" if a.get("valid") and a.get("decision") == "approve" else "report"


def after_verify(state: IncidentState) -> str:
    approval = state.get("approval") or {}
    executions = [ExecutionResult.model_validate(e) for e in state.get("executions") or []]
    verification = Verification.model_validate(state["verification"]) if state.get("verification") else None
    failed = self_healing.verification_failed(executions, verification)
    return "fallback" if approval.get("channel") == "policy" and failed and not state.get("attempts") else "report"


def build_graph(*, stop_after_plan: bool = False) -> StateGraph[IncidentState, Toolbox, IncidentState, IncidentState]:
    g = StateGraph(IncidentState, context_schema=Toolbox)
    g.add_node("triage", triage_node)
    g.add_node("diagnosis", diagnosis_node)
    g.add_node("plan", plan_node)
    g.add_node("report", report_node)
    g.add_edge(START, "triage")
    g.add_conditional_edges("triage", after_triage, {"diagnosis": "diagnosis", "report": "report"})
    g.add_edge("diagnosis", "plan")
    g.add_node("escalate", escalate_node)
    g.add_edge("escalate", "report")
    if stop_after_plan:
        g.add_conditional_edges("plan", after_plan, {"escalate": "escalate", "approval": "report"})
    else:
        g.add_node("approval", approval_node)
        g.add_node("execute", execute_node)
        g.add_node("verify", verify_node)
        g.add_node("autonomy", autonomy_node)
        g.add_node("fallback", fallback_node)
        g.add_conditional_edges("plan", after_plan, {"escalate": "escalate", "approval": "autonomy"})
        g.add_edge("autonomy", "approval")
        g.add_conditional_edges("approval", after_approval, {"execute": "execute", "report": "report"})
        g.add_edge("execute", "verify")
        g.add_conditional_edges("verify", after_verify, {"fallback": "fallback", "report": "report"})
        # a failed automatic fix: its inverse goes to a human; without one the incident escalates
        g.add_conditional_edges("fallback", after_plan, {"escalate": "escalate", "approval": "approval"})
    g.add_edge("report", END)
    return g


_INVESTIGATE: Any = build_graph(stop_after_plan=True).compile()


async def investigate(webhook: AlertmanagerWebhook, toolbox: Toolbox) -> IncidentReport:
    """Triage, diagnose and plan without executing anything (evals, dry investigations, chat questions).
    Nothing is remembered: a question is not an incident, and must never be cited as one later."""
    state = await _INVESTIGATE.ainvoke({"webhook": webhook.model_dump(mode="json", by_alias=True),
                                        "read_only": True}, context=toolbox)
    return IncidentReport.model_validate(state["report"])

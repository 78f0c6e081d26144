"""The incident graph: triage -> diagnosis -> planning -> approval gate -> execute -> verify -> report.

A plan that only escalates skips the gate: it notifies and ends the incident as `escalated`.

Wiring only: each node reads the typed state (graphs/state.py: the models themselves; `typed()` reads
a checkpoint written before the state was typed), calls its agent, and returns a state update. The
approval gate pauses with LangGraph `interrupt()`; with a durable checkpointer the pending plan
survives restarts and is resumed from any process with `Command(resume=decision)`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents import approval as approval_agent
from agents import diagnosis as diagnosis_agent
from agents import escalation as escalation_agent
from agents import remediation as remediation_agent
from agents import self_healing
from agents import triage as triage_agent
from agents.recall import remember_report
from agents.toolbox import Toolbox
from agents.verification import verify
from core.links import incident_links
from core.models import (
    AlertmanagerWebhook,
    Attempt,
    Diagnosis,
    ExecutionResult,
    Incident,
    IncidentReport,
    IncidentStatus,
    LLMCall,
    Plan,
    SelfHealingDecision,
)
from graphs.state import SCHEMA_VERSION, IncidentState, typed


def incident_from_webhook(webhook: AlertmanagerWebhook) -> Incident:
    firing = webhook.incident_alerts
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


def start(webhook: AlertmanagerWebhook, incident: Incident | None = None, *, read_only: bool = False) -> IncidentState:
    """A run's input: the webhook and the incident built from it, once (the runner chooses its id)."""
    state = IncidentState(schema_version=SCHEMA_VERSION, webhook=webhook,
                          incident=incident or incident_from_webhook(webhook))
    if read_only:
        state["read_only"] = True
    return state


Node = TypeVar("Node", bound=Callable[[IncidentState, Runtime[Toolbox]], Awaitable[dict[str, Any]]])


def _reads_typed(node: Node) -> Node:
    """A node gets its state through the versioned reader (a checkpoint of schema version 1 holds dicts)."""
    @functools.wraps(node)
    async def run(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
        return await node(typed(state), runtime)
    return cast(Node, run)


def _edge_reads_typed(edge: Callable[[IncidentState], str]) -> Callable[[IncidentState], str]:
    """An edge, likewise."""
    @functools.wraps(edge)
    def route(state: IncidentState) -> str:
        return edge(typed(state))
    return route


def _diagnosis(state: IncidentState) -> Diagnosis:
    return Diagnosis(hypotheses=state.get("hypotheses") or [], summary=state.get("summary", ""))


# ---------------------------------------------------------------------------------------- nodes --
async def triage_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    incident = state.get("incident") or incident_from_webhook(state["webhook"])
    calls: list[LLMCall] = []
    verdict, used = await triage_agent.triage(incident, runtime.context, calls)
    status = {"duplicate": IncidentStatus.DUPLICATE, "resolved": IncidentStatus.RESOLVED,
              "noise": IncidentStatus.RESOLVED}.get(verdict.kind, IncidentStatus.RUNNING)
    return {"incident": incident, "triage": verdict, "status": status, "llm_calls": calls,
            "llm_used": ["triage"] if used else []}


async def diagnosis_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    calls: list[LLMCall] = []
    res = await diagnosis_agent.diagnose(state["incident"], state["triage"], runtime.context, calls)
    return {"hypotheses": res.diagnosis.hypotheses, "summary": res.diagnosis.summary, "known_fix": res.known_fix,
            "evidence": res.evidence, "llm_calls": calls, "llm_used": ["diagnosis"] if res.used_llm else []}


async def plan_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    calls: list[LLMCall] = []
    plan, used = await remediation_agent.plan(state["incident"], state["triage"], _diagnosis(state),
                                              state.get("evidence") or [], runtime.context, calls,
                                              known_fix=state.get("known_fix"))
    if not remediation_agent.is_escalation(plan):
        plan.checks = await remediation_agent.preflight(plan, runtime.context)
        _, why = approval_agent.auto_approval_verdict(plan, runtime.context.settings)
        plan.checks.append(f"auto-approval: {why}")  # recorded either way, shown to the approver
    return {"plan": plan, "llm_calls": calls, "llm_used": ["remediation"] if used else []}


async def escalate_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    plan = state.get("plan")
    assert plan is not None  # after_plan routes here only with a plan
    esc = await escalation_agent.escalate(state["incident"], state["triage"], _diagnosis(state), plan,
                                          runtime.context, failed_step=state.get("failed_step"))
    return {"escalation": esc, "status": IncidentStatus.ESCALATED}


async def autonomy_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    """May the plan run without a human? The parameter bounds first, then the self-healing policy
    (which records the action when it allows it); the answer is in the state, so reports show it."""
    plan = _plan(state)
    ok, why = approval_agent.auto_approval_verdict(plan, runtime.context.settings)
    if not ok:
        heal = SelfHealingDecision(allowed=False, rule="auto-approval-bounds", reason=why)
    else:
        heal = await asyncio.to_thread(self_healing.authorize, plan, state["incident"], runtime.context)
    return {"self_healing": heal}


async def approval_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    settings = runtime.context.settings
    plan = _plan(state)
    # After a failed automatic fix (attempts) the follow-up plan always goes to a human.
    heal = state.get("self_healing") if not state.get("attempts") else None
    auto = approval_agent.auto_approval(plan, settings, heal) if heal is not None else None
    if heal is not None and heal.allowed and auto is None:  # another gate check refused: the action never ran
        await asyncio.to_thread(self_healing.forget, plan, settings)
    if auto is not None:
        return {"approval": auto}
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
    status = None if approval.valid and approval.decision == "approve" else IncidentStatus.REJECTED
    update: dict[str, Any] = {"approval": approval}
    if status:
        update["status"] = status
    return update


async def execute_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    plan, approval = _plan(state), state.get("approval")
    # Belt and braces: the edge already routes only valid approvals of this exact plan here.
    if not (approval and approval.valid and approval.decision == "approve"
            and approval_agent.names_plan(approval.plan_hash, plan.content_hash)):
        return {"status": IncidentStatus.REJECTED, "executions": []}
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
    return {"executions": results, "status": IncidentStatus.FAILED if failed else IncidentStatus.EXECUTED}


async def verify_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    executions = state.get("executions") or []
    hyps = state.get("hypotheses") or []
    component = hyps[0].component if hyps else ""
    result = await verify(state.get("evidence") or [], component, executions, runtime.context)
    status = state.get("status", IncidentStatus.EXECUTED)
    if status == IncidentStatus.EXECUTED and result.recovered:
        status = IncidentStatus.RESOLVED
    if _by_policy(state):  # the self-healing history learns the outcome
        await asyncio.to_thread(self_healing.record_verification, _plan(state), executions, result,
                                runtime.context.settings)
    return {"verification": result, "status": status}


async def fallback_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    """An automatic fix failed verification: never retried automatically; its inverse goes to a human,
    or, without one, the incident escalates."""
    plan = _plan(state)
    executions = state.get("executions") or []
    attempt = Attempt(plan=plan, approval=state.get("approval"), executions=executions,
                      verification=state.get("verification"))
    follow = self_healing.inverse_plan(plan, executions, runtime.context.settings)
    if not remediation_agent.is_escalation(follow):
        follow.checks = await remediation_agent.preflight(follow, runtime.context)
    return {"attempts": [*(state.get("attempts") or []), attempt], "plan": follow, "approval": None,
            "executions": [], "verification": None}


def build_report(state: IncidentState, mode: str) -> IncidentReport:
    """The report of a typed state (`typed()`), made of the state's own models."""
    incident = state["incident"]
    evidence = state.get("evidence") or []
    webhook = state.get("webhook")
    return IncidentReport(
        incident_id=incident.id, title=incident.title, status=state.get("status", IncidentStatus.RUNNING),
        mode=mode, triage=state["triage"], hypotheses=state.get("hypotheses") or [], evidence=evidence,
        plan=state.get("plan"), approval=state.get("approval"), executions=state.get("executions") or [],
        verification=state.get("verification"), escalation=state.get("escalation"),
        llm_calls=state.get("llm_calls") or [], created_at=incident.created_at,
        self_healing=state.get("self_healing"), attempts=state.get("attempts") or [],
        links=incident_links(incident, webhook.external_url if webhook else "", evidence))


def report_mode(state: IncidentState, toolbox: Toolbox) -> str:
    return toolbox.llm.mode if state.get("llm_used") else "rules"


def _plan(state: IncidentState) -> Plan:
    plan = state.get("plan")
    assert plan is not None, "the graph routes only a state with a plan here"
    return plan


def _by_policy(state: IncidentState) -> bool:
    """Approved by the self-healing policy (no human), rather than by a person."""
    approval = state.get("approval")
    return approval is not None and approval.channel == "policy"


async def report_node(state: IncidentState, runtime: Runtime[Toolbox]) -> dict[str, Any]:
    report = build_report(state, report_mode(state, runtime.context))
    if not state.get("read_only"):  # a read-only investigation answers a question: no incident happened
        await asyncio.to_thread(remember_report, report, state["incident"], runtime.context)
    return {"report": report}


# ---------------------------------------------------------------------------------------- edges --
def after_triage(state: IncidentState) -> str:
    return "diagnosis" if state["triage"].kind == "incident" else "report"


def after_plan(state: IncidentState) -> str:
    plan = state.get("plan")
    return "escalate" if plan and remediation_agent.is_escalation(plan) else "approval"


def after_approval(state: IncidentState) -> str:
    a = state.get("approval")
    return "execute" if a and a.valid and a.decision == "approve" else "report"


def after_verify(state: IncidentState) -> str:
    failed = self_healing.verification_failed(state.get("executions") or [], state.get("verification"))
    return "fallback" if _by_policy(state) and failed and not state.get("attempts") else "report"


def build_graph(*, stop_after_plan: bool = False) -> StateGraph[IncidentState, Toolbox, IncidentState, IncidentState]:
    g = StateGraph(IncidentState, context_schema=Toolbox)
    g.add_node("triage", _reads_typed(triage_node))
    g.add_node("diagnosis", _reads_typed(diagnosis_node))
    g.add_node("plan", _reads_typed(plan_node))
    g.add_node("report", _reads_typed(report_node))
    g.add_edge(START, "triage")
    g.add_conditional_edges("triage", _edge_reads_typed(after_triage), {"diagnosis": "diagnosis", "report": "report"})
    g.add_edge("diagnosis", "plan")
    g.add_node("escalate", _reads_typed(escalate_node))
    g.add_edge("escalate", "report")
    if stop_after_plan:
        g.add_conditional_edges("plan", _edge_reads_typed(after_plan), {"escalate": "escalate", "approval": "report"})
    else:
        g.add_node("approval", _reads_typed(approval_node))
        g.add_node("execute", _reads_typed(execute_node))
        g.add_node("verify", _reads_typed(verify_node))
        g.add_node("autonomy", _reads_typed(autonomy_node))
        g.add_node("fallback", _reads_typed(fallback_node))
        g.add_conditional_edges("plan", _edge_reads_typed(after_plan), {"escalate": "escalate", "approval": "autonomy"})
        g.add_edge("autonomy", "approval")
        g.add_conditional_edges("approval", _edge_reads_typed(after_approval), {"execute": "execute", "report": "report"})
        g.add_edge("execute", "verify")
        g.add_conditional_edges("verify", _edge_reads_typed(after_verify), {"fallback": "fallback", "report": "report"})
        # a failed automatic fix: its inverse goes to a human; without one the incident escalates
        g.add_conditional_edges("fallback", _edge_reads_typed(after_plan), {"escalate": "escalate", "approval": "approval"})
    g.add_edge("report", END)
    return g


_INVESTIGATE: Any = build_graph(stop_after_plan=True).compile()


async def investigate(webhook: AlertmanagerWebhook, toolbox: Toolbox) -> IncidentReport:
    """Triage, diagnose and plan without executing anything (evals, dry investigations, chat questions).
    Nothing is remembered: a question is not an incident, and must never be cited as one later."""
    state = await _INVESTIGATE.ainvoke(start(webhook, read_only=True), context=toolbox)
    report: IncidentReport = state["report"]
    return report

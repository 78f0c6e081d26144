"""Remediation planning: a typed, risk-rated plan built only from catalog actions, bound to the incident.

In rule mode every toolset binds its catalog entries to the incident's objects (the host, guest,
interface, service, mount or file the alert names or the evidence shows), each candidate's fit is
checked, and the best is chosen (`plan_rules`): there is no branch per category. An LLM, when
available, picks entries and fills their declared parameters; its choice is validated against the
catalog (unknown actions or parameters are refused), against the incident's objects (an object nobody
named or observed is refused with the reason) and against fit, and falls back to the rules when
unusable. Every step is dry-run (`--check`, or the exact API call) before anyone is asked to approve.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from agents.approval import blast_radius
from agents.prompts import REMEDIATION_SYSTEM, fence
from agents.toolbox import Toolbox
from core.models import Action, Diagnosis, Evidence, Incident, LLMCall, Plan, TriageVerdict
from core.settings import Settings
from core.subject import PLAYBOOK_HOST_LABELS, host_names, host_of
from tools.catalog import CATALOG, ESCALATE, escalation
from tools.fit import FitResult
from tools.fit import check as fit_check
from tools.objects import Objects, object_values
from tools.params import ParameterRefused
from tools.registry import toolsets
from tools.toolset import Candidate, PlanContext


def planning_context(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis, evidence: list[Evidence],
                     settings: Settings) -> PlanContext:
    """What planning binds actions from: the incident, its evidence, and the objects both name."""
    names = [ts.names(incident.alert.labels) for ts in toolsets()]
    objects = Objects.of(incident.alert.labels, verdict, evidence, names)
    return PlanContext(incident=incident, verdict=verdict, diagnosis=diagnosis, evidence=evidence, objects=objects,
                       settings=settings)


def unbound(actions: list[Action], objects: Objects) -> list[str]:
    """Why an action's object is not this incident's (16.4): every host, guest, interface, service and path
    must be named by the alert or observed in this incident's evidence, whoever proposed it."""
    return [p for a in actions if a.name != ESCALATE for p in objects.problems(a, CATALOG[a.name])]


_STATUS_RANK = {"fits": 2, "suggest": 1, "refused": 0}


def plan_rules(ctx: PlanContext) -> tuple[list[Action], str, list[FitResult]]:
    """Every catalog action the toolsets can bind to this incident, checked for fit; the best one.

    No branch per category: each toolset binds its entries to the incident's objects, every candidate's
    fit is checked (a refused one is dropped), and the rest are ranked: one that fits (its evidence is
    there) before a suggestion, one acting on the diagnosis' top component first, then the toolset's
    own score (a rollback that removes the trigger before a plain restart), then the lower risk."""
    top = {h.component for h in ctx.diagnosis.hypotheses[:1]}
    ranked: list[tuple[tuple[int, int, float, int], Candidate, FitResult]] = []
    considered: list[FitResult] = []
    candidates = [c for ts in toolsets() for c in ts.candidates(ctx)]
    hostile = [c.refused for c in candidates if c.hostile]
    if hostile:  # a value from this incident would steer a template, a shell or a path: a human looks
        return ([escalation(_host(ctx.incident, ctx.verdict))],
                f"refused: {hostile[0]}; escalating to a human instead", [])
    for c in candidates:
        if c.action is None:
            continue
        entry = CATALOG[c.action.name]
        if ctx.objects.problems(c.action, entry):
            continue  # a toolset only binds what the incident names; never propose past that
        fit = fit_check(c.action, entry, ctx.verdict, ctx.labels, ctx.evidence)
        considered.append(fit)
        if fit.status == "refused":
            continue
        on_top = int(any(v in top for _, v in object_values(c.action, entry)))
        ranked.append(((_STATUS_RANK[fit.status], on_top, c.score, -c.action.risk.rank), c, fit))
    if ranked:
        ranked.sort(key=lambda r: r[0], reverse=True)
        _, best, fit = ranked[0]
        assert best.action is not None
        return [best.action], best.why, [fit]
    bound_names = {c.action.name for c in candidates if c.action is not None}
    notes = considered + [f for f in _situations(ctx, bound_names) if f.action not in {n.action for n in considered}]
    why = "; ".join(f.note() for f in notes[:4]) or "no catalog action applies to this alert's objects"
    component = ctx.diagnosis.hypotheses[0].component if ctx.diagnosis.hypotheses else ctx.incident.alert.target
    return ([escalation(_safe_target(component))],
            f"no catalog action fits: {why}; escalating with the evidence", notes)


def _situations(ctx: PlanContext, bound_names: set[str]) -> list[FitResult]:
    """Why the entries meant for this kind of alert do not apply to this one (shown when it escalates):
    the alert is not of their kind, or nothing this incident names or read is an object of theirs."""
    out = []
    for entry in CATALOG.values():
        if entry.name == ESCALATE or not entry.fit.addresses(ctx.verdict):
            continue
        refusals = entry.fit.situation(ctx.verdict, ctx.labels)
        if not refusals and entry.name not in bound_names:
            refusals = ["nothing this incident names or read is an object it acts on"]
        if refusals:
            out.append(FitResult(action=entry.name, status="refused", reasons=refusals))
    return out


def _escalation(incident: Incident, diagnosis: Diagnosis, why: str) -> tuple[list[Action], str]:
    component = diagnosis.hypotheses[0].component if diagnosis.hypotheses else incident.alert.target
    return [escalation(_safe_target(component))], why


def _host(incident: Incident, verdict: TriageVerdict | None = None) -> str:
    """The machine an escalation names: triage's reading of it, else the labels', else the alert's target."""
    if verdict is not None and verdict.host:
        return verdict.host
    return host_of(incident.alert.labels) or incident.alert.target


def incident_targets(incident: Incident, verdict: TriageVerdict | None = None) -> set[str]:
    """The hosts this incident is about (what a generated playbook may name): the triage's host and the
    alert's host labels (instance without its port)."""
    found = {verdict.host} if verdict is not None and verdict.host else set()
    return found | host_names(incident.alert.labels, PLAYBOOK_HOST_LABELS)


def _generated_entry(name: str) -> bool:
    entry = CATALOG.get(name)
    return entry is not None and bool(entry.playbook_parameters())


def _is_generated(a: Action) -> bool:
    return _generated_entry(a.name)


async def _vet_generated(actions: list[Action], incident: Incident, verdict: TriageVerdict,
                         toolbox: Toolbox) -> str | None:
    """Why a generated playbook in `actions` must never be offered, or None once it passed every step.

    Steps 1-5 (YAML, modules, Jinja, become, hosts = the target) ran when the action was built; here the
    target must be one of the incident's hosts, then the executor runs syntax-check, ansible-lint and
    --check --diff (tools/ansible/generated.py); its result is what the approver's preflight shows."""
    for a in actions:
        if not _is_generated(a):
            continue
        targets = incident_targets(incident, verdict)
        if a.target not in targets:
            return (f"generated playbook refused at hosts: {a.target!r} is not among the incident's targets "
                    f"({', '.join(sorted(targets)) or 'none'})")
        vet = getattr(toolbox.executor, "vet", None)
        if vet is None:
            return "generated playbook refused: no executor to syntax-check, lint and --check it"
        vetting = await asyncio.to_thread(vet, a)
        if not vetting.ok:
            return f"generated playbook refused at {vetting.refused}"
    return None


def _safe_target(value: str) -> str:
    """Escalation names what it is about; a value the fit check would refuse is replaced, not passed on."""
    return value if re.fullmatch(r"[A-Za-z0-9@._/:*,\[\]-]{1,128}", value) else "alert-target"


def fit_actions(actions: list[Action], incident: Incident, verdict: TriageVerdict,
                evidence: list[Evidence]) -> tuple[list[FitResult], bool]:
    """The fit of each non-escalation action, and whether all of them may be auto-approved (known fix
    with its evidence present)."""
    results = [fit_check(a, CATALOG[a.name], verdict, incident.alert.labels, evidence)
               for a in actions if a.name != ESCALATE]
    auto = bool(results) and all(r.status == "fits" and CATALOG[r.action].known_fix
                                 and not CATALOG[r.action].fit.always_human for r in results)
    return results, auto


def is_escalation(p: Plan) -> bool:
    """A plan that only hands the incident to a human: it notifies and ends, nothing waits for approval."""
    return bool(p.actions) and all(a.name == ESCALATE for a in p.actions)


class PlanStep(BaseModel):
    action: str = Field(description="exact catalog name")
    target: str = Field(description="host (or device) the action runs on")
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


class RemediationPlan(BaseModel):
    """The chosen catalog steps, in order, and why."""

    steps: list[PlanStep] = Field(min_length=1, max_length=3)
    rationale: str


def _catalog_brief() -> str:
    return "\n".join(f"- {e.brief()}" for e in CATALOG.values())


def _validate(out: RemediationPlan) -> tuple[list[Action] | None, str]:
    """The catalog actions the model chose, or None and why they were refused."""
    actions = []
    for step in out.steps:
        entry = CATALOG.get(step.action)
        if entry is None:
            return None, f"refused: {step.action!r} is not a catalog action"
        try:
            actions.append(entry.action(step.target, **step.parameters))
        except ValueError as exc:
            return None, f"refused: {exc}"
    return actions, ""


def _remembered(known_fix: dict[str, Any] | None) -> tuple[list[Action], str] | str | None:
    """The remembered fix as catalog actions, None, or why it is refused now (a str, shown in the plan)."""
    if not known_fix:
        return None
    catalog = CATALOG
    actions = []
    for a in known_fix.get("actions") or []:
        entry = catalog.get(a.get("name", ""))
        if entry is None:
            return None
        try:
            actions.append(entry.action(a["target"], **(a.get("parameters") or {})))
        except ParameterRefused as exc:  # memory is untrusted too: its values pass the same checks
            return f"the remembered fix from {known_fix.get('incident_id')} was refused: {exc}"
        except (KeyError, ValueError):  # the catalog changed since: plan afresh
            return None
    if not actions:
        return None
    return actions, (f"this fix worked before on the same incident ({known_fix['incident_id']}, "
                     f"{known_fix['occurred_at'][:10]}, verified recovered)")


def _within_blast_radius(actions: list[Action], rationale: str, incident: Incident,
                         toolbox: Toolbox) -> tuple[list[Action], str]:
    """The plan, or an escalation saying why it touches too much at once (MAX_TARGETS_PER_PLAN, groups)."""

    groups: dict[str, frozenset[str]] = getattr(toolbox.executor, "groups", dict)()
    problem = blast_radius(actions, toolbox.settings, groups)
    if problem is None:
        return actions, rationale
    return [escalation(_host(incident))], f"refused: {problem}; escalating to a human instead"


async def plan(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis, evidence: list[Evidence],
               toolbox: Toolbox, calls: list[LLMCall], known_fix: dict[str, Any] | None = None) -> tuple[Plan, bool]:
    """Catalog actions for this incident, each bound to its objects and checked for fit before it is proposed.

    A remembered fix, the LLM's choice and the rules' choice all pass the same checks: an action on an
    object the incident never named or observed is refused with that reason (16.4); one that does not
    belong here is dropped (the incident escalates); one whose evidence is missing stays a suggestion
    for a human; and only a known fix whose evidence, about its own objects, is present may be
    auto-approved.
    """
    ctx = planning_context(incident, verdict, diagnosis, evidence, toolbox.settings)
    actions: list[Action] | None = None
    rationale = ""
    refused = ""  # why a model's (or memory's) plan was not used
    used_llm = False
    generated_refused = ""  # why the model's generated playbook was refused (the plan then escalates)
    remembered = _remembered(known_fix)
    if isinstance(remembered, str):  # memory is untrusted: its values failed the catalog's checks
        refused = remembered
    elif remembered is not None:  # a plan that worked before for this signature comes first, if it still fits
        foreign = unbound(remembered[0], ctx.objects)
        fits, _ = fit_actions(remembered[0], incident, verdict, evidence)
        vetted = await _vet_generated(remembered[0], incident, verdict, toolbox)
        if foreign or vetted is not None:
            refused = (f"the remembered fix from {(known_fix or {}).get('incident_id')} was refused: "
                       f"{'; '.join(foreign) or vetted}")
        elif not any(r.status == "refused" for r in fits):
            actions, rationale = _within_blast_radius(*remembered, incident, toolbox)
            p = Plan(incident_id=incident.id, actions=actions, rationale=rationale,
                     known_fix=actions is remembered[0] and all(r.status == "fits" for r in fits),
                     fit=[r.note() for r in fits])
            return p.with_expiry(toolbox.settings.APPROVAL_TTL_SECONDS), False
    if toolbox.llm.providers and diagnosis.hypotheses:
        top = diagnosis.hypotheses[:3]
        key = {"node": "remediation", "alert": incident.alert.name, "labels": incident.alert.labels,
               "category": verdict.category, "hypotheses": [[h.component, h.cause] for h in top]}
        objects = {k: sorted(ctx.objects.values(k)) for k in sorted({*ctx.objects.named, *ctx.objects.observed})}
        out = await toolbox.cached("playbook", key, lambda: toolbox.llm.structured("remediation", [
            SystemMessage(REMEDIATION_SYSTEM),
            HumanMessage(f"Plan the remediation of this {verdict.category} incident.\n"
                         + fence("alert labels", incident.alert.labels) + "\nDIAGNOSIS\n"
                         + fence("diagnosis (derived from alert and telemetry text)",
                                 "\n".join(f"- {h.component}: {h.cause} (confidence {h.confidence})" for h in top))
                         + "\nOBJECTS\n" + fence("objects named by the alert or observed in the evidence", objects)
                         + f"\nCATALOG (trusted: the only actions that exist)\n{_catalog_brief()}"),
        ], RemediationPlan, calls), RemediationPlan)
        if out is not None:
            actions, why = _validate(out)
            if actions is not None:
                wrong = [r.note() for r in fit_actions(actions, incident, verdict, evidence)[0]
                         if r.status == "refused"]
                wrong += unbound(actions, ctx.objects)  # 16.4: an object nobody named or observed
                if wrong:
                    actions, why = None, "refused: " + "; ".join(wrong)
            if actions is not None:
                vetted = await _vet_generated(actions, incident, verdict, toolbox)
                if vetted is not None:
                    actions, why = None, vetted
            if actions is None and any(_generated_entry(st.action) for st in out.steps):
                # The model judged no catalog playbook enough and wrote its own, which failed vetting:
                # never offered, and not swapped for a rules fix behind the approver's back either.
                generated_refused = why
            rationale = out.rationale
            used_llm = actions is not None
            refused = "; ".join(r for r in (refused, f"the model's plan was {why}" if why else "") if r)
            if actions is None and calls and calls[-1].node == "remediation":
                # Paid for but unusable: say so in the cost record; the catalog rules take over.
                calls[-1] = calls[-1].model_copy(update={"ok": False, "error": why})
    notes: list[FitResult] = []
    if actions is None and generated_refused:
        actions = [escalation(_host(incident, verdict))]
        rationale = f"{generated_refused}; escalating to a human instead"
    if actions is None:
        actions, rationale, notes = plan_rules(ctx)
        if refused:
            rationale = f"{rationale} (not used: {refused})"
    actions, rationale = _within_blast_radius(actions, rationale, incident, toolbox)
    fits, auto = fit_actions(actions, incident, verdict, evidence)
    misfits = [r for r in fits if r.status == "refused"]
    foreign = unbound(actions, ctx.objects)
    if misfits or foreign:
        actions, rationale = _escalation(incident, diagnosis, "no catalog action fits: " + "; ".join(
            [*foreign, *(r.note() for r in misfits)]) + "; escalating with the evidence")
        auto = False
    p = Plan(incident_id=incident.id, actions=actions, rationale=rationale, known_fix=auto,
             fit=[r.note() for r in (fits or notes)])
    p = p.with_expiry(toolbox.settings.APPROVAL_TTL_SECONDS)
    return p, used_llm


async def preflight(p: Plan, toolbox: Toolbox) -> list[str]:
    """Dry-run checks shown to the approver (they do not change the plan's content hash)."""
    if toolbox.executor is None:
        return []
    ex: Any = toolbox.executor
    return [await asyncio.to_thread(ex.preflight, a) for a in p.actions]

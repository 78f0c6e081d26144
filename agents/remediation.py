"""Remediation planning: a typed, risk-rated plan built only from catalog actions.

Rules map the triage category and the diagnosis to catalog entries. An LLM, when available, picks
entries and fills their declared parameters; its choice is validated against the catalog (unknown
actions or parameters are refused) and falls back to the rules when unusable. Every Ansible step is
syntax-checked and dry-run (`--check`) where the host is reachable before anyone is asked to approve.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from agents.prompts import REMEDIATION_SYSTEM, fence
from agents.toolbox import Toolbox
from core.models import Action, Diagnosis, Evidence, Incident, LLMCall, Plan, TriageVerdict
from tools.catalog import CATALOG, escalation
from tools.fit import FitResult
from tools.fit import check as fit_check
from tools.params import ParameterRefused

_CONFIG_ERROR = re.compile(r"config|yaml|json|parse|invalid|missing key|unknown field|syntax", re.I)
_CONFIG_PATH = re.compile(r"(/etc/[\w.@/-]+\.(?:ya?ml|json|conf|cfg|toml|ini))")


def _host(incident: Incident, verdict: TriageVerdict | None = None) -> str:
    if verdict is not None and verdict.host:
        return verdict.host
    labels = incident.alert.labels
    for key in ("host", "nodename", "instance"):
        if labels.get(key):
            return labels[key].rsplit(":", 1)[0] if key == "instance" else labels[key]
    return incident.alert.target


def plan_rules(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis,
               evidence: list[Evidence]) -> tuple[list[Action], str]:
    labels = incident.alert.labels
    top = diagnosis.hypotheses[0] if diagnosis.hypotheses else None
    component = top.component if top else incident.alert.target
    cited = {e.id: e for e in evidence}
    top_logs = " ".join(cited[i].excerpt for i in (top.evidence_ids if top else []) if i in cited)
    host = _host(incident, verdict)
    cat = verdict.category
    if cat == "service_down" and verdict.service and host:
        svc = verdict.service
        if not _runs_on(labels, verdict):
            return ([CATALOG["escalate_to_oncall"].action(svc)],
                    f"{svc} is down, but the alert does not say which machine runs it ({verdict.exporter} "
                    "reports it from elsewhere); escalating")
        return ([CATALOG["restart_service"].action(host, service=svc)],
                f"{svc} on {host} is down ({incident.alert.name}); restarting the unit is the usual first fix")
    if cat == "disk":
        path = labels.get("mountpoint", "/")
        path = "/var/log" if path == "/" else path.rstrip("/") + "/log"
        return ([CATALOG["cleanup_rotated_logs"].action(host, path=path)],
                f"{host}: {path} is filling up; rotated logs older than 3 days are the usual, safe space to free")
    if cat == "crashloop":
        svc = labels.get("service") or verdict.service or component
        config: str | None = labels.get("config_path") or next(iter(_CONFIG_PATH.findall(top_logs)), None)
        if _CONFIG_ERROR.search(top_logs) and config:
            return ([CATALOG["rollback_config"].action(host, service=svc, config_path=config)],
                    f"{svc} crashes at start-up on a configuration error in {config}; restoring the last "
                    "known-good configuration removes the trigger")
        return ([CATALOG["restart_service"].action(host, service=svc)],
                f"{svc} is crash-looping; a clean restart clears transient state")
    if cat == "network" and (labels.get("interface") or labels.get("ifName")):
        iface = labels.get("interface") or labels["ifName"]
        return ([CATALOG["routeros_interface_disable"].action(host, interface=iface)],
                f"{iface} on {host} is flapping; disabling it lets traffic settle on the backup path "
                "until the carrier is fixed")
    if cat in ("cpu", "memory", "latency", "errors", "anomaly") and top is not None:
        svc = labels["service"] if cat in ("cpu", "memory") and labels.get("service") else component
        if svc in (host, incident.alert.target) and not labels.get("service"):
            # The evidence points at the machine, not at a service on it.
            if labels.get("vmid") and labels.get("pve_node"):
                return ([CATALOG["proxmox_vm_reboot"].action(labels["pve_node"], node=labels["pve_node"],
                                                               vmid=labels["vmid"])],
                        f"{host} (Proxmox guest {labels['vmid']}) is saturated and no single service explains "
                        "it; a guest reboot is the remaining fix (high risk: full outage while it boots)")
            return ([CATALOG["escalate_to_oncall"].action(host)],
                    f"{host} is {cat}-bound but no service on it stands out; a human should look")
        return ([CATALOG["restart_service"].action(host, service=svc)],
                f"{svc} is the most likely root cause ({top.cause}); restarting it is the least risky fix "
                "that clears runaway work")
    return ([CATALOG["escalate_to_oncall"].action(component)],
            "no catalog action fits this diagnosis safely; escalating with the evidence")


_HOST_AGENTS = re.compile(r"^(node|node-exporter|systemd|process|process-exporter|namedprocess)$")


def _runs_on(labels: dict[str, str], verdict: TriageVerdict) -> bool:
    """Is the host the alert names the machine the service runs on? Yes for an explicit host label, for
    a host agent (node/systemd/process exporter) reporting its own machine, and for an exporter that
    reports the service it sits beside; not for remote exporters (cloud APIs, service catalogues)."""
    return (any(labels.get(k) for k in ("host", "hostname", "nodename"))
            or bool(_HOST_AGENTS.match(verdict.exporter)) or verdict.service == verdict.exporter)


def _escalation(incident: Incident, diagnosis: Diagnosis, why: str) -> tuple[list[Action], str]:
    component = diagnosis.hypotheses[0].component if diagnosis.hypotheses else incident.alert.target
    return [escalation(_safe_target(component))], why


def _safe_target(value: str) -> str:
    """Escalation names what it is about; a value the fit check would refuse is replaced, not passed on."""
    return value if re.fullmatch(r"[A-Za-z0-9@._/:*,\[\]-]{1,128}", value) else "alert-target"


def fit_actions(actions: list[Action], incident: Incident, verdict: TriageVerdict,
                evidence: list[Evidence]) -> tuple[list[FitResult], bool]:
    """The fit of each non-escalation action, and whether all of them may be auto-approved (known fix
    with its evidence present)."""
    results = [fit_check(a, CATALOG[a.name].fit, verdict, incident.alert.labels, evidence)
               for a in actions if a.name != "escalate_to_oncall"]
    auto = bool(results) and all(r.status == "fits" and CATALOG[r.action].known_fix
                                 and not CATALOG[r.action].fit.always_human for r in results)
    return results, auto


def is_escalation(p: Plan) -> bool:
    """A plan that only hands the incident to a human: it notifies and ends, nothing waits for approval."""
    return bool(p.actions) and all(a.name == "escalate_to_oncall" for a in p.actions)


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
    from tools.catalog import CATALOG as catalog

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
    from agents.approval import blast_radius
    from tools.ansible import load_inventory

    inventory = getattr(getattr(toolbox.executor, "ansible", None), "inventory", None)
    try:
        groups = load_inventory(inventory or toolbox.settings.ANSIBLE_INVENTORY).groups
    except ValueError:
        groups = {}
    problem = blast_radius(actions, toolbox.settings, groups)
    if problem is None:
        return actions, rationale
    return [escalation(_host(incident))], f"refused: {problem}; escalating to a human instead"


async def plan(incident: Incident, verdict: TriageVerdict, diagnosis: Diagnosis, evidence: list[Evidence],
               toolbox: Toolbox, calls: list[LLMCall], known_fix: dict[str, Any] | None = None) -> tuple[Plan, bool]:
    """Catalog actions for this incident, each checked for fit before it is proposed.

    A remembered fix, the LLM's choice and the rules' choice all pass the same check: an action that
    does not belong here is dropped (the incident escalates), one whose evidence is missing stays a
    suggestion for a human, and only a known fix whose evidence is present may be auto-approved.
    """
    actions: list[Action] | None = None
    rationale = ""
    refused = ""  # why a model's plan was not used
    used_llm = False
    remembered = _remembered(known_fix)
    if isinstance(remembered, str):  # memory is untrusted: its values failed the catalog's checks
        refused = remembered
    elif remembered is not None:  # a plan that worked before for this signature comes first, if it still fits
        fits, _ = fit_actions(remembered[0], incident, verdict, evidence)
        if not any(r.status == "refused" for r in fits):
            actions, rationale = _within_blast_radius(*remembered, incident, toolbox)
            p = Plan(incident_id=incident.id, actions=actions, rationale=rationale,
                     known_fix=actions is remembered[0] and all(r.status == "fits" for r in fits),
                     fit=[r.note() for r in fits])
            return p.with_expiry(toolbox.settings.APPROVAL_TTL_SECONDS), False
    if toolbox.llm.providers and diagnosis.hypotheses:
        top = diagnosis.hypotheses[:3]
        key = {"node": "remediation", "alert": incident.alert.name, "labels": incident.alert.labels,
               "category": verdict.category, "hypotheses": [[h.component, h.cause] for h in top]}
        out = await toolbox.cached("playbook", key, lambda: toolbox.llm.structured("remediation", [
            SystemMessage(REMEDIATION_SYSTEM),
            HumanMessage(f"Plan the remediation of this {verdict.category} incident.\n"
                         + fence("alert labels", incident.alert.labels) + "\nDIAGNOSIS\n"
                         + fence("diagnosis (derived from alert and telemetry text)",
                                 "\n".join(f"- {h.component}: {h.cause} (confidence {h.confidence})" for h in top))
                         + f"\nCATALOG (trusted: the only actions that exist)\n{_catalog_brief()}"),
        ], RemediationPlan, calls), RemediationPlan)
        if out is not None:
            actions, why = _validate(out)
            if actions is not None:
                misfits = [r for r in fit_actions(actions, incident, verdict, evidence)[0] if r.status == "refused"]
                if misfits:
                    actions, why = None, "refused: " + "; ".join(r.note() for r in misfits)
            rationale = out.rationale
            used_llm = actions is not None
            refused = "; ".join(r for r in (refused, f"the model's plan was {why}" if why else "") if r)
            if actions is None and calls and calls[-1].node == "remediation":
                # Paid for but unusable: say so in the cost record; the catalog rules take over.
                calls[-1] = calls[-1].model_copy(update={"ok": False, "error": why})
    if actions is None:
        try:
            actions, rationale = plan_rules(incident, verdict, diagnosis, evidence)
        except ParameterRefused as exc:  # an alert/log value failed its catalog constraint: a human decides
            actions = [escalation(_host(incident, verdict))]
            rationale = f"refused: {exc}; escalating to a human instead"
        if refused:
            rationale = f"{rationale} (not used: {refused})"
    actions, rationale = _within_blast_radius(actions, rationale, incident, toolbox)
    fits, auto = fit_actions(actions, incident, verdict, evidence)
    misfits = [r for r in fits if r.status == "refused"]
    if misfits:
        actions, rationale = _escalation(incident, diagnosis, "no catalog action fits: " + "; ".join(
            r.note() for r in misfits) + "; escalating with the evidence")
        auto = False
    p = Plan(incident_id=incident.id, actions=actions, rationale=rationale, known_fix=auto,
             fit=[r.note() for r in fits])
    p = p.with_expiry(toolbox.settings.APPROVAL_TTL_SECONDS)
    return p, used_llm


async def preflight(p: Plan, toolbox: Toolbox) -> list[str]:
    """Dry-run checks shown to the approver (they do not change the plan's content hash)."""
    if toolbox.executor is None:
        return []
    ex: Any = toolbox.executor
    return [await asyncio.to_thread(ex.preflight, a) for a in p.actions]

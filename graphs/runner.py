"""Runs the incident graph durably: start an investigation, resume it with a decision, list them.

Every entry point (CLI, HTTP, Telegram, the Alertmanager worker) goes through this one runner, so
dedupe, the approval gate and the registry behave the same everywhere. The toolbox is rebuilt from
the incident's recorded `source` spec on resume, which is what lets another process pick it up.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from langgraph.types import Command
from pydantic import BaseModel

from agents.correlation import Correlator
from agents.toolbox import Toolbox
from agents.triage import NOISE_ALERTS
from core.models import AlertmanagerWebhook, Incident, IncidentReport, IncidentStatus, TriageVerdict, utcnow
from core.settings import Settings
from graphs.incident import build_graph, build_report, incident_from_webhook, report_mode
from memory.checkpoint import open_checkpointer
from memory.registry import OPEN_STATUSES, IncidentRegistry, IncidentRow

ToolboxFactory = Callable[[dict[str, Any]], Toolbox]
ON_DEMAND_ALERT = "OnDemandAnalysis"  # interfaces/intake.py names on-demand investigations so


class DecisionRefused(Exception):
    """A decision that does not count. The plan is left as it was (nothing consumed, nothing run).

    `status` is the HTTP status every interface maps it to; the CLI exits non-zero with the message.
    """

    status = 409


class UnknownPlan(DecisionRefused, LookupError):
    status = 404


class PlanNotPending(DecisionRefused):
    """Not awaiting approval: already decided (by whom, when), executing, interrupted, or closed."""

    status = 409


class HashMismatch(DecisionRefused):
    """The decision names a different content hash than the plan's current one."""

    status = 409


class PlanExpired(DecisionRefused):
    """The approval window ended; expiry closes the plan."""

    status = 409


class NotAuthorised(DecisionRefused, PermissionError):
    status = 403


class RunOutcome(BaseModel):
    incident_id: str
    status: IncidentStatus
    mode: str
    plan_id: str | None = None
    plan_hash: str | None = None
    report: IncidentReport
    pending: dict[str, Any] | None = None  # what the approval gate asks, while paused

    def summary(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "status": self.status.value, "plan_id": self.plan_id,
                "plan_hash": self.plan_hash, "mode": self.mode,
                "risk": self.report.plan.risk.value if self.report.plan else None,
                "root_cause": (self.report.hypotheses[0].component if self.report.hypotheses else None),
                "approval": (self.report.approval.model_dump(mode="json", include={"approver", "decision", "valid", "reason"})
                             if self.report.approval else None),
                "recovered": self.report.verification.recovered if self.report.verification else None}


class IncidentRunner:
    def __init__(self, settings: Settings, toolbox_factory: ToolboxFactory) -> None:
        self.settings = settings
        self.toolbox_factory = toolbox_factory
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> IncidentRunner:
        saver = await self._stack.enter_async_context(open_checkpointer(self.settings))
        self.graph: Any = build_graph().compile(checkpointer=saver)
        self.registry = IncidentRegistry(self.settings)
        self.correlator = Correlator(self.settings)  # storm correlation: joins cost an index look-up, no LLM
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def _toolbox(self, source: dict[str, Any]) -> Toolbox:
        toolbox = self.toolbox_factory(source)
        toolbox.open_incident = self.registry.open_incident
        return toolbox

    async def analyze(self, webhook: AlertmanagerWebhook, source: dict[str, Any] | None = None, *,
                      incident_id: str | None = None) -> RunOutcome:
        source = source or {"kind": "live"}
        incident = incident_from_webhook(webhook)
        if incident_id:  # chosen by the caller: a redelivered alert lands on the same thread, not a new one
            incident = incident.model_copy(update={"id": incident_id})
        absorbed = self._correlate(webhook, incident)
        if absorbed is not None:  # joined an open incident, or resolved alerts of known incidents
            return absorbed
        toolbox = self._toolbox(source)
        config = {"configurable": {"thread_id": incident.id}}
        result = await self.graph.ainvoke(
            {"webhook": webhook.model_dump(mode="json", by_alias=True), "incident": incident.model_dump(mode="json")},
            config, context=toolbox)
        outcome = await self._finish(incident.id, result, toolbox, source)
        triage = outcome.report.triage
        if triage.kind == "resolved":  # the alert cleared: close the incident it belonged to
            open_id = self.registry.open_incident(incident.fingerprint)
            if open_id:
                self.registry.set_status(open_id, IncidentStatus.RESOLVED.value)
        return outcome

    def _correlate(self, webhook: AlertmanagerWebhook, incident: Incident) -> RunOutcome | None:
        """Storm correlation before any agent runs (see agents/correlation.py). None: run the graph."""
        if all(a.status == "resolved" for a in webhook.alerts):
            belonged, closed = self.correlator.resolve(webhook)
            if not belonged:
                return None  # alerts the index does not know: the graph's own resolve path
            for incident_id in closed:
                self.registry.set_status(incident_id, IncidentStatus.RESOLVED.value)
            first = (closed or belonged)[0]
            why = (f"{incident.alert.name} resolved; closes {', '.join(closed)}" if closed else
                   f"{incident.alert.name} resolved; {first} still has firing alerts and stays open")
            return self._absorbed(first, IncidentStatus.RESOLVED if closed else None, "resolved", why, first,
                                  incident.severity)
        if any(a.status == "resolved" for a in webhook.alerts):  # a group update: some of its alerts cleared
            for incident_id in self.correlator.resolve(webhook)[1]:
                self.registry.set_status(incident_id, IncidentStatus.RESOLVED.value)
        if incident.alert.name in NOISE_ALERTS or incident.severity in ("none", "info"):
            return None  # heartbeats and info alerts never collect a storm
        if incident.alert.name == ON_DEMAND_ALERT:
            return None  # POST /api/v1/analyze: every request investigates anew
        c = self.correlator.correlate(webhook, incident.id)
        row = self.registry.get(c.incident_id) if c.joined else None
        if row is not None and row.status not in OPEN_STATUSES:  # closed elsewhere since: stale in the index
            self.correlator.close_incident(c.incident_id)
            c = self.correlator.correlate(webhook, incident.id)
        if not c.joined or c.incident_id == incident.id:  # a redelivery of the alert that opened it: run it
            return None
        return self._absorbed(c.incident_id, IncidentStatus.DUPLICATE, "duplicate",
                              f"joined {c.incident_id} as a related alert: {c.reason}", c.incident_id,
                              incident.severity)

    def _absorbed(self, incident_id: str, status: IncidentStatus | None, kind: str, reason: str,
                  duplicate_of: str, severity: str) -> RunOutcome:
        """The outcome of a notification that ran no agent: `incident_id` is the incident it belongs to."""
        row = self.registry.get(incident_id)
        status = status or (IncidentStatus(row.status) if row else IncidentStatus.RUNNING)
        report = IncidentReport(incident_id=incident_id, title=row.title if row else "", status=status, mode="rules",
                                triage=TriageVerdict(kind=kind, reason=reason, duplicate_of=duplicate_of,  # type: ignore[arg-type]
                                                     severity=severity))
        return RunOutcome(incident_id=incident_id, status=status, mode="rules", plan_id=row.plan_id if row else None,
                          plan_hash=row.plan_hash if row else None, report=report)

    async def decide(self, plan_id: str, *, approver: str, decision: str, channel: str = "cli",
                     plan_hash: str | None = None, comment: str = "") -> RunOutcome:
        row = self.registry.by_plan(plan_id)
        if row is None:
            raise UnknownPlan(f"unknown plan id {plan_id!r}")
        if row.status != IncidentStatus.AWAITING_APPROVAL.value:
            raise PlanNotPending(f"plan {plan_id} is not awaiting approval (incident {row.incident_id} is {row.status})")
        from agents.approval import authorised

        if not authorised(approver, channel, self.settings):
            # Refused before resuming: an unauthorised caller must not be able to consume the request.
            raise NotAuthorised(f"{approver!r} is not an authorised approver for {channel}")
        toolbox = self._toolbox(row.source)
        config = {"configurable": {"thread_id": row.incident_id}}
        payload = {"plan_id": plan_id, "plan_hash": plan_hash or row.plan_hash, "approver": approver,
                   "decision": decision, "channel": channel, "comment": comment, "decided_at": utcnow().isoformat()}
        result = await self.graph.ainvoke(Command(resume=payload), config, context=toolbox)
        return await self._finish(row.incident_id, result, toolbox, row.source)

    async def _finish(self, incident_id: str, result: dict[str, Any], toolbox: Toolbox,
                      source: dict[str, Any]) -> RunOutcome:
        config = {"configurable": {"thread_id": incident_id}}
        pending = None
        if result.get("__interrupt__"):
            values = dict((await self.graph.aget_state(config)).values)
            values["status"] = IncidentStatus.AWAITING_APPROVAL.value
            report = build_report(values, report_mode(values, toolbox))  # type: ignore[arg-type]
            pending = result["__interrupt__"][0].value
        else:
            report = IncidentReport.model_validate(result["report"])
        report.related_alerts, report.related_total = self.correlator.store.related(incident_id)
        if report.status.value not in OPEN_STATUSES:
            self.correlator.close_incident(incident_id)  # closed (resolved, rejected, ...): new alerts open a new one
        plan = report.plan
        existing = self.registry.get(incident_id)
        self.registry.upsert(IncidentRow(
            incident_id=incident_id, fingerprint=result["incident"]["fingerprint"], status=report.status.value,
            title=report.title, mode=report.mode, plan_id=plan.id if plan else None,
            plan_hash=plan.content_hash if plan else None, source=source,
            created_at=existing.created_at if existing else report.created_at, updated_at=utcnow()))
        return RunOutcome(incident_id=incident_id, status=report.status, mode=report.mode,
                          plan_id=plan.id if plan else None, plan_hash=plan.content_hash if plan else None,
                          report=report, pending=pending)

    async def report(self, incident_id: str) -> IncidentReport | None:
        row = self.registry.get(incident_id)
        if row is None:
            return None
        values = dict((await self.graph.aget_state({"configurable": {"thread_id": incident_id}})).values)
        if values.get("report"):
            report = IncidentReport.model_validate(values["report"])
            report.status = IncidentStatus(row.status)  # e.g. closed later by its resolved alerts
        else:
            values["status"] = row.status
            report = build_report(values, row.mode)  # type: ignore[arg-type]
        report.related_alerts, report.related_total = self.correlator.store.related(incident_id)
        return report

    async def resume_unfinished(self, incident_id: str, source: dict[str, Any]) -> RunOutcome | None:
        """Finish a run whose process died (a redelivered queue message), from its last checkpoint.

        None when the thread never checkpointed (run it afresh). Steps before the approval gate are
        re-entered from the last completed node; a run that stopped at the gate is just registered; a run
        that died after an approval and before its execution was checkpointed is NOT re-executed (an
        action may have run): it is closed as failed for a human to look at.
        """
        config = {"configurable": {"thread_id": incident_id}}
        snap = await self.graph.aget_state(config)
        if not snap.values:
            return None
        toolbox = self._toolbox(source)
        # Pending work: the next nodes, and tasks whose writes are saved but not yet folded into a
        # checkpoint (a process killed right after a step, before its checkpoint was written).
        pending_nodes = set(snap.next or ()) | {task.name for task in snap.tasks}
        interrupts = [i for task in snap.tasks for i in (task.interrupts or ())]
        if interrupts:
            result: dict[str, Any] = {**snap.values, "__interrupt__": interrupts}
        elif "execute" in pending_nodes:
            status = getattr(IncidentStatus, "INTERRUPTED", IncidentStatus.FAILED)
            await self.graph.aupdate_state(config, {"status": status.value}, as_node="execute")
            result = await self.graph.ainvoke(None, config, context=toolbox)
        elif pending_nodes:
            result = await self.graph.ainvoke(None, config, context=toolbox)
        elif snap.values.get("report"):
            result = dict(snap.values)
        else:
            return None
        return await self._finish(incident_id, result, toolbox, source)

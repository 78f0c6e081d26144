"""Runs the incident graph durably: start an investigation, resume it with a decision, list them.

Every entry point (CLI, HTTP, Telegram, the Alertmanager worker) goes through this one runner, so
dedupe, the approval gate and the registry behave the same everywhere. The toolbox is rebuilt from
the incident's recorded `source` spec on resume, which is what lets another process pick it up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

from langgraph.types import Command
from pydantic import BaseModel

from agents import escalation as escalation_agent
from agents.approval import SHORT_HASH, authorised, expired, names_plan, short_hash_ok
from agents.correlation import Correlation, Correlator
from agents.policy import load_policy
from agents.toolbox import Toolbox
from core.events import event
from core.models import (
    AlertmanagerWebhook,
    Approval,
    Diagnosis,
    Incident,
    IncidentReport,
    IncidentStatus,
    OnCall,
    Plan,
    TriageVerdict,
    utcnow,
)
from core.settings import Settings
from graphs.incident import (
    build_graph,
    build_report,
    gate_update,
    incident_from_webhook,
    investigate,
    report_mode,
    start,
)
from graphs.state import CHECKPOINT_TYPES, IncidentState, typed
from service.admission import Admission
from service.lifecycle import OPERATIONS, Lifecycle
from service.outcome_log import alert_fields, log_outcome
from service.queries import IncidentQueries
from service.refusals import (
    BadChange,
    DecisionRefused,
    HashMismatch,
    NotAuthorised,
    PlanExpired,
    PlanNotPending,
    PlanWithdrawn,
    UnknownPlan,
)
from store.checkpoint import open_checkpointer
from store.lease import Heartbeat, this_owner
from store.outage import outage
from store.registry import OPEN_STATUSES, DecisionRecord, DecisionState, IncidentRegistry, IncidentRow

ToolboxFactory = Callable[[dict[str, Any]], Toolbox]
OutcomeListener = Callable[["RunOutcome"], Awaitable[object]]  # its result is ignored
log = logging.getLogger(__name__)
__all__ = ["DecisionRefused", "HashMismatch", "IncidentRunner", "NotAuthorised", "PlanExpired", "PlanNotPending",
           "PlanWithdrawn", "RunOutcome", "UnknownPlan"]
# Steps after which an action may have run: a failure there is an interrupted execution, not a hand-over.
ACTING = ("execute", "verify", "fallback")


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


def _past(decision: str | None) -> str:
    return {"approve": "approved", "reject": "rejected"}.get(decision or "", "decided")


class IncidentRunner(IncidentQueries):
    """The application service; its read side (incident, plan, incidents, pending, counts) is
    `IncidentQueries`' over the registry it opens."""

    def __init__(self, settings: Settings, toolbox_factory: ToolboxFactory) -> None:
        self.settings = settings
        self.toolbox_factory = toolbox_factory
        self._stack = AsyncExitStack()
        # Called after every outcome (interfaces hook notifications here); a failing listener is logged,
        # never allowed to fail the run.
        self.listeners: list[OutcomeListener] = []
        self.owner = this_owner()  # who claims work in the registry: this process

    async def __aenter__(self) -> IncidentRunner:
        # The files every run may need are read now: a bad POLICY_FILE or TOPOLOGY_FILE stops start-up
        # with one line naming it, not the first automatic decision hours later.
        load_policy(self.settings.POLICY_FILE)
        self.registry = IncidentRegistry(self.settings)
        self.correlator = Correlator(self.settings)  # storm correlation: joins cost an index look-up, no LLM
        self.admission = Admission(self.correlator, self.registry)
        try:
            saver = await self._stack.enter_async_context(open_checkpointer(self.settings, CHECKPOINT_TYPES))
        except BaseException:
            self.correlator.store.close()
            raise
        self.graph: Any = build_graph().compile(checkpointer=saver)
        self.lifecycle = Lifecycle(self)  # acknowledge, assign, comment, snooze, close
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # ------------------------------------------------------------------ the application service --
    # What every adapter (HTTP, console, Telegram, CLI, worker, watcher, the chat's tools) reads and
    # does, besides analyze, decide, report, decisions and change below. None of them reaches the
    # registry, the lifecycle or the toolbox factory itself; refusals are the domain errors of
    # service/refusals.py, which each adapter maps to its own answer.
    def subscribe(self, listener: OutcomeListener) -> None:
        """Hear of every outcome (the notification outbox): a failing listener is logged, never fatal."""
        self.listeners.append(listener)

    def authorised(self, who: str, channel: str) -> bool:
        """May `who` decide plans and change incidents through `channel`? (agents.approval.authorised,
        the rule the gate, decide and the lifecycle apply; adapters ask it only to hide what would be
        refused anyway.)"""
        return authorised(who, channel, self.settings)

    def snoozed(self, incident_id: str) -> bool:
        """Are the incident's notifications held (a person snoozed it)?"""
        return self.lifecycle.snoozed(incident_id)

    def on_call(self, row: IncidentRow) -> OnCall:
        """Who acknowledged, holds, snoozed or closed the incident of this row."""
        return self.lifecycle.on_call(row)

    async def plan_report(self, plan_id: str) -> IncidentReport | None:
        """The report of the incident whose plan is `plan_id`, or None."""
        row = self.registry.by_plan(plan_id)
        return await self.report(row.incident_id) if row is not None else None

    def live_toolbox(self) -> Toolbox:
        """The live backends' toolbox (metrics, logs, the LLM chain and its breakers), for read-only use."""
        return self.toolbox_factory({"kind": "live"})

    async def investigate(self, webhook: AlertmanagerWebhook) -> IncidentReport:
        """Triage, diagnosis and a proposed plan, read-only: no incident is opened, nothing is put up for
        approval or executed (a question in a chat)."""
        return await investigate(webhook, self.live_toolbox())

    async def change(self, incident_id: str, operation: str, *, by: str, channel: str, to: str = "",
                     text: str = "", until: datetime | None = None) -> IncidentRow:
        """One on-call operation (service/lifecycle.py: `ack`, `assign` to, `comment` text, `snooze` until,
        `close` with text as the reason): the approver gate, the compare-and-set, the audit line."""
        life = self.lifecycle
        if operation == "ack":
            return await life.acknowledge(incident_id, by=by, channel=channel)
        if operation == "assign":
            return await life.assign(incident_id, to, by=by, channel=channel)
        if operation == "comment":
            return await life.comment(incident_id, text, by=by, channel=channel)
        if operation == "snooze":
            if until is None:
                raise BadChange("snoozing needs the time to snooze until")
            return await life.snooze(incident_id, until, by=by, channel=channel)
        if operation == "close":
            return await life.close(incident_id, text, by=by, channel=channel)
        raise ValueError(f"unknown on-call operation {operation!r} (one of {', '.join(OPERATIONS)})")

    def _toolbox(self, source: dict[str, Any], incident_id: str) -> Toolbox:
        toolbox = self.toolbox_factory(source)
        toolbox.open_incident = self.registry.open_incident

        def before_execute(plan: Plan, approval: Approval) -> None:
            if not self.registry.claim_execution(incident_id, plan.id, plan.content_hash, approval.approver,
                                                 self.owner):
                raise PlanWithdrawn(f"incident {incident_id} was closed: plan {plan.id} is withdrawn, not executed")

        toolbox.before_execute = before_execute
        return toolbox

    @asynccontextmanager
    async def _owning(self, incident_id: str) -> AsyncIterator[None]:
        """While this process works on a claimed incident: heartbeat, and on any failure say so at once
        (a kill -9 leaves that to the next process that reads the registry)."""
        with Heartbeat(lambda: self.registry.heartbeat(incident_id, self.owner)):
            try:
                yield
            except BaseException as exc:
                self.registry.mark_interrupted(incident_id, self.owner, f"{type(exc).__name__}: {exc}"[:300])
                raise

    async def analyze(self, webhook: AlertmanagerWebhook, source: dict[str, Any] | None = None, *,
                      incident_id: str | None = None) -> RunOutcome:
        source = source or {"kind": "live"}
        incident = incident_from_webhook(webhook)
        if incident_id:  # chosen by the caller: a redelivered alert lands on the same thread, not a new one
            incident = incident.model_copy(update={"id": incident_id})
        absorbed = self._correlate(webhook, incident)
        if absorbed is not None:  # joined an open incident, or resolved alerts of known incidents
            return absorbed
        toolbox = self._toolbox(source, incident.id)
        duplicate_of = None
        if incident.alert.status == "firing":
            # Claimed before diagnosis: the store's unique index admits one open incident per fingerprint,
            # so of two concurrent analyses of one alert exactly one investigates, the other is its duplicate.
            now = utcnow()
            duplicate_of = self.registry.claim_new(IncidentRow(
                incident_id=incident.id, fingerprint=incident.fingerprint, status=IncidentStatus.RUNNING.value,
                title=incident.title, mode="rules", source=source, created_at=incident.created_at, updated_at=now),
                self.owner)
            if duplicate_of is not None:
                toolbox.open_incident = lambda _fp: duplicate_of
                event("incident.joined", f"{incident.alert.name} joined {duplicate_of}: the same alert is open there",
                      incident_id=duplicate_of, notification=incident.id, reason="same fingerprint, open",
                      **alert_fields(incident.alert))
            else:
                event("incident.opened", f"incident {incident.id} opened: {incident.title}", incident_id=incident.id,
                      alerts=len(incident.alerts), **alert_fields(incident.alert))
        config = {"configurable": {"thread_id": incident.id}}
        inputs = start(webhook, incident)
        if duplicate_of is None and incident.alert.status == "firing":
            async with self._owning(incident.id):
                result = await self._invoke(inputs, config, toolbox)
                outcome = await self._finish(incident.id, result, toolbox, source)
        else:
            result = await self._invoke(inputs, config, toolbox)
            outcome = await self._finish(incident.id, result, toolbox, source)
        triage = outcome.report.triage
        if triage.kind == "resolved":  # the alert cleared: close the incident it belonged to
            open_id = self.registry.open_incident(incident.fingerprint)
            if open_id:  # its pending plan, if any, is closed with it: nobody approves a fix for a cleared alert
                self.registry.close(open_id, IncidentStatus.RESOLVED.value, f"the alert resolved ({incident.id})")
                event("incident.closed", f"incident {open_id} closed: its alert resolved", incident_id=open_id,
                      status="resolved", **alert_fields(incident.alert))
        return outcome

    def _refuse(self, exc: DecisionRefused, plan_id: str, row: IncidentRow | None, approver: str, channel: str,
                decision: str, outcome: str = "refused") -> DecisionRefused:
        incident_id = row.incident_id if row else None
        self.registry.record(DecisionRecord(at=utcnow(), incident_id=incident_id,
                                            plan_id=plan_id, approver=approver, channel=channel, decision=decision,
                                            outcome=outcome, reason=str(exc)))
        event("decision.refused", f"plan {plan_id}: {decision} by {approver} via {channel} {outcome}: {exc}",
              incident_id=incident_id, plan_id=plan_id, decision=decision, by=approver, channel=channel,
              outcome=outcome, refusal=exc.refusal, reason=str(exc))
        return exc

    @staticmethod
    def _not_pending(row: IncidentRow) -> str:
        when = f"{row.decided_at:%Y-%m-%d %H:%M:%S}Z" if row.decided_at else "?"
        if row.status == IncidentStatus.CLOSED.value or row.decision_state == DecisionState.WITHDRAWN.value:
            return (f"plan {row.plan_id} was withdrawn: incident {row.incident_id} was closed by {row.closed_by} "
                    f"({row.close_reason}); it can never be approved or run")
        if row.decision_state == DecisionState.INTERRUPTED.value:
            return (f"plan {row.plan_id} is not awaiting approval: its execution was interrupted "
                    f"({_past(row.decision)} by {row.decided_by} at {when}, the process died); it will not run "
                    "again unless you decide again with --after-interruption")
        if row.decided_by:
            return (f"plan {row.plan_id} is not awaiting approval: already decided by {row.decided_by} at {when} "
                    f"({row.decision}, {row.decision_state}; incident {row.incident_id} is {row.status})")
        return f"plan {row.plan_id} is not awaiting approval (incident {row.incident_id} is {row.status})"

    def _correlate(self, webhook: AlertmanagerWebhook, incident: Incident) -> RunOutcome | None:
        """Storm correlation before any agent runs (see agents/correlation.py). None: run the graph."""
        if all(a.status == "resolved" for a in webhook.alerts):
            belonged, closed = self.correlator.resolve(webhook)
            if not belonged:
                return None  # alerts the index does not know: the graph's own resolve path
            for incident_id in closed:
                self.registry.close(incident_id, IncidentStatus.RESOLVED.value, f"the alert resolved ({incident.alert.name})")
                event("incident.closed", f"incident {incident_id} closed: no alert of it fires", incident_id=incident_id,
                      status="resolved", **alert_fields(incident.alert))
            first = (closed or belonged)[0]
            why = (f"{incident.alert.name} resolved; closes {', '.join(closed)}" if closed else
                   f"{incident.alert.name} resolved; {first} still has firing alerts and stays open")
            return self._absorbed(first, IncidentStatus.RESOLVED if closed else None, "resolved", why, first,
                                  incident.severity)
        if any(a.status == "resolved" for a in webhook.alerts):  # a group update: some of its alerts cleared
            for incident_id in self.correlator.resolve(webhook)[1]:
                self.registry.close(incident_id, IncidentStatus.RESOLVED.value, f"the alert resolved ({incident.alert.name})")
                event("incident.closed", f"incident {incident_id} closed: no alert of it fires", incident_id=incident_id,
                      status="resolved")
        c = self._join(webhook, incident)
        if c is None:
            return None
        event("incident.joined", f"{incident.alert.name} joined {c.incident_id}: {c.reason}", incident_id=c.incident_id,
              notification=incident.id, reason=c.reason, alerts=len(incident.alerts), **alert_fields(incident.alert))
        return self._absorbed(c.incident_id, IncidentStatus.DUPLICATE, "duplicate",
                              f"joined {c.incident_id} as a related alert: {c.reason}", c.incident_id,
                              incident.severity)

    def _join(self, webhook: AlertmanagerWebhook, incident: Incident) -> Correlation | None:
        return self.admission.join(webhook, incident)

    def split(self, webhook: AlertmanagerWebhook) -> list[AlertmanagerWebhook]:
        return self.admission.split(webhook)

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
                     plan_hash: str | None = None, comment: str = "", after_interruption: bool = False) -> RunOutcome:
        """Count a human decision exactly once.

        Checks that need no claim come first (unknown plan, approver, hash): a refusal there leaves the
        plan pending. Then the compare-and-set in the registry claims the decision; only its winner
        resumes the graph. The losers, and every refusal, are in the audit trail."""
        row = self.registry.by_plan(plan_id)
        if row is None:
            raise self._refuse(UnknownPlan(f"unknown plan id {plan_id!r}"), plan_id, None, approver, channel, decision)
        if not authorised(approver, channel, self.settings):
            raise self._refuse(NotAuthorised(f"{approver!r} is not an authorised approver for {channel}"),
                               plan_id, row, approver, channel, decision)
        expected = DecisionState.PENDING.value
        if after_interruption:
            if row.decision_state != DecisionState.INTERRUPTED.value or row.status != IncidentStatus.INTERRUPTED.value:
                raise self._refuse(PlanNotPending(f"plan {plan_id} was not interrupted (incident {row.incident_id} "
                                                  f"is {row.status}); decide without --after-interruption"),
                                   plan_id, row, approver, channel, decision)
            expected = DecisionState.INTERRUPTED.value
        elif row.status == IncidentStatus.CLOSED.value or row.decision_state == DecisionState.WITHDRAWN.value:
            raise self._refuse(PlanWithdrawn(self._not_pending(row)), plan_id, row, approver, channel, decision)
        elif row.decision_state != DecisionState.PENDING.value:  # decided before we got here: we lost
            raise self._refuse(PlanNotPending(self._not_pending(row)), plan_id, row, approver, channel, decision,
                               outcome="lost" if row.decided_by and row.decision_state != DecisionState.INTERRUPTED else "refused")
        if plan_hash is not None:
            # The short hash a card shows (at least SHORT_HASH hex digits) names the plan as a prefix of its
            # content hash; the full hash is what the gate then checks, so a plan that changed is refused.
            plan_hash = plan_hash.strip().lower()
            if not short_hash_ok(plan_hash):
                raise self._refuse(HashMismatch(f"give at least {SHORT_HASH} hex digits of the plan hash (the card "
                                                f"shows them), not {plan_hash[:70]!r}: nothing was decided"),
                                   plan_id, row, approver, channel, decision)
            if not names_plan(plan_hash, row.plan_hash or "", prefix=True):
                raise self._refuse(HashMismatch(f"plan {plan_id} has content hash {(row.plan_hash or '')[:SHORT_HASH]}"
                                                f"..., not {plan_hash[:SHORT_HASH]}...: it changed since you reviewed "
                                                "it; nothing was decided, the plan still awaits approval"),
                                   plan_id, row, approver, channel, decision)
            plan_hash = row.plan_hash
        if not self.registry.claim_decision(plan_id, decision=decision, approver=approver, owner=self.owner,
                                            expected=expected):
            now = self.registry.by_plan(plan_id) or row
            raise self._refuse(PlanNotPending(self._not_pending(now)), plan_id, now, approver, channel, decision,
                               outcome="lost")
        self.registry.record(DecisionRecord(at=utcnow(), incident_id=row.incident_id, plan_id=plan_id,
                                            approver=approver, channel=channel, decision=decision, outcome="won",
                                            reason="after an interrupted execution" if after_interruption else ""))
        toolbox = self._toolbox(row.source, row.incident_id)
        config = {"configurable": {"thread_id": row.incident_id}}
        if after_interruption:
            comment = f"after interruption{': ' + comment if comment else ''}"
        payload = {"plan_id": plan_id, "plan_hash": plan_hash or row.plan_hash, "approver": approver,
                   "decision": decision, "channel": channel, "comment": comment, "decided_at": utcnow().isoformat()}
        async with self._owning(row.incident_id):
            if after_interruption:
                result = await self._resume_past_gate(config, payload, toolbox)
            else:
                result = await self._invoke(Command(resume=payload), config, toolbox)
            outcome = await self._finish(row.incident_id, result, toolbox, row.source)
        approval, plan = outcome.report.approval, outcome.report.plan
        if approval is not None and not approval.valid and plan is not None:
            self.registry.record(DecisionRecord(at=utcnow(), incident_id=row.incident_id, plan_id=plan_id,
                                                approver=approver, channel=channel, decision=decision,
                                                outcome="refused", reason=f"the gate: {approval.reason}"))
            if decision == "approve":
                # the gate checked the clock before us: if it refused for expiry, we are past it too
                cls: type[DecisionRefused] = PlanExpired if expired(plan) else HashMismatch
                raise cls(f"plan {plan_id} was refused at the gate and is now closed ({outcome.status.value}): "
                          f"{approval.reason}")
        return outcome

    async def _resume_past_gate(self, config: dict[str, Any], payload: dict[str, Any], toolbox: Toolbox) -> Any:
        """A decision after an interrupted execution: the gate already ran (that is what was interrupted),
        so the new decision is written as the gate's output and the graph continues from there."""
        state = await self.graph.aget_state(config)  # finished or not: the new decision forks from the gate
        plan = typed(state.values).get("plan")
        assert plan is not None, "a decision after an interrupted execution has a plan"
        await self.graph.aupdate_state(config, gate_update(payload, plan, self.settings), as_node="approval")
        return await self._invoke(None, config, toolbox)

    async def _invoke(self, graph_input: Any, config: dict[str, Any], toolbox: Toolbox) -> IncidentState:
        """Run the graph until it pauses or ends.

        An unexpected failure inside a step before anything acted (a bug; a RecursionError on a model's
        deeply nested YAML or JSON) does not leave a dead run behind: the incident escalates to a human,
        naming the step, with a notification and a report. A failure once an action may have run
        (ACTING) keeps the interrupted-execution protocol: the incident is `interrupted` and only an
        explicit `--after-interruption` decision runs it again. An outage (a store, the disk) is not
        the run's fault and propagates: the worker keeps its message and retries, the API says unavailable."""
        try:
            return typed(await self.graph.ainvoke(graph_input, config, context=toolbox))
        except Exception as exc:
            if outage(exc, self.settings.DATABASE_URL) or await self._failed_step(config) in ACTING:
                raise
            return await self._hand_over(config, toolbox, exc)

    async def _failed_step(self, config: dict[str, Any]) -> str:
        snap = await self.graph.aget_state(config)
        return next((t.name for t in snap.tasks if t.error), None) or (snap.next[0] if snap.next else "graph")

    async def _hand_over(self, config: dict[str, Any], toolbox: Toolbox, exc: Exception) -> IncidentState:
        """The failed step's incident goes to a human: through the graph's own escalation (notify, report)
        when it can, else (the escalation or report step itself failed) written directly."""
        for _ in range(2):
            step = await self._failed_step(config)
            log.error("incident %s: the %s step failed (%s: %s); escalating to a human", config["configurable"]
                      ["thread_id"], step, type(exc).__name__, str(exc)[:200], exc_info=exc)
            values = typed((await self.graph.aget_state(config)).values)
            incident = values["incident"]
            plan, verdict = escalation_agent.after_crash(incident, values.get("triage"), step, exc,
                                                         self.settings.APPROVAL_TTL_SECONDS)
            update = IncidentState(plan=plan, triage=verdict, failed_step=step, status=IncidentStatus.RUNNING)
            if step in ("escalate", "report"):
                break
            await self.graph.aupdate_state(config, update, as_node="plan")  # routes to "escalate", then "report"
            try:
                return typed(await self.graph.ainvoke(None, config, context=toolbox))
            except Exception as again:
                if outage(again, self.settings.DATABASE_URL):
                    raise
                exc = again
        diagnosis = Diagnosis(hypotheses=values.get("hypotheses") or [], summary=values.get("summary", ""))
        esc = await escalation_agent.escalate(incident, verdict, diagnosis, plan, toolbox, failed_step=step)
        final: IncidentState = {**update, "escalation": esc, "status": IncidentStatus.ESCALATED}
        values.update(final)
        final["report"] = build_report(values, report_mode(values, toolbox))
        await self.graph.aupdate_state(config, final, as_node="report")
        values.update(final)
        return values

    async def _finish(self, incident_id: str, result: IncidentState, toolbox: Toolbox,
                      source: dict[str, Any]) -> RunOutcome:
        config = {"configurable": {"thread_id": incident_id}}
        pending = None
        interrupts: Any = result.get("__interrupt__")  # type: ignore[typeddict-item]  # LangGraph's, beside the state
        if interrupts:
            values = typed((await self.graph.aget_state(config)).values)
            values["status"] = IncidentStatus.AWAITING_APPROVAL
            report = build_report(values, report_mode(values, toolbox))
            pending = interrupts[0].value
        else:
            report = result["report"]
        report.related_alerts, report.related_total = self.correlator.store.related(incident_id)
        if report.status.value not in OPEN_STATUSES:
            self.correlator.close_incident(incident_id)  # closed (resolved, rejected, ...): new alerts open a new one
        plan = report.plan
        existing = self.registry.get(incident_id)
        self.registry.upsert(IncidentRow(
            incident_id=incident_id, fingerprint=result["incident"].fingerprint, status=report.status.value,
            title=report.title, mode=report.mode, plan_id=plan.id if plan else None,
            plan_hash=plan.content_hash if plan else None, source=source,
            created_at=existing.created_at if existing else report.created_at, updated_at=utcnow()))
        if pending is not None and plan is not None:
            self.registry.set_pending(incident_id, plan.id, self.owner)
        else:
            a = report.approval
            lapsed = a is not None and plan is not None and not a.valid and expired(plan)
            self.registry.release(incident_id, self.owner, DecisionState.EXPIRED if lapsed else DecisionState.DONE)
        outcome = RunOutcome(incident_id=incident_id, status=report.status, mode=report.mode,
                             plan_id=plan.id if plan else None, plan_hash=plan.content_hash if plan else None,
                             report=report, pending=pending)
        log_outcome(report, pending is not None, OPEN_STATUSES)
        await self._tell(outcome)
        return outcome

    async def _tell(self, outcome: RunOutcome) -> None:
        """Every listener (the notification outbox) hears of the outcome; a failing one is logged only."""
        for listener in self.listeners:
            try:
                await listener(outcome)
            except Exception:
                log.exception("outcome listener %r failed for %s", listener, outcome.incident_id)

    async def announce(self, incident_id: str) -> None:
        """A person changed the incident (service/lifecycle.py: acknowledged, assigned, commented, closed):
        the listeners hear of its report as it is now, so every channel follows (a Telegram card is
        redrawn, PagerDuty acknowledged or resolved, Slack told), whichever interface made the change."""
        report = await self.report(incident_id)
        if report is None:
            return
        plan = report.plan
        await self._tell(RunOutcome(incident_id=incident_id, status=report.status, mode=report.mode,
                                    plan_id=plan.id if plan else None, plan_hash=plan.content_hash if plan else None,
                                    report=report))

    def decisions(self, incident_id: str) -> list[DecisionRecord]:
        """The audit trail of an incident's plan: every decision attempt and what became of it."""
        return self.registry.decisions(incident_id)

    async def report(self, incident_id: str) -> IncidentReport | None:
        row = self.registry.get(incident_id)
        if row is None:
            return None
        values = typed((await self.graph.aget_state({"configurable": {"thread_id": incident_id}})).values)
        if values.get("report"):
            report = values["report"]
            report.status = IncidentStatus(row.status)  # e.g. closed later by its resolved alerts
        elif values.get("incident") and values.get("triage"):
            values["status"] = IncidentStatus(row.status)
            report = build_report(values, row.mode)
        else:  # claimed, not triaged yet: what the registry knows, not an error
            report = IncidentReport(incident_id=incident_id, title=row.title, status=IncidentStatus(row.status),
                                    mode=row.mode, created_at=row.created_at,
                                    triage=TriageVerdict(kind="incident", reason="not triaged yet"))
        report.related_alerts, report.related_total = self.correlator.store.related(incident_id)
        report.on_call = self.lifecycle.on_call(row)
        report.comments = self.lifecycle.comments(incident_id)
        return report

    async def incident_record(self, incident_id: str) -> tuple[Incident, str] | None:
        """The incident as it was opened (its alerts: labels, annotations, generatorURL) and the webhook's
        externalURL (the Alertmanager that sent it): what a page links back to. None when unknown."""
        values = typed((await self.graph.aget_state({"configurable": {"thread_id": incident_id}})).values)
        if not values.get("incident"):
            return None
        webhook = values.get("webhook")
        return values["incident"], webhook.external_url if webhook else ""

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
        toolbox = self._toolbox(source, incident_id)
        self.registry.adopt(incident_id, self.owner)  # the dead run's claim is ours now
        async with self._owning(incident_id):
            return await self._resume(incident_id, snap, config, toolbox, source)

    async def _resume(self, incident_id: str, snap: Any, config: dict[str, Any], toolbox: Toolbox,
                      source: dict[str, Any]) -> RunOutcome | None:
        # Pending work: the next nodes, and tasks whose writes are saved but not yet folded into a
        # checkpoint (a process killed right after a step, before its checkpoint was written).
        pending_nodes = set(snap.next or ()) | {task.name for task in snap.tasks}
        interrupts = [i for task in snap.tasks for i in (task.interrupts or ())]
        if interrupts:
            result = typed({**snap.values, "__interrupt__": interrupts})
        elif "execute" in pending_nodes:
            # The registry says so too: a later approve/reject is refused, --after-interruption re-runs it.
            self.registry.mark_interrupted(incident_id, self.owner, "the process executing it died (its queue "
                                           "message was redelivered)")
            status = getattr(IncidentStatus, "INTERRUPTED", IncidentStatus.FAILED)
            await self.graph.aupdate_state(config, {"status": status.value}, as_node="execute")
            result = await self._invoke(None, config, toolbox)
        elif pending_nodes:
            result = await self._invoke(None, config, toolbox)
        elif snap.values.get("report"):
            result = typed(snap.values)
        else:
            return None
        return await self._finish(incident_id, result, toolbox, source)

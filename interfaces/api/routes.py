"""The endpoints. Thin: authenticate, validate, call the queue or the application service
(service/runner.py `IncidentRunner`), shape the answer.

A refusal of the service (service/refusals.py) becomes its HTTP status in interfaces/api/errors.py
(404 unknown plan or incident, 403 not an approver, 422 a bad change, 409 not pending / hash mismatch /
expired / withdrawn); nothing here re-implements the gate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from core.events import event
from core.models import AlertmanagerWebhook, IncidentStatus
from core.payload import PayloadError, parse_webhook
from core.resilience import all_breakers
from core.settings import Settings
from interfaces.api.auth import Authenticator, Caller
from interfaces.api.errors import line, refused
from interfaces.api.health import check_all
from interfaces.api.metrics import ServiceMetrics
from interfaces.api.schemas import (
    AnalyzeAccepted,
    AnalyzeRequest,
    AssignRequest,
    AuditTrail,
    BreakerList,
    BreakerState,
    CloseRequest,
    CommentRequest,
    DeadLetterList,
    DecisionRequest,
    DecisionResult,
    ErrorBody,
    HealthBody,
    IncidentChange,
    IncidentList,
    IncidentSummary,
    LocalAnalyzeRequest,
    PlanList,
    PlanSummary,
    SelfHealingStatus,
    SelfHealingSwitch,
    SnoozeRequest,
    WebhookAccepted,
)
from interfaces.api.unavailable import DEFAULT_RETRY_AFTER, store_open, unavailable
from service.admission_batch import AdmissionBatch, AdmissionFailed, AdmitMany
from service.intake import AlertJob, incident_id_for, on_demand_webhook
from service.refusals import DecisionRefused
from store.queue import MessageQueue, QueueUnavailable

if TYPE_CHECKING:  # not imported at run time: an intake process serves the webhook without the graph
    from service.runner import IncidentRunner
    from store.registry import IncidentRow


@dataclass
class Service:
    """Everything a request handler needs, built once by the app's lifespan."""

    settings: Settings
    # The application service (use `runner`); None in an intake process, which serves the webhook only.
    app_service: IncidentRunner | None
    queue: MessageQueue
    auth: Authenticator
    metrics: ServiceMetrics
    version: str
    # service.admission.Admission.admit_many: the incidents webhooks' alerts land in (the 202's incident_id),
    # several in one transaction (group commit: `admissions`)
    admit_many: AdmitMany
    # service.admission.Admission.split: a notification in parts about unrelated things, one incident each
    split: Callable[[AlertmanagerWebhook], list[AlertmanagerWebhook]] = lambda webhook: [webhook]
    worker: Any | None = None
    outbox: Any | None = None  # interfaces.notify.outbox.Outbox: notification delivery
    telegram: Any | None = None  # interfaces.telegram.bot.TelegramBot, when TELEGRAM_TOKEN is set
    admissions: AdmissionBatch = field(init=False)  # the webhook's admissions, group-committed

    def __post_init__(self) -> None:
        self.admissions = AdmissionBatch(self.admit_many)

    @property
    def runner(self) -> IncidentRunner:
        """The application service every handler goes through (analyze, decide, list, show, on call)."""
        if self.app_service is None:
            raise RuntimeError("this process runs no incidents (an intake process): its owner serves this")
        return self.app_service


# Dependencies are `async def`: FastAPI runs plain `def` ones in a worker thread, per request.
async def svc(request: Request) -> Service:
    return request.app.state.svc  # type: ignore[no-any-return]


def _svc(request: Request) -> Service:
    return request.app.state.svc  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(svc)]


async def reader(request: Request) -> Caller:
    return _svc(request).auth.reader(request)


async def approver(request: Request) -> Caller:
    return _svc(request).auth.approver(request)


async def switcher(request: Request) -> Caller:
    return _svc(request).auth.switcher(request)


async def prober(request: Request) -> Caller:
    return _svc(request).auth.prober(request)


async def webhook_auth(request: Request) -> None:
    try:
        _svc(request).auth.webhook(request)
    except HTTPException:
        _svc(request).metrics.intake.rejected("unauthorized")
        raise


async def local_cli(request: Request) -> Caller:
    return _svc(request).auth.local(request)


Reader = Annotated[Caller, Depends(reader)]
Approver = Annotated[Caller, Depends(approver)]
Switcher = Annotated[Caller, Depends(switcher)]
Prober = Annotated[Caller, Depends(prober)]

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413,
                                                                                    422, 503)}

router = APIRouter()


# ------------------------------------------------------------------------------------ health --
@router.get("/health", response_model=HealthBody, responses={503: {"model": HealthBody}, 401: {"model": ErrorBody}},
            tags=["service"])
async def health(s: ServiceDep, _caller: Prober) -> JSONResponse:
    status, components = await check_all(s.settings, s.queue)
    body = HealthBody(status=status, version=s.version, components=components)  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if status == "unhealthy" else 200)


@router.get("/metrics", response_class=Response, tags=["service"],
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"},
                       401: {"model": ErrorBody}})
async def metrics(s: ServiceDep, _caller: Prober) -> Response:
    queues = [s.queue, *(s.outbox.queues.values() if s.outbox is not None else ())]
    stats = []
    for queue in queues:  # a queue whose store is down is left out (its gauges keep their last value)
        try:
            stats.append(await queue.stats())
        except QueueUnavailable:
            pass
    runner = s.runner
    counts, pending_since = await asyncio.to_thread(lambda: (runner.status_counts(), runner.oldest_pending_since()))
    spilled = len(s.outbox.backlog) if s.outbox is not None else 0
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(s.metrics.render(stats, counts, pending_since, spilled), media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------------------- intake --
_WEBHOOK_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/AlertmanagerWebhook"}}}}}


@router.post("/webhook/alertmanager", status_code=202, response_model=WebhookAccepted, responses=ERRORS,
             tags=["intake"], dependencies=[Depends(webhook_auth)], openapi_extra=_WEBHOOK_BODY)
async def alertmanager_webhook(request: Request, s: ServiceDep) -> JSONResponse:
    """Alertmanager's webhook receiver (payload v4). 202 only once the notification is stored durably;
    503 when the queue is down, so Alertmanager retries.

    `interfaces.api.webhook.WebhookIntake` serves this path ahead of FastAPI's routing (the hot path:
    routing and dependency resolution cost more than the work itself); this route is its OpenAPI entry,
    and both call `accept_webhook`."""
    return JSONResponse(await accept_webhook(s, await request.body()), status_code=202)


async def accept_webhook(s: Service, raw: bytes) -> dict[str, Any]:
    """Parse, store durably, and say what was accepted (the 202 body); HTTPException otherwise.

    The body goes through `core.payload.parse_webhook`, like the CLI's `--alert FILE`: one set of limits
    (size, UTF-8, JSON depth, alerts per payload, label lengths) for every entry point."""
    try:
        webhook = parse_webhook(raw, s.settings, source="webhook body")
    except PayloadError as exc:
        s.metrics.intake.rejected("invalid")
        text = line(exc)
        status = 413 if "MAX_PAYLOAD_BYTES" in text else 422 if "not an Alertmanager v4" in text else 400
        raise HTTPException(status, text) from None
    # The same alert on two hosts (one Alertmanager group) is two problems: each part is queued and
    # admitted as a notification of its own (agents.correlation.split_by_cause); usually there is one.
    parts = s.split(webhook) if len(webhook.alerts) > 1 else [webhook]
    jobs = [AlertJob.from_webhook(part) for part in parts]
    if store_open(s.settings.DATABASE_URL):  # accepted work could not be registered: let Alertmanager re-send
        s.metrics.intake.rejected("store_unavailable")
        raise unavailable("incident store (postgres) unavailable, retry later: circuit 'postgres' is open",
                          "postgres")
    try:
        msg_ids = [await s.queue.enqueue(job.message(), key=key, dedupe=True) for job, key in jobs]
    except QueueUnavailable as exc:
        s.metrics.intake.rejected("queue_unavailable")
        raise unavailable(f"queue unavailable, retry later: {line(exc)}", _queue_dependency(s)) from None
    s.metrics.intake.received(len(webhook.alerts))
    # Stored first, then admitted: where it lands (a new incident, or the open one it joins) is decided
    # and recorded now, so the answer is the incident GET /api/v1/incidents/{id} shows. If the store is
    # down here, the 503 makes Alertmanager re-send, which the queue deduplicates.
    # Admissions of concurrent requests are committed together (service.admission_batch): answered only
    # once committed; a batch whose commit failed is a 503 for each of its requests.
    names = [a.name for a in webhook.alerts]
    try:
        landed = await s.admissions.admit([(part, job.incident_id) for part, (job, _) in zip(parts, jobs, strict=True)])
    except AdmissionFailed as exc:
        s.metrics.intake.rejected("store_unavailable")
        detail = f"incident store unavailable, retry later: {line(exc)}"
        if s.settings.DATABASE_URL:
            raise unavailable(detail, "postgres") from None
        raise HTTPException(503, detail, headers={"Retry-After": str(DEFAULT_RETRY_AFTER)}) from None
    event("alert.received", f"{len(webhook.alerts)} alert(s) received: {', '.join(dict.fromkeys(names))[:200]}",
          alerts=len(webhook.alerts), firing=sum(a.status == "firing" for a in webhook.alerts),
          alertnames=list(dict.fromkeys(names)), group_key=webhook.group_key, incident_ids=list(dict.fromkeys(landed)),
          message_ids=msg_ids)
    # Built directly (the response model documents it, and is what it is).
    return {"accepted": len(webhook.alerts), "queued": True, "incident_id": landed[0], "message_id": msg_ids[0],
            "incident_ids": list(dict.fromkeys(landed))}


@router.post("/api/v1/analyze", status_code=202, response_model=AnalyzeAccepted, responses={
    **ERRORS, 200: {"model": DecisionResult, "description": "with ?wait=true: the finished run"}}, tags=["intake"])
async def analyze(body: AnalyzeRequest, s: ServiceDep, _caller: Reader,
                  wait: Annotated[bool, Query(description="wait for the run and return its report")] = False,
                  ) -> Any:
    """Investigate a service with no alert (triage, diagnosis, plan; a plan still waits for approval)."""
    try:
        webhook, key = on_demand_webhook(body.service_name, body.time_range)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    job = AlertJob(incident_id=incident_id_for(key), webhook=webhook.model_dump(mode="json", by_alias=True))
    return await _submit(s, job, key, wait)


@router.post("/api/v1/local/analyze", include_in_schema=False, dependencies=[Depends(local_cli)])
async def local_analyze(body: LocalAnalyzeRequest, s: ServiceDep) -> Any:
    """`aiops analyze` while this service owns the data dir: same queue, the CLI's source spec."""
    try:
        webhook = AlertmanagerWebhook.model_validate(body.webhook, context=s.settings.payload_limits)
    except ValueError as exc:
        raise HTTPException(422, line(exc)) from None
    job, key = AlertJob.from_webhook(webhook, body.source)
    key = f"cli|{time.time_ns()}|{key}"  # an explicit CLI run is a new run, as without a service
    job = job.model_copy(update={"incident_id": incident_id_for(key)})
    return await _submit(s, job, key, wait=True)


async def _submit(s: Service, job: AlertJob, key: str, wait: bool) -> Any:
    if store_open(s.settings.DATABASE_URL):
        raise unavailable("incident store (postgres) unavailable, retry later: circuit 'postgres' is open",
                          "postgres")
    try:
        await s.queue.enqueue(job.model_dump(mode="json"), key=key, dedupe=True)
    except QueueUnavailable as exc:
        raise unavailable(f"queue unavailable, retry later: {line(exc)}", _queue_dependency(s)) from None
    if not wait:
        return AnalyzeAccepted(incident_id=job.incident_id, status="queued")
    deadline = time.monotonic() + s.settings.ANALYZE_WAIT_SECONDS
    while time.monotonic() < deadline:
        row = await asyncio.to_thread(s.runner.incident, job.incident_id)
        if row is not None and row.status != IncidentStatus.RUNNING.value:
            report = await s.runner.report(job.incident_id)
            return JSONResponse(_result(report, row.plan_hash), status_code=200)
        await asyncio.sleep(0.1)
    return JSONResponse(AnalyzeAccepted(incident_id=job.incident_id, status="running").model_dump(), 202)


def _result(report: Any, plan_hash: str | None = None) -> dict[str, Any]:
    plan = report.plan
    top = report.hypotheses[0].component if report.hypotheses else None
    approval = (report.approval.model_dump(mode="json", include={"approver", "decision", "valid", "reason"})
                if report.approval else None)
    return DecisionResult(
        incident_id=report.incident_id, status=report.status.value, plan_id=plan.id if plan else None,
        plan_hash=plan.content_hash if plan else plan_hash, mode=report.mode,
        risk=plan.risk.value if plan else None, root_cause=top, approval=approval,
        recovered=report.verification.recovered if report.verification else None, title=report.title,
        report=report.model_dump(mode="json")).model_dump(mode="json")


# ------------------------------------------------------------------------------- incidents --
@router.get("/api/v1/incidents", response_model=IncidentList, responses=ERRORS, tags=["incidents"])
async def incidents(s: ServiceDep, _caller: Reader, status: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> IncidentList:
    rows = await asyncio.to_thread(s.runner.incidents, limit, status)
    return IncidentList(incidents=[IncidentSummary.model_validate(r.model_dump(exclude={"source"})) for r in rows])


@router.get("/api/v1/incidents/{incident_id}", responses=ERRORS, tags=["incidents"])
async def incident(incident_id: str, s: ServiceDep, _caller: Reader) -> JSONResponse:
    """The incident's full report and its decision trail under `decisions` (the same JSON as
    `aiops show --json`)."""
    report = await s.runner.report(incident_id)
    if report is None:
        raise HTTPException(404, f"unknown incident id {incident_id!r}")
    decisions = await asyncio.to_thread(s.runner.decisions, incident_id)
    return JSONResponse({**report.model_dump(mode="json"), "decisions": [d.model_dump(mode="json") for d in decisions]})


@router.get("/api/v1/plans", response_model=PlanList, responses=ERRORS, tags=["approvals"])
async def plans(s: ServiceDep, _caller: Reader, status: str = IncidentStatus.AWAITING_APPROVAL.value,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> PlanList:
    rows = [r for r in await asyncio.to_thread(s.runner.incidents, limit, status) if r.plan_id]
    out = []
    for row in rows:
        summary = await _plan(s, row)
        if summary is not None:
            out.append(summary)
    return PlanList(plans=out)


@router.get("/api/v1/plans/{plan_id}", response_model=PlanSummary, responses=ERRORS, tags=["approvals"])
async def plan(plan_id: str, s: ServiceDep, _caller: Reader) -> PlanSummary:
    row = await asyncio.to_thread(s.runner.plan, plan_id)
    summary = await _plan(s, row) if row is not None else None
    if summary is None:
        raise HTTPException(404, f"unknown plan id {plan_id!r}")
    return summary


async def _plan(s: Service, row: IncidentRow) -> PlanSummary | None:
    report = await s.runner.report(row.incident_id)
    if report is None or report.plan is None:
        return None
    p = report.plan
    return PlanSummary(plan_id=p.id, plan_hash=p.content_hash, incident_id=row.incident_id,
                       incident_status=row.status, title=report.title, risk=p.risk.value, expires_at=p.expires_at,
                       rationale=p.rationale, actions=[a.model_dump(mode="json") for a in p.actions])


async def _decide(plan_id: str, body: DecisionRequest, s: Service, caller: Caller, decision: str) -> DecisionResult:
    try:  # the runner checks the hash (full, or a prefix of 12+ hex digits) before anything is claimed
        outcome = await s.runner.decide(plan_id, approver=caller.name, decision=decision, channel=caller.channel,
                                        plan_hash=body.plan_hash, comment=body.comment)
    except DecisionRefused as exc:
        raise refused(exc) from None
    s.metrics.observe_outcome(outcome)
    return DecisionResult.model_validate(_result(outcome.report))


@router.post("/api/v1/plans/{plan_id}/approve", response_model=DecisionResult, responses=ERRORS, tags=["approvals"])
async def approve(plan_id: str, body: DecisionRequest, s: ServiceDep, caller: Approver) -> DecisionResult:
    """Approve as the user behind the bearer token; the plan runs, is verified, and the report returned."""
    return await _decide(plan_id, body, s, caller, "approve")


@router.post("/api/v1/plans/{plan_id}/reject", response_model=DecisionResult, responses=ERRORS, tags=["approvals"])
async def reject(plan_id: str, body: DecisionRequest, s: ServiceDep, caller: Approver) -> DecisionResult:
    return await _decide(plan_id, body, s, caller, "reject")


# ------------------------------------------------------------------------------- on call --
async def change_incident(s: Service, caller: Caller, incident_id: str, operation: str, *, to: str = "",
                          text: str = "", until: datetime | None = None) -> IncidentChange:
    """One on-call operation through the service (service/lifecycle.py): its gate (APPROVERS), its
    compare-and-set, its audit line. A refusal is its HTTP status with one line (as a decision's)."""
    runner = s.runner
    try:
        row = await runner.change(incident_id, operation, by=caller.name, channel=caller.channel, to=to, text=text,
                                  until=until)
    except DecisionRefused as exc:
        raise refused(exc) from None
    return IncidentChange(incident_id=incident_id, operation=operation, by=caller.name,  # type: ignore[arg-type]
                          status=row.status, plan_id=row.plan_id, decision_state=row.decision_state,
                          on_call=runner.on_call(row))


@router.post("/api/v1/incidents/{incident_id}/ack", response_model=IncidentChange, responses=ERRORS,
             tags=["on call"])
async def acknowledge(incident_id: str, s: ServiceDep, caller: Approver) -> IncidentChange:
    """Acknowledge: you have seen it and are on it (once per incident; the audit trail says who, when)."""
    return await change_incident(s, caller, incident_id, "ack")


@router.post("/api/v1/incidents/{incident_id}/assign", response_model=IncidentChange, responses=ERRORS,
             tags=["on call"])
async def assign(incident_id: str, body: AssignRequest, s: ServiceDep, caller: Approver) -> IncidentChange:
    return await change_incident(s, caller, incident_id, "assign", to=body.to)


@router.post("/api/v1/incidents/{incident_id}/comments", response_model=IncidentChange, responses=ERRORS,
             tags=["on call"])
async def comment(incident_id: str, body: CommentRequest, s: ServiceDep, caller: Approver) -> IncidentChange:
    """A note on the incident: listed under `comments` in GET /api/v1/incidents/{id}."""
    return await change_incident(s, caller, incident_id, "comment", text=body.text)


@router.post("/api/v1/incidents/{incident_id}/snooze", response_model=IncidentChange, responses=ERRORS,
             tags=["on call"])
async def snooze(incident_id: str, body: SnoozeRequest, s: ServiceDep, caller: Approver) -> IncidentChange:
    """Hold the incident's notifications until `until` (at most 7 days ahead)."""
    return await change_incident(s, caller, incident_id, "snooze", until=body.until)


@router.post("/api/v1/incidents/{incident_id}/close", response_model=IncidentChange, responses=ERRORS,
             tags=["on call"])
async def close(incident_id: str, body: CloseRequest, s: ServiceDep, caller: Approver) -> IncidentChange:
    """Close with a reason: no more alerts join it (a new firing opens a new incident), a plan still
    waiting is withdrawn and can never run, and it is remembered with the reason."""
    return await change_incident(s, caller, incident_id, "close", text=body.reason)


@router.get("/api/v1/incidents/{incident_id}/audit", response_model=AuditTrail, responses=ERRORS,
            tags=["on call"])
async def audit(incident_id: str, s: ServiceDep, _caller: Reader) -> AuditTrail:
    """The incident's audit trail, oldest first: every decision attempt and on-call change, who and when."""
    if await asyncio.to_thread(s.runner.incident, incident_id) is None:
        raise HTTPException(404, f"unknown incident id {incident_id!r}")
    records = await asyncio.to_thread(s.runner.decisions, incident_id)
    return AuditTrail.model_validate({"decisions": [r.model_dump() for r in records]})


# ---------------------------------------------------------------------------------- events --
@router.get("/api/v1/events", tags=["incidents"], response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}}, "description": "`event: incident` per state change"}, **ERRORS})
async def events(request: Request, s: ServiceDep, _caller: Reader) -> StreamingResponse:
    """Server-sent events: one `incident` event (the incident's list JSON) each time its status changes.

    Read from the registry, so changes made by any process (a separate worker, the CLI) are seen."""

    async def stream() -> AsyncIterator[str]:
        seen = {r.incident_id: (r.status, r.updated_at)
                for r in await asyncio.to_thread(s.runner.incidents, 500)}
        yield ": connected\n\n"
        quiet = 0.0
        server = getattr(request.app.state, "server", None)  # uvicorn's, set by `aiops serve`
        while not await request.is_disconnected() and not getattr(server, "should_exit", False):
            await asyncio.sleep(0.5)
            quiet += 0.5
            rows = await asyncio.to_thread(s.runner.incidents, 500)
            for row in reversed(rows):
                state = (row.status, row.updated_at)
                if seen.get(row.incident_id) != state:
                    seen[row.incident_id] = state
                    data = IncidentSummary.model_validate(row.model_dump(exclude={"source"})).model_dump_json()
                    yield f"event: incident\nid: {row.incident_id}@{row.updated_at.isoformat()}\ndata: {data}\n\n"
                    quiet = 0.0
            if quiet >= 15:
                yield ": keep-alive\n\n"
                quiet = 0.0

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --------------------------------------------------------------------------------- service --
@router.get("/api/v1/circuit-breakers", response_model=BreakerList, responses=ERRORS, tags=["service"])
async def circuit_breakers(_caller: Reader) -> BreakerList:
    from datetime import UTC, datetime

    return BreakerList(circuit_breakers=[BreakerState(
        name=b.name, state=b.state, failures=b.failures, failure_threshold=b.failure_threshold,  # type: ignore[arg-type]
        reset_timeout_seconds=b.reset_timeout,
        opened_at=datetime.fromtimestamp(b.opened_at_wall, UTC) if b.opened_at_wall else None)
        for b in all_breakers()])


@router.get("/api/v1/dead-letters", response_model=DeadLetterList, responses=ERRORS, tags=["service"])
async def dead_letters(s: ServiceDep, _caller: Reader,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> DeadLetterList:
    try:
        return DeadLetterList(dead_letters=await s.queue.dead_letters(limit))
    except QueueUnavailable as exc:
        raise HTTPException(503, f"queue unavailable: {line(exc)}") from None


@router.get("/api/v1/notifications/dead-letters", response_model=DeadLetterList, responses=ERRORS,
            tags=["service"])
async def notification_dead_letters(s: ServiceDep, _caller: Reader) -> DeadLetterList:
    """Notifications that could not be delivered: refused for good, or NOTIFY_MAX_ATTEMPTS attempts failed."""
    if s.outbox is None:
        return DeadLetterList(dead_letters=[])
    try:
        return DeadLetterList(dead_letters=await s.outbox.dead_letters())
    except QueueUnavailable as exc:
        raise HTTPException(503, f"queue unavailable: {line(exc)}") from None


def _queue_dependency(s: Service) -> str:
    return "redis" if s.queue.backend == "redis" else "queue"






# ------------------------------------------------------------------------------ self-healing --
@router.get("/api/v1/self-healing", response_model=SelfHealingStatus, responses=ERRORS, tags=["service"])
async def self_healing(s: ServiceDep, _caller: Reader) -> SelfHealingStatus:
    """Whether automatic actions may run (SELF_HEALING and the run-time switch), and the policy in force."""
    from service import autonomy

    return SelfHealingStatus.model_validate(await asyncio.to_thread(autonomy.status, s.settings))


@router.post("/api/v1/self-healing", response_model=SelfHealingStatus, responses=ERRORS, tags=["service"])
async def switch_self_healing(body: SelfHealingSwitch, s: ServiceDep, caller: Switcher) -> SelfHealingStatus:
    """The kill switch: `{"enabled": false}` stops every automatic action at once (every worker and process
    reads it from the database); only an approver who passes the approval gate (`APPROVERS`, as for the
    CLI) may flip it, and who did is recorded."""
    from service import autonomy

    return SelfHealingStatus.model_validate(await asyncio.to_thread(autonomy.switch, s.settings, body.enabled, caller.name))

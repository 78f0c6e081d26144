"""Request and response bodies of the HTTP API (what `/openapi.json` documents).

Incident and report bodies are the same JSON as the CLI's `--json` output, so scripts can switch
between `aiops incidents --json` and `GET /api/v1/incidents` without changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from core.models import OnCall
from store.queue import DeadLetter


class RequestBody(BaseModel):
    """Every request body: strict types, so `"yes"`, `0` or `"1"` is never taken for a boolean (nor `1` for
    a string): what a client sends is exactly what it means, or 422."""

    model_config = ConfigDict(strict=True)


class ErrorBody(BaseModel):
    detail: str = Field(description="one line saying what was wrong")


class ComponentHealth(BaseModel):
    status: Literal["ok", "error", "not configured"]
    detail: str = ""


class HealthBody(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    version: str
    components: dict[str, ComponentHealth]


class WebhookAccepted(BaseModel):
    accepted: int = Field(description="alerts in the notification")
    queued: bool
    incident_id: str = Field(description="the incident the alerts landed in: the one they open, or the open "
                                         "incident they joined (stable across re-sends); the first, when "
                                         "the notification held alerts about unrelated things")
    message_id: str
    incident_ids: list[str] = Field(default_factory=list, description=(
        "every incident the notification's alerts landed in: Alertmanager groups by labels, not by cause, "
        "so the same alert on two hosts is two incidents"))


class AnalyzeRequest(RequestBody):
    service_name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$")
    time_range: str = Field("1h", pattern=r"^\d{1,4}[smhd]$", description="how far back to look: 30m, 1h, 2d")


class AnalyzeAccepted(BaseModel):
    incident_id: str
    status: str


class IncidentSummary(BaseModel):
    incident_id: str
    fingerprint: str
    status: str
    title: str
    mode: str
    plan_id: str | None = None
    plan_hash: str | None = None
    decision_state: str | None = Field(None, description="pending, claimed, executing, done, expired, interrupted")
    decided_by: str | None = None
    created_at: datetime
    updated_at: datetime


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]


class PlanSummary(BaseModel):
    plan_id: str
    plan_hash: str
    incident_id: str
    incident_status: str
    title: str
    risk: str
    expires_at: datetime | None = None
    rationale: str
    actions: list[dict[str, Any]]


class PlanList(BaseModel):
    plans: list[PlanSummary]


class DecisionRequest(RequestBody):
    plan_hash: str = Field(pattern=r"^[0-9a-f]{12,64}$",
                           description="the content hash of the plan you reviewed: all 64 hex digits, or the "
                                       "first 12 or more (what the cards show); refused when the plan changed")
    comment: str = Field("", max_length=2000)


class ChangeBody(RequestBody):
    """The on-call operations' bodies: nothing but the documented fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class AssignRequest(ChangeBody):
    to: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:-]*$",
                    description="who takes the incident (a user name)")


class CommentRequest(ChangeBody):
    text: str = Field(min_length=1, max_length=2000)


class SnoozeRequest(ChangeBody):
    until: AwareDatetime = Field(strict=False, description="ISO 8601 with a zone, within the next 7 days: "
                                                            "notifications about the incident are held until then")

    @field_validator("until", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError("until must be an ISO 8601 time string with a zone, e.g. 2026-01-01T12:00:00Z")
        return value


class CloseRequest(ChangeBody):
    reason: str = Field(min_length=1, max_length=500, description="why it is closed (kept in memory with it)")


class IncidentChange(BaseModel):
    """What an on-call operation left: the incident's status and who is on it now."""

    incident_id: str
    operation: Literal["ack", "assign", "comment", "snooze", "close"]
    by: str
    status: str
    plan_id: str | None = None
    decision_state: str | None = None
    on_call: OnCall


class AuditLine(BaseModel):
    at: datetime
    incident_id: str | None
    plan_id: str
    approver: str = Field(description="who: a user name, a Telegram approver's name (or id), policy, ...")
    channel: str
    decision: str = Field(description="approve, reject, ack, assign, comment, snooze, close, ...")
    outcome: str
    reason: str


class AuditTrail(BaseModel):
    decisions: list[AuditLine]


class DecisionResult(BaseModel):
    incident_id: str
    status: str
    plan_id: str | None
    plan_hash: str | None
    mode: str
    risk: str | None
    root_cause: str | None
    approval: dict[str, Any] | None
    recovered: bool | None
    title: str
    report: dict[str, Any]


class BreakerState(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]
    failures: int
    failure_threshold: int
    reset_timeout_seconds: float
    opened_at: datetime | None = None


class BreakerList(BaseModel):
    circuit_breakers: list[BreakerState]


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetter]


class LocalAnalyzeRequest(RequestBody):
    """The CLI's `aiops analyze` while a service owns the data dir (local token only)."""

    webhook: dict[str, Any]
    source: dict[str, Any] = Field(default_factory=lambda: {"kind": "live"})


class SelfHealingSwitch(RequestBody):
    """`POST /api/v1/self-healing`: the run-time kill switch of automatic actions."""

    enabled: bool


class SelfHealingStatus(BaseModel):
    enabled: bool  # both switches on
    env_enabled: bool  # SELF_HEALING
    runtime_enabled: bool  # the switch this endpoint flips (persisted in the database)
    changed_by: str | None = None
    changed_at: str | None = None
    policy: str
    rules: list[str]
    limits: dict[str, int]
    flap_window_seconds: int

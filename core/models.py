"""Domain models shared by every layer.

These are the boundary types: the Alertmanager webhook payload is parsed faithfully (version 4), and
everything an agent produces (evidence, hypotheses, plans, approvals, results) is a typed object, so a
plan is data that can be hashed, reviewed and approved, never free text that runs unreviewed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from core.subject import target_of

_GO_ZERO_TIME = "0001-01-01T00:00:00Z"

# Limits on what untrusted input may keep in state (settings override them through the validation
# context: `AlertmanagerWebhook.model_validate(data, context=settings.payload_limits)`).
MAX_ALERTS_PER_PAYLOAD = 100
MAX_LABEL_LENGTH = 1024
MAX_ANNOTATION_LENGTH = 4096
MAX_EXCERPT_LENGTH = 2000
MAX_SERIES_POINTS = 90  # a chartable series kept on an evidence item: 70 min at 1 min fits undownsampled
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)


def _limit(info: ValidationInfo, name: str, default: int) -> int:
    ctx = info.context if isinstance(info.context, dict) else {}
    value = ctx.get(name, default)
    return value if isinstance(value, int) and value > 0 else default


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut (never silently)."""
    if len(text) <= limit:
        return text
    note = f" …[truncated: {len(text) - limit} more characters]"
    return text[: max(0, limit - len(note))] + note


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc(ts: datetime) -> datetime:
    """Naive datetimes are taken as UTC, aware ones converted, so naive and aware bounds compare without
    TypeError: everything inside is UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# --------------------------------------------------------------------------------------- alerts --
# The alert name of an on-demand investigation (a question: `/analyze`, chat, POST /api/v1/analyze):
# not an incident that happened, so never remembered in incident memory nor cited as a past incident.
ON_DEMAND_ALERT = "OnDemandAnalysis"


class Alert(_Model):
    """One alert of an Alertmanager webhook (v4). Alertmanager's camelCase names are aliases."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @field_validator("ends_at", mode="before")
    @classmethod
    def _zero_time_is_none(cls, v: Any) -> Any:
        # Alertmanager sends Go's zero time for alerts that have not ended.
        if v in (None, "", _GO_ZERO_TIME) or (isinstance(v, str) and v.startswith("0001-01-01")):
            return None
        return v

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # Labels are an alert's identity (fingerprint, target, catalog parameters): refused, never cut.
        longest = _limit(info, "MAX_LABEL_LENGTH", MAX_LABEL_LENGTH)
        for name, value in v.items():
            if not _LABEL_NAME.fullmatch(name):
                raise ValueError(f"label name {name[:40]!r} is not a Prometheus label name")
            if _CONTROL.search(value):
                raise ValueError(f"label {name} contains a newline or control character")
            if len(value) > longest:
                raise ValueError(f"label {name} is {len(value)} characters long (MAX_LABEL_LENGTH {longest})")
        if not v.get("alertname"):
            raise ValueError("alert labels must include 'alertname'")
        return v

    @field_validator("annotations")
    @classmethod
    def _cap_annotations(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # Free text (descriptions have newlines): control characters dropped, length capped and marked.
        longest = _limit(info, "MAX_ANNOTATION_LENGTH", MAX_ANNOTATION_LENGTH)
        out = {}
        for name, value in list(v.items())[:64]:
            if not _LABEL_NAME.fullmatch(name):
                raise ValueError(f"annotation name {name[:40]!r} is not a Prometheus label name")
            out[name] = truncate(_CONTROL_BUT_NEWLINES.sub("", value), longest)
        return out

    @field_validator("starts_at")
    @classmethod
    def _real_start(cls, v: datetime) -> datetime:
        if v.tzinfo is None:  # Alertmanager always sends UTC; a naive time is read as UTC
            v = v.replace(tzinfo=UTC)
        if v < _EARLIEST:
            raise ValueError(f"startsAt {v.date().isoformat()} is not a real start time (Go's zero time or before 1970)")
        if v.year > 9000:
            raise ValueError(f"startsAt {v.date().isoformat()} is not a real start time (too far in the future)")
        return v

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    @property
    def target(self) -> str:
        """The thing the alert is about: service, pod, vm, interface or instance, in that order."""
        return target_of(self.labels)

    def effective_fingerprint(self) -> str:
        """Alertmanager's fingerprint, or the same idea (hash of sorted labels) if it was omitted."""
        if self.fingerprint:
            return self.fingerprint
        canon = json.dumps(sorted(self.labels.items()))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]


class AlertmanagerWebhook(_Model):
    """The body Alertmanager POSTs to a webhook receiver (payload version 4)."""

    version: Literal["4"] = "4"
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[Alert] = Field(min_length=1)
    # Alerts beyond MAX_ALERTS_PER_PAYLOAD: not analysed one by one, but counted here by
    # "alertname (status)" so the incident says what it left out (never silently dropped).
    omitted_alerts: dict[str, int] = Field(default_factory=dict)

    @property
    def incident_alerts(self) -> list[Alert]:
        """The alerts an incident built from this webhook holds: the firing ones, or all of them when none
        fires. The first is the one the incident is about (its name, severity and target)."""
        return [a for a in self.alerts if a.status == "firing"] or self.alerts

    @model_validator(mode="before")
    @classmethod
    def _cap_alerts(cls, data: Any, info: ValidationInfo) -> Any:
        cap = _limit(info, "MAX_ALERTS_PER_PAYLOAD", MAX_ALERTS_PER_PAYLOAD)
        if not isinstance(data, dict) or not isinstance(data.get("alerts"), list) or len(data["alerts"]) <= cap:
            return data
        kept, rest = data["alerts"][:cap], data["alerts"][cap:]
        omitted: dict[str, int] = dict(data.get("omitted_alerts") or {})
        for a in rest:
            labels = a.get("labels") if isinstance(a, dict) else None
            name = str((labels or {}).get("alertname", "?"))[:80] if isinstance(labels, dict) else "?"
            key = f"{_CONTROL.sub(' ', name)} ({a.get('status', '?') if isinstance(a, dict) else '?'})"
            omitted[key] = omitted.get(key, 0) + 1
        return {**data, "alerts": kept, "omitted_alerts": omitted}


# ------------------------------------------------------------------------------------- incident --
class IncidentStatus(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    EXECUTING = "executing"  # a decision was claimed and its plan is running (or about to)
    INTERRUPTED = "interrupted"  # the process working on it died; nothing re-runs without a new decision
    EXECUTED = "executed"
    REJECTED = "rejected"
    RESOLVED = "resolved"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    ESCALATED = "escalated"  # handed to a human with the evidence: nothing waits for approval, nothing runs
    CLOSED = "closed"  # closed by a person with a reason: takes no more alerts, its pending plan withdrawn


# What kind of problem an alert reports (the labelling rules are in evals/ALERT_LABELS.md).
Category = Literal[
    "cpu", "memory", "disk", "disk_io", "hardware", "service_down", "crashloop", "network", "latency",
    "errors", "availability", "replication", "cluster", "saturation", "queue", "config", "certificate",
    "job_failure", "time", "security", "anomaly", "unknown"]

# Where the alerting thing lives: the catalogue's groups, as fit rules need them.
Domain = Literal[
    "host", "hardware", "container", "kubernetes", "virtualization", "database", "broker", "proxy", "runtime",
    "data", "orchestrator", "ci", "network", "storage_cluster", "observability", "cloud", "other"]


class TriageVerdict(_Model):
    kind: Literal["incident", "duplicate", "resolved", "noise", "question"]
    category: Category = "unknown"
    severity: str = "warning"
    reason: str
    duplicate_of: str | None = None
    group: str = ""
    # What the rule-based reading of the alert found (agents/understanding.py); empty when not read.
    domain: Domain = "other"
    host: str = ""  # the machine: host/nodename label, else instance without the exporter port
    service: str = ""  # the affected service, from the labels the rule uses (unit, container, pod, ...)
    exporter: str = ""  # the job that scraped it
    metrics: list[str] = Field(default_factory=list)  # metric names of the rule's expression (generatorURL)


class Incident(_Model):
    id: str = Field(default_factory=lambda: new_id("inc"))
    title: str
    fingerprint: str
    group_key: str = ""
    alerts: list[Alert]
    service: str
    severity: str = "warning"
    created_at: datetime = Field(default_factory=utcnow)
    omitted_alerts: dict[str, int] = Field(default_factory=dict)  # beyond MAX_ALERTS_PER_PAYLOAD, by name

    @property
    def alert(self) -> Alert:
        return self.alerts[0]


# ------------------------------------------------------------------------------------- evidence --
def _sig(x: float) -> float:
    """4 significant digits: what a chart can show, and a third of the JSON of a full float."""
    return float(f"{x:.4g}")


class MetricSeries(_Model):
    """A bounded copy of the series a metric evidence item was read from, so a report can draw it.

    Points sit on a regular grid (`start` + i * `step_seconds`), each the mean of the samples in its
    bucket (None: no finite sample there), at most MAX_SERIES_POINTS of them, 4 significant digits:
    about 0.7 KB of JSON per item, small enough to live in every checkpoint. `band` is the range the
    detector would not have called abnormal (its reference +- 3 noise scales); `window_start` is where
    the scored window began (before it: the baseline); `peak_at` is the scored point.
    """

    start: datetime
    step_seconds: float = Field(gt=0)
    values: list[float | None] = Field(max_length=MAX_SERIES_POINTS)
    band: tuple[float, float] | None = None
    window_start: datetime | None = None
    peak_at: datetime | None = None

    @classmethod
    def from_points(cls, points: list[tuple[datetime, float]], *, band: tuple[float, float] | None = None,
                    window_start: datetime | None = None, peak_at: datetime | None = None,
                    max_points: int = MAX_SERIES_POINTS) -> MetricSeries | None:
        """Bucket means of `points` (time order) on at most `max_points` buckets; None without a finite point."""
        finite = [(t, v) for t, v in points if math.isfinite(v)]
        if not finite:
            return None
        first, last = finite[0][0].timestamp(), finite[-1][0].timestamp()
        gaps = sorted(b[0].timestamp() - a[0].timestamp() for a, b in zip(finite, finite[1:], strict=False))
        native = gaps[len(gaps) // 2] if gaps else 60.0  # the series' own resolution
        step = max(native, (last - first) / max(1, max_points - 1), 1e-3)
        n = min(max_points, int((last - first) // step) + 1)
        sums, counts = [0.0] * n, [0] * n
        for t, v in finite:
            i = min(n - 1, int(round((t.timestamp() - first) / step)))
            sums[i] += v
            counts[i] += 1
        values = [_sig(sums[i] / counts[i]) if counts[i] else None for i in range(n)]
        return cls(start=finite[0][0], step_seconds=round(step, 3), values=values,
                   band=(_sig(band[0]), _sig(band[1])) if band else None,
                   window_start=window_start, peak_at=peak_at)

    def points(self) -> list[tuple[datetime, float]]:
        return [(self.start + timedelta(seconds=i * self.step_seconds), v)
                for i, v in enumerate(self.values) if v is not None]


class Evidence(_Model):
    """One observation that a conclusion can cite: which tool, which query, what it showed, when."""

    id: str
    tool: str
    query: str
    excerpt: str
    start: datetime | None = None
    end: datetime | None = None
    component: str = ""
    signal: Literal["metric", "log", "memory", "runbook", "state"] = "metric"
    value: float | None = None  # the headline number (e.g. current value) where there is one
    baseline: float | None = None
    score: float | None = None  # how abnormal (anomaly score), where the tool gives one
    anomalous: bool = True
    series: MetricSeries | None = None  # what the metric did over the baseline and window, for charts
    # The objects this reading is about, by kind ("host", "service", "vmid", "node", "interface", "path",
    # "mount", ...): what an action's object must match before this item may justify it.
    about: dict[str, str] = Field(default_factory=dict)
    url: str = ""  # where a reader can see it (a recalled runbook's page); checked by core.links.safe_url

    @field_validator("excerpt")
    @classmethod
    def _cap_excerpt(cls, v: str, info: ValidationInfo) -> str:
        return truncate(v, _limit(info, "MAX_EXCERPT_LENGTH", MAX_EXCERPT_LENGTH))


class Hypothesis(_Model):
    component: str
    cause: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence_ids: list[str] = Field(default_factory=list)
    rationale: str = ""


class Diagnosis(_Model):
    hypotheses: list[Hypothesis]
    summary: str = ""


# ---------------------------------------------------------------------------------------- plans --
class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 0, "medium": 1, "high": 2}[self.value]


class ActionKind(StrEnum):
    """The kinds every deployment has. A toolset declares its own kinds as plain strings (a hypervisor's
    guest operations, a router's interface changes): `Action.kind` is a `str`, so core names no toolset."""

    ANSIBLE_PLAYBOOK = "ansible_playbook"
    RESTART_SERVICE = "restart_service"
    CLEANUP_DISK = "cleanup_disk"
    NOTIFY_ONLY = "notify_only"


class Action(_Model):
    """A typed catalog entry. An LLM may choose and parametrise these; it never writes commands."""

    kind: str  # an ActionKind, or a kind its toolset declares
    name: str  # catalog id, e.g. "cleanup_rotated_logs"
    target: str
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    risk: Risk
    dry_runnable: bool = True
    verification: str  # what must be true afterwards, in words
    description: str = ""


class Plan(_Model):
    id: str = Field(default_factory=lambda: new_id("plan"))
    incident_id: str
    actions: list[Action]
    rationale: str
    known_fix: bool = False  # the catalog (or memory) marks this as a fix that worked before
    checks: list[str] = Field(default_factory=list)  # preflight results (--check), not part of the hash
    fit: list[str] = Field(default_factory=list)  # why each action fits (or only as a suggestion); not hashed
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def risk(self) -> Risk:
        if not self.actions:
            return Risk.LOW
        return max((a.risk for a in self.actions), key=lambda r: r.rank)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def content_hash(self) -> str:
        """sha256 over what would run: an approval is bound to exactly this content."""
        body = {
            "incident_id": self.incident_id,
            "actions": [a.model_dump(mode="json") for a in self.actions],
            "rationale": self.rationale,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def with_expiry(self, ttl_seconds: int) -> Plan:
        return self.model_copy(update={"expires_at": self.created_at + timedelta(seconds=ttl_seconds)})


class Approval(_Model):
    plan_id: str
    plan_hash: str
    approver: str
    decision: Literal["approve", "reject"]
    decided_at: datetime = Field(default_factory=utcnow)
    channel: Literal["policy", "cli", "http", "telegram", "demo"] = "cli"
    comment: str = ""
    valid: bool = True
    reason: str = ""  # why the gate refused it, when valid is False


# ------------------------------------------------------------------------------------- outcomes --
class ExecutionResult(_Model):
    action: str
    target: str
    status: Literal["ok", "failed", "dry_run", "skipped"]
    dry_run: bool = False
    output: str = ""
    # Machine-readable facts of the run that verification needs (task UPID, snapshot taken, revert job).
    details: dict[str, str | int | float | bool] = Field(default_factory=dict)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow)


class VerificationCheck(_Model):
    evidence_id: str
    query: str
    before: float | None = None
    after: float | None = None
    recovered: bool
    note: str = ""
    series: MetricSeries | None = None  # the metric as re-read after the fix (metric checks), for charts
    checked_at: datetime | None = None  # the end of the window it was re-read over


class Verification(_Model):
    recovered: bool | None  # None: nothing was executed, so nothing to verify
    checks: list[VerificationCheck] = Field(default_factory=list)
    note: str = ""


class LLMCall(_Model):
    node: str
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    ok: bool = True
    error: str = ""


class RelatedAlert(_Model):
    """An alert that joined an open incident instead of opening its own (storm correlation)."""

    fingerprint: str
    alertname: str
    service: str = ""
    target: str = ""
    reason: str  # why it was joined: same group / fingerprint / service / target, or the topology edge
    status: Literal["firing", "resolved"] = "firing"
    joined_at: datetime


class SelfHealingDecision(_Model):
    """What the self-healing policy said about running a plan without a human, and which rule said it."""

    allowed: bool
    rule: str  # the policy rule that allowed it, or the guard that refused it
    reason: str


class Attempt(_Model):
    """An earlier plan of the same incident (an automatic fix whose verification failed)."""

    plan: Plan
    approval: Approval | None = None
    executions: list[ExecutionResult] = Field(default_factory=list)
    verification: Verification | None = None


class Escalation(_Model):
    """An incident handed to a human: what they are told. Emitted once, when the incident ends so."""

    incident_id: str
    title: str
    severity: str = "warning"
    category: str = "unknown"
    host: str = ""
    service: str = ""
    reason: str  # why no action runs (no fitting action, or what evidence is missing)
    summary: str = ""  # the diagnosis, honestly scored
    suggestions: list[str] = Field(default_factory=list)  # catalog actions a human might consider
    failed_step: str | None = None  # a graph step that failed unexpectedly (the run was handed over)
    at: datetime = Field(default_factory=utcnow)


class Comment(_Model):
    """A note a person left on an incident (the audit trail holds it; the report lists it)."""

    at: datetime
    by: str
    channel: str
    text: str


class OnCall(_Model):
    """Who is on it: the incident's lifecycle as people changed it (service/lifecycle.py), from the registry."""

    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    assignee: str | None = None
    snoozed_until: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
class Link(_Model):
    """A link back from an incident (core.links builds them: only checked http(s) URLs)."""

    kind: Literal["runbook", "rule", "silence", "alertmanager", "recalled_runbook"]
    label: str
    url: str


class IncidentReport(_Model):
    incident_id: str
    title: str
    status: IncidentStatus
    mode: str  # "rules" or the LLM model name
    triage: TriageVerdict
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    plan: Plan | None = None
    approval: Approval | None = None
    executions: list[ExecutionResult] = Field(default_factory=list)
    verification: Verification | None = None
    escalation: Escalation | None = None
    llm_calls: list[LLMCall] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    related_alerts: list[RelatedAlert] = Field(default_factory=list)  # the first ones, oldest first
    related_total: int = 0  # how many alerts joined in all
    self_healing: SelfHealingDecision | None = None
    attempts: list[Attempt] = Field(default_factory=list)  # earlier plans (failed automatic fixes)
    on_call: OnCall = Field(default_factory=OnCall)  # acknowledged, assigned, snoozed, closed: by whom, when
    comments: list[Comment] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)  # runbook, rule graph, silence form, Alertmanager

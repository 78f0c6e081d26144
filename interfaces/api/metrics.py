"""Prometheus exposition for `/metrics` (prometheus-client, one registry per app).

Counters are counted by the process that did the work: alerts by the API, incident runs, LLM calls and
actions by the embedded worker and the approve/reject handlers, notification attempts by the outbox in
the service (a separate `aiops worker` process does its own runs; scrape the service for intake and
queue figures). Gauges (queue depth/age of the `alerts` queue and of every notification channel's
queue, incidents by status, the oldest pending approval, breaker state) are read fresh at scrape time.

What watching aiops itself looks like (alert rules and their promtool tests in
`docs/deploy/prometheus/`, a Grafana dashboard in `docs/deploy/grafana/`): `tests/unit/test_monitoring.py`
keeps those files to the names defined here.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import datetime
from multiprocessing import get_context
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from core.models import IncidentStatus
from core.resilience import all_breakers

_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


_REJECT_REASONS = ("unauthorized", "invalid", "too_large", "store_unavailable", "queue_unavailable")
_WEBHOOK_STATUSES = ("202", "400", "401", "413", "422", "500", "503", "other")
_WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class IntakeCounters:
    """The webhook's figures, counted by every process that accepts webhooks: `aiops serve` and its
    `--intake-processes` (`interfaces.api.intake_processes`), which share them through one array of
    shared memory, a slot per process (each process writes only its own: no lock). The service's
    /metrics sums the slots, so the figures are whole whichever process Prometheus's scrape reaches.

    aiops_alerts_received_total, aiops_alerts_rejected_total{reason} and
    aiops_webhook_request_duration_seconds{status} (the webhook's requests are timed here, not in
    aiops_http_request_duration_seconds, which covers the other routes)."""

    _HISTOGRAM = len(_WEBHOOK_BUCKETS) + 2  # per status: a count per bucket, then +Inf, then the sum
    SLOT = 1 + len(_REJECT_REASONS) + len(_WEBHOOK_STATUSES) * _HISTOGRAM

    def __init__(self, processes: int = 1, *, shared: Any | None = None, slot: int = 0) -> None:
        self.shared = shared if shared is not None else get_context("spawn").RawArray("d", self.SLOT * processes)
        self.processes = len(self.shared) // self.SLOT
        if not 0 <= slot < self.processes:
            raise ValueError(f"slot {slot} outside the {self.processes} intake processes")
        self._base = slot * self.SLOT

    def process(self, slot: int) -> IntakeCounters:
        """The same shared figures, written by process `slot` (0: `aiops serve` itself)."""
        return IntakeCounters(shared=self.shared, slot=slot)

    def received(self, alerts: int) -> None:
        self.shared[self._base] += alerts

    def rejected(self, reason: str) -> None:
        self.shared[self._base + 1 + _REJECT_REASONS.index(reason)] += 1

    def observe(self, status: int, seconds: float) -> None:
        code = str(status) if str(status) in _WEBHOOK_STATUSES else "other"
        at = self._base + 1 + len(_REJECT_REASONS) + _WEBHOOK_STATUSES.index(code) * self._HISTOGRAM
        self.shared[at + bisect.bisect_left(_WEBHOOK_BUCKETS, seconds)] += 1  # le: bound >= seconds
        self.shared[at + self._HISTOGRAM - 1] += seconds

    def _sum(self, offset: int) -> float:
        return sum(self.shared[slot * self.SLOT + offset] for slot in range(self.processes))

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily("aiops_alerts_received", "alerts accepted by the webhook")
        received.add_metric([], self._sum(0))
        yield received
        rejected = CounterMetricFamily("aiops_alerts_rejected", "webhook notifications refused", labels=["reason"])
        for i, reason in enumerate(_REJECT_REASONS):
            if count := self._sum(1 + i):  # like a labelled Counter: a reason appears once it happened
                rejected.add_metric([reason], count)
        yield rejected
        latency = HistogramMetricFamily("aiops_webhook_request_duration_seconds",
                                        "webhook requests, from arrival to the answer (202 after the durable "
                                        "enqueue)", labels=["status"])
        for i, code in enumerate(_WEBHOOK_STATUSES):
            at = 1 + len(_REJECT_REASONS) + i * self._HISTOGRAM
            counts = [self._sum(at + b) for b in range(len(_WEBHOOK_BUCKETS) + 1)]
            if not any(counts):
                continue
            cumulative = list(itertools.accumulate(counts))
            buckets = [(repr(le), n) for le, n in zip(_WEBHOOK_BUCKETS, cumulative, strict=False)]
            latency.add_metric([code], [*buckets, ("+Inf", cumulative[-1])], self._sum(at + self._HISTOGRAM - 1))
        yield latency


class ServiceMetrics:
    def __init__(self, intake: IntakeCounters | None = None) -> None:
        r = self.registry = CollectorRegistry()
        self.intake = intake or IntakeCounters()
        r.register(self.intake)
        self.queue_depth = Gauge("aiops_queue_depth", "messages stored, not yet acknowledged", ["queue"], registry=r)
        self.queue_in_flight = Gauge("aiops_queue_in_flight", "messages held by a worker", ["queue"], registry=r)
        self.queue_age = Gauge("aiops_queue_oldest_age_seconds", "age of the oldest unacknowledged message",
                               ["queue"], registry=r)
        self.dead_letters = Gauge("aiops_queue_dead_letters", "messages in the dead-letter list", ["queue"],
                                  registry=r)
        self.incidents = Gauge("aiops_incidents", "incidents in the registry by status", ["status"], registry=r)
        self.runs = Counter("aiops_incident_runs_total", "incident runs finished by this process", ["status"],
                            registry=r)
        self.llm_calls = Counter("aiops_llm_calls_total", "LLM calls", ["provider", "model", "ok"], registry=r)
        self.llm_tokens = Counter("aiops_llm_tokens_total", "LLM tokens", ["provider", "direction"], registry=r)
        self.actions = Counter("aiops_actions_total", "executed plan actions by outcome", ["outcome"], registry=r)
        self.breaker_state = Gauge("aiops_circuit_breaker_state", "0 closed, 1 half-open, 2 open", ["name"],
                                   registry=r)
        self.breaker_failures = Gauge("aiops_circuit_breaker_failures", "consecutive failures", ["name"],
                                      registry=r)
        self.latency = Histogram("aiops_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route", "status"], registry=r,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.alert_to_plan = Histogram(
            "aiops_alert_to_plan_seconds", "from an alert's enqueue until its plan waits for a human, was "
            "escalated to one, or was approved by the self-healing policy", ["outcome"], registry=r,
            buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800))
        self.pending_age = Gauge("aiops_pending_approval_oldest_age_seconds",
                                 "how long the longest-waiting plan has waited for a human (0: none)", registry=r)
        self.notifications = Counter("aiops_notifications_total", "notification delivery attempts by outcome "
                                     "(delivered, failed: retried later, dead_lettered: given up)",
                                     ["channel", "outcome"], registry=r)
        self.notifications_spilled = Gauge("aiops_notifications_spilled", "notifications kept on disk because "
                                           "the queue's store was down (queued once it answers)", registry=r)
        self._seen: dict[str, tuple[int, int]] = {}  # incident -> (LLM calls, executions) already counted

    def observe_outcome(self, outcome: Any, queued_at: float | None = None) -> None:
        """Count what a run added: a resumed incident's report repeats the calls made before the gate.

        `queued_at` (unix seconds) is when the worker's message was enqueued: the first run of an
        incident that produced a plan then adds its alert-to-plan time."""
        report = outcome.report
        if queued_at is not None and report.incident_id not in self._seen:
            self._observe_plan(report, queued_at)
        calls_seen, runs_seen = self._seen.get(report.incident_id, (0, 0))
        for call in report.llm_calls[calls_seen:]:
            self.llm_calls.labels(call.provider, call.model, str(call.ok).lower()).inc()
            self.llm_tokens.labels(call.provider, "input").inc(call.input_tokens)
            self.llm_tokens.labels(call.provider, "output").inc(call.output_tokens)
        for execution in report.executions[runs_seen:]:
            self.actions.labels(execution.status).inc()
        self._seen[report.incident_id] = (len(report.llm_calls), len(report.executions))
        if len(self._seen) > 10000:
            self._seen.pop(next(iter(self._seen)))
        self.runs.labels(report.status.value).inc()

    def _observe_plan(self, report: Any, queued_at: float) -> None:
        if report.plan is None:
            return
        if report.status in (IncidentStatus.AWAITING_APPROVAL, IncidentStatus.ESCALATED):
            outcome, ready = report.status.value, time.time()  # the run stopped there: now is when
        elif report.approval is not None and report.approval.channel == "policy":
            outcome, ready = "auto_approved", report.approval.decided_at.timestamp()  # the run went on to execute
        else:
            return
        self.alert_to_plan.labels(outcome).observe(max(0.0, ready - queued_at))

    def count_notification(self, channel: str, outcome: str) -> None:
        """The outbox's hook: one delivery attempt and how it ended."""
        self.notifications.labels(channel, outcome).inc()

    def render(self, queue_stats: list[Any], incident_counts: dict[str, int], pending_since: datetime | None = None,
               spilled: int = 0) -> bytes:
        """The exposition; `queue_stats` holds every queue that answered (alerts, notify.<channel>)."""
        for stats in queue_stats:
            q = stats.name
            self.queue_depth.labels(q).set(stats.depth)
            self.queue_in_flight.labels(q).set(stats.in_flight)
            self.queue_age.labels(q).set(stats.oldest_age_seconds)
            self.dead_letters.labels(q).set(stats.dead_letters)
        self.pending_age.set(max(0.0, time.time() - pending_since.timestamp()) if pending_since else 0.0)
        self.notifications_spilled.set(spilled)
        self.incidents.clear()
        for status, count in incident_counts.items():
            self.incidents.labels(status).set(count)
        for b in all_breakers():
            self.breaker_state.labels(b.name).set(_BREAKER_VALUE[b.state])
            self.breaker_failures.labels(b.name).set(b.failures)
        return generate_latest(self.registry)


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class LatencyMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): times each request by its route template. The
    webhook's own path (`skip`) is timed by its handler into `IntakeCounters`, across processes."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, skip: str = "") -> None:
        self.app = app
        self.metrics = metrics
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope["path"] == self.skip:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], path, str(status[0])).observe(time.perf_counter() - started)

"""Prometheus exposition for `/metrics` (prometheus-client, one registry per app).

Counters are counted by the process that did the work: alerts by the API, incident runs, LLM calls and
actions by the embedded worker and the approve/reject handlers (a separate `aiops worker` process does
its own runs; scrape the service for intake and queue figures). Gauges (queue depth/age, incidents by
status, breaker state) are read fresh at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from core.resilience import all_breakers

_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class ServiceMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.alerts_received = Counter("aiops_alerts_received_total", "alerts accepted by the webhook", registry=r)
        self.alerts_rejected = Counter("aiops_alerts_rejected_total", "webhook notifications refused",
                                       ["reason"], registry=r)
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
        self._seen: dict[str, tuple[int, int]] = {}  # incident -> (LLM calls, executions) already counted

    def observe_outcome(self, outcome: Any) -> None:
        """Count what a run added: a resumed incident's report repeats the calls made before the gate."""
        report = outcome.report
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

    def render(self, queue_stats: Any | None, incident_counts: dict[str, int]) -> bytes:
        if queue_stats is not None:
            q = queue_stats.name
            self.queue_depth.labels(q).set(queue_stats.depth)
            self.queue_in_flight.labels(q).set(queue_stats.in_flight)
            self.queue_age.labels(q).set(queue_stats.oldest_age_seconds)
            self.dead_letters.labels(q).set(queue_stats.dead_letters)
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
    """Pure ASGI (no BaseHTTPMiddleware overhead): times each request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
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

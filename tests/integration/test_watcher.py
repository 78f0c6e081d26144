"""The anomaly watcher on in-memory telemetry, raising into the real runner (rule mode, SQLite):
raises once, never again while its incident is open, again after it closed, resolves when clean."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from agents.watcher import ALERTNAME, AnomalyWatcher, open_checker
from core.models import AlertmanagerWebhook
from core.settings import Settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory
from store.registry import IncidentRegistry
from tools.log_types import LogRecord
from tools.logs.inmemory import InMemoryLogSource
from tools.metric_types import Series
from tools.metrics.inmemory import InMemoryMetricsSource

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
FAULT = NOW - timedelta(minutes=4)


def telemetry(fault_until: datetime) -> tuple[InMemoryMetricsSource, InMemoryLogSource]:
    """payments: steady for an hour, then (from FAULT to fault_until) errors to pg-primary and an error ratio jump."""
    rng = random.Random(7)
    logs, points = [], []
    t = NOW - timedelta(minutes=90)
    while t <= NOW + timedelta(minutes=30):
        faulty = FAULT <= t < fault_until
        logs.append(LogRecord(timestamp=t, service="payments", level="info",
                              message=f"POST /pay 200 in {rng.randint(20, 60)} ms"))
        if faulty:
            for k in range(3):
                logs.append(LogRecord(timestamp=t + timedelta(seconds=k), service="payments", level="error",
                                      message=f"connection refused to pg-primary:5432 (attempt {k + 1})"))
        points.append((t, (0.35 if faulty else 0.01) + rng.uniform(-0.002, 0.002)))
        # the unwatched service is just as broken: never raised
        logs.append(LogRecord(timestamp=t, service="search", level="error" if faulty else "info",
                              message="boom" if faulty else "ok"))
        t += timedelta(seconds=15)
    series = [Series(metric="http_error_ratio", labels={"service": "payments"}, points=points)]
    return InMemoryMetricsSource(series), InMemoryLogSource(logs)


def test_watcher_finds_log_and_metric_anomalies_of_the_watched_service(settings: Settings):
    metrics, logs = telemetry(NOW + timedelta(hours=1))
    sent: list[AlertmanagerWebhook] = []

    async def sink(hook: AlertmanagerWebhook) -> None:
        sent.append(hook)

    w = AnomalyWatcher(settings, sink, services=["payments"], metrics=metrics, logs=logs, clock=lambda: NOW)
    assert asyncio.run(w.scan_once()) == sent and len(sent) == 1
    alert = sent[0].alerts[0]
    assert alert.labels["alertname"] == ALERTNAME and alert.labels["service"] == "payments"
    evidence = alert.annotations["description"]
    assert "http_error_ratio up" in evidence and "connection refused to pg-primary:5432" in evidence
    assert "(log, metric)" in alert.annotations["summary"]
    # queued but not yet an incident: not raised again
    assert asyncio.run(w.scan_once()) == []


def test_quiet_service_raises_nothing(settings: Settings):
    metrics, logs = telemetry(FAULT)  # the fault never happens
    sent: list[AlertmanagerWebhook] = []

    async def sink(hook: AlertmanagerWebhook) -> None:
        sent.append(hook)

    w = AnomalyWatcher(settings, sink, services=["payments"], metrics=metrics, logs=logs, clock=lambda: NOW)
    asyncio.run(w.scan_once())
    assert sent == []


def test_raised_once_while_open_then_again_after_close_then_resolved(settings: Settings):
    metrics, logs = telemetry(NOW + timedelta(minutes=2))
    now = [NOW]

    async def scenario() -> list[list[str]]:
        steps = []
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            async def sink(hook: AlertmanagerWebhook) -> None:
                await runner.analyze(hook)

            w = AnomalyWatcher(settings, sink, services=["payments"], metrics=metrics, logs=logs,
                               is_open=open_checker(settings), clock=lambda: now[0])
            registry = IncidentRegistry(settings)
            steps.append([h.status for h in await w.scan_once()])  # raised: an incident opens
            rows = [r for r in registry.list() if ALERTNAME in r.title]
            assert len(rows) == 1 and rows[0].status == "escalated"  # no catalog action fits: a human has it
            now[0] += timedelta(seconds=30)
            steps.append([h.status for h in await w.scan_once()])  # still anomalous, incident open: nothing
            registry.set_status(rows[0].incident_id, "resolved")  # a human closes it
            now[0] += timedelta(seconds=30)
            steps.append([h.status for h in await w.scan_once()])  # still anomalous, incident closed: again
            rows = [r for r in registry.list() if ALERTNAME in r.title]
            assert len(rows) == 2 and rows[0].status == "escalated"
            now[0] += timedelta(minutes=15)  # the fault ended at NOW+2min: the window is clean
            steps.append([h.status for h in await w.scan_once()])
            assert registry.get(rows[0].incident_id).status == "resolved"  # type: ignore[union-attr]
            steps.append([h.status for h in await w.scan_once()])  # clean and nothing raised: silence
        return steps

    assert asyncio.run(scenario()) == [["firing"], [], ["firing"], ["resolved"], []]


def test_unreadable_backend_does_not_stop_the_watch(settings: Settings):
    class Broken:
        name = "broken"

        async def search(self, query):  # type: ignore[no-untyped-def]
            raise ConnectionError("elasticsearch down")

    metrics, _ = telemetry(NOW + timedelta(hours=1))
    sent: list[AlertmanagerWebhook] = []

    async def sink(hook: AlertmanagerWebhook) -> None:
        sent.append(hook)

    w = AnomalyWatcher(settings, sink, services=["search", "payments"], metrics=None, logs=Broken(),
                       clock=lambda: NOW)
    assert asyncio.run(w.scan_once()) == []
    w2 = AnomalyWatcher(settings, sink, services=["payments"], metrics=metrics, logs=None, clock=lambda: NOW)
    assert len(asyncio.run(w2.scan_once())) == 1

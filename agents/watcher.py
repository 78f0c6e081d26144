"""The anomaly watcher: a problem nobody wrote an alert rule for still becomes an incident.

Every `WATCH_INTERVAL_SECONDS` it looks at each watched service (`WATCH_SERVICES`) over the last
`max(interval, 5 min)` against the hour before, with the same analysis code the diagnosis uses:

- logs (`tools.analysis.log_templates.summarize_logs`): a template that spikes (>= 3x its baseline
  rate, >= 3 lines), or a new one with error-level lines or at least 3 lines;
- metrics (`tools.analysis.metric_anomaly.rank_components` restricted to the service): a series
  scoring at least `ANOMALY_SCORE` (twice the evidence threshold: an alert must be surer than a clue).

A finding becomes one internal alert per service, `alertname=AiopsAnomalyDetected`, with the
evidence in its annotations, handed to `sink` (the runner, or the service's queue: the same intake
as webhooks). Its fingerprint is stable per service, so it is never raised again while its incident
is open (`is_open`) or while it waits in the queue; when the service scans clean again, the watcher
sends the matching *resolved* notification, which closes only what the anomaly belongs to.

A source that cannot be read (Prometheus down, its breaker open; Elasticsearch answering 500) is
skipped for the rest of the cycle with one log line, the other source is still scanned, and no
service is declared back to normal on a scan that could not see everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agents.degraded import outage_note
from core.models import AlertmanagerWebhook, utcnow
from core.settings import Settings
from store.correlation import CorrelationStore
from store.registry import OPEN_STATUSES, IncidentRegistry
from tools.analysis.log_templates import MIN_SPIKE_COUNT, summarize_logs
from tools.analysis.metric_anomaly import rank_components
from tools.log_types import LogQuery, LogRecord, LogSource, LogSourceError
from tools.metric_types import MetricsQueryError, MetricsSource

log = logging.getLogger(__name__)

ALERTNAME = "AiopsAnomalyDetected"
ANOMALY_SCORE = 6.0
MIN_WINDOW = timedelta(minutes=5)
BASELINE = timedelta(hours=1)
MAX_EVIDENCE = 5
PENDING_SCANS = 10  # raised but not yet an incident (still queued): not raised again for this many scans

Sink = Callable[[AlertmanagerWebhook], Awaitable[Any]]


@dataclass
class Finding:
    signal: str  # "log" | "metric"
    text: str
    score: float


@dataclass
class _Raised:
    at: datetime
    seen_open: bool = False


def open_checker(settings: Settings) -> Callable[[str], bool]:
    """Is an alert with this fingerprint part of an open incident (its own, or joined as related)?"""

    registry = IncidentRegistry(settings)
    correlation = CorrelationStore(settings)

    def is_open(fp: str) -> bool:
        if registry.open_incident(fp) is not None:
            return True
        joined = correlation.open_incident_of(fp)
        row = registry.get(joined) if joined else None
        return joined is not None and (row is None or row.status in OPEN_STATUSES)  # no row yet: being opened

    return is_open


class AnomalyWatcher:
    def __init__(self, settings: Settings, sink: Sink, *, services: list[str] | None = None,
                 metrics: MetricsSource | None = None, logs: LogSource | None = None,
                 is_open: Callable[[str], bool] | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.services = services if services is not None else settings.watch_services
        self.interval = timedelta(seconds=settings.WATCH_INTERVAL_SECONDS)
        self.window = max(self.interval, MIN_WINDOW)
        self.sink = sink
        self.metrics = metrics
        self.logs = logs
        self.is_open = is_open or (lambda fp: False)
        self.clock = clock
        self._raised: dict[str, _Raised] = {}
        self.skipped: dict[str, str] = {}  # source kind -> why it was skipped in the last scan

    # ---------------------------------------------------------------------------------- detect --
    async def _log_findings(self, service: str, start: datetime, end: datetime) -> list[Finding]:
        if self.logs is None:
            return []

        base_start = start - BASELINE
        recent = await self.logs.search(LogQuery(start=start, end=end, service=service, limit=20_000))
        if not recent:
            return []
        before: list[LogRecord] = await self.logs.search(
            LogQuery(start=base_start, end=start, service=service, limit=20_000))
        stats = summarize_logs(recent, before if before else None, top=20,
                               window_seconds=(end - start).total_seconds(),
                               baseline_seconds=(start - base_start).total_seconds())
        minutes = int((end - start).total_seconds() // 60)
        out = []
        for t in stats:
            if t.is_spike:
                out.append(Finding("log", f"log template spiking {t.spike_ratio:.1f}x: {t.count} lines in {minutes} min "
                                          f"(baseline {t.baseline_count} in {int(BASELINE.total_seconds() // 60)} min): "
                                          f"{t.example[:200]}", float(t.spike_ratio or 0)))
            elif t.is_new and (t.error_count > 0 or t.count >= MIN_SPIKE_COUNT):
                out.append(Finding("log", f"new log template: {t.count} lines in {minutes} min"
                                          f"{f', {t.error_count} at error level' if t.error_count else ''}: "
                                          f"{t.example[:200]}", float(t.count)))
        return out

    async def _metric_findings(self, service: str, start: datetime, end: datetime) -> list[Finding]:
        if self.metrics is None:
            return []

        suspects = await rank_components(self.metrics, start, end, baseline_start=start - BASELINE,
                                         components=[service])
        return [Finding("metric", f"{a.metric} {a.direction} to {a.value:.4g} (baseline {a.baseline:.4g}, "
                                  f"anomaly score {a.score:.1f}): {a.query}", a.score)
                for s in suspects for a in s.anomalies if a.score >= ANOMALY_SCORE]

    async def findings(self, service: str, now: datetime | None = None) -> list[Finding]:
        end = now or self.clock()
        start = end - self.window
        found = [*await self._metric_findings(service, start, end), *await self._log_findings(service, start, end)]
        return sorted(found, key=lambda f: -f.score)

    async def _scan_service(self, service: str, now: datetime, dead: dict[str, str]) -> list[Finding]:
        """`findings`, skipping a source that failed earlier in this cycle (`dead`, filled in here)."""
        start = now - self.window
        found: list[Finding] = []
        readers = (("metrics", MetricsQueryError, self._metric_findings), ("logs", LogSourceError, self._log_findings))
        for kind, unavailable, read in readers:
            if kind in dead:
                continue
            try:
                found += await read(service, start, now)
            except unavailable as exc:
                source = self.metrics if kind == "metrics" else self.logs
                dead[kind] = outage_note(kind, exc, getattr(source, "name", ""))
                log.warning("watch: %s skipped this cycle: %s", kind, dead[kind])
        return sorted(found, key=lambda f: -f.score)

    # ----------------------------------------------------------------------------------- raise --
    @staticmethod
    def labels(service: str) -> dict[str, str]:
        return {"alertname": ALERTNAME, "service": service, "severity": "warning", "source": "aiops-watch"}

    def webhook(self, service: str, found: list[Finding], now: datetime, status: str = "firing") -> AlertmanagerWebhook:
        kinds = sorted({f.signal for f in found})
        summary = (f"{service}: {len(found)} anomal{'y' if len(found) == 1 else 'ies'} "
                   f"({', '.join(kinds)}) that no alert rule covers") if found else f"{service}: back to normal"
        labels = self.labels(service)
        alert: dict[str, Any] = {"status": status, "labels": labels, "startsAt": now.isoformat(),
                                 "annotations": {"summary": summary,
                                                 "description": "\n".join(f"- {f.text}" for f in found[:MAX_EVIDENCE]),
                                                 "evidence_count": str(len(found))}}
        if status == "resolved":
            alert["endsAt"] = now.isoformat()
        return AlertmanagerWebhook.model_validate({
            "groupKey": f'{{}}/aiops-watch:{{service="{service}"}}', "status": status, "receiver": "aiops-watch",
            "groupLabels": {"service": service}, "commonLabels": labels, "alerts": [alert]})

    def fingerprint(self, service: str) -> str:
        return self.webhook(service, [], self.clock()).alerts[0].effective_fingerprint()

    def _suppressed(self, fp: str, now: datetime) -> bool:
        """Raised before and its incident is open, or it is still on its way (queued)."""
        raised = self._raised.get(fp)
        if self.is_open(fp):
            if raised:
                raised.seen_open = True
            return True
        if raised is None or raised.seen_open:
            return False  # never raised, or its incident has closed since
        return now - raised.at < self.interval * PENDING_SCANS

    async def scan_once(self) -> list[AlertmanagerWebhook]:
        """One pass over the watched services; returns the notifications handed to the sink."""
        now = self.clock()
        sent = []
        dead: dict[str, str] = {}  # a source that failed is not asked again this cycle (one log line)
        for service in self.services:
            try:
                found = await self._scan_service(service, now, dead)
            except Exception as exc:  # one unreadable backend must not stop the watch of the others
                log.warning("watch %s: %s: %s", service, type(exc).__name__, exc)
                continue
            if not found and dead:
                continue  # a blind spot is not "back to normal": resolve nothing on a partial scan
            fp = self.fingerprint(service)
            if found:
                if self._suppressed(fp, now):
                    continue
                hook = self.webhook(service, found, now)
                await self.sink(hook)
                self._raised[fp] = _Raised(at=now)
                sent.append(hook)
            elif fp in self._raised:  # it scans clean: resolve what the anomaly belongs to
                hook = self.webhook(service, [], now, status="resolved")
                await self.sink(hook)
                del self._raised[fp]
                sent.append(hook)
        self.skipped = dead
        return sent

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Scan every interval until `stop` is set (or forever)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.scan_once()
            except Exception as exc:  # e.g. the queue is down: try again next interval, never stop watching
                log.warning("watch: scan failed: %s: %s", type(exc).__name__, exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval.total_seconds())
            except TimeoutError:
                pass

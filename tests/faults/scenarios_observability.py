"""Fault scenarios for the observability sources: Prometheus and Elasticsearch.

- prometheus-stopped: a real `prometheus` answers, then its process is stopped; an alert goes through
  the in-process API app (queue, worker, graph, rule mode). Measured: webhook -> incident answered
  with a diagnosis that says "metrics unavailable: prometheus breaker open (connection refused)".
  Also: a query once the breaker is open (fails fast), verification after an action ("could not
  verify (prometheus down)"), one watcher cycle (one log line, logs still scanned), /health.
- prometheus-hang: a loopback socket that accepts and never answers; PROMETHEUS_TIMEOUT bounds each
  request. Measured: the first diagnosis (one timeout: a hung server is not retried), then until the
  breaker opens, then a diagnosis with it open; the TCP connections the socket saw (retry layers).
- elasticsearch-500 / elasticsearch-down: the Elasticsearch wire simulator answering 500 to
  everything, or stopped; metrics from memory are the other source. Measured: diagnosis start ->
  answer with "logs unavailable: elasticsearch ..."; requests the simulator saw.

Every scenario breaks the dependency for real; times are `time.perf_counter()` from the first call
after the fault to the fallback's answer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.degraded import UNAVAILABLE_QUERY
from agents.diagnosis import DiagnosisResult, diagnose
from agents.toolbox import Toolbox
from agents.verification import verify
from agents.watcher import AnomalyWatcher
from core import resilience
from core.models import AlertmanagerWebhook, Evidence, ExecutionResult, TriageVerdict
from core.settings import Settings, load_settings
from graphs.incident import incident_from_webhook
from tests.conftest import LOCAL_CLIENT
from tests.faults.scenario import Degradation, degradation
from tests.servers import start_prometheus
from tests.sim.elasticsearch import ElasticsearchDouble
from tools.logs.elasticsearch import ElasticsearchSource
from tools.logs.files import FileLogSource
from tools.metric_types import MetricsQueryError, Series
from tools.metrics.inmemory import InMemoryMetricsSource
from tools.metrics.prometheus import PrometheusSource

SERVICE = "checkout"
ERROR_LINE = "ERROR payment gateway timeout talking to db-01 after 5000 ms"


def fault_settings(tmp: Path, **env: Any) -> Settings:
    """Small back-offs, a breaker that stays open for the whole scenario, rule mode, no memory."""
    base: dict[str, Any] = {"AIOPS_DATA_DIR": tmp / "var", "LLM_MODE": "rules", "ENABLE_MEMORY": False,
                            "VERIFY_SETTLE_SECONDS": 0, "CB_FAILURE_THRESHOLD": 3, "CB_TIMEOUT": 120,
                            "RETRY_ATTEMPTS": 3, "RETRY_BASE_DELAY": 0.01, "RETRY_MAX_DELAY": 0.05,
                            "WORKER_MAX_DELIVERIES": 2, "WORKER_CLAIM_IDLE_SECONDS": 30}
    settings = load_settings(**{**base, **env})
    resilience.configure(settings)
    return settings


def webhook(service: str = SERVICE) -> dict[str, Any]:
    now = datetime.now(UTC)
    labels = {"alertname": "HighErrorRate", "service": service, "severity": "critical", "job": "app"}
    return {"version": "4", "groupKey": f'{{}}:{{alertname="HighErrorRate", service="{service}"}}',
            "status": "firing", "receiver": "aiops", "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": labels, "commonAnnotations": {"summary": f"{service} 5xx ratio above 5 %"},
            "alerts": [{"status": "firing", "labels": labels,
                        "annotations": {"summary": f"{service} 5xx ratio above 5 %"},
                        "startsAt": (now - timedelta(minutes=2)).isoformat(), "endsAt": "0001-01-01T00:00:00Z"}]}


def write_logs(directory: Path, now: datetime) -> str:
    """`checkout.log`: quiet INFO lines for the baseline hour, then a burst of a new ERROR template."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"{(now - timedelta(minutes=70) + timedelta(minutes=i)).isoformat()} INFO order placed id={i}"
             for i in range(0, 60, 3)]
    lines += [f"{(now - timedelta(minutes=6) + timedelta(seconds=10 * i)).isoformat()} {ERROR_LINE}"
              for i in range(30)]
    (directory / f"{SERVICE}.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "cart.log").write_text("\n".join(
        f"{(now - timedelta(minutes=70) + timedelta(minutes=i)).isoformat()} INFO cart ok" for i in range(70)) + "\n",
        encoding="utf-8")
    return str(directory / "*.log")


def metric_series(now: datetime) -> list[Series]:
    """checkout's error rate jumps from ~1/s to 30/s in the last 8 minutes; cart stays flat."""
    out = []
    for svc, jump in ((SERVICE, 30.0), ("cart", 1.0)):
        pts = []
        for i in range(160):  # every 30 s over the last 80 minutes
            t = now - timedelta(seconds=30 * (160 - i))
            base = 1.0 + 0.05 * math.sin(i)
            pts.append((t, jump if (now - t) <= timedelta(minutes=8) else base))
        out.append(Series(metric="http_server_errors_rate", labels={"service": svc}, points=pts))
    return out


def verdict() -> TriageVerdict:
    return TriageVerdict(kind="incident", category="unknown", severity="critical", reason="fault scenario",
                         service=SERVICE)


async def _diagnose(toolbox: Toolbox) -> DiagnosisResult:
    incident = incident_from_webhook(AlertmanagerWebhook.model_validate(webhook()))
    return await diagnose(incident, verdict(), toolbox, [])


def notes_of(evidence: list[Evidence]) -> list[str]:
    return [e.excerpt for e in evidence if e.query == UNAVAILABLE_QUERY]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def captured(logger: str) -> Iterator[list[str]]:
    handler = _Lines()
    log = logging.getLogger(logger)
    log.addHandler(handler)
    try:
        yield handler.lines
    finally:
        log.removeHandler(handler)


async def watch_once(settings: Settings, metrics: Any, logs: Any) -> tuple[list[AlertmanagerWebhook], list[str],
                                                                           dict[str, str]]:
    sent: list[AlertmanagerWebhook] = []

    async def sink(hook: AlertmanagerWebhook) -> None:
        sent.append(hook)

    watcher = AnomalyWatcher(settings, sink, services=[SERVICE, "cart", "payments"], metrics=metrics, logs=logs)
    with captured("agents.watcher") as lines:
        await watcher.scan_once()
    return sent, lines, watcher.skipped


def metric_evidence() -> Evidence:
    """What a diagnosis with Prometheus up would have cited, and verification re-runs."""
    return Evidence(id="ev-2", tool="metrics", query=f'http_server_errors_rate{{service="{SERVICE}"}}',
                    signal="metric", component=SERVICE, value=30.0, baseline=1.0, score=9.0,
                    excerpt="http_server_errors_rate up to 30 (baseline 1)")


def executed() -> list[ExecutionResult]:
    return [ExecutionResult(action="restart_service", target=SERVICE, status="ok", output="restarted")]


# ------------------------------------------------------------------------------------ prometheus --
FINAL = {"awaiting_approval", "escalated", "resolved", "executed", "failed", "rejected", "duplicate"}


@degradation("prometheus-stopped")
def prometheus_stopped(tmp: Path) -> Degradation:
    from fastapi.testclient import TestClient

    from interfaces.api.app import create_app

    (tmp / "prom").mkdir()
    now = datetime.now(UTC)
    logs_glob = write_logs(tmp / "logs", now)
    with start_prometheus(tmp / "prom") as prom:
        settings = fault_settings(tmp, PROMETHEUS_URL=prom.url, LOG_FILES=logs_glob, PROMETHEUS_TIMEOUT=2)
        source = PrometheusSource.from_settings(settings)
        before = asyncio.run(source.list_components())  # up and answering: the breaker is closed
        assert resilience.breaker("prometheus").state == "closed"
        with TestClient(create_app(settings, worker=True, concurrency=1), client=LOCAL_CLIENT) as c:
            prom.stop()  # the fault: the real process is gone, its port refuses connections
            t0 = time.perf_counter()
            accepted = c.post("/webhook/alertmanager", json=webhook()).json()
            row: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = c.get("/api/v1/incidents").json()["incidents"]
                row = next((r for r in rows if r["incident_id"] == accepted["incident_id"]), {})
                if row.get("status") in FINAL:
                    break
                time.sleep(0.01)
            fallback_ms = (time.perf_counter() - t0) * 1000
            report = c.get(f"/api/v1/incidents/{accepted['incident_id']}").json()
            dead = c.get("/api/v1/dead-letters").json()["dead_letters"]
            health = c.get("/health").json()
            breakers = {b["name"]: b for b in c.get("/api/v1/circuit-breakers").json()["circuit_breakers"]}
        b = resilience.breaker("prometheus")
        # once open: a query fails at once, without touching the network
        t1 = time.perf_counter()
        try:
            asyncio.run(source.query_range("up", now - timedelta(minutes=5), now))
            open_error = ""
        except MetricsQueryError as exc:
            open_error = f"{type(exc).__name__}: {exc}"
        open_call_ms = (time.perf_counter() - t1) * 1000
        toolbox = Toolbox(metrics=source, logs=FileLogSource(logs_glob), settings=settings)
        t2 = time.perf_counter()
        diag_open = asyncio.run(_diagnose(toolbox))
        diagnose_open_ms = (time.perf_counter() - t2) * 1000
        verification = asyncio.run(verify([metric_evidence()], SERVICE, executed(), toolbox))
        sent, watch_lines, skipped = asyncio.run(watch_once(settings, source, FileLogSource(logs_glob)))
    top = report["hypotheses"][0] if report.get("hypotheses") else {}
    return Degradation(
        dependency="prometheus", fault="prometheus process stopped (SIGTERM) after answering",
        behaviour="diagnosis completes on logs + the alert, report says 'metrics unavailable: prometheus breaker "
                  "open (connection refused)'; nothing dead-lettered; verification 'could not verify'; watcher "
                  "skips metrics for the cycle; /health degraded",
        fallback_ms=fallback_ms, breaker_state=b.state,
        details={"components_before": before, "incident_status": row.get("status"),
                 "escalation": report.get("escalation") or {},
                 "notes": notes_of([Evidence.model_validate(e) for e in report.get("evidence", [])]),
                 "summary": top.get("rationale", ""),
                 "top_hypothesis": {k: top.get(k) for k in ("component", "confidence", "cause")},
                 "dead_letters": len(dead), "health": health["status"],
                 "health_prometheus": health["components"]["prometheus"],
                 "breaker_api": breakers.get("prometheus"), "attempts_charged": b.total_failures,
                 "rejected_fast": b.total_rejected, "open_call_ms": round(open_call_ms, 2), "open_error": open_error,
                 "diagnose_open_ms": round(diagnose_open_ms, 1), "diagnose_open_notes": notes_of(diag_open.evidence),
                 "verification": verification.model_dump(mode="json"),
                 "watch_sent": [(h.alerts[0].labels["service"], h.alerts[0].status) for h in sent],
                 "watch_log_lines": watch_lines, "watch_skipped": skipped})


class HangingServer:
    """A loopback TCP socket that accepts every connection and never answers (a hung Prometheus)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)  # held open, never read from or written to

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._conns:
            conn.close()
        self.sock.close()


@degradation("prometheus-hang")
def prometheus_hang(tmp: Path) -> Degradation:
    timeout = 0.5
    logs_glob = write_logs(tmp / "logs", datetime.now(UTC))
    with HangingServer() as hung:
        settings = fault_settings(tmp, PROMETHEUS_URL=hung.url, LOG_FILES=logs_glob, PROMETHEUS_TIMEOUT=timeout)
        toolbox = Toolbox(metrics=PrometheusSource.from_settings(settings), logs=FileLogSource(logs_glob),
                          settings=settings)
        b = resilience.breaker("prometheus")
        runs: list[float] = []
        notes: list[list[str]] = []
        for _ in range(settings.CB_FAILURE_THRESHOLD + 1):  # until the breaker opens, then once with it open
            t0 = time.perf_counter()
            res = asyncio.run(_diagnose(toolbox))
            runs.append((time.perf_counter() - t0) * 1000)
            notes.append(notes_of(res.evidence))
        connections = hung.accepted
    return Degradation(
        dependency="prometheus", fault=f"loopback socket accepts and never answers (PROMETHEUS_TIMEOUT={timeout}s)",
        behaviour="each diagnosis pays one timeout (a hung server is not retried) and completes without metrics; "
                  "after CB_FAILURE_THRESHOLD timeouts the breaker opens and diagnoses skip Prometheus at once",
        fallback_ms=runs[0], breaker_state=b.state,
        details={"diagnosis_ms": [round(r, 1) for r in runs], "notes": notes, "tcp_connections": connections,
                 "attempts_charged": b.total_failures, "rejected_fast": b.total_rejected,
                 "timeout_s": timeout})


# --------------------------------------------------------------------------------- elasticsearch --
def es_docs(now: datetime) -> list[dict[str, Any]]:
    docs = []
    for i in range(30):
        ts = (now - timedelta(minutes=6) + timedelta(seconds=10 * i)).isoformat().replace("+00:00", "Z")
        docs.append({"_index": "logs-app", "_id": f"e{i}", "_source": {
            "@timestamp": ts, "message": ERROR_LINE, "service": {"name": SERVICE}, "log": {"level": "error"}}})
    return docs


def _es_scenario(tmp: Path, fault: str) -> Degradation:
    now = datetime.now(UTC)
    settings = fault_settings(tmp, ELASTICSEARCH_TIMEOUT=2)
    with ElasticsearchDouble(es_docs(now)) as es:
        return asyncio.run(_es_run(es, settings, now, fault))  # one loop: the async ES client is bound to it


async def _es_run(es: ElasticsearchDouble, settings: Settings, now: datetime, fault: str) -> Degradation:
    source = ElasticsearchSource(es.url, timeout=settings.ELASTICSEARCH_TIMEOUT)
    metrics = InMemoryMetricsSource(metric_series(now))
    toolbox = Toolbox(metrics=metrics, logs=source, settings=settings)
    try:
        up = await _diagnose(toolbox)  # answering: the logs are evidence, no note
        seen_up = len(es.requests)
        if fault == "500":
            es.fail_next(500, "internal_server_error", "simulated node failure")
        else:
            es.stop()
        t0 = time.perf_counter()
        res = await _diagnose(toolbox)
        fallback_ms = (time.perf_counter() - t0) * 1000
        seen_fault = len(es.requests)
        t1 = time.perf_counter()
        again = await _diagnose(toolbox)  # breaker open: no request at all
        open_ms = (time.perf_counter() - t1) * 1000
        seen_open = len(es.requests)
        verification = await verify([Evidence(
            id="ev-3", tool="logs", signal="log", component=SERVICE, value=30, baseline=0,
            query=f'{{"service": "{SERVICE}", "template": "ERROR payment gateway timeout talking to <*>"}}',
            excerpt="30x in 10 min")], SERVICE, executed(), toolbox)
        sent, watch_lines, skipped = await watch_once(settings, metrics, source)
    finally:
        await source.close()
    b = resilience.breaker("elasticsearch")
    top, up_top = res.diagnosis.hypotheses[0], up.diagnosis.hypotheses[0]
    return Degradation(
        dependency="elasticsearch",
        fault="Elasticsearch simulator answers HTTP 500 to every request" if fault == "500"
        else "Elasticsearch simulator stopped (port refuses connections)",
        behaviour="diagnosis completes on metrics + the alert, report says 'logs unavailable: elasticsearch "
                  "breaker open (...)'; verification 'could not verify'; watcher skips logs for the cycle",
        fallback_ms=fallback_ms, breaker_state=b.state,
        details={"notes": notes_of(res.evidence), "notes_up": notes_of(up.evidence),
                 "log_evidence_up": sum(e.tool == "logs" for e in up.evidence),
                 "top_hypothesis": {"component": top.component, "confidence": top.confidence, "cause": top.cause},
                 "top_hypothesis_up": {"component": up_top.component, "confidence": up_top.confidence},
                 "summary": res.diagnosis.summary,
                 "requests_during_fault": seen_fault - seen_up if fault == "500" else None,
                 "requests_with_breaker_open": seen_open - seen_fault if fault == "500" else None,
                 "open_diagnosis_ms": round(open_ms, 1), "open_notes": notes_of(again.evidence),
                 "attempts_charged": b.total_failures, "verification": verification.model_dump(mode="json"),
                 "watch_sent": [(h.alerts[0].labels["service"], h.alerts[0].status) for h in sent],
                 "watch_log_lines": watch_lines, "watch_skipped": skipped})


@degradation("elasticsearch-500")
def elasticsearch_500(tmp: Path) -> Degradation:
    return _es_scenario(tmp, "500")


@degradation("elasticsearch-down")
def elasticsearch_down(tmp: Path) -> Degradation:
    return _es_scenario(tmp, "down")

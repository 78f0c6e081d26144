"""Fault tests for Prometheus and Elasticsearch: the same scenarios the degradation benchmark times.

Asserted: the breaker opened, the fallback answered (diagnosis completed on the other evidence, with
the one-line note), nothing was lost (no dead letter), no false success and no false anomaly. Never
times: `benchmarks/degradation_bench.py --only prometheus-stopped ...` measures those.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.scenarios_observability import (
    SERVICE,
    elasticsearch_500,
    elasticsearch_down,
    prometheus_hang,
    prometheus_stopped,
)
from tests.servers import ServerUnavailable

pytestmark = pytest.mark.integration


def test_prometheus_stopped_diagnosis_degrades_instead_of_dead_lettering(tmp_path: Path) -> None:
    try:
        d = prometheus_stopped(tmp_path)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    x = d.details
    assert d.breaker_state == "open" and x["breaker_api"]["state"] == "open"
    # the incident was diagnosed (on the logs and the alert) and reached a human, not the DLQ: the alert
    # names no host, so no action has an object to act on and the diagnosis is handed over as an escalation
    assert x["incident_status"] == "escalated" and x["dead_letters"] == 0
    assert "nothing this incident names or read is an object it acts on" in x["escalation"]["reason"]
    assert x["escalation"]["summary"].startswith(f"{SERVICE}: logs:")
    assert x["notes"] == ["metrics unavailable: prometheus breaker open (connection refused)"]
    assert x["top_hypothesis"]["component"] == SERVICE and "logs:" in x["top_hypothesis"]["cause"]
    assert x["top_hypothesis"]["confidence"] <= 0.6  # logs alone corroborate it: capped accordingly
    assert "metrics unavailable" in x["summary"]
    # retries not multiplied: one retry layer, each attempt charged, then calls refused without a connection
    assert x["attempts_charged"] == 3 and x["rejected_fast"] >= 2
    assert x["open_error"].startswith("MetricsUnavailable") and "CircuitOpenError" in x["open_error"]
    assert x["diagnose_open_notes"] == x["notes"]
    # verification never claims success it could not read
    v = x["verification"]
    assert v["recovered"] is None and v["note"].startswith("could not verify (prometheus down)")
    # the watcher: one line for the dead source, logs still scanned (a real finding), no false resolve
    assert x["watch_log_lines"] == ["watch: metrics skipped this cycle: " + x["notes"][0]]
    assert x["watch_sent"] == [(SERVICE, "firing")] and set(x["watch_skipped"]) == {"metrics"}
    assert x["health"] == "degraded" and x["health_prometheus"]["status"] == "error"
    assert x["health_prometheus"]["detail"].startswith("circuit breaker open")


def test_prometheus_hang_costs_one_timeout_per_call_until_the_breaker_opens(tmp_path: Path) -> None:
    d = prometheus_hang(tmp_path)
    x = d.details
    assert d.breaker_state == "open"
    # CB_FAILURE_THRESHOLD (3) hung requests in all: no urllib3 retries under the guarded one, no retry
    # of a timeout; the fourth diagnosis did not touch the socket
    assert x["tcp_connections"] == 3 and x["attempts_charged"] == 3 and x["rejected_fast"] == 1
    assert x["notes"][0] == ["metrics unavailable: prometheus timed out"]
    assert x["notes"][-1] == ["metrics unavailable: prometheus breaker open (timed out)"]


@pytest.mark.parametrize("scenario,cause", [(elasticsearch_500, "HTTP 500"), (elasticsearch_down, "connection refused")])
def test_elasticsearch_fault_diagnosis_on_metrics(tmp_path: Path, scenario, cause: str) -> None:  # type: ignore[no-untyped-def]
    d = scenario(tmp_path)
    x = d.details
    assert d.breaker_state == "open" and x["attempts_charged"] == 3
    assert x["notes_up"] == [] and x["log_evidence_up"] >= 1
    assert x["notes"] == [f"logs unavailable: elasticsearch breaker open ({cause})"] == x["open_notes"]
    # completed on the metrics, confidence lowered with the logs gone
    assert x["top_hypothesis"]["component"] == SERVICE and x["top_hypothesis"]["cause"] == "error rate up"
    assert x["top_hypothesis"]["confidence"] < x["top_hypothesis_up"]["confidence"]
    if x["requests_during_fault"] is not None:  # the 500 simulator counts what reached it
        assert x["requests_during_fault"] == 3 and x["requests_with_breaker_open"] == 0
    v = x["verification"]
    assert v["recovered"] is None and v["note"].startswith("could not verify (elasticsearch down)")
    assert x["watch_log_lines"] == [f"watch: logs skipped this cycle: {x['notes'][0]}"]
    assert x["watch_sent"] == [(SERVICE, "firing")]  # from the metrics; cart and payments: nothing false


def test_watcher_does_not_resolve_an_anomaly_on_a_scan_that_could_not_read_its_source(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from agents.watcher import AnomalyWatcher
    from core.models import AlertmanagerWebhook
    from tests.faults.scenarios_observability import es_docs, fault_settings
    from tests.sim.elasticsearch import ElasticsearchDouble
    from tools.logs.elasticsearch import ElasticsearchSource
    from tools.metrics.inmemory import InMemoryMetricsSource

    settings = fault_settings(tmp_path)
    sent: list[AlertmanagerWebhook] = []

    async def sink(hook: AlertmanagerWebhook) -> None:
        sent.append(hook)

    async def run(es: ElasticsearchDouble) -> None:
        source = ElasticsearchSource(es.url, timeout=2)
        # metrics readable and quiet: only the logs could show the anomaly, and they cannot be read
        watcher = AnomalyWatcher(settings, sink, services=[SERVICE], logs=source, metrics=InMemoryMetricsSource([]))
        try:
            await watcher.scan_once()  # the error burst: raised
            es.fail_next(500, "internal_server_error", "simulated node failure")
            for _ in range(3):  # blind: neither raised again nor resolved, and no exception
                await watcher.scan_once()
                assert set(watcher.skipped) == {"logs"}
            es.recover()
        finally:
            await source.close()

    with ElasticsearchDouble(es_docs(datetime.now(UTC))) as es:
        asyncio.run(run(es))
    assert [(h.alerts[0].labels["service"], h.alerts[0].status) for h in sent] == [(SERVICE, "firing")]

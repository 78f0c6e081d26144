"""PrometheusSource and the metric tools against a real Prometheus holding a recorded Nezha incident.

The incident (Online Boutique 2022-08-22, network delay injected into cartservice at 04:27:03; the
alert fires at 04:29:03) is exported from the recorded CSVs as OpenMetrics, backfilled with
`promtool tsdb create-blocks-from openmetrics`, and served by Debian's `prometheus` on a free loopback
port with no scrape targets. The same incident ranked through PrometheusSource and through
RecordedMetricsSource must give the same ranking. Skips only when the binaries (or the shared
dataset) are absent; CI installs the `prometheus` package.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import resilience
from tests.openmetrics import to_openmetrics
from tests.servers import free_port
from tools.analysis.metric_anomaly import rank_components
from tools.metric_types import MetricsQueryError, MetricsUnavailable
from tools.metrics.prometheus import PrometheusSource
from tools.metrics.recorded import RecordedMetricsSource
from tools.metrics.tools import make_metric_tools

pytestmark = pytest.mark.integration

DATA = Path(os.environ.get("DATASETS_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"))
ALERT = datetime(2022, 8, 22, 4, 29, 3, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
BASELINE = timedelta(minutes=60)
EXPORT_FROM = ALERT - WINDOW - BASELINE - timedelta(minutes=5)
EXPORT_TO = ALERT + timedelta(minutes=15)  # data after the alert exists in the TSDB: `now` must hide it


def _recording() -> RecordedMetricsSource:
    return RecordedMetricsSource.nezha(DATA, "onlineboutique", "2022-08-22")


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prom, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not promtool:
        pytest.skip("prometheus/promtool binaries not installed (Debian package `prometheus`)")
    if not (DATA / "nezha-rca" / "onlineboutique" / "2022-08-22" / "metric").is_dir():
        pytest.skip(f"Nezha dataset not found under {DATA} (set DATASETS_DIR)")
    work = tmp_path_factory.mktemp("prometheus")
    series = _recording().query_range_sync('{service=~".+"}', EXPORT_FROM, EXPORT_TO)
    om = work / "incident.om"
    om.write_text(to_openmetrics(series), encoding="utf-8")
    data = work / "tsdb"
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
                   check=True, capture_output=True, timeout=120)
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [prom, f"--config.file={config}", f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=100y",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not become ready: {(work / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_discovery_matches_the_recording(prometheus_url: str) -> None:
    prom = PrometheusSource(prometheus_url, scrape_interval=60, now=ALERT)
    rec = _recording().at(ALERT)
    assert _run(prom.list_components()) == _run(rec.list_components())
    assert _run(prom.list_metrics()) == _run(rec.list_metrics())
    assert "edge_latency_p50_seconds" in _run(prom.list_metrics("cartservice"))
    labels = _run(prom.series('cpu_usage_rate_percent{service="frontend"}', EXPORT_FROM, ALERT))
    assert labels and labels[0]["pod"].startswith("frontend-")


def test_samples_round_trip_exactly_and_never_pass_now(prometheus_url: str) -> None:
    prom = PrometheusSource(prometheus_url, scrape_interval=60, now=ALERT)
    rec = _recording().at(ALERT)
    q = 'cpu_usage_rate_percent{service="checkoutservice"}'
    got = _run(prom.query_samples(q, ALERT - timedelta(minutes=30), ALERT + timedelta(minutes=10)))
    want = _run(rec.query_samples(q, ALERT - timedelta(minutes=30), ALERT + timedelta(minutes=10)))
    assert len(got) == len(want) == 1
    assert [v for _, v in got[0].points] == [v for _, v in want[0].points]
    assert max(t for t, _ in got[0].points) <= ALERT
    # range queries are clamped too, though the TSDB holds 15 minutes past the alert
    ranged = _run(prom.query_range(q, ALERT - timedelta(minutes=30), ALERT + timedelta(minutes=10)))
    assert ranged and max(t for t, _ in ranged[0].points) <= ALERT
    unbounded = PrometheusSource(prometheus_url, scrape_interval=60)
    later = _run(unbounded.query_range(q, ALERT, ALERT + timedelta(minutes=10), step_seconds=60))
    assert max(t for t, _ in later[0].points) > ALERT  # the data is there; only `now` hid it
    instant = _run(prom.query_instant(q))
    assert instant and instant[0].points[0][0] == ALERT


def test_metric_tools_query_the_incident(prometheus_url: str) -> None:
    prom = PrometheusSource(prometheus_url, scrape_interval=60, now=ALERT)
    tools = {t.name: t for t in make_metric_tools(prom)}
    listed = _run(tools["list_metrics"].ainvoke({"service": "cartservice"}))
    assert "edge_latency_p50_seconds" in listed
    summary = _run(tools["query_metric"].ainvoke({"metric": "edge_latency_p50_seconds", "service": "cartservice",
                                                  "minutes": 15}))
    assert '"destination_service":"cartservice"' in summary and '"shape"' in summary
    compared = _run(tools["compare_to_baseline"].ainvoke({"metric": "edge_latency_p50_seconds",
                                                          "service": "cartservice"}))
    assert '"anomalous":true' in compared  # the injected delay, seen through Prometheus


def test_ranking_through_prometheus_equals_ranking_through_recording(prometheus_url: str) -> None:
    prom = PrometheusSource(prometheus_url, scrape_interval=60, now=ALERT)
    rec = _recording().at(ALERT)
    graph = rec.call_graph()
    kw = {"baseline_start": ALERT - WINDOW - BASELINE, "call_graph": graph}
    via_prom = _run(rank_components(prom, ALERT - WINDOW, ALERT, **kw))
    via_rec = _run(rank_components(rec, ALERT - WINDOW, ALERT, **kw))
    assert [s.component for s in via_prom] == [s.component for s in via_rec]
    assert [round(s.score, 2) for s in via_prom] == [round(s.score, 2) for s in via_rec]
    assert via_prom[0].component == "cartservice"
    assert via_prom[0].anomalies[0].metric == "edge_latency_p50_seconds"


def test_bad_query_is_one_readable_error(prometheus_url: str) -> None:
    prom = PrometheusSource(prometheus_url, scrape_interval=60, now=ALERT)
    for _ in range(4):  # a refusal (HTTP 400) from a healthy server: not retried, not charged to its breaker
        with pytest.raises(MetricsQueryError, match="query_range") as refused:
            _run(prom.query_range("sum(", ALERT - timedelta(minutes=5), ALERT))
        assert not isinstance(refused.value, MetricsUnavailable)
    assert resilience.breaker("prometheus").state == "closed" and resilience.breaker("prometheus").total_failures == 0
    dead = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(MetricsUnavailable, match="prometheus http://127.0.0.1") as down:
        _run(dead.list_components())
    assert down.value.reason == "connection refused" and resilience.breaker("prometheus").state == "open"

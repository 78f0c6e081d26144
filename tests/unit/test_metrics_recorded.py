"""Selector, metric naming, the recorded (Nezha layout) source, OpenMetrics export and the tools."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import fake_nezha
from tests.openmetrics import to_openmetrics
from tools.metric_types import Series
from tools.metrics.prometheus import choose_step
from tools.metrics.recorded import RecordedMetricsSource, metric_name_for_column, service_of_pod
from tools.metrics.selector import Selector
from tools.metrics.tools import make_metric_tools
from tools.result import ToolResult, invoke_tool


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def metric_dir(tmp_path: Path) -> Path:
    return fake_nezha.write_layout(tmp_path)


@pytest.mark.parametrize(("column", "name"), [
    ("CpuUsageRate(%)", "cpu_usage_rate_percent"),
    ("CpuUsage(m)", "cpu_usage_millicores"),
    ("MemoryUsage(Mi)", "memory_usage_mebibytes"),
    ("PodServerLatencyP90(s)", "pod_server_latency_p90_seconds"),
    ("PodWorkload(Ops)", "pod_workload_ops"),
    ("NetworkReceiveBytes", "network_receive_bytes"),
    ("NodeCpuUsageRate(%)", "node_cpu_usage_rate_percent"),
    ("SyscallRead", "syscall_read"),
])
def test_column_names_become_prometheus_legal_metric_names(column: str, name: str) -> None:
    assert metric_name_for_column(column) == name
    assert Selector.parse(name).name == name


@pytest.mark.parametrize(("pod", "service"), [
    ("frontend-579b9bff58-t2dbm", "frontend"),
    ("ts-basic-service-5dc8d4f9fd-46997", "ts-basic-service"),
    ("redis-cart-0", "redis-cart"),
    ("node-exporter-x7k2p", "node-exporter"),
    ("standalone", "standalone"),
])
def test_service_is_the_pod_name_without_its_suffixes(pod: str, service: str) -> None:
    assert service_of_pod(pod) == service


def test_selector_matchers() -> None:
    sel = Selector.parse('cpu{service=~"front.*", pod!="x", env!~"dev|test"}')
    assert sel.matches("cpu", {"service": "frontend", "pod": "y", "env": "prod"})
    assert not sel.matches("cpu", {"service": "cart", "pod": "y"})
    assert not sel.matches("cpu", {"service": "frontend", "pod": "x"})
    assert not sel.matches("cpu", {"service": "frontend", "env": "dev"})
    assert not sel.matches("mem", {"service": "frontend"})
    with pytest.raises(ValueError):
        Selector.parse("rate(cpu[5m])")


def test_recorded_source_discovery(metric_dir: Path) -> None:
    src = RecordedMetricsSource(metric_dir)
    assert run(src.list_components()) == sorted(fake_nezha.PODS)
    metrics = run(src.list_metrics("frontend"))
    assert "cpu_usage_rate_percent" in metrics and "pod_server_latency_p90_seconds" in metrics
    assert "edge_latency_p50_seconds" in run(src.list_metrics("productcatalogservice"))
    assert run(src.label_values("pod", 'cpu_usage_rate_percent{service="cartservice"}')) == \
        [fake_nezha.PODS["cartservice"]]
    assert src.call_graph() == {"frontend": ["cartservice", "productcatalogservice"]}  # IP peers dropped


def test_recorded_series_have_service_and_pod_labels_and_parse_go_times(metric_dir: Path) -> None:
    src = RecordedMetricsSource(metric_dir)
    start = fake_nezha.START
    (s,) = run(src.query_range('cpu_usage_rate_percent{service="frontend"}', start, start + timedelta(minutes=9)))
    assert s.labels == {"service": "frontend", "pod": fake_nezha.PODS["frontend"]}
    assert len(s.points) == 10
    assert s.points[0][0] == start  # Go's nanoseconds cut to microseconds
    edges = run(src.query_range('edge_latency_p50_seconds{source_service="frontend"}', start,
                                start + timedelta(minutes=5)))
    assert {e.labels["destination_service"] for e in edges} == {"cartservice", "productcatalogservice"}
    assert all(e.labels["service"] == e.labels["destination_service"] for e in edges)


def test_now_bounds_every_read(metric_dir: Path) -> None:
    src = RecordedMetricsSource(metric_dir, now=fake_nezha.ALERT)
    far = fake_nezha.ALERT + timedelta(hours=1)
    series = run(src.query_range('{service=~".+"}', fake_nezha.START, far))
    assert series and max(t for s in series for t, _ in s.points) <= fake_nezha.ALERT
    assert run(src.query_range("cpu_usage_rate_percent", fake_nezha.ALERT + timedelta(seconds=1), far)) == []
    (inst,) = run(src.query_instant('cpu_usage_rate_percent{service="cartservice"}', at=far))
    assert inst.points[0][0] <= fake_nezha.ALERT
    # the unbounded recording does have the (wild) later data
    later = run(src.at(None).query_range('cpu_usage_rate_percent{service="cartservice"}', fake_nezha.TRAP, far))
    assert later[0].points[0][1] > 100


def test_step_downsamples_recorded_series(metric_dir: Path) -> None:
    src = RecordedMetricsSource(metric_dir)
    start = fake_nezha.START
    (s,) = run(src.query_range('cpu_usage_rate_percent{service="frontend"}', start, start + timedelta(minutes=59),
                               step_seconds=600))
    assert len(s.points) == 6


def test_choose_step_targets_a_few_hundred_points_never_below_scrape_interval() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    assert choose_step(t0, t0 + timedelta(minutes=10), scrape_interval=15) == 15
    assert choose_step(t0, t0 + timedelta(days=1), scrape_interval=15) == pytest.approx(173, abs=1)
    span = timedelta(days=30)
    assert span.total_seconds() / choose_step(t0, t0 + span) <= 1000


def test_openmetrics_export_is_grouped_typed_and_exact() -> None:
    t = datetime(2022, 8, 22, 4, 0, 19, 123456, tzinfo=UTC)
    text = to_openmetrics([
        Series(metric="b_metric", labels={"service": 'we"ird'}, points=[(t, 0.1 + 0.2)]),
        Series(metric="a_metric", labels={"service": "x"}, points=[(t + timedelta(minutes=1), 2.0), (t, 1.0)]),
    ])
    lines = text.splitlines()
    assert lines[0] == "# TYPE a_metric gauge"
    assert lines[1] == f'a_metric{{service="x"}} 1.0 {t.timestamp():.3f}'
    assert lines[3] == "# TYPE b_metric gauge"
    assert float(lines[4].split(" ")[1]) == 0.1 + 0.2
    assert 'service="we\\"ird"' in lines[4]
    assert lines[-1] == "# EOF"


def test_metric_tools_are_typed_compact_and_clocked_by_the_source(metric_dir: Path) -> None:
    src = RecordedMetricsSource(metric_dir, now=fake_nezha.ALERT)
    tools = {t.name: t for t in make_metric_tools(src)}
    assert set(tools) == {"query_metric", "list_metrics", "compare_to_baseline", "rank_suspects"}
    assert tools["query_metric"].args["minutes"]["type"] == "integer"
    listed = json.loads(run(tools["list_metrics"].ainvoke({})))
    assert listed["status"] == "ok" and listed["data"]["services"] == sorted(fake_nezha.PODS)

    def call(name: str, **args: object) -> ToolResult:
        return run(invoke_tool(tools[name], {"name": name, "args": args, "id": "c1"}))

    out = call("query_metric", metric="cpu_usage_rate_percent", service="productcatalogservice", minutes=60)
    (series,) = out.data["series"]
    assert series["points"] == 60 and len(series["shape"]) <= 12
    assert out.data["end"] == fake_nezha.ALERT.isoformat()
    assert out.query == 'cpu_usage_rate_percent{service="productcatalogservice"}'
    (ev,) = out.evidence
    assert (ev.signal, ev.component, ev.anomalous) == ("metric", "productcatalogservice", False)
    cmp = call("compare_to_baseline", metric="cpu_usage_rate_percent", window_minutes=3)
    top = cmp.data["series"][0]
    assert top["labels"]["service"] == "productcatalogservice" and top["anomalous"] and top["direction"] == "up"
    (ev,) = cmp.evidence
    assert ev.anomalous and ev.value == top["window_peak"] and ev.baseline == top["baseline_median"]
    ranked = call("rank_suspects", window_minutes=5, top=2)
    assert ranked.status == "ok" and ranked.data[0]["component"] == "productcatalogservice"
    missing = call("query_metric", metric="no_such_metric")
    assert missing.status == "no_data" and missing.evidence and missing.data["end"] == fake_nezha.ALERT.isoformat()
    bad = call("query_metric", metric="cpu{")  # not a selector this source understands: an error result
    assert bad.status == "error" and "cpu{" in bad.error and bad.evidence == []
    invalid = call("query_metric", metric="x", minutes=0)  # pydantic validation of the typed args
    assert invalid.status == "error" and invalid.error.startswith("invalid arguments: minutes:")
    with pytest.raises(Exception):  # noqa: B017  (called directly, the schema still refuses it)
        run(tools["query_metric"].ainvoke({"metric": "x", "minutes": 0}))


def _front_file(metric_dir: Path, *names: str) -> None:
    """A `front_service.csv.gz` beside the pods: what the load generator saw, one row per minute and name."""
    rows = ["Time,TimeStamp,ServiceName,SuccessRate(%),LatencyP50(s),LatencyP99(s)"]
    for i in range(fake_nezha.MINUTES):
        t = fake_nezha.START + timedelta(minutes=i)
        for name in names:
            rows.append(f"{fake_nezha._go_time(t, i)},{int(t.timestamp())},{name},"
                        f"{95.0 if i == 30 else 100},0.2,1.5")
    with gzip.open(metric_dir / "front_service.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")


def test_the_entry_services_view_is_read_under_the_service_it_names(metric_dir: Path) -> None:
    _front_file(metric_dir, "Frontend")  # the recording's spelling: matched case-insensitively
    src = RecordedMetricsSource(metric_dir)
    (s,) = run(src.query_range("success_rate_percent", fake_nezha.START, fake_nezha.START + timedelta(minutes=40)))
    assert s.labels == {"service": "frontend", "scope": "entry"}
    assert [v for _, v in s.points].count(95.0) == 1 and len(s.points) == 41
    assert {"latency_p50_seconds", "latency_p99_seconds"} <= set(run(src.list_metrics("frontend")))
    assert run(src.list_components()) == sorted(fake_nezha.PODS)  # no component named "Frontend"


def test_an_entry_file_naming_no_service_goes_to_the_call_graphs_one_entry_point(metric_dir: Path) -> None:
    _front_file(metric_dir, "Gateway")
    assert run(RecordedMetricsSource(metric_dir).series("success_rate_percent")) == \
        [{"__name__": "success_rate_percent", "service": "frontend", "scope": "entry"}]
    (metric_dir / "dependency.csv.gz").unlink()  # no call graph: nothing to pin it on, so it is not read
    assert run(RecordedMetricsSource(metric_dir).series("success_rate_percent")) == []


def test_an_entry_file_with_several_services_is_not_read(metric_dir: Path) -> None:
    _front_file(metric_dir, "frontend", "cartservice")
    assert run(RecordedMetricsSource(metric_dir).series("success_rate_percent")) == []

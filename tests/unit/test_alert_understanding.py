"""Rendering catalogue rules as Alertmanager sends them, and reading them back in rule mode."""

from __future__ import annotations

from urllib.parse import unquote

from agents.triage import triage_rules
from agents.understanding import metric_names, understand
from core.subject import host_of, service_of
from evals.alert_catalogue import CatalogueRule, alertname, fill_template, render
from graphs.incident import incident_from_webhook

SYSTEMD = CatalogueRule(group="Basic resource monitoring", service="Host and hardware", exporter="node-exporter",
                        name="Host systemd service crashed", query='(node_systemd_unit_state{state="failed"} == 1)',
                        description="systemd service {{ $labels.name }} crashed", severity="warning")
SMART = CatalogueRule(group="Basic resource monitoring", service="S.M.A.R.T Device Monitoring",
                      exporter="smartctl-exporter", name="SMART critical warning",
                      query="smartctl_device_critical_warning > 0",
                      description="Disk controller has critical warning on {{ $labels.instance }} drive "
                                  "{{ $labels.device }}", severity="critical")
CEPH = CatalogueRule(group="Storage", service="Ceph", exporter="embedded-exporter", name="Ceph OSD near full",
                     query='ceph_health_detail{name="OSD_NEARFULL"} == 1',
                     description="A Ceph OSD is dangerously full. Please add more disks.", severity="warning")
KAFKA = CatalogueRule(group="Message brokers", service="Kafka", exporter="danielqsj-kafka-exporter",
                      name="Kafka consumer group lag", query="sum(kafka_consumergroup_lag) by (consumergroup) > 10000",
                      description="Kafka consumer group {{ $labels.consumergroup }} is lagging behind ({{ $value }} "
                                  "messages)")


def test_render_is_what_alertmanager_sends_and_deterministic():
    wh = render(SYSTEMD)
    a = wh.alerts[0]
    assert a.labels == {"alertname": "HostSystemdServiceCrashed", "instance": "web-01:9100", "job": "node",
                        "state": "failed", "name": "nginx.service", "severity": "warning"}
    assert a.annotations["summary"] == "Host systemd service crashed (instance web-01:9100)"
    assert a.annotations["description"].startswith("systemd service nginx.service crashed\n  VALUE = ")
    assert "g0.expr=" in a.generator_url
    assert unquote(a.generator_url.split("g0.expr=")[1].split("&")[0]) == SYSTEMD.query
    assert render(SYSTEMD).model_dump() == wh.model_dump()
    assert wh.group_key == '{}:{alertname="HostSystemdServiceCrashed"}' and wh.status == "firing"


def test_aggregations_keep_only_their_labels_and_values_fire():
    a = render(KAFKA).alerts[0]
    assert "instance" not in a.labels and a.labels["consumergroup"] == "billing"
    assert "lagging behind (11501 messages)" in a.annotations["description"]
    assert alertname("Prometheus AlertManager E2E dead man switch") == "PrometheusAlertmanagerE2eDeadManSwitch"


def test_template_filling_is_a_closed_substitution():
    labels = {"instance": "web-01:9100"}
    assert fill_template("{{ $labels.instance }} {{ $value | humanize }}", labels, 0.5) == "web-01:9100 0.5"
    # Anything else (Go template actions, functions reaching data) renders empty, never evaluated.
    assert fill_template('x{{ range $i := until 9 }}{{ end }}{{ (query "up") }}y', labels, 1) == "xy"


def test_understanding_reads_the_rule_as_meant():
    r = understand(render(SYSTEMD).alerts[0])
    assert (r.category, r.domain, r.host, r.service, r.exporter) == ("service_down", "host", "web-01", "nginx", "node")
    assert r.metrics == ["node_systemd_unit_state"]
    smart = understand(render(SMART).alerts[0])
    assert (smart.category, smart.domain, smart.host) == ("hardware", "hardware", "web-01")
    ceph = understand(render(CEPH).alerts[0])
    assert (ceph.category, ceph.domain, ceph.service) == ("disk", "storage_cluster", "ceph")  # `name` is a check


def test_triage_verdict_carries_the_reading():
    v = triage_rules(incident_from_webhook(render(SYSTEMD)), None)
    assert v.kind == "incident" and v.category == "service_down" and v.host == "web-01" and v.service == "nginx"
    assert "nginx / web-01" in v.reason


def test_host_service_and_metric_extraction():
    assert host_of({"instance": "web-01:9100"}) == "web-01"
    assert host_of({"instance": "[2001:db8::7]:9100"}) == "2001:db8::7"
    assert host_of({"instance": "https://shop.example.com/health"}) == "shop.example.com"
    assert host_of({"instance": "db-1:9187", "nodename": "db-1.lan"}) == "db-1.lan"
    assert service_of({"pod": "checkout-7d9f8b6c5-x2x4k"}, "kube-state-metrics") == "checkout"
    assert service_of({"name": "OSD_NEARFULL"}, "ceph") == "ceph"
    assert service_of({"name": "nginx.service"}, "systemd") == "nginx"
    assert service_of({}, "node") == ""
    q = 'sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) / on(instance) node_load1 > 0.8e1'
    assert metric_names(q) == ["node_cpu_seconds_total", "node_load1"]

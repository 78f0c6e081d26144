"""What an alert is about (core/subject.py): one reading per question, and the questions kept apart."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.remediation import _host, incident_targets
from core.models import Alert, Incident, TriageVerdict
from core.subject import (
    has_explicit_host,
    host_names,
    host_of,
    host_part,
    service_of,
    target_of,
)
from tools.objects import Objects


def _incident(labels: dict[str, str]) -> Incident:
    alert = Alert(status="firing", labels={"alertname": "X", **labels}, startsAt=datetime(2026, 1, 1, tzinfo=UTC))
    return Incident(title="X", fingerprint="f", alerts=[alert], service=alert.target)


def test_host_part_strips_port_scheme_and_path_only() -> None:
    assert host_part("web-01:9100") == "web-01"
    assert host_part("https://shop.example:443/x") == "shop.example"
    assert host_part("[2001:db8::7]:9100") == "2001:db8::7"
    assert host_part("2001:db8::7") == "2001:db8::7"  # a bare IPv6 address is not cut at its last colon


def test_one_machine_preferred_in_one_order() -> None:
    labels = {"instance": "10.0.0.5:9100", "node": "k8s-3", "hostname": "web-01.lan", "nodename": "web-01"}
    assert host_of(labels) == "web-01"  # its own name before a cluster node, an address last
    assert host_of({"instance": "10.0.0.5:9100", "node": "k8s-3"}) == "k8s-3"
    assert host_of({"instance": "10.0.0.5:9100"}) == "10.0.0.5"
    assert host_of({"job": "node"}) == ""


def test_every_machine_name_for_binding_and_fewer_for_a_playbook() -> None:
    labels = {"instance": "10.0.0.5:9100", "node": "pve-01", "host": "web-01"}
    assert host_names(labels) == {"10.0.0.5", "pve-01", "web-01"}
    inc = _incident(labels)
    # A generated playbook may name the alert's machine, not the cluster node its guest runs on.
    assert incident_targets(inc) == {"10.0.0.5", "web-01"}
    assert incident_targets(inc, TriageVerdict(kind="incident", reason="r", host="web-01.lan")) == {
        "10.0.0.5", "web-01", "web-01.lan"}
    objects = Objects.of(inc.alert.labels, None, [], [])
    assert objects.named["host"] == {"10.0.0.5", "pve-01", "web-01"}


def test_the_thing_alerted_on_is_not_the_machine() -> None:
    labels = {"service": "payments-api", "host": "app-02", "instance": "app-02:9100"}
    assert target_of(labels) == "payments-api" and host_of(labels) == "app-02"
    assert target_of({"job": "node"}) == "node" and target_of({}) == "unknown"
    assert _incident(labels).alert.target == "payments-api"


def test_an_escalation_names_triages_machine_else_the_labels_else_the_target() -> None:
    inc = _incident({"instance": "[2001:db8::7]:9100", "service": "db"})
    assert _host(inc, TriageVerdict(kind="incident", reason="r", host="db-1")) == "db-1"
    assert _host(inc) == "2001:db8::7"
    assert _host(_incident({"service": "db"})) == "db"


def test_explicit_host_and_affected_service() -> None:
    assert has_explicit_host({"nodename": "web-01"}) and not has_explicit_host({"instance": "web-01:9100"})
    assert service_of({"name": "nginx.service"}, "systemd") == "nginx"
    assert service_of({"pod": "checkout-7d9f8b6c5-x2x4k"}, "kube-state-metrics") == "checkout"

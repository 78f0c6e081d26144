"""Storm correlation on the real SQLite index: window, group, fingerprint, service/target, topology,
and a resolved alert closing only what it belongs to."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.correlation import Correlator, Topology, TopologyError
from core.models import AlertmanagerWebhook
from core.settings import Settings

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hook(alertname: str, status: str = "firing", group: str | None = None, **labels: str) -> AlertmanagerWebhook:
    labels = {"alertname": alertname, "severity": "critical", **labels}
    return AlertmanagerWebhook.model_validate({
        "groupKey": group or "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}", "status": status, "receiver": "aiops",
        "alerts": [{"status": status, "labels": labels, "annotations": {}, "startsAt": T0.isoformat()}]})


TOPOLOGY = {"frontend": ["checkout", "cart"], "checkout": ["payments", "pg-primary"], "cart": ["redis-cart"],
            "payments": ["pg-primary"], "search": ["elastic"]}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def corr(settings: Settings, clock: Clock) -> Correlator:
    return Correlator(settings, topology=Topology(TOPOLOGY), clock=clock)


def test_first_alert_opens_second_of_same_service_joins(corr: Correlator, clock: Clock):
    first = corr.correlate(hook("HighErrorRate", service="checkout", instance="c-1:80"), "inc-1")
    assert not first.joined and first.incident_id == "inc-1"
    clock.advance(30)
    second = corr.correlate(hook("HighLatency", service="checkout", instance="c-2:80"), "inc-2")
    assert second.joined and second.incident_id == "inc-1"
    assert second.reason == "same service checkout"
    related, total = corr.store.related("inc-1")
    assert total == 1 and [r.alertname for r in related] == ["HighLatency"]
    assert related[0].reason == "same service checkout" and related[0].status == "firing"


def test_outside_the_window_opens_a_new_incident(corr: Correlator, clock: Clock):
    corr.correlate(hook("HighErrorRate", service="checkout"), "inc-1")
    clock.advance(299)
    assert corr.correlate(hook("HighLatency", service="checkout"), "inc-2").joined_to == "inc-1"
    clock.advance(301)  # the window slides with the incident's last alert: 301 s of silence ends it
    late = corr.correlate(hook("HighCpu", service="checkout"), "inc-3")
    assert not late.joined and late.incident_id == "inc-3"


def test_the_group_key_alone_never_merges_two_targets(corr: Correlator):
    """`group_by: [alertname, service]` puts the same alert of two hosts in one group: two problems."""
    corr.correlate(hook("DiskFull", group="grp-A", host="db-1", job="node-a"), "inc-1")
    c = corr.correlate(hook("DiskFull", group="grp-A", host="db-9", job="node-b"), "inc-2")
    assert not c.joined and c.incident_id == "inc-2"


def test_same_group_and_same_target_joins_by_group(corr: Correlator):
    corr.correlate(hook("DiskFull", group="grp-A", host="db-1", job="node-a"), "inc-1")
    c = corr.correlate(hook("InodesFull", group="grp-A", host="db-1", job="node-a"), "inc-2")
    assert c.joined_to == "inc-1" and c.reason == "same Alertmanager group grp-A and target db-1"


def two_hosts(*hosts: str, **extra: str) -> AlertmanagerWebhook:
    """One Alertmanager notification (one group) holding the same alert for several hosts."""
    return AlertmanagerWebhook.model_validate({
        "groupKey": '{}:{alertname="HostOutOfDiskSpace", service=""}', "status": "firing", "receiver": "aiops",
        "externalURL": "http://am.example:9093", "commonLabels": {"alertname": "HostOutOfDiskSpace"},
        "omitted_alerts": {"X (firing)": 3},
        "alerts": [{"status": "firing", "annotations": {"summary": f"disk full on {h}"}, "startsAt": T0.isoformat(),
                    "labels": {"alertname": "HostOutOfDiskSpace", "severity": "critical", "host": h, "job": "node",
                               **extra}} for h in hosts]})


def test_a_notification_about_two_hosts_splits_into_one_part_per_host(corr: Correlator):
    parts = corr.split(two_hosts("web-01", "web-02", "web-01"))
    assert [[a.labels["host"] for a in p.alerts] for p in parts] == [["web-01", "web-01"], ["web-02"]]
    assert all(p.group_key == '{}:{alertname="HostOutOfDiskSpace", service=""}' for p in parts)
    assert parts[0].common_labels["host"] == "web-01" and parts[1].common_labels["host"] == "web-02"
    assert parts[0].omitted_alerts == {"X (firing)": 3} and parts[1].omitted_alerts == {}
    assert all(p.external_url == "http://am.example:9093" for p in parts)
    # each part opens its own incident; the group key does not pull the second into the first
    first, second = (corr.correlate(p, f"inc-{i}") for i, p in enumerate(parts))
    assert (first.incident_id, second.incident_id) == ("inc-0", "inc-1") and not second.joined


def test_a_notification_about_one_cause_stays_whole(corr: Correlator):
    same_service = two_hosts("web-01", "web-02", service="checkout")
    assert corr.split(same_service) == [same_service]  # the same service: one problem
    related = AlertmanagerWebhook.model_validate({
        "groupKey": "g", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "Errors", "service": "checkout"}, "startsAt": T0.isoformat()},
            {"status": "firing", "labels": {"alertname": "Down", "service": "pg-primary"}, "startsAt": T0.isoformat()},
            {"status": "firing", "labels": {"alertname": "Watchdog"}, "startsAt": T0.isoformat()}]})
    assert corr.split(related) == [related]  # checkout calls pg-primary; a nameless alert stays with the first
    unrelated = related.model_copy(update={"alerts": [*related.alerts, *hook("Slow", service="search").alerts]})
    assert [[a.name for a in p.alerts] for p in corr.split(unrelated)] == [["Errors", "Down", "Watchdog"], ["Slow"]]


def test_a_split_part_is_resolved_when_all_its_alerts_are(corr: Correlator):
    hook2 = two_hosts("web-01", "web-02")
    alerts = [hook2.alerts[0], hook2.alerts[1].model_copy(update={"status": "resolved"})]
    parts = corr.split(hook2.model_copy(update={"alerts": alerts}))
    assert [p.status for p in parts] == ["firing", "resolved"]


def test_same_fingerprint_joins_and_is_preferred(corr: Correlator, clock: Clock):
    corr.correlate(hook("A", group="g1", service="svc-x"), "inc-1")
    corr.correlate(hook("B", group="g2", service="svc-y"), "inc-2")
    clock.advance(10)
    # Fingerprint of inc-2's alert and the service of inc-1: the fingerprint wins.
    again = hook("B", group="g2", service="svc-y")
    again.alerts[0].labels["service"] = "svc-y"
    c = corr.correlate(again, "inc-3")
    assert c.joined_to == "inc-2" and c.reason.startswith("same fingerprint")


def test_same_target_joins(corr: Correlator):
    corr.correlate(hook("HostHighCpuLoad", instance="web-01:9100", job="node"), "inc-1")
    c = corr.correlate(hook("HostOutOfMemory", instance="web-01:9100", job="other-job"), "inc-2")
    assert c.joined_to == "inc-1" and c.reason == "same target web-01:9100"


def test_unrelated_services_do_not_join(corr: Correlator):
    corr.correlate(hook("HighErrorRate", service="checkout"), "inc-1")
    c = corr.correlate(hook("HighErrorRate", service="search"), "inc-2")
    assert not c.joined and c.incident_id == "inc-2"


def test_topology_caller_callee_and_common_dependency(corr: Correlator):
    corr.correlate(hook("PostgresDown", service="pg-primary"), "inc-db")
    up = corr.correlate(hook("HighErrorRate", service="checkout"), "inc-2")
    assert up.joined_to == "inc-db" and up.reason == "topology: checkout calls pg-primary"
    two_up = corr.correlate(hook("HighLatency", service="frontend"), "inc-3")
    assert two_up.joined_to == "inc-db" and "frontend" in two_up.reason
    # payments and checkout both call pg-primary
    sib = corr.correlate(hook("SlowQueries", service="payments"), "inc-4")
    assert sib.joined_to == "inc-db"
    assert not corr.correlate(hook("EsDown", service="elastic"), "inc-5").joined


def test_topology_sibling_without_the_root_alert(corr: Correlator):
    corr.correlate(hook("HighErrorRate", service="payments"), "inc-1")
    c = corr.correlate(hook("HighErrorRate", service="checkout", instance="c-1"), "inc-2")
    # checkout calls payments, so this is caller/callee; a pure sibling: cart vs checkout share frontend only
    assert c.joined_to == "inc-1" and c.reason == "topology: checkout calls payments"
    corr2 = corr.correlate(hook("CacheMiss", service="redis-cart"), "inc-3")
    assert not corr2.joined  # redis-cart shares nothing downstream with payments/checkout


def test_job_names_the_service_when_there_is_no_service_label(corr: Correlator):
    corr.correlate(hook("PostgresDown", job="pg-primary", instance="db-1:9187"), "inc-1")
    c = corr.correlate(hook("HighErrorRate", job="payments", instance="p-1:80"), "inc-2")
    assert c.joined_to == "inc-1" and c.reason == "topology: payments calls pg-primary"


def test_resolved_alert_closes_only_what_it_belongs_to(corr: Correlator):
    corr.correlate(hook("PostgresDown", service="pg-primary"), "inc-db")
    corr.correlate(hook("HighErrorRate", service="checkout"), "inc-x")
    corr.correlate(hook("EsDown", service="elastic"), "inc-es")
    # checkout's error alert resolves: it belonged to inc-db, which still has pg-primary firing
    owners, closed = corr.resolve(hook("HighErrorRate", status="resolved", service="checkout"))
    assert owners == ["inc-db"] and closed == []
    assert corr.store.is_open("inc-db") and corr.store.is_open("inc-es")
    owners, closed = corr.resolve(hook("PostgresDown", status="resolved", service="pg-primary"))
    assert closed == ["inc-db"] and not corr.store.is_open("inc-db")
    assert corr.store.is_open("inc-es")  # unrelated incident untouched
    # an alert nobody knows closes nothing
    assert corr.resolve(hook("Nope", status="resolved", service="zzz")) == ([], [])


def test_closed_incident_takes_no_more_alerts(corr: Correlator):
    corr.correlate(hook("DiskFull", host="backup-01"), "inc-1")
    corr.close_incident("inc-1")  # e.g. an automatic fix resolved it
    c = corr.correlate(hook("DiskFull", host="backup-01"), "inc-2")
    assert not c.joined and c.incident_id == "inc-2"  # the recurrence is a new incident (flap guard's job)


def test_refiring_related_alert_is_firing_again(corr: Correlator):
    corr.correlate(hook("PostgresDown", service="pg-primary"), "inc-db")
    corr.correlate(hook("HighErrorRate", service="checkout"), "inc-2")
    corr.resolve(hook("HighErrorRate", status="resolved", service="checkout"))
    corr.correlate(hook("HighErrorRate", service="checkout"), "inc-3")
    related, total = corr.store.related("inc-db")
    assert total == 1 and related[0].status == "firing"


def test_index_survives_a_new_process(settings: Settings, clock: Clock):
    Correlator(settings, topology=Topology(TOPOLOGY), clock=clock).correlate(hook("A", service="checkout"), "inc-1")
    other = Correlator(settings, topology=Topology(TOPOLOGY), clock=clock)
    assert other.correlate(hook("B", service="checkout"), "inc-2").joined_to == "inc-1"


def test_concurrent_first_alerts_open_one_incident(settings: Settings, clock: Clock):
    """Eight workers (threads, one store each, as separate processes would) get the storm's first alerts."""
    opened: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        c = Correlator(settings, topology=Topology(TOPOLOGY), clock=clock)
        for j in range(20):
            out = c.correlate(hook("HighErrorRate", service="checkout", instance=f"c-{i}-{j}"), f"inc-{i}-{j}")
            if not out.joined:
                with lock:
                    opened.append(out.incident_id)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1


def test_topology_file(tmp_path: Path):
    f = tmp_path / "topology.yaml"
    f.write_text("checkout: [payments, pg-primary]\npayments: [pg-primary]\npg-primary: []\n")
    topo = Topology.load(f)
    assert topo.closure("checkout") == {"checkout", "payments", "pg-primary"}
    assert topo.depends_on("checkout", "pg-primary") and not topo.depends_on("pg-primary", "checkout")
    f.write_text("a: [b]\nb: [a]\n")  # cycles are legal
    assert Topology.load(f).closure("a") == {"a", "b"}
    f.write_text("checkout: payments\n")
    with pytest.raises(TopologyError, match="list of service names"):
        Topology.load(f)
    f.write_text("checkout: ['$(rm -rf /)']\n")
    with pytest.raises(TopologyError, match="not a service name"):
        Topology.load(f)
    with pytest.raises(TopologyError, match="cannot read"):
        Topology.load(tmp_path / "missing.yaml")


def test_a_bare_scrape_job_is_not_a_service(corr: Correlator):
    """node-exporter's job="node" spans every host: disk on backup-01 and CPU on web-01 are two problems."""
    corr.correlate(hook("HostOutOfDiskSpace", instance="backup-01:9100", job="node"), "inc-1")
    c = corr.correlate(hook("HostHighCpuLoad", instance="web-01:9100", job="node"), "inc-2")
    assert not c.joined and c.incident_id == "inc-2"

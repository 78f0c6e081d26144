"""Fit before fix: an action is proposed only where it belongs, and runs alone only with its evidence."""

from __future__ import annotations

import asyncio

import pytest

from agents.approval import auto_approval
from agents.remediation import is_escalation, plan
from agents.toolbox import Toolbox
from core.llm import LLMChain
from core.models import AlertmanagerWebhook, Diagnosis, Evidence, Hypothesis, TriageVerdict
from core.settings import load_settings
from graphs.incident import incident_from_webhook
from tools.catalog import CATALOG
from tools.fit import check
from tools.params import ParameterRefused


def _incident(labels: dict[str, str]):
    wh = AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-03-10T03:45:00Z"}]})
    return incident_from_webhook(wh)


DISK = {"alertname": "HostOutOfDiskSpace", "instance": "backup-01:9100", "job": "node", "mountpoint": "/",
        "device": "/dev/sda1", "severity": "critical"}
HOST_DISK = TriageVerdict(kind="incident", category="disk", reason="r", domain="host", host="backup-01",
                          exporter="node", metrics=["node_filesystem_avail_bytes", "node_filesystem_size_bytes"])
FS_SERIES = Evidence(id="ev-2", tool="metrics", query='filesystem_used_percent{mountpoint="/"}', component="backup-01",
                     excerpt="filesystem_used_percent up to 93.16 (baseline 71.16)", signal="metric")
LOG_GROWTH = Evidence(id="ev-4", tool="logs", query="{}", component="logrotate", signal="log",
                      excerpt="14x: error: error compressing /var/log/app/app.log.8: No space left on device")
ALERT_ONLY = Evidence(id="ev-1", tool="alertmanager", query="ALERTS", component="backup-01", signal="state",
                      anomalous=False, excerpt="HostOutOfDiskSpace firing since 03:45Z")


def _cleanup():
    return CATALOG["cleanup_rotated_logs"].action("backup-01")


def test_every_catalog_entry_declares_its_fit_in_its_toolset():
    from tools.registry import toolset

    for name, e in CATALOG.items():
        if name == "escalate_to_oncall":
            continue
        declared = next(d for d in toolset(e.toolset).entries() if d.name == name)
        assert e.fit == declared.fit, name


def test_log_cleanup_fits_only_with_filesystem_and_log_evidence():
    ok = check(_cleanup(), CATALOG["cleanup_rotated_logs"], HOST_DISK, DISK, [ALERT_ONLY, FS_SERIES, LOG_GROWTH])
    assert ok.status == "fits" and ok.evidence_ids == ["ev-2", "ev-4"]
    only_series = check(_cleanup(), CATALOG["cleanup_rotated_logs"], HOST_DISK, DISK, [ALERT_ONLY, FS_SERIES])
    assert only_series.status == "suggest" and len(only_series.missing) == 1 and "logs" in only_series.missing[0]
    alone = check(_cleanup(), CATALOG["cleanup_rotated_logs"], HOST_DISK, DISK, [ALERT_ONLY])
    assert alone.status == "suggest" and len(alone.missing) == 2  # the alert itself proves neither


@pytest.mark.parametrize(("labels", "verdict", "why"), [
    ({"alertname": "SmartCriticalWarning", "instance": "web-01:9633", "job": "smartctl", "device": "sda"},
     {"category": "hardware", "domain": "hardware"}, "does not address hardware"),
    ({"alertname": "CephOsdNearFull", "instance": "ceph-mgr-01:9283", "job": "ceph", "name": "OSD_NEARFULL"},
     {"category": "disk", "domain": "storage_cluster"}, "storage-cluster"),
    ({"alertname": "MinioNodeDiskOffline", "instance": "minio-01:9000", "job": "minio"},
     {"category": "disk", "domain": "storage_cluster"}, "offline"),
    ({**DISK, "alertname": "HostFilesystemReadOnly"}, {"category": "disk", "domain": "host"}, "read-only"),
    ({**DISK, "job": "windows"}, {"category": "disk", "domain": "host"}, "Windows"),
    ({**DISK, "alertname": "HostOutOfInodes"}, {"category": "disk", "domain": "host"}, "inode"),
])
def test_log_cleanup_is_refused_where_it_cannot_help(labels, verdict, why):
    v = HOST_DISK.model_copy(update=verdict)
    res = check(_cleanup(), CATALOG["cleanup_rotated_logs"], v, labels, [FS_SERIES, LOG_GROWTH])
    assert res.status == "refused" and why in res.note(), res.note()


def _raw(name: str, target: str, **params):
    """An action built past the catalog's parameter validation (which refuses these values first)."""
    entry = CATALOG[name]
    with pytest.raises(ParameterRefused):
        entry.action(target, **params)
    ok = entry.action(target)
    return ok.model_copy(update={"parameters": {**ok.parameters, **params}})


def test_untrusted_parameters_never_fit():
    bad = _raw("cleanup_rotated_logs", "backup-01", path="/var/log; rm -rf /")
    res = check(bad, CATALOG["cleanup_rotated_logs"], HOST_DISK, DISK, [FS_SERIES, LOG_GROWTH])
    assert res.status == "refused" and "not a safe name" in res.note()
    escape = _raw("cleanup_rotated_logs", "backup-01", path="/var/log/../../etc")
    assert check(escape, CATALOG["cleanup_rotated_logs"], HOST_DISK, DISK, [FS_SERIES, LOG_GROWTH]).status == "refused"


def test_restart_is_a_suggestion_for_a_failed_unit_and_refused_in_a_pod():
    labels = {"alertname": "HostSystemdServiceCrashed", "instance": "web-01:9100", "job": "node",
              "name": "nginx.service"}
    v = TriageVerdict(kind="incident", category="service_down", reason="r", domain="host", host="web-01",
                      service="nginx", exporter="node")
    restart = CATALOG["restart_service"].action("web-01", service="nginx")
    assert check(restart, CATALOG["restart_service"], v, labels, []).status == "suggest"
    in_pod = {**labels, "pod": "nginx-5d9c-x2x4k"}
    assert check(restart, CATALOG["restart_service"], v, in_pod, []).status == "refused"
    cpu = v.model_copy(update={"category": "cpu"})  # a CPU alert alone is no reason to restart anything
    assert check(restart, CATALOG["restart_service"], cpu, labels, []).status == "refused"
    symptom = Evidence(id="ev-3", tool="metrics", query="cpu", component="nginx", excerpt="cpu up", signal="metric")
    fits = check(restart, CATALOG["restart_service"], cpu, labels, [symptom])
    assert fits.status == "fits" and "always decided by a human" in fits.note()


def _plan(labels, verdict, evidence):
    s = load_settings()
    diag = Diagnosis(hypotheses=[Hypothesis(component="backup-01", cause="c", confidence=0.5)])
    p, _ = asyncio.run(plan(_incident(labels), verdict, diag, evidence, Toolbox(llm=LLMChain([]), settings=s), []))
    return p, auto_approval(p, s)


def test_planning_auto_approves_only_a_fitting_known_fix():
    p, auto = _plan(DISK, HOST_DISK, [ALERT_ONLY, FS_SERIES, LOG_GROWTH])
    assert p.actions[0].name == "cleanup_rotated_logs" and p.known_fix and auto is not None
    p, auto = _plan(DISK, HOST_DISK, [ALERT_ONLY])
    assert p.actions[0].name == "cleanup_rotated_logs" and not p.known_fix and auto is None
    assert "suggestion only" in p.fit[0]
    ceph = {"alertname": "CephOsdNearFull", "instance": "ceph-mgr-01:9283", "job": "ceph"}
    p, auto = _plan(ceph, HOST_DISK.model_copy(update={"domain": "storage_cluster"}), [FS_SERIES, LOG_GROWTH])
    assert is_escalation(p) and auto is None and "refused" in p.rationale


def test_a_remembered_fix_that_no_longer_fits_is_not_reused():
    known = {"incident_id": "inc-old", "occurred_at": "2026-03-01T00:00:00+00:00",
             "actions": [{"name": "cleanup_rotated_logs", "target": "ceph-mgr-01", "parameters": {}}]}
    s = load_settings()
    ceph = {"alertname": "CephOsdNearFull", "instance": "ceph-mgr-01:9283", "job": "ceph"}
    v = HOST_DISK.model_copy(update={"domain": "storage_cluster"})
    diag = Diagnosis(hypotheses=[Hypothesis(component="ceph", cause="c", confidence=0.5)])
    p, _ = asyncio.run(plan(_incident(ceph), v, diag, [FS_SERIES, LOG_GROWTH],
                            Toolbox(llm=LLMChain([]), settings=s), [], known_fix=known))
    assert is_escalation(p) and not p.known_fix


def test_an_llm_choice_that_does_not_fit_is_refused_and_the_incident_escalates():
    from tests.conftest import scripted_chain
    from tests.scripted_model import ScriptedChatModel, reply, tool_call

    model = ScriptedChatModel(script=[reply(tool_call("RemediationPlan", rationale="free space", steps=[
        {"action": "cleanup_rotated_logs", "target": "ceph-mgr-01", "parameters": {}}]))])
    s = load_settings()
    ceph = {"alertname": "CephOsdNearFull", "instance": "ceph-mgr-01:9283", "job": "ceph"}
    v = HOST_DISK.model_copy(update={"domain": "storage_cluster"})
    diag = Diagnosis(hypotheses=[Hypothesis(component="ceph", cause="OSD near full", confidence=0.25)])
    calls: list = []
    p, used_llm = asyncio.run(plan(_incident(ceph), v, diag, [ALERT_ONLY], Toolbox(llm=scripted_chain(model),
                                                                                    settings=s), calls))
    assert not used_llm and is_escalation(p) and auto_approval(p, s) is None
    assert calls[-1].node == "remediation" and not calls[-1].ok and "storage-cluster" in calls[-1].error

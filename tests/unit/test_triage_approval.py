from datetime import timedelta

from agents.approval import auto_approval, check_decision
from agents.triage import classify, triage_rules
from core.models import AlertmanagerWebhook, Plan, utcnow
from core.settings import load_settings
from graphs.incident import incident_from_webhook
from tools.catalog import CATALOG


def _incident(status="firing", **labels):
    base = {"alertname": "HostOutOfDiskSpace", "instance": "db-1:9100", "severity": "critical", **labels}
    wh = AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "{}:{alertname=\"x\"}", "status": status, "receiver": "r",
        "alerts": [{"status": status, "labels": base, "annotations": {}, "startsAt": "2026-01-01T00:00:00Z",
                    "endsAt": "2026-01-01T01:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                    "fingerprint": "abc"}]})
    return incident_from_webhook(wh)


def test_triage_ends_duplicates_resolved_and_noise():
    assert triage_rules(_incident(), "inc-older").kind == "duplicate"
    assert triage_rules(_incident(), "inc-older").duplicate_of == "inc-older"
    assert triage_rules(_incident(status="resolved"), None).kind == "resolved"
    assert triage_rules(_incident(alertname="Watchdog", severity="none"), None).kind == "noise"
    v = triage_rules(_incident(), None)
    assert v.kind == "incident" and v.category == "disk"


def test_classification_rules():
    assert classify("KubePodCrashLooping") == "crashloop"
    assert classify("HostHighCpuLoad") == "cpu"
    assert classify("RouterInterfaceFlapping") == "network"
    assert classify("NodeFilesystemAlmostOutOfSpace") == "disk"
    assert classify("HostOomKillDetected") == "crashloop"
    assert classify("SomethingOdd") == "unknown"


def _plan(name="restart_service", **params):
    return Plan(incident_id="inc-1", actions=[CATALOG[name].action("h", **params)], rationale="r",
                known_fix=CATALOG[name].known_fix).with_expiry(3600)


def test_auto_approval_only_for_low_risk_known_fixes():
    s = load_settings()
    assert auto_approval(_plan("cleanup_rotated_logs"), s) is not None
    assert auto_approval(_plan(service="x"), s) is None
    assert auto_approval(_plan("cleanup_rotated_logs"), load_settings(AUTO_APPROVE_LOW_RISK=False)) is None


def test_decision_checks():
    s = load_settings(APPROVERS="alice")
    p = _plan(service="x")
    ok = check_decision({"plan_hash": p.content_hash, "approver": "alice", "decision": "approve"}, p, s)
    assert ok.valid
    bad_hash = check_decision({"plan_hash": "0" * 64, "approver": "alice", "decision": "approve"}, p, s)
    assert not bad_hash.valid and "hash mismatch" in bad_hash.reason
    stranger = check_decision({"plan_hash": p.content_hash, "approver": "mallory", "decision": "approve"}, p, s)
    assert not stranger.valid and "not an authorised approver" in stranger.reason
    late = check_decision({"plan_hash": p.content_hash, "approver": "alice", "decision": "approve"}, p, s,
                          now=utcnow() + timedelta(hours=2))
    assert not late.valid and "expired" in late.reason
    tg = check_decision({"plan_hash": p.content_hash, "approver": "42", "decision": "approve",
                         "channel": "telegram"}, p, load_settings(ADMIN_CHAT_ID="42,43"))
    assert tg.valid
    assert not check_decision("yes", p, s).valid

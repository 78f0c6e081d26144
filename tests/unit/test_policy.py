"""The self-healing policy's guards, one by one, over a real history store (SQLite in a tmp data dir)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.policy import DEFAULT_POLICY, PolicyError, load_policy, self_healing_decision
from agents.self_healing import authorize, inverse_plan, self_healing_status, set_self_healing, store_for
from agents.toolbox import Toolbox
from core.models import ExecutionResult, Incident, Plan, Verification
from core.settings import Settings
from store.autonomy import AutoAction
from tools.catalog import CATALOG

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def incident(fp: str = "fp-disk", inc: str = "inc-1") -> Incident:
    from core.models import Alert

    alert = Alert.model_validate({"status": "firing", "labels": {"alertname": "HostOutOfDiskSpace", "host": "h"},
                                  "startsAt": T0.isoformat(), "fingerprint": fp})
    return Incident(id=inc, title="disk", fingerprint=fp, alerts=[alert], service="h")


def cleanup_plan(target: str = "backup-01", inc: str = "inc-1", path: str = "/var/log") -> Plan:
    return Plan(incident_id=inc, actions=[CATALOG["cleanup_rotated_logs"].action(target, path=path)],
                rationale="free disk", known_fix=True)


def done(target: str, at: datetime, fp: str = "fp-other", verified: bool | None = True,
         path: str = "/var/log") -> AutoAction:
    return AutoAction(incident_id="inc-old", plan_id="plan-old", fingerprint=fp, target=target,
                      action="cleanup_rotated_logs", rule="rotated-log-cleanup", at=at, verified=verified,
                      object=f"path={path}")


def decide(settings: Settings, history: list[AutoAction], plan: Plan | None = None, fp: str = "fp-disk",
           now: datetime = T0, **kw):  # type: ignore[no-untyped-def]
    return self_healing_decision(plan or cleanup_plan(), incident(fp), history, settings, now=now, **kw)


def test_default_policy_allows_the_low_risk_cleanup_and_names_the_rule(settings: Settings):
    allowed, rule, reason = decide(settings, [])
    assert allowed and rule == "rotated-log-cleanup"
    assert "built-in policy allows cleanup_rotated_logs on backup-01" in reason and "1/3" in reason


def test_no_rule_for_restart_by_default(settings: Settings):
    plan = Plan(incident_id="inc-1", actions=[CATALOG["restart_service"].action("web-01", service="nginx")],
                rationale="r")
    allowed, rule, reason = decide(settings, [], plan)
    assert (allowed, rule) == (False, "no-rule") and "restart_service" in reason


def test_escalation_only_plan_is_never_automatic(settings: Settings):
    plan = Plan(incident_id="inc-1", actions=[CATALOG["escalate_to_oncall"].action("x")], rationale="r")
    assert decide(settings, [], plan)[:2] == (False, "no-rule")


def test_per_target_rate_limit(settings: Settings):
    history = [done("backup-01", T0 - timedelta(minutes=m), path=f"/var/log/{m}") for m in (50, 30, 10)]
    allowed, rule, reason = decide(settings, history)
    assert (allowed, rule) == (False, "rate-limit-target") and "limit 3" in reason
    # older than the period: no longer counted
    old = [done("backup-01", T0 - timedelta(minutes=m), path=f"/var/log/{m}") for m in (70, 65, 61)]
    assert decide(settings, old)[0]
    # another target is not limited by backup-01's budget
    assert decide(settings, history, cleanup_plan("web-07"))[0]


def test_global_rate_limit(settings: Settings, tmp_path: Path):
    f = tmp_path / "policy.yaml"
    f.write_text("rules:\n  - {name: any-cleanup, actions: [cleanup_rotated_logs]}\n"
                 "limits: {per_target: 3, global: 4, period_seconds: 3600, cooldown_seconds: 0}\n")
    s = settings.model_copy(update={"POLICY_FILE": f})
    history = [done(f"host-{i}", T0 - timedelta(minutes=10 + i)) for i in range(4)]  # other targets
    allowed, rule, reason = decide(s, history)
    assert (allowed, rule) == (False, "rate-limit-global") and "limit 4" in reason
    assert decide(s, history[:3])[:2] == (True, "any-cleanup")


def test_cooldown(settings: Settings):
    other_dir = "/var/log/nginx"  # another object on the same target: the cool-down, not the flap guard
    allowed, rule, reason = decide(settings, [done("backup-01", T0 - timedelta(seconds=120), path=other_dir)])
    assert (allowed, rule) == (False, "cooldown") and "120 s ago" in reason
    assert decide(settings, [done("backup-01", T0 - timedelta(seconds=301), path=other_dir)])[0]


def test_flap_guard(settings: Settings):
    history = [done("backup-01", T0 - timedelta(minutes=20), fp="fp-disk")]
    allowed, rule, reason = decide(settings, history)
    assert (allowed, rule) == (False, "flap-guard") and "due again 1200 s after" in reason
    # outside FLAP_WINDOW_SECONDS the same fix may run again
    short = settings.model_copy(update={"FLAP_WINDOW_SECONDS": 600})
    assert decide(short, history)[0]
    # keyed on what ran (action, target, object), not on the sender's fingerprint (issue 16.5): another
    # fingerprint asking for the same cleanup of the same directory is the same loop ...
    assert decide(settings, history, fp="fp-cpu")[:2] == (False, "flap-guard")
    # ... while another object on the same target is not a flap (the cool-down is long over)
    assert decide(settings, history, cleanup_plan(path="/var/log/nginx"))[0]


def test_failed_verification_is_never_retried(settings: Settings):
    history = [done("backup-01", T0 - timedelta(hours=5), fp="fp-disk", verified=False)]
    allowed, rule, reason = decide(settings, history)
    assert (allowed, rule) == (False, "failed-verification") and "never retried" in reason
    assert decide(settings, history, fp="fp-new")[:2] == (False, "failed-verification")  # whatever the fingerprint


def test_kill_switch_env_and_runtime(settings: Settings):
    off = settings.model_copy(update={"SELF_HEALING": False})
    assert decide(off, [])[:2] == (False, "kill-switch")
    allowed, rule, reason = decide(settings, [], switch_on=False, switch_note=" by alice")
    assert (allowed, rule) == (False, "kill-switch") and "alice" in reason


def test_runtime_switch_is_persisted_and_seen_by_a_new_store(settings: Settings):
    clockbox = Toolbox(settings=settings, clock=lambda: T0)
    assert authorize(cleanup_plan(), incident(), clockbox).allowed
    set_self_healing(settings, False, "alice", now=T0)
    from store.autonomy import SelfHealingStore

    assert SelfHealingStore(settings).switch().enabled is False  # another process would read the same row
    d = authorize(cleanup_plan("web-02", "inc-2"), incident("fp-2", "inc-2"), clockbox)
    assert (d.allowed, d.rule) == (False, "kill-switch") and "by alice at 2026-03-10 12:00:00Z" in d.reason
    status = self_healing_status(settings)
    assert status["enabled"] is False and status["runtime_enabled"] is False and status["changed_by"] == "alice"
    set_self_healing(settings, True, "bob", now=T0)
    assert authorize(cleanup_plan("web-03", "inc-3"), incident("fp-3", "inc-3"), clockbox).allowed


def test_authorize_records_and_counts(settings: Settings):
    now = [T0]
    box = Toolbox(settings=settings, clock=lambda: now[0])
    results = []
    for i in range(5):  # five alerts on one host, each for another directory, 6 minutes apart (past the cool-down)
        results.append(authorize(cleanup_plan("db-01", f"inc-{i}", f"/var/log/app{i}"), incident(f"fp-{i}", f"inc-{i}"),
                                 box))
        now[0] += timedelta(minutes=6)
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert results[3].rule == "rate-limit-target"
    history = store_for(settings).history(now[0])
    assert len(history) == 3 and {h.rule for h in history} == {"rotated-log-cleanup"}
    assert [h.object for h in history] == [f"path=/var/log/app{i}" for i in range(3)]


def test_policy_file_validation(tmp_path: Path):
    f = tmp_path / "p.yaml"
    f.write_text("rules:\n  - {name: x, actions: [reboot_everything]}\n")
    with pytest.raises(PolicyError, match="unknown catalog actions"):
        load_policy(f)
    f.write_text("rules:\n  - {name: x, actions: [restart_service], targts: ['*']}\n")
    with pytest.raises(PolicyError, match="targts"):
        load_policy(f)
    f.write_text("limits: {per_target: -1}\n")
    with pytest.raises(PolicyError, match="per_target"):
        load_policy(f)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "none.yaml")
    assert [r.name for r in load_policy(DEFAULT_POLICY).rules] == ["rotated-log-cleanup"]


def test_custom_rule_with_target_glob_and_max_risk(tmp_path: Path, settings: Settings):
    f = tmp_path / "p.yaml"
    f.write_text("rules:\n  - {name: start-guests, actions: [proxmox_guest_start], targets: ['pve-*'], "
                 "max_risk: medium}\n")
    s = settings.model_copy(update={"POLICY_FILE": f})
    plan = Plan(incident_id="inc-1", actions=[CATALOG["proxmox_guest_start"].action("pve-01", node="pve-01",
                                                                                    vmid="101")], rationale="r")
    assert decide(s, [], plan)[:2] == (True, "start-guests")
    other = Plan(incident_id="inc-1", actions=[CATALOG["proxmox_guest_start"].action("hv-02", node="hv-02",
                                                                                     vmid="101")], rationale="r")
    assert decide(s, [], other)[:2] == (False, "no-rule")


def test_a_rule_for_an_action_without_bounds_is_refused_at_load(tmp_path: Path):
    """Issue 17: a POLICY_FILE rule for an action that can never run without a human (no auto-approval
    bounds) is refused with one line, instead of being accepted and silently never firing."""
    f = tmp_path / "p.yaml"
    f.write_text("rules:\n  - {name: restart-web, actions: [restart_service], targets: ['web-*'], max_risk: medium}\n")
    with pytest.raises(PolicyError) as err:
        load_policy(f)
    assert str(err.value).count("\n") == 0
    assert "rule 'restart-web' names restart_service, which has no auto-approval bounds" in str(err.value)


def _ran(action_name: str, target: str, **details: str) -> ExecutionResult:
    return ExecutionResult(action=action_name, target=target, status="ok", details=details)


def test_inverse_of_router_disable_is_enable(settings: Settings):
    a = CATALOG["routeros_interface_disable"].action("rtr-edge-01", interface="ether1-isp-a")
    plan = Plan(incident_id="inc-1", actions=[a], rationale="r")
    follow = inverse_plan(plan, [_ran(a.name, a.target)], settings)
    assert [(x.name, x.target, x.parameters) for x in follow.actions] == [
        ("routeros_interface_enable", "rtr-edge-01", {"interface": "ether1-isp-a"})]
    assert not follow.known_fix and "not retried automatically" in follow.rationale


def test_inverse_of_proxmox_change_rolls_back_to_its_snapshot(settings: Settings):
    a = CATALOG["proxmox_vm_reboot"].action("pve-01", node="pve-01", vmid="101")
    plan = Plan(incident_id="inc-1", actions=[a], rationale="r")
    follow = inverse_plan(plan, [_ran(a.name, a.target, snapshot="aiops-pre-123")], settings)
    assert [(x.name, x.parameters["snapname"]) for x in follow.actions] == [("proxmox_snapshot_rollback", "aiops-pre-123")]


def test_no_inverse_escalates(settings: Settings):
    plan = cleanup_plan()
    follow = inverse_plan(plan, [_ran("cleanup_rotated_logs", "backup-01")], settings)
    assert [x.name for x in follow.actions] == ["escalate_to_oncall"] and "no inverse" in follow.rationale


def test_verification_failed(settings: Settings):
    from agents.self_healing import verification_failed

    ok = [_ran("cleanup_rotated_logs", "h")]
    assert verification_failed(ok, Verification(recovered=False))
    assert verification_failed(ok, Verification(recovered=None))
    assert not verification_failed(ok, Verification(recovered=True))
    dry = [ExecutionResult(action="x", target="h", status="dry_run", dry_run=True)]
    assert not verification_failed(dry, Verification(recovered=None))


def test_a_history_from_before_the_object_column_is_migrated(settings: Settings):
    """A data dir whose aiops_auto_actions predates the object column: the store adds it at open, old rows
    read with no object, new rows keep theirs."""
    import sqlite3

    from store.autonomy import SelfHealingStore

    settings.AIOPS_DATA_DIR.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(settings.AIOPS_DATA_DIR / "incidents.sqlite")
    db.execute("CREATE TABLE aiops_auto_actions (id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL, plan_id TEXT "
               "NOT NULL, fingerprint TEXT NOT NULL, target TEXT NOT NULL, action TEXT NOT NULL, rule TEXT NOT NULL, "
               "at DOUBLE PRECISION NOT NULL, verified INTEGER)")
    db.execute("INSERT INTO aiops_auto_actions (incident_id, plan_id, fingerprint, target, action, rule, at) "
               "VALUES ('inc-0', 'plan-0', 'fp', 'h', 'cleanup_rotated_logs', 'r', ?)", [T0.timestamp()])
    db.commit()
    db.close()
    store = SelfHealingStore(settings)
    store.decide_and_record(incident_id="inc-1", plan_id="plan-1", fingerprint="fp", now=T0,
                            actions=[("cleanup_rotated_logs", "h", "path=/var/log")], decide=lambda h, s: (True, "r", ""))
    assert [h.object for h in store.history(T0)] == ["", "path=/var/log"]
    store.close()

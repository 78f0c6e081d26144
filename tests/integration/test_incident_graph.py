"""The incident graph end to end on recorded incidents, rule mode, with the real SQLite checkpointer,
real Ansible runs against local stand-in hosts, and the approval gate's refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.settings import Settings
from service.runner import HashMismatch, IncidentRunner, PlanExpired, PlanNotPending, UnknownPlan
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded


def run(coro):
    return asyncio.run(coro)


async def _analyze(settings: Settings, name: str, **kw):
    rec = load_recorded(recording(name))
    async with IncidentRunner(settings, make_toolbox_factory(settings, **kw)) as runner:
        spec = replay_spec(recording(name), settings)
        return await runner.analyze(rec.webhook, spec), Path(spec["standins"])


async def _decide(settings: Settings, plan_id: str, **kw):
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        return await runner.decide(plan_id, **kw)


async def _report(settings: Settings, incident_id: str):
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        return await runner.report(incident_id)


def test_low_risk_known_fix_is_auto_approved_executed_and_verified(settings):
    outcome, standins = run(_analyze(settings, "disk-full"))
    r = outcome.report
    assert r.mode == "rules" and r.triage.category == "disk"
    assert r.plan and r.plan.risk.value == "low" and r.plan.known_fix
    assert r.approval and r.approval.approver == "policy" and r.approval.valid
    assert [e.status for e in r.executions] == ["ok"]
    assert "removed 8 files" in r.executions[0].output
    left = sorted(p.name for p in (standins / "backup-01/var/log/app").iterdir())
    assert left == ["app.log", "app.log.1"]  # only rotated logs older than 3 days went
    assert r.verification and r.verification.recovered is True
    assert outcome.status.value == "resolved"
    # every hypothesis cites evidence that exists
    ids = {e.id for e in r.evidence}
    assert r.hypotheses and all(h.evidence_ids and set(h.evidence_ids) <= ids for h in r.hypotheses[:2])


def test_medium_risk_waits_then_executes_after_approval(settings):
    outcome, standins = run(_analyze(settings, "crashloop"))
    assert outcome.status.value == "awaiting_approval" and outcome.pending is not None
    assert outcome.pending["plan_hash"] == outcome.plan_hash
    plan = outcome.report.plan
    assert plan.actions[0].name == "rollback_config"
    assert plan.actions[0].parameters["config_path"] == "/etc/payments-api/config.yaml"
    assert any("--check" in c for c in plan.checks)
    cfg = standins / "app-02/etc/payments-api/config.yaml"
    assert "pool: max" in cfg.read_text()  # nothing ran yet, --check changed nothing
    done = run(_decide(settings, outcome.plan_id, approver="alice", decision="approve"))
    assert done.status.value == "resolved" and done.report.approval.approver == "alice"
    assert "pool: max" not in cfg.read_text() and list(cfg.parent.glob("config.yaml.failed-*"))
    # single use: the same plan cannot be approved twice
    with pytest.raises(PlanNotPending):
        run(_decide(settings, outcome.plan_id, approver="alice", decision="approve"))


def test_rejection_never_executes(settings):
    outcome, standins = run(_analyze(settings, "crashloop"))
    done = run(_decide(settings, outcome.plan_id, approver="bob", decision="reject"))
    assert done.status.value == "rejected" and done.report.executions == []
    assert "pool: max" in (standins / "app-02/etc/payments-api/config.yaml").read_text()


def test_hash_mismatch_never_executes_and_does_not_consume_the_plan(settings):
    outcome, standins = run(_analyze(settings, "crashloop"))
    with pytest.raises(HashMismatch, match="still awaits approval"):
        run(_decide(settings, outcome.plan_id, approver="alice", decision="approve", plan_hash="f" * 64))
    assert "pool: max" in (standins / "app-02/etc/payments-api/config.yaml").read_text()
    done = run(_decide(settings, outcome.plan_id, approver="alice", decision="approve", plan_hash=outcome.plan_hash))
    assert done.status.value == "resolved"


def test_plan_changed_after_request_never_executes(settings):
    """Someone edits the paused plan in the checkpoint: the approval for the old hash must not run it."""
    outcome, standins = run(_analyze(settings, "crashloop"))

    async def tamper():
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            config = {"configurable": {"thread_id": outcome.incident_id}}
            state = (await runner.graph.aget_state(config)).values
            plan = dict(state["plan"])
            plan["actions"] = [dict(plan["actions"][0], target="app-03")]
            await runner.graph.aupdate_state(config, {"plan": plan})

    run(tamper())
    with pytest.raises(HashMismatch, match="hash mismatch"):  # refused by the gate, and the plan is closed
        run(_decide(settings, outcome.plan_id, approver="alice", decision="approve"))
    report = run(_report(settings, outcome.incident_id))
    assert report.status.value == "rejected" and report.executions == []
    assert "hash mismatch" in report.approval.reason


def test_expired_approval_never_executes(settings):
    short = settings.model_copy(update={"APPROVAL_TTL_SECONDS": 1})
    outcome, standins = run(_analyze(short, "crashloop"))
    run(asyncio.sleep(1.5))
    with pytest.raises(PlanExpired, match="expired"):
        run(_decide(short, outcome.plan_id, approver="alice", decision="approve"))
    report = run(_report(short, outcome.incident_id))
    assert report.status.value == "rejected" and "expired" in report.approval.reason
    assert report.executions == []
    with pytest.raises(PlanNotPending):  # expiry ended the plan
        run(_decide(short, outcome.plan_id, approver="alice", decision="approve"))


def test_unauthorised_approver_is_refused_and_plan_stays_pending(settings):
    strict = settings.model_copy(update={"APPROVERS": "alice"})
    outcome, _ = run(_analyze(strict, "crashloop"))
    with pytest.raises(PermissionError):
        run(_decide(strict, outcome.plan_id, approver="mallory", decision="approve"))
    done = run(_decide(strict, outcome.plan_id, approver="alice", decision="approve"))
    assert done.status.value == "resolved"


def test_unknown_plan(settings):
    with pytest.raises(UnknownPlan):
        run(_decide(settings, "plan-doesnotexist", approver="alice", decision="approve"))


def test_duplicate_alert_ends_at_triage(settings):
    first, _ = run(_analyze(settings, "crashloop"))
    again, _ = run(_analyze(settings, "crashloop"))
    assert again.status.value == "duplicate"
    assert again.report.triage.duplicate_of == first.incident_id
    assert again.report.plan is None and again.report.hypotheses == [] and again.report.llm_calls == []


def test_resolved_alert_closes_the_open_incident(settings):
    first, _ = run(_analyze(settings, "crashloop"))
    rec = load_recorded(recording("crashloop"))
    payload = rec.webhook.model_dump(mode="json", by_alias=True)
    payload["status"] = "resolved"
    payload["alerts"][0].update(status="resolved", endsAt="2026-03-11T09:30:00Z")
    from core.models import AlertmanagerWebhook

    async def resolve():
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            out = await runner.analyze(AlertmanagerWebhook.model_validate(payload))
            return out, runner.registry.get(first.incident_id)

    out, row = run(resolve())
    assert out.status.value == "resolved" and out.report.plan is None
    assert row.status == "resolved"


def test_high_risk_network_plan_targets_the_router(settings):
    outcome, _ = run(_analyze(settings, "router-uplink-flap"))
    a = outcome.report.plan.actions[0]
    assert outcome.status.value == "awaiting_approval" and outcome.report.plan.risk.value == "high"
    assert (a.name, a.target, a.parameters["interface"]) == ("routeros_interface_disable", "rtr-edge-01", "ether1-isp-a")
    done = run(_decide(settings, outcome.plan_id, approver="alice", decision="approve"))
    # RouterOS is not configured: a clearly reported dry run, never a pretend success
    assert [e.status for e in done.report.executions] == ["dry_run"]
    assert done.report.verification.recovered is None and done.status.value == "executed"

"""Finding 3: auto-approval ignored parameters.

`cleanup_rotated_logs` is low-risk and a known fix, so today any values were approved by policy: an
alert's `mountpoint` chose the directory and a model's `patterns=*`, `older_than_days=0` deleted a
tree. Now only the policy's own safe values are auto-approved (under AUTO_APPROVE_LOG_ROOTS,
rotated-log globs from a fixed list, age >= 1 day, one host); anything else waits for a human, and
the reason is recorded either way.
"""

from __future__ import annotations

import asyncio

import pytest

from agents.approval import auto_approval, auto_approval_verdict
from core.models import AlertmanagerWebhook, Plan
from core.settings import load_settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording, scripted_chain
from tests.scripted_model import ScriptedChatModel, reply, tool_call
from tools.catalog import CATALOG
from tools.replay.recording import load_recorded


def _plan(*actions) -> Plan:
    return Plan(incident_id="inc-1", actions=list(actions), rationale="r", known_fix=True)


def cleanup(host="backup-01", **params):
    return CATALOG["cleanup_rotated_logs"].action(host, **params)


def test_the_catalogs_own_values_are_auto_approved(settings):
    ok, why = auto_approval_verdict(_plan(cleanup()), settings)
    assert ok and "within the auto-approval bounds" in why
    assert auto_approval(_plan(cleanup(path="/var/log/nginx", older_than_days=1)), settings) is not None


@pytest.mark.parametrize("params, why", [
    ({"path": "/data/log"}, "outside AUTO_APPROVE_LOG_ROOTS"),
    ({"path": "/srv"}, "outside AUTO_APPROVE_LOG_ROOTS"),
    ({"patterns": "*.log"}, "not rotated-log globs"),
    ({"patterns": "*.gz,*.conf"}, "not rotated-log globs"),
    ({"older_than_days": 0}, "below 1 day"),
])
def test_values_outside_the_bounds_need_a_human(settings, params, why):
    ok, reason = auto_approval_verdict(_plan(cleanup(**params)), settings)
    assert not ok and why in reason
    assert auto_approval(_plan(cleanup(**params)), settings) is None


def test_the_log_roots_are_a_setting(tmp_path):
    s = load_settings(AIOPS_DATA_DIR=tmp_path, AUTO_APPROVE_LOG_ROOTS="/var/log,/data/log")
    assert auto_approval(_plan(cleanup(path="/data/log")), s) is not None


def test_an_automatic_plan_touches_one_host(settings):
    ok, why = auto_approval_verdict(_plan(cleanup("a-01"), cleanup("a-02")), settings)
    assert not ok and "MAX_TARGETS_PER_AUTO_PLAN" in why


def test_entries_without_declared_bounds_are_never_auto_approved(settings):
    snap = CATALOG["proxmox_snapshot_create"].action("pve-01", node="pve-01", vmid=101, snapname="before")
    ok, why = auto_approval_verdict(_plan(snap), settings)
    assert not ok


def _disk_alert(mountpoint: str) -> AlertmanagerWebhook:
    rec = load_recorded(recording("disk-full"))
    data = rec.webhook.model_dump(mode="json", by_alias=True)
    data["alerts"][0]["labels"]["mountpoint"] = mountpoint
    return AlertmanagerWebhook.model_validate(data)


def test_an_alerts_mountpoint_does_not_choose_an_auto_approved_directory(settings):
    """The alert says /srv is filling; the recording's logs show rotated logs under /var/log only. A
    cleanup is bound to the mount the alert names and a log directory the evidence shows on it: there is
    none on /srv (issue 17: it used to plan `/srv/log`, a directory nobody had seen), so nothing is
    cleaned and a human takes it."""
    async def go():
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            return await runner.analyze(_disk_alert("/srv"), replay_spec(recording("disk-full"), settings))

    out = asyncio.run(go())
    assert out.status.value == "escalated" and out.report.executions == []
    assert [a.name for a in out.report.plan.actions] == ["escalate_to_oncall"]
    assert out.report.approval is None


def test_a_models_wide_cleanup_waits_for_a_human(settings):
    model = ScriptedChatModel(script=[
        reply(tool_call("Diagnosis", hypotheses=[{"component": "backup-01", "cause": "disk full", "confidence": 0.9,
                                                  "evidence_ids": ["ev-1"]}])),
        reply(tool_call("RemediationPlan", rationale="free everything", steps=[
            {"action": "cleanup_rotated_logs", "target": "backup-01",
             "parameters": {"path": "/var/log", "patterns": "*.log,*.gz", "older_than_days": 0}}])),
    ])

    async def go():
        rec = load_recorded(recording("disk-full"))
        async with IncidentRunner(settings, make_toolbox_factory(settings, llm=scripted_chain(model))) as runner:
            return await runner.analyze(rec.webhook, replay_spec(recording("disk-full"), settings))

    out = asyncio.run(go())
    plan = out.report.plan
    assert plan.actions[0].parameters["older_than_days"] == 0  # valid for the catalog ...
    assert out.status.value == "awaiting_approval" and out.report.executions == []  # ... but not for the policy
    assert any("not rotated-log globs" in c for c in plan.checks)


def test_the_policy_reason_is_recorded_when_it_approves(settings):
    async def go():
        rec = load_recorded(recording("disk-full"))
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            return await runner.analyze(rec.webhook, replay_spec(recording("disk-full"), settings))

    out = asyncio.run(go())
    assert out.report.approval.approver == "policy"
    assert "within the auto-approval bounds" in out.report.approval.comment

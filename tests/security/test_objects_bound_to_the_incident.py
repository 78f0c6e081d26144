"""Issue 16, finding 4: model output (and the rule planner's) is bound to the incident.

A model may not propose an action on an object the incident never named or observed: asked about guest
101, it reboots guest 4242. And the rule planner may not justify an action on one host with evidence read
from another: an alert naming web-01, replayed with readings of backup-01, was auto-approved and deleted
files on web-01. Every host, guest, interface, service and path of an action must come from the alert's
labels or from evidence read in this incident about that same object, or the plan is refused with the
reason (and nothing runs without a human).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from core.models import AlertmanagerWebhook, utcnow
from core.settings import load_settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording, scripted_chain
from tests.scripted_model import ScriptedChatModel, reply, tool_call
from tests.sim.proxmox import ProxmoxSim
from tools.replay.recording import load_recorded


def _guest_alert() -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "{}:{alertname=\"HostHighCpuLoad\"}", "status": "firing", "receiver": "aiops",
        "alerts": [{"status": "firing", "fingerprint": "web01cpu", "startsAt": (utcnow() - timedelta(minutes=8)).isoformat(),
                    "annotations": {"summary": "Host high CPU load on web-01"},
                    "labels": {"alertname": "HostHighCpuLoad", "host": "web-01", "instance": "web-01:9100",
                               "pve_node": "pve-01", "vmid": "101", "severity": "warning"}}]})


def test_a_model_cannot_act_on_a_guest_the_incident_never_named(tmp_path: Path):
    model = ScriptedChatModel(script=[
        reply(tool_call("Diagnosis", summary="web-01 saturated", hypotheses=[
            {"component": "web-01", "cause": "CPU saturation", "confidence": 0.8, "evidence_ids": ["ev-1"]}])),
        reply(tool_call("RemediationPlan", rationale="reboot the guest", steps=[
            {"action": "proxmox_vm_reboot", "target": "pve-01", "parameters": {"node": "pve-01", "vmid": 4242}}])),
    ])
    with ProxmoxSim() as pve:
        pve.heat(101)
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
                                 PROXMOX_HOST=pve.host, PROXMOX_USER=pve.user, PROXMOX_TOKEN_NAME=pve.token_name,
                                 PROXMOX_TOKEN_VALUE=pve.token_value, PROXMOX_CA_BUNDLE=pve.ca_file)

        async def go():
            async with IncidentRunner(settings, make_toolbox_factory(settings, llm=scripted_chain(model))) as runner:
                return await runner.analyze(_guest_alert())

        out = asyncio.run(go())
        plan = out.report.plan
        assert not any(a.parameters.get("vmid") == 4242 for a in plan.actions), plan.actions
        assert ("the model's plan was refused: proxmox_vm_reboot: vmid '4242' is neither named by the alert nor "
                "observed in this incident's evidence") in plan.rationale
        call = next(c for c in out.report.llm_calls if c.node == "remediation")
        assert call.ok is False and "vmid '4242'" in call.error
        # what remains is the rules' plan, about the guest the alert names, waiting for a human
        assert all(a.parameters.get("vmid") in (None, 101) for a in plan.actions)
        assert out.report.executions == [] and not any(t.type.endswith("reboot") for t in pve.tasks.values())


def test_evidence_about_another_host_never_justifies_an_automatic_action(tmp_path: Path):
    """The alert names web-01; every reading (the recording's) is about backup-01. The cleanup on web-01 may
    be put before a human, never run by policy."""
    rec = load_recorded(recording("disk-full"))
    data = rec.webhook.model_dump(mode="json", by_alias=True)
    for a in data["alerts"]:
        a["labels"].update(host="web-01", instance="web-01:9100")
        a["fingerprint"] = "web01disk"
    hook = AlertmanagerWebhook.model_validate(data)
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False)

    async def go():
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            return await runner.analyze(hook, replay_spec(recording("disk-full"), settings))

    out = asyncio.run(go())
    r = out.report
    assert r.approval is None or r.approval.channel != "policy", r.approval
    assert r.executions == [] and not r.plan.known_fix
    assert all(a.target == "web-01" for a in r.plan.actions if a.name != "escalate_to_oncall")
    # the fit says what is missing: a reading of web-01's own filesystem
    assert any("missing: a filesystem-usage reading of that host's mount" in f for f in r.plan.fit), r.plan.fit

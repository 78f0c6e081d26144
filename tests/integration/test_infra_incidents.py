"""Done-when of the infrastructure toolsets, through the real graph and IncidentRunner with PROXMOX_* /
MIKROTIK_* settings pointing at the simulators: a Proxmox guest alert and a router interface alert are
diagnosed from evidence read from the simulators and cited by the top hypothesis; the (high-risk)
plan waits for a human; once approved it runs against the simulator and is verified by reading the
guest / router again."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from core.models import AlertmanagerWebhook, utcnow
from core.settings import Settings, load_settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory
from tests.conftest import recording
from tests.sim.proxmox import ProxmoxSim
from tests.sim.routeros import RouterOSSim


def webhook(labels: dict[str, str], summary: str, minutes_ago: float = 8) -> AlertmanagerWebhook:
    alert = {"status": "firing", "labels": labels, "annotations": {"summary": summary},
             "startsAt": (utcnow() - timedelta(minutes=minutes_ago)).isoformat(), "fingerprint": labels["alertname"][:16]}
    return AlertmanagerWebhook.model_validate({"version": "4", "groupKey": "{}:{}", "status": "firing",
                                               "receiver": "aiops", "alerts": [alert]})


def settings_for(tmp_path, pve: ProxmoxSim | None = None, rtr: RouterOSSim | None = None) -> Settings:
    extra: dict[str, object] = {}
    if pve is not None:
        extra.update(PROXMOX_HOST=pve.host, PROXMOX_USER=pve.user, PROXMOX_TOKEN_NAME=pve.token_name,
                     PROXMOX_TOKEN_VALUE=pve.token_value, PROXMOX_CA_BUNDLE=pve.ca_file, PROXMOX_TASK_TIMEOUT=10)
    if rtr is not None:
        extra.update(MIKROTIK_HOST="127.0.0.1", MIKROTIK_PORT=rtr.port, MIKROTIK_USER=rtr.user,
                     MIKROTIK_PASSWORD=rtr.password, MIKROTIK_TIMEOUT=5)
    return load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False, **extra)


async def analyze(settings: Settings, hook: AlertmanagerWebhook):
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        return await runner.analyze(hook)


async def approve(settings: Settings, plan_id: str):
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        return await runner.decide(plan_id, approver="alice", decision="approve")


def cited(report, tool_prefix: str) -> list:
    top = report.hypotheses[0]
    by_id = {e.id: e for e in report.evidence}
    return [by_id[i] for i in top.evidence_ids if by_id[i].tool.startswith(tool_prefix)]


def test_proxmox_guest_alert_diagnosed_approved_executed_verified(tmp_path):
    """A guest pegged on CPU for longer than the sustained window: a resize within PROXMOX_MAX_CORES is
    proposed (less disruptive than the reboot, which needs no sustained window), a human approves, PVE
    runs it, and verification reads the guest and its RRD series again."""
    with ProxmoxSim() as pve:
        pve.heat(101, minutes_ago=12)
        settings = settings_for(tmp_path, pve=pve)
        hook = webhook({"alertname": "HostHighCpuLoad", "host": "web-01", "instance": "web-01:9100",
                        "pve_node": "pve-01", "vmid": "101", "severity": "warning"}, "Host high CPU load on web-01")
        out = asyncio.run(analyze(settings, hook))
        r = out.report
        assert r.hypotheses[0].component == "web-01"
        evidence = cited(r, "proxmox")
        assert any(e.tool == "proxmox_rrd" and e.query.startswith("pve_guest_cpu_ratio{") for e in evidence)
        assert any(e.query == "GET /nodes/pve-01/qemu/101/status/current" for e in evidence)
        assert out.status.value == "awaiting_approval"
        (action,) = r.plan.actions
        assert (action.name, action.parameters) == ("proxmox_guest_set_cores", {"node": "pve-01", "vmid": 101,
                                                                                "cores": 4})
        assert "sustained CPU saturation" in r.plan.fit[0] and "always decided by a human" in r.plan.fit[0]
        assert "guest web-01 is running" in r.plan.checks[0] and "cores -> 4 is within limits" in r.plan.checks[0]
        assert pve.guest(101)[1].events == []  # nothing ran before the approval

        done = asyncio.run(approve(settings, out.plan_id))
        ex = done.report.executions[0]
        assert ex.status == "ok" and "exit status OK" in ex.output, ex.output
        assert pve.guest(101)[1].cores == 4 and pve.guest(101)[1].events[-1] == "config:cores=4"
        v = done.report.verification
        assert v.recovered is True and done.status.value == "resolved", v
        assert any("guest web-01 is running" in c.note for c in v.checks)
        assert any(c.note.startswith("PVE RRD") for c in v.checks)


def test_a_cpu_spike_shorter_than_the_sustained_window_gets_a_reboot_proposal(tmp_path):
    with ProxmoxSim() as pve:
        pve.heat(101, minutes_ago=5)
        settings = settings_for(tmp_path, pve=pve)
        hook = webhook({"alertname": "HostHighCpuLoad", "host": "web-01", "instance": "web-01:9100",
                        "pve_node": "pve-01", "vmid": "101", "severity": "warning"}, "Host high CPU load on web-01")
        r = asyncio.run(analyze(settings, hook)).report
        assert [a.name for a in r.plan.actions] == ["proxmox_vm_reboot"]
        assert "a snapshot is taken first" in r.plan.checks[0] and not r.plan.known_fix


def test_pve_exporter_alert_cites_simulator_evidence(tmp_path):
    with ProxmoxSim() as pve:
        pve.heat(102, minutes_ago=12)
        settings = settings_for(tmp_path, pve=pve)
        hook = webhook({"alertname": "PveHighCpuUsage", "id": "qemu/102", "instance": "pve-exporter:9221",
                        "job": "pve", "severity": "warning"}, "PVE high CPU usage (instance pve-exporter:9221)")
        r = asyncio.run(analyze(settings, hook)).report
        assert r.hypotheses[0].component == "db-01"
        assert any(e.tool == "proxmox_rrd" and 'vmid="102"' in e.query for e in cited(r, "proxmox"))


def test_router_interface_alert_diagnosed_approved_executed_verified(tmp_path):
    demo = json.loads(recording("router-uplink-flap").read_text())
    labels = demo["webhook"]["alerts"][0]["labels"]  # the demo's alert, live this time
    with RouterOSSim() as rtr:
        settings = settings_for(tmp_path, rtr=rtr)
        out = asyncio.run(analyze(settings, webhook(labels, "Interface ether1-isp-a on rtr-edge-01 is flapping")))
        r = out.report
        assert r.triage.category == "network" and r.hypotheses[0].component == "ether1-isp-a"
        evidence = cited(r, "routeros")
        assert any(e.signal == "log" and "ether1-isp-a flapping: 20 'link down'" in e.excerpt for e in evidence)
        assert any("backup path available" in e.excerpt for e in r.evidence)
        assert out.status.value == "awaiting_approval" and r.plan.actions[0].name == "routeros_interface_disable"
        assert "management path" in r.plan.checks[0] and "re-enables it after 300 s" in r.plan.checks[0]
        assert not rtr.router.iface("ether1-isp-a").disabled

        done = asyncio.run(approve(settings, out.plan_id))
        ex = done.report.executions[0]
        assert ex.status == "ok" and ex.details["revert_job"] and rtr.router.iface("ether1-isp-a").disabled
        v = done.report.verification
        assert v.recovered is True and done.status.value == "resolved", v
        assert "revert job(s)" in v.note and "removed" in v.note
        assert rtr.router.scheduler == []  # disarmed only because verification succeeded
        assert next(r for r in rtr.router.routes if r.id == "*2").gateway == "198.51.100.1"


def test_management_interface_alert_plan_is_refused_at_preflight(tmp_path):
    with RouterOSSim() as rtr:
        settings = settings_for(tmp_path, rtr=rtr)
        rtr.router.iface("ether5-mgmt").flapping = True
        for k in (5, 4, 3):  # it has flapped over the last few minutes (in the router's log)
            rtr.router.flap(rtr.router.clock - k * 60)
        hook = webhook({"alertname": "RouterInterfaceFlapping", "instance": "rtr-edge-01", "host": "rtr-edge-01",
                        "interface": "ether5-mgmt", "job": "snmp", "severity": "warning"},
                       "Interface ether5-mgmt on rtr-edge-01 is flapping")
        out = asyncio.run(analyze(settings, hook))
        plan = out.report.plan
        assert plan.actions[0].name == "routeros_interface_disable"
        assert plan.checks[0].startswith("REFUSED") and "management path" in plan.checks[0]
        done = asyncio.run(approve(settings, out.plan_id))  # even a human's approval cannot make it run
        assert done.report.executions[0].status == "failed" and "refused" in done.report.executions[0].output
        assert done.status.value == "failed"
        assert not rtr.router.iface("ether5-mgmt").disabled and rtr.router.scheduler == []


@pytest.mark.parametrize("which", ["proxmox", "routeros"])
def test_unreachable_api_is_evidence_not_a_crash(tmp_path, which):
    if which == "proxmox":
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, PROXMOX_HOST="127.0.0.1:9",
                                 PROXMOX_TOKEN_NAME="t", PROXMOX_TOKEN_VALUE="v", PROXMOX_TIMEOUT=2)
        labels = {"alertname": "PveHighCpuUsage", "id": "qemu/101"}
    else:
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, MIKROTIK_HOST="127.0.0.1",
                                 MIKROTIK_PORT=9, MIKROTIK_USER="aiops", MIKROTIK_TIMEOUT=2)
        labels = {"alertname": "RouterInterfaceFlapping", "interface": "ether1-isp-a", "host": "rtr-edge-01"}
    r = asyncio.run(analyze(settings, webhook(labels, "x"))).report
    assert any(e.excerpt.startswith("could not read") for e in r.evidence)


def test_llm_diagnosis_calls_the_router_tools_and_cites_them(tmp_path):
    import re

    from langchain_core.messages import SystemMessage, ToolMessage

    from tests.conftest import scripted_chain
    from tests.scripted_model import ScriptedChatModel, reply, tool_call

    def diagnosis(messages, tools):
        ev = [re.match(r"(ev-\d+):", m.content).group(1) for m in messages if isinstance(m, ToolMessage)]
        return reply(tool_call("Diagnosis", summary="primary uplink carrier flapping", hypotheses=[
            {"component": "ether1-isp-a", "cause": "carrier flaps (bad SFP or cable)", "confidence": 0.8,
             "evidence_ids": [ev[-1]]}]))

    model = ScriptedChatModel(script=[
        reply(tool_call("ros_log", contains="ether1-isp-a", limit=10)),
        diagnosis,
        reply(tool_call("RemediationPlan", rationale="fail over to isp-b", steps=[
            {"action": "routeros_interface_disable", "target": "rtr-edge-01",
             "parameters": {"interface": "ether1-isp-a"}}])),
    ])
    with RouterOSSim() as rtr:
        settings = settings_for(tmp_path, rtr=rtr)
        hook = webhook({"alertname": "RouterInterfaceFlapping", "host": "rtr-edge-01", "interface": "ether1-isp-a",
                        "severity": "warning"}, "Interface ether1-isp-a on rtr-edge-01 is flapping")

        async def go():
            async with IncidentRunner(settings, make_toolbox_factory(settings, llm=scripted_chain(model))) as runner:
                return await runner.analyze(hook)

        r = asyncio.run(go()).report
    first = model.requests[0]
    assert {"ros_interfaces", "ros_log", "ros_routes"} <= set(first["tools"])
    system = next(m for m in first["messages"] if isinstance(m, SystemMessage))
    assert "RouterOS tools (ros_*)" in system.content  # the toolset's notes for the model
    tool_ev = next(e for e in r.evidence if e.tool == "ros_log")
    assert '"status":"ok"' in tool_ev.excerpt and "link down" in tool_ev.excerpt
    # the rules rank (the interface first); the model explains it, citing what its tool call read
    top = r.hypotheses[0]
    assert top.component == "ether1-isp-a" and r.mode == "scripted-1"
    assert top.cause == "carrier flaps (bad SFP or cable)" and tool_ev.id in top.evidence_ids
    assert r.plan.actions[0].name == "routeros_interface_disable"


def test_a_replay_never_touches_the_configured_infrastructure(tmp_path):
    """The demo's recordings name pve-01/101 and rtr-edge-01: with real PROXMOX_*/MIKROTIK_* set, a replay
    still only dry-runs (a recorded incident must not reboot a real guest)."""
    from service.toolbox_factory import replay_spec
    from tools.replay.recording import load_recorded

    with ProxmoxSim() as pve, RouterOSSim() as rtr:
        settings = settings_for(tmp_path, pve=pve, rtr=rtr)

        async def go():
            rec = load_recorded(recording("router-uplink-flap"))
            async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
                out = await runner.analyze(rec.webhook, replay_spec(recording("router-uplink-flap"), settings))
                return await runner.decide(out.plan_id, approver="alice", decision="approve")

        done = asyncio.run(go())
        assert [e.status for e in done.report.executions] == ["dry_run"]
        assert not rtr.router.iface("ether1-isp-a").disabled and rtr.router.scheduler == []
        assert not any(cmd[0] == "/interface/set" for cmd in rtr.commands) and pve.requests == []

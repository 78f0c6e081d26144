"""Issue 17 item 3 at node level: a PVE node saturated for the sustained window gets a node reboot put
before a human, bound to the node the alert names (or, when it names none, the node this incident's
readings are about), on evidence about that node itself; never automatic, never where HA-managed guests
run or the cluster would lose quorum, and nothing undoes it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.approval import auto_approval
from agents.policy import PolicyError, load_policy
from agents.remediation import is_escalation, plan
from agents.self_healing import inverse_plan
from agents.toolbox import Toolbox
from core.llm import LLMChain
from core.models import (
    AlertmanagerWebhook,
    Diagnosis,
    Evidence,
    ExecutionResult,
    Hypothesis,
    Plan,
    Risk,
    TriageVerdict,
)
from core.settings import load_settings
from graphs.incident import incident_from_webhook
from tools.catalog import CATALOG
from tools.objects import Objects
from tools.proxmox.node_reboot import GuestOnNode, NodeImpact

NODE_ALERT = {"alertname": "PveHighCpuUsage", "id": "node/pve-03", "instance": "pve-exporter:9221", "job": "pve",
              "severity": "warning"}
CPU = TriageVerdict(kind="incident", category="cpu", reason="r", domain="virtualization", exporter="pve",
                    metrics=["pve_cpu_usage_ratio"])
GUESTS = [GuestOnNode(vmid=120, name="app-03", kind="qemu", status="running"),
          GuestOnNode(vmid=121, name="batch-03", kind="qemu", status="running")]


def _incident(labels: dict[str, str]):
    wh = AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-03-10T03:45:00Z"}]})
    return incident_from_webhook(wh)


def saturated(node: str, ev_id: str = "ev-5", what: str = "cpu", minutes: int = 14) -> Evidence:
    """What `evidence.sustained_readings` writes for a node's own series."""
    metric = "pve_node_cpu_ratio" if what == "cpu" else "pve_node_memory_used_ratio"
    return Evidence(id=ev_id, tool="proxmox_rrd", query=f'{metric}{{node="{node}",service="{node}"}}', component=node,
                    signal="metric", value=0.97, baseline=0.12, about={"node": node},
                    excerpt=f"{node} {'CPU' if what == 'cpu' else 'memory'} saturated: at or above 90% for the last "
                            f"{minutes} min (sustained; PVE RRD {metric})")


def impact(node: str, ev_id: str = "ev-4", **kw) -> Evidence:
    """The reboot-impact reading `evidence.investigate` takes for an alert about a node."""
    imp = NodeImpact(**{"node": node, "known": True, "online": True, "guests": GUESTS, "cluster": "homelab",
                        "members": 3, "online_members": 3, **kw})
    return Evidence(id=ev_id, tool="proxmox", query="GET /cluster/status", component=node, signal="state",
                    anomalous=False, about={"node": node}, excerpt=imp.reading())


def _plan(labels: dict[str, str], evidence: list[Evidence], verdict: TriageVerdict = CPU):
    s = load_settings()
    diag = Diagnosis(hypotheses=[Hypothesis(component=labels.get("id", "x").split("/")[-1], cause="c",
                                            confidence=0.5)])
    p, _ = asyncio.run(plan(_incident(labels), verdict, diag, evidence, Toolbox(llm=LLMChain([]), settings=s), []))
    return p, auto_approval(p, s)


def test_a_node_saturated_for_the_sustained_window_gets_a_reboot_put_before_a_human():
    p, auto = _plan(NODE_ALERT, [impact("pve-03"), saturated("pve-03")])
    assert [(a.name, a.target, a.parameters, a.risk) for a in p.actions] == [
        ("proxmox_node_reboot", "pve-03", {"node": "pve-03"}, Risk.HIGH)]
    assert p.fit == ["proxmox_node_reboot: fits — sustained node saturation: ev-5; always decided by a human"]
    assert auto is None and not p.known_fix  # never without a human, whatever the policy
    mem, _ = _plan({**NODE_ALERT, "alertname": "PveHighMemoryUsage"},
                   [impact("pve-03"), saturated("pve-03", what="memory")], CPU.model_copy(update={"category": "memory"}))
    assert [a.name for a in mem.actions] == ["proxmox_node_reboot"]


def test_the_node_comes_from_the_alert_or_from_readings_about_the_node_itself():
    # A node_exporter alert on the PVE host names no PVE node; the readings taken in this incident do.
    host_alert = {"alertname": "HostHighCpuLoad", "instance": "pve-03:9100", "job": "node", "severity": "warning"}
    p, _ = _plan(host_alert, [impact("pve-03"), saturated("pve-03")], CPU.model_copy(update={"domain": "host"}))
    assert [(a.name, a.target) for a in p.actions] == [("proxmox_node_reboot", "pve-03")]
    # A node nobody named nor read is never an object, whoever proposes it (a model, a remembered fix).
    objects = Objects.of(NODE_ALERT, CPU, [impact("pve-03"), saturated("pve-03")], [{"node": {"pve-03"}}])
    other = CATALOG["proxmox_node_reboot"].action("pve-09", node="pve-09")
    assert set(objects.problems(other, CATALOG["proxmox_node_reboot"])) == {
        "proxmox_node_reboot: node 'pve-09' is neither named by the alert nor observed in this incident's evidence"}


def test_saturation_evidence_about_another_node_is_refused():
    """The alert names pve-02; the saturated series is pve-01's: no reboot of pve-02 on pve-01's evidence,
    and no reboot of pve-01 for an alert about pve-02."""
    labels = {**NODE_ALERT, "id": "node/pve-02"}
    p, auto = _plan(labels, [impact("pve-02"), saturated("pve-01")])
    assert is_escalation(p) and auto is None
    assert ("proxmox_node_reboot: refused — its required evidence is missing; missing: the node's own CPU or memory "
            "at or above 90% through the sustained window (PVE node RRD)") in p.fit
    assert all(a.target != "pve-01" for a in p.actions)


def test_a_guests_saturation_on_the_node_is_not_the_nodes():
    guest_series = Evidence(id="ev-6", tool="proxmox_rrd", signal="metric", value=0.97, component="app-03",
                            query='pve_guest_cpu_ratio{node="pve-03",service="app-03",type="qemu",vmid="120"}',
                            about={"vmid": "120", "node": "pve-03", "host": "app-03"},
                            excerpt="app-03 CPU saturated: at or above 90% for the last 14 min (sustained; PVE RRD "
                                    "pve_guest_cpu_ratio)")
    p, _ = _plan(NODE_ALERT, [impact("pve-03"), guest_series])
    assert "proxmox_node_reboot" not in [a.name for a in p.actions]


def test_a_brief_spike_is_not_sustained_saturation():
    p, _ = _plan(NODE_ALERT, [impact("pve-03"), saturated("pve-03").model_copy(update={
        "excerpt": "pve_node_cpu_ratio up to 0.97 (baseline 0.12, anomaly score 9.1; PVE RRD)"})])
    assert is_escalation(p) and any("proxmox_node_reboot: refused — its required evidence is missing" in f for f in p.fit)


@pytest.mark.parametrize(("kw", "why"), [
    ({"guests": [*GUESTS, GuestOnNode(vmid=122, name="db-03", kind="qemu", status="running", ha=True)]},
     "never for a node where HA-managed guests run: ev-4"),
    ({"members": 2, "online_members": 2}, "never for a reboot that would cost the cluster its quorum: ev-4"),
    ({"members": 3, "online_members": 1, "quorate": False},
     "never for a reboot that would cost the cluster its quorum: ev-4"),
])
def test_never_where_ha_managed_guests_run_or_quorum_would_be_lost(kw, why):
    p, _ = _plan(NODE_ALERT, [impact("pve-03", **kw), saturated("pve-03")])
    assert is_escalation(p), p.actions
    assert f"proxmox_node_reboot: refused — {why}" in p.fit


def test_impact_refusals_and_what_the_approver_reads():
    ok = NodeImpact(node="pve-03", known=True, online=True, guests=[
        GuestOnNode(vmid=120, name="app-03", kind="qemu", status="running", onboot=True),
        GuestOnNode(vmid=121, name="batch-03", kind="qemu", status="running", onboot=False),
        GuestOnNode(vmid=125, name="old-03", kind="lxc", status="stopped")], cluster="homelab", members=3,
        online_members=3)
    assert ok.refusals() == []
    assert ok.guests_line() == ("takes down the 2 guest(s) running on pve-03: app-03 (qemu/120), starts at boot; "
                                "batch-03 (qemu/121), does NOT start at boot: stays stopped")
    assert ok.cluster_line() == "cluster homelab quorate, 3 of 3 nodes online, 2 stay online: a reboot keeps quorum"
    two = ok.model_copy(update={"members": 2, "online_members": 2})
    assert two.refusals() == ["rebooting it would leave 1 of 2 nodes of cluster homelab online, below quorum "
                              "(2; one vote per node assumed)"]
    alone = ok.model_copy(update={"members": 3, "online_members": 1, "quorate": False})
    assert alone.refusals()[0].startswith("cluster homelab is not quorate now")
    standalone = ok.model_copy(update={"cluster": "", "members": 1, "online_members": 1})
    assert standalone.refusals() == [] and "standalone node" in standalone.cluster_line()


def test_no_policy_may_reboot_a_node_and_nothing_undoes_it(tmp_path: Path):
    entry = CATALOG["proxmox_node_reboot"]
    assert entry.bounds is None and entry.inverse is None and entry.risk is Risk.HIGH and entry.fit.always_human
    f = tmp_path / "p.yaml"
    f.write_text("rules:\n  - {name: reboot-nodes, actions: [proxmox_node_reboot], targets: ['pve-*'], max_risk: high}\n")
    with pytest.raises(PolicyError, match="names proxmox_node_reboot, which has no auto-approval bounds"):
        load_policy(f)
    a = entry.action("pve-03", node="pve-03")
    ran = ExecutionResult(action=a.name, target=a.target, status="ok", details={"node": "pve-03", "kind": "node"})
    follow = inverse_plan(Plan(incident_id="inc-1", actions=[a], rationale="r"), [ran], load_settings())
    assert [x.name for x in follow.actions] == ["escalate_to_oncall"] and "no inverse" in follow.rationale

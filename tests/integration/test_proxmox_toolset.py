"""The Proxmox VE toolset with the real proxmoxer (https backend) against the PVE API simulator:
token auth (and its refusal), reads, actions that wait on their UPID task and report its exit
status (a failing task too), snapshot-first on capable storage, resize limits, stale plans, and
the LLM read tools' results."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from core.models import Action, Risk, TriageVerdict, utcnow
from tests.sim.proxmox import READ_PRIVS, ProxmoxSim
from tools.catalog import CATALOG
from tools.params import ParameterRefused
from tools.proxmox import actions
from tools.proxmox.client import ProxmoxAuthError, ProxmoxClient, ProxmoxConfig, ProxmoxError
from tools.proxmox.evidence import investigate
from tools.proxmox.tools import make_proxmox_tools


@pytest.fixture
def pve():
    with ProxmoxSim() as sim:
        yield sim


def client_for(sim: ProxmoxSim, **kw) -> ProxmoxClient:
    cfg = dict(host=sim.host, user=sim.user, token_name=sim.token_name, token_value=sim.token_value,
               verify_ssl=sim.ca_file, task_timeout=5)
    cfg.update(kw)
    return ProxmoxClient(ProxmoxConfig(**cfg), poll_interval=0.05)


def act(name: str, **params) -> Action:
    try:
        return CATALOG[name].action("pve-01", **params)
    except ParameterRefused:  # the catalog's wall; build it raw to test the toolset's own checks behind it
        e = CATALOG[name]
        return Action(kind=e.kind, name=name, target="pve-01", parameters=params, risk=e.risk, verification=e.verification)


def test_token_auth_and_tls(pve):
    c = client_for(pve)
    assert c.version()["release"] == "8.2"
    assert ("GET", "/version") in pve.requests
    with pytest.raises(ProxmoxAuthError, match="401 invalid token value!.*PROXMOX_TOKEN_VALUE"):
        client_for(pve, token_value="wrong-secret").version()
    with pytest.raises(ProxmoxAuthError):
        client_for(pve, token_name="nosuch").cluster_resources()
    with pytest.raises(ProxmoxError, match="CERTIFICATE_VERIFY_FAILED"):  # a self-signed PVE cert is not trusted blindly
        client_for(pve, verify_ssl=True).version()


def test_reads(pve):
    c = client_for(pve)
    g = c.find_guest(vmid=201)
    assert (g.node, g.kind, g.name) == ("pve-01", "lxc", "dns-01")
    assert c.find_guest(name="ci-runner-01").node == "pve-02"
    assert c.guest_status(g)["status"] == "running"
    assert c.guest_config(g)["hostname"] == "dns-01"
    assert c.node_status("pve-02")["cpuinfo"]["cpus"] == 8
    assert {s["storage"] for s in c.storage("pve-01")} == {"local", "local-zfs", "nfs-bulk"}
    rows = c.guest_rrd(g)
    assert len(rows) == 70 and rows[-1]["time"] - rows[-2]["time"] == 60
    with pytest.raises(ValueError):
        c.node_status("pve-01; rm -rf /")
    with pytest.raises(ProxmoxError, match="Configuration file .* does not exist"):
        c.guest_status(g.model_copy(update={"vmid": 999}))


def test_reboot_takes_a_snapshot_first_and_waits_for_the_task(pve):
    c = client_for(pve)
    pve.heat(101)
    out = actions.execute(act("proxmox_vm_reboot", node="pve-01", vmid="101"), c, plan_id="plan-1")
    assert out.status == "ok", out.output
    snap = str(out.details["snapshot"])
    assert snap.startswith("aiops_") and f"snapshot {snap} taken first" in out.output
    assert "qmreboot on pve-01: exit status OK" in out.output and out.details["exitstatus"] == "OK"
    _, g = pve.guest(101)
    assert g.events == [f"snapshot:{snap}", "reboot"] and g.hot_since is None
    # the UPID was polled until it stopped, and its log read
    upid = str(out.details["upid"])
    assert upid.startswith("UPID:pve-01:") and ("GET", f"/nodes/pve-01/tasks/{upid}/log") in pve.requests


def test_no_snapshot_when_the_storage_cannot(pve):
    out = actions.execute(act("proxmox_vm_reboot", node="pve-01", vmid="103"), client_for(pve))
    assert out.status == "ok" and "snapshot" not in out.details
    assert "storage does not support snapshots" in out.output
    assert pve.guest(103)[1].events == ["reboot"]


def test_a_failing_task_is_a_failed_step_with_its_exit_status(pve):
    pve.guest(110)[1].fail_next = "start failed: QEMU exited with code 1"
    out = actions.execute(CATALOG["proxmox_guest_start"].action("pve-02", node="pve-02", vmid="110"), client_for(pve))
    assert out.status == "failed"
    assert "exit status start failed: QEMU exited with code 1" in out.output
    assert "TASK ERROR: start failed" in out.output
    assert pve.guest(110)[1].status == "stopped"
    # PVE's own refusals are failed tasks too (starting a running guest)
    again = actions.execute(act("proxmox_guest_start", node="pve-01", vmid="101"), client_for(pve))
    assert again.status == "failed" and "VM 101 already running" in again.output


def test_a_failed_snapshot_stops_the_risky_action(pve):
    pve.guest(101)[1].fail_next = "zfs error: out of space"
    out = actions.execute(act("proxmox_guest_stop", node="pve-01", vmid="101"), client_for(pve))
    assert out.status == "failed" and "pre-change snapshot" in out.output and "nothing changed" in out.output
    assert pve.guest(101)[1].status == "running"


def test_snapshot_rollback_and_shutdown(pve):
    c = client_for(pve)
    assert actions.execute(act("proxmox_snapshot_create", node="pve-01", vmid="102", snapname="before_upgrade"), c).status == "ok"
    assert actions.execute(act("proxmox_guest_set_cores", node="pve-01", vmid="102", cores="6"), c).status == "ok"
    assert pve.guest(102)[1].cores == 6
    out = actions.execute(act("proxmox_snapshot_rollback", node="pve-01", vmid="102", snapname="before_upgrade"), c)
    assert out.status == "ok", out.output
    g = pve.guest(102)[1]
    assert g.cores == 4 and g.events[-1] == "rollback:before_upgrade"
    assert "snapshot" in out.details  # the state being rolled away from was kept first
    assert actions.execute(act("proxmox_guest_start", node="pve-01", vmid="102"), c).status == "ok"
    assert actions.execute(act("proxmox_guest_shutdown", node="pve-01", vmid="102"), c).status == "ok"
    assert pve.guest(102)[1].status == "stopped"


def test_resize_within_limits(pve):
    c = client_for(pve, max_memory_mb=8192, max_cores=4)
    ok = actions.execute(act("proxmox_guest_set_memory", node="pve-01", vmid="101", memory_mb="4096"), c)
    assert ok.status == "ok" and pve.guest(101)[1].memory_mb == 4096
    too_big = actions.execute(act("proxmox_guest_set_memory", node="pve-01", vmid="101", memory_mb="16384"), c)
    assert too_big.status == "failed" and "outside the limits" in too_big.output and pve.guest(101)[1].memory_mb == 4096
    assert "outside the limits" in actions.execute(act("proxmox_guest_set_cores", node="pve-01", vmid="101", cores="8"), c).output
    lxc = actions.execute(act("proxmox_guest_set_cores", node="pve-01", vmid="201", cores="2"), c)  # sync PUT
    assert lxc.status == "ok" and pve.guest(201)[1].cores == 2


@pytest.mark.parametrize("params, why", [
    ({"node": "pve-01", "vmid": "101; reboot"}, "invalid vmid"),
    ({"node": "pve-01", "vmid": "42"}, "invalid vmid"),
    ({"node": "../etc", "vmid": "101"}, "invalid PVE node name"),
    ({"node": "pve-02", "vmid": "101"}, "is on node pve-01, not pve-02"),
    ({"node": "pve-01", "vmid": "4242"}, "no guest 4242"),
])
def test_bad_or_stale_parameters_are_refused_before_any_change(pve, params, why):
    before = len(pve.tasks)
    out = actions.execute(act("proxmox_vm_reboot", **params), client_for(pve))
    assert out.status == "failed" and why in out.output and len(pve.tasks) == before
    assert why in actions.preflight(act("proxmox_vm_reboot", **params), client_for(pve))


def test_a_read_only_token_cannot_act(pve):
    pve.tokens[f"{pve.user}!ro"] = ("ro-secret", READ_PRIVS)
    c = client_for(pve, token_name="ro", token_value="ro-secret")
    assert c.guest_status(c.find_guest(vmid=101))["status"] == "running"
    out = actions.execute(act("proxmox_guest_stop", node="pve-01", vmid="101"), c)
    assert out.status == "failed" and "403 Forbidden: Permission check failed (/vms/101, VM.Snapshot)" in out.output


def test_not_configured_is_a_dry_run_naming_the_call():
    out = actions.execute(act("proxmox_vm_reboot", node="pve-01", vmid="101"), None)
    assert out.status == "dry_run" and "POST /api2/json/nodes/pve-01/{qemu|lxc}/101/status/reboot" in out.output
    entry = CATALOG["proxmox_vm_reboot"]
    assert entry.kind == "proxmox_vm" and entry.risk == Risk.HIGH


def test_evidence_for_a_pve_exporter_guest_alert(pve):
    pve.heat(101, minutes_ago=12)
    end = utcnow()
    start = end - timedelta(minutes=20)
    found = asyncio.run(investigate(client_for(pve), {"alertname": "PveHighCpuUsage", "id": "qemu/101",
                                                      "instance": "pve-exporter:9221"}, start, end,
                                    start - timedelta(minutes=45)))
    assert found.target.guest.name == "web-01" and found.target.node == "pve-01"
    assert found.suspects[0].component == "web-01"
    rrd = [o for o in found.observations if o.tool == "proxmox_rrd" and o.component == "web-01"]
    assert rrd[0].query.startswith("pve_guest_cpu_ratio{") and rrd[0].value > 0.9 and rrd[0].baseline < 0.2
    status = next(o for o in found.observations if o.query.endswith("/status/current"))
    assert status.anomalous and "running, cpu 9" in status.excerpt
    assert any(o.component == "nfs-bulk@pve-01" and o.anomalous for o in found.observations)  # 98 % full


def test_evidence_for_a_down_guest_shows_its_failed_task(pve):
    c = client_for(pve)
    pve.guest(110)[1].fail_next = "start failed: storage 'local-lvm' is not online"
    actions.execute(CATALOG["proxmox_guest_start"].action("pve-02", node="pve-02", vmid="110"), c)
    end = utcnow()
    found = asyncio.run(investigate(c, {"alertname": "PveVm/ctDown", "id": "qemu/110"}, end - timedelta(minutes=10),
                                    end, end - timedelta(minutes=60)))
    failed = [o for o in found.observations if o.signal == "log"]
    assert failed and "qmstart" in failed[0].excerpt and "storage 'local-lvm' is not online" in failed[0].excerpt


def test_llm_tools_return_one_result_type(pve):
    tools = {t.name: t for t in make_proxmox_tools(client_for(pve))}
    ok = json.loads(asyncio.run(tools["pve_guest_metrics"].ainvoke({"vmid": 101})))
    assert ok["status"] == "ok" and ok["data"]["pve_guest_cpu_ratio"]["points"] == 70
    missing = json.loads(asyncio.run(tools["pve_guest_status"].ainvoke({"vmid": 4242})))
    assert missing["status"] == "error" and "no guest with vmid 4242" in missing["error"]
    with pytest.raises(ValidationError):  # schema validation: not a vmid
        asyncio.run(tools["pve_guest_status"].ainvoke({"vmid": 5}))
    bad = {t.name: t for t in make_proxmox_tools(client_for(pve, token_value="nope"))}
    denied = json.loads(asyncio.run(bad["pve_cluster_resources"].ainvoke({})))
    assert denied["status"] == "error" and "authentication failed" in denied["error"]


# --------------------------------------------------------------------------------- node reboot --
NODE_ALERT = {"alertname": "PveHighCpuUsage", "id": "node/pve-03", "instance": "pve-exporter:9221", "job": "pve"}


def _three_nodes(sim: ProxmoxSim) -> None:
    from tests.sim.proxmox import Guest

    sim.add_node("pve-03", {120: Guest(120, "app-03"), 121: Guest(121, "batch-03", onboot=False),
                            122: Guest(122, "spare-03", status="stopped")})


def _node_evidence(c: ProxmoxClient, labels: dict[str, str]) -> list:
    from core.models import Evidence

    end = utcnow()
    found = asyncio.run(investigate(c, labels, end - timedelta(minutes=20), end, end - timedelta(minutes=65)))
    return [Evidence(id=f"ev-{i}", **o.model_dump(exclude={"extra"})) for i, o in enumerate(found.observations, 2)]


def test_a_saturated_node_is_rebooted_after_approval_and_verified(pve):
    """Issue 17 item 3, node level, live: the node's own sustained saturation and what a reboot of it takes
    down are read; the approver's preflight names its guests and which start at boot; the reboot is the
    real PVE call (null answer, no task), watched until the node is back; verification reads it again."""
    from tools.proxmox.toolset import TOOLSET

    _three_nodes(pve)
    pve.heat_node("pve-03", minutes_ago=14)
    c = client_for(pve)
    evidence = _node_evidence(c, NODE_ALERT)
    sat = [e for e in evidence if "saturated" in e.excerpt]
    assert [(e.query, e.about) for e in sat] == [('pve_node_cpu_ratio{node="pve-03",service="pve-03"}', {"node": "pve-03"})]
    assert sat[0].excerpt.startswith("pve-03 CPU saturated: at or above 90% for the last 1")
    reading = next(e for e in evidence if "reboot impact" in e.excerpt)
    assert reading.excerpt.startswith("node pve-03 reboot impact: HA-managed guests: none; cluster homelab quorate, "
                                      "3 of 3 nodes online, 2 stay online: a reboot keeps quorum; takes down the 2 "
                                      "guest(s) running on pve-03: app-03 (qemu/120); batch-03 (qemu/121)")
    reboot = CATALOG["proxmox_node_reboot"].action("pve-03", node="pve-03")
    pre = actions.preflight(reboot, c)
    assert pre == ("POST /api2/json/nodes/pve-03/status command=reboot; node pve-03 is online (up 288 h); takes down "
                   "the 2 guest(s) running on pve-03: app-03 (qemu/120), starts at boot; batch-03 (qemu/121), does NOT "
                   "start at boot: stays stopped; stopped now but started at boot: spare-03 (qemu/122); no HA-managed "
                   "guests; cluster homelab quorate, 3 of 3 nodes online, "
                   "2 stay online: a reboot keeps quorum; nothing undoes a reboot")
    assert not any(m == "POST" for m, _ in pve.requests)  # reading and preflight change nothing

    out = actions.execute(reboot, c, plan_id="plan-9")
    assert out.status == "ok", out.output
    assert out.output.startswith("node pve-03 rebooted: back online after ")
    assert out.details["guests_running"] == "120,121" and out.details["guests_onboot"] == "120"
    assert ("POST", "/nodes/pve-03/status") in pve.requests
    node = pve.nodes["pve-03"]
    assert node.online and node.hot_until is not None
    assert [(g.name, g.status) for g in node.guests.values()] == [
        ("app-03", "running"), ("batch-03", "stopped"), ("spare-03", "running")]  # PVE starts every onboot guest
    assert [t.type for t in pve.tasks.values() if t.node == "pve-03" and t.user == "root@pam"][-4:] == [
        "qmshutdown", "startall", "qmstart", "qmstart"]  # pve-guests stopped them and started the onboot ones

    from core.models import ExecutionResult

    ran = ExecutionResult(action=reboot.name, target="pve-03", status="ok", details=out.details)
    checks = asyncio.run(TOOLSET.verify(c, evidence, [ran], "pve-03"))
    assert checks and all(ch.recovered for ch in checks), [ch.note for ch in checks]
    assert checks[0].note.startswith("node pve-03 is online (up ") and "guests that start at boot running: 1 of 1" \
        in checks[0].note
    assert any(ch.query.startswith("pve_node_cpu_ratio{") for ch in checks)
    assert TOOLSET.inverse(reboot, ran) is None  # nothing undoes a reboot


def test_a_node_reboot_is_refused_live_where_it_must_not_happen(pve):
    c = client_for(pve)
    two = CATALOG["proxmox_node_reboot"].action("pve-01", node="pve-01")  # the default cluster has two nodes
    assert actions.preflight(two, c) == ("REFUSED: rebooting it would leave 1 of 2 nodes of cluster homelab online, "
                                         "below quorum (2; one vote per node assumed)")
    out = actions.execute(two, c)
    assert out.status == "failed" and out.output.startswith("refused: rebooting it would leave 1 of 2")
    _three_nodes(pve)
    pve.guest(120)[1].ha_managed = True
    ha = CATALOG["proxmox_node_reboot"].action("pve-03", node="pve-03")
    assert actions.preflight(ha, c).startswith("REFUSED: HA-managed guests run on pve-03: app-03 (qemu/120)")
    assert actions.execute(ha, c).status == "failed"
    assert not any(m == "POST" for m, _ in pve.requests) and pve.nodes["pve-03"].online
    pve.guest(120)[1].ha_managed = False
    ro = ProxmoxSim(privileges=READ_PRIVS)  # a token without Sys.PowerMgmt: PVE refuses, reported as failed
    pve.tokens.update({f"{ro.user}!ro": (ro.token_value, READ_PRIVS)})
    denied = actions.execute(ha, client_for(pve, token_name="ro", token_value=ro.token_value))
    assert denied.status == "failed" and "Permission check failed (/nodes/pve-03, Sys.PowerMgmt)" in denied.output
    pve.reboot_reads = (1, 10**6)  # a node that never comes back
    stuck = actions.execute(ha, client_for(pve, node_reboot_timeout=0.5))
    assert stuck.status == "failed" and "node pve-03 went down but is not back online after" in stuck.output


def test_a_guest_alert_on_a_saturated_node_reads_what_a_node_reboot_would_take_down(pve):
    """The node under a guest is saturated on its own: the reboot impact is read too, so planning refuses
    the node reboot on the evidence (here: the default two-node cluster would lose quorum) rather than
    putting before a human a plan the preflight would refuse; an unsaturated node is not read for it."""
    c = client_for(pve)
    guest_alert = {"alertname": "PveHighCpuUsage", "id": "qemu/101", "instance": "pve-exporter:9221"}
    assert not any("reboot impact" in e.excerpt for e in _node_evidence(c, guest_alert))
    pve.heat_node("pve-01", minutes_ago=14, memory=True, cpu=False)
    evidence = _node_evidence(c, guest_alert)
    assert any(e.query.startswith("pve_node_memory_used_ratio{") and "saturated" in e.excerpt for e in evidence)
    reading = next(e for e in evidence if "reboot impact" in e.excerpt)
    assert reading.about == {"node": "pve-01"} and "below quorum (2; one vote per node assumed)" in reading.excerpt
    from tools.fit import check

    verdict = TriageVerdict(kind="incident", category="memory", reason="r", domain="virtualization")
    reboot = CATALOG["proxmox_node_reboot"].action("pve-01", node="pve-01")
    fit = check(reboot, CATALOG["proxmox_node_reboot"], verdict, guest_alert, evidence)
    assert fit.status == "refused" and fit.reasons[0].startswith("never for a reboot that would cost the cluster its quorum")

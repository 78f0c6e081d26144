"""Issue 17's typical problems through the real graph, live: Proxmox VE and RouterOS through their real
clients against the simulators, hosts through the real ansible-playbook against local stand-ins.

The first test is the issue's own case written out: a guest killed under the host is started with no
human under a POLICY_FILE rule (approver: policy, verified running), and the same crash again within
the flap window goes to a human. The others run `aiops eval fixes` scenarios (evals/suites/fixes.py)
and check each one's row: the right fix proposed, automatic only where the policy allows it and the
evidence says so, verified, and no wrong action.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from evals.suites import fixes
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory
from tests.integration.test_infra_incidents import settings_for, webhook
from tests.sim.proxmox import ProxmoxSim

GUEST_DOWN = {"alertname": "PveVm/ctDown", "id": "qemu/101", "instance": "pve-exporter:9221", "job": "pve",
              "severity": "warning"}


def test_a_crashed_guest_is_started_by_policy_and_a_repeat_crash_goes_to_a_human(tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {name: start-crashed-guests, actions: [proxmox_guest_start], targets: ['pve-*'],"
                      " max_risk: medium}\n")
    with ProxmoxSim() as pve:
        settings = settings_for(tmp_path, pve=pve).model_copy(update={"POLICY_FILE": policy})

        async def fire():
            async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
                return await runner.analyze(webhook(GUEST_DOWN, "PVE VM/CT down (qemu/101)"))

        pve.crash(101)
        first = asyncio.run(fire())
        r = first.report
        assert any(e.excerpt.startswith("web-01 stopped unexpectedly: its last start (qmstart by root@pam")
                   for e in r.evidence)
        assert [(a.name, a.target, a.parameters) for a in r.plan.actions] == [
            ("proxmox_guest_start", "pve-01", {"node": "pve-01", "vmid": 101})]
        assert r.plan.fit == ["proxmox_guest_start: fits — stopped unexpectedly: ev-4"]
        assert r.approval.approver == "policy" and r.approval.channel == "policy"
        assert r.self_healing.rule == "start-crashed-guests"
        assert [e.status for e in r.executions] == ["ok"] and pve.guest(101)[1].status == "running"
        assert r.verification.recovered is True and first.status.value == "resolved"

        pve.crash(101)  # again, within FLAP_WINDOW_SECONDS
        again = asyncio.run(fire())
        assert again.status.value == "awaiting_approval" and again.report.executions == []
        assert again.pending["self_healing"]["rule"] == "flap-guard"
        assert "proxmox_guest_start on pve-01 (node=pve-01,vmid=101)" in again.pending["self_healing"]["reason"]
        assert pve.guest(101)[1].status == "stopped"


def _rows(*names: str) -> dict[str, dict]:
    report = fixes.run(list(names))
    assert report["wrong_actions"] == 0, report["per_case"]
    return {r["scenario"]: r for r in report["per_case"]}


def test_proxmox_near_misses_and_sustained_saturation():
    rows = _rows("pve-guest-stopped-on-purpose", "pve-guest-ha-managed", "pve-guest-cpu-sustained",
                 "pve-guest-memory-sustained")
    on_purpose = rows["pve-guest-stopped-on-purpose"]
    assert not on_purpose["automatic"] and on_purpose["proposed"] == ["proxmox_guest_start"]  # at most proposed
    assert on_purpose["executed"] == []
    ha = rows["pve-guest-ha-managed"]
    assert ha["proposed"] == [] and ha["status"] == "escalated"
    assert "proxmox_guest_start: refused — never for a guest the HA manager owns: ev-4" in ha["fit"]
    for name, fix in (("pve-guest-cpu-sustained", "proxmox_guest_set_cores"),
                      ("pve-guest-memory-sustained", "proxmox_guest_set_memory")):
        row = rows[name]
        assert row["proposed"] == [fix] and not row["automatic"] and row["verified"], row  # a human approved it


def test_a_saturated_node_is_rebooted_by_a_human_and_its_near_misses_are_left_alone():
    rows = _rows("pve-node-cpu-sustained", "pve-node-cpu-brief", "pve-node-two-node-cluster")
    node = rows["pve-node-cpu-sustained"]
    assert node["proposed"] == ["proxmox_node_reboot"] and not node["automatic"], node
    assert node["executed"] == ["proxmox_node_reboot"] and node["verified"] and node["status"] == "resolved", node
    assert node["fit"][0].startswith("proxmox_node_reboot: fits — sustained node saturation: ev-")
    brief = rows["pve-node-cpu-brief"]
    assert brief["proposed"] == [] and brief["status"] == "escalated"
    assert brief["fit"][0].startswith("proxmox_node_reboot: refused — its required evidence is missing")
    two = rows["pve-node-two-node-cluster"]
    assert two["proposed"] == [] and two["executed"] == [] and two["status"] == "escalated"
    assert two["fit"][0].startswith("proxmox_node_reboot: refused — never for a reboot that would cost the cluster its "
                                    "quorum: ev-")


def test_routeros_flap_with_and_without_a_backup_path_and_a_disabled_interface():
    rows = _rows("router-uplink-flapping", "router-flap-without-backup", "router-interface-disabled",
                 "router-interface-disabled-by-person")
    flap = rows["router-uplink-flapping"]
    assert flap["proposed"] == ["routeros_interface_disable"] and not flap["automatic"] and flap["verified"]
    assert flap["fit"][0].startswith("routeros_interface_disable: fits — link flapping: ")
    lonely = rows["router-flap-without-backup"]
    assert lonely["proposed"] == [] and lonely["status"] == "escalated"
    enable = rows["router-interface-disabled"]
    assert enable["automatic"] and enable["executed"] == ["routeros_interface_enable"] and enable["verified"]
    by_person = rows["router-interface-disabled-by-person"]
    assert by_person["proposed"] == [] and by_person["executed"] == []


@pytest.mark.parametrize("name, fix, automatic", [
    ("host-unit-failed", "restart_failed_unit", True),
    ("disk-journal", "journald_vacuum", True),
    ("disk-non-log-data", None, False),
    ("tls-certificate-expiring", "certbot_renew", True),  # the real certbot against a local ACME CA (pebble)
    ("tls-certificate-not-certbot", None, False),
])
def test_host_problems_on_a_stand_in(name, fix, automatic):
    if name.startswith("tls") and not (shutil.which("certbot") and shutil.which("pebble")):
        pytest.skip("certbot and pebble are not installed (scripts/setup.sh installs them)")
    row = _rows(name)[name]
    assert row["automatic"] is automatic
    if fix is None:
        assert row["proposed"] == [] and row["executed"] == []
    else:
        assert row["proposed"] == [fix] and row["executed"] == [fix] and row["verified"], row

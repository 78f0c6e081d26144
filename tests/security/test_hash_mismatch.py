"""A decision that fails validation is refused without consuming the plan, and exits non-zero.

A typo in `--hash` or an unauthorised approver must not burn the plan (the real approval still
works afterwards); expiry ends the plan, with the reason, and exits non-zero too. Every attempt is
in the audit trail that `aiops show` prints."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.conftest import recording
from tests.security.decision_helpers import aiops, incidents, paused_reboot_plan, pve_env, reboots, show
from tests.sim.proxmox import ProxmoxSim

pytestmark = pytest.mark.e2e


def _paused_crashloop(tmp_path, env=None) -> tuple[dict, str]:
    alert = tmp_path / "crashloop-alert.json"
    alert.write_text(json.dumps(json.loads(recording("crashloop").read_text())["webhook"]))
    out = aiops(tmp_path, "analyze", "--alert", str(alert), "--replay", str(recording("crashloop")), "--json", env=env)
    assert out.returncode == 0, out.stderr
    paused = json.loads(out.stdout)
    assert paused["status"] == "awaiting_approval"
    return paused, str(tmp_path / "var/standins/crashloop/app-02/etc/payments-api/config.yaml")


def test_wrong_hash_is_refused_and_the_plan_still_awaits_approval(tmp_path):
    paused, config = _paused_crashloop(tmp_path)
    wrong = aiops(tmp_path, "approve", paused["plan_id"], "--by", "alice", "--hash", "0" * 64)
    assert wrong.returncode == 2 and "still awaits approval" in wrong.stderr, (wrong.returncode, wrong.stderr)
    assert "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    assert "pool: max" in open(config).read()  # nothing ran
    assert [(i["status"], i["decision_state"]) for i in incidents(tmp_path)] == [("awaiting_approval", "pending")]
    right = aiops(tmp_path, "approve", paused["plan_id"], "--by", "alice", "--hash", paused["plan_hash"], "--json")
    assert right.returncode == 0, right.stderr
    assert json.loads(right.stdout)["status"] == "resolved" and "pool: max" not in open(config).read()
    trail = [(d["approver"], d["outcome"]) for d in show(tmp_path, paused["incident_id"])["decisions"]]
    assert trail == [("alice", "refused"), ("alice", "won")]


def test_unauthorised_approver_is_refused_without_consuming_the_plan(tmp_path):
    with ProxmoxSim() as pve:
        pve.heat(101)
        env = pve_env(pve, APPROVERS="alice")
        paused = paused_reboot_plan(tmp_path, env)
        for verb in ("approve", "reject"):
            out = aiops(tmp_path, verb, paused["plan_id"], "--by", "mallory", env=env)
            assert out.returncode == 2 and "not an authorised approver" in out.stderr
        assert incidents(tmp_path, env)[0]["decision_state"] == "pending" and reboots(pve) == []
        done = aiops(tmp_path, "reject", paused["plan_id"], "--by", "alice", "--json", env=env)
        assert done.returncode == 0 and json.loads(done.stdout)["status"] == "rejected"
        shown = show(tmp_path, paused["incident_id"], env)
        assert [(d["approver"], d["outcome"]) for d in shown["decisions"]] == [
            ("mallory", "refused"), ("mallory", "refused"), ("alice", "won")]
        assert all("not an authorised approver" in d["reason"] for d in shown["decisions"][:2])
        text = aiops(tmp_path, "show", paused["incident_id"], env=env).stdout
        assert "DECISIONS" in text and re.search(r"refused +approve by mallory via cli — .mallory. is not", text)
        assert reboots(pve) == []


def test_expiry_ends_the_plan_with_the_reason_and_exits_non_zero(tmp_path):
    with ProxmoxSim() as pve:
        pve.heat(101)
        env = pve_env(pve, APPROVAL_TTL_SECONDS="1")
        paused = paused_reboot_plan(tmp_path, env)
        time.sleep(1.5)
        late = aiops(tmp_path, "approve", paused["plan_id"], "--by", "alice", env=env)
        assert late.returncode == 2 and "expired" in late.stderr and len(late.stderr.strip().splitlines()) == 1
        assert [(i["status"], i["decision_state"]) for i in incidents(tmp_path, env)] == [("rejected", "expired")]
        shown = show(tmp_path, paused["incident_id"], env)
        assert "expired" in shown["approval"]["reason"] and shown["executions"] == []
        again = aiops(tmp_path, "approve", paused["plan_id"], "--by", "alice", env=env)
        assert again.returncode == 2 and "not awaiting approval" in again.stderr
        assert reboots(pve) == []

"""A crash during execution: `kill -9` of the approving process while its PVE task runs.

The incident must then show `interrupted` (never approved and awaiting at once), a later approve or
reject must not execute anything, and only an explicit `--after-interruption` decision re-runs it.
Liveness of a claim's owner is also checked for pid reuse and for owners on another host (lease)."""

from __future__ import annotations

import os
import signal
import socket
from datetime import timedelta

import pytest

from core.models import utcnow
from store.lease import LEASE_SECONDS, owner_alive, this_owner
from tests.security.decision_helpers import (
    aiops,
    incidents,
    paused_reboot_plan,
    pve_env,
    reboots,
    show,
    spawn,
    wait_for,
)
from tests.sim.proxmox import ProxmoxSim

pytestmark = pytest.mark.e2e


def test_approve_killed_mid_execution_is_interrupted_and_never_re_executed(tmp_path):
    with ProxmoxSim(task_polls=40) as pve:  # the pre-reboot snapshot task runs for many seconds
        pve.heat(101)
        env = pve_env(pve)
        paused = paused_reboot_plan(tmp_path, env)
        plan_id, incident_id = paused["plan_id"], paused["incident_id"]
        approving = spawn(tmp_path, "approve", plan_id, "--by", "alice", env=env)
        wait_for(lambda: any(m == "POST" and p.endswith("/snapshot") for m, p in pve.requests), 120,
                 "execution to start (the snapshot task)")
        listed = incidents(tmp_path, env)
        assert [(i["status"], i["decision_state"]) for i in listed] == [("executing", "executing")]
        os.kill(approving.pid, signal.SIGKILL)
        approving.communicate(timeout=30)
        tasks_at_crash = len(pve.tasks)

        listed = incidents(tmp_path, env)
        assert [(i["incident_id"], i["status"], i["decision_state"]) for i in listed] == [
            (incident_id, "interrupted", "interrupted")]
        shown = show(tmp_path, incident_id, env)
        assert shown["status"] == "interrupted" and shown["approval"]["approver"] == "alice"
        assert [d["outcome"] for d in shown["decisions"]] == ["won", "interrupted"]
        text = aiops(tmp_path, "show", incident_id, env=env).stdout
        assert "interrupted" in text and "AWAITING" not in text

        for verb, who in (("approve", "alice"), ("reject", "bob")):
            late = aiops(tmp_path, verb, plan_id, "--by", who, env=env)
            assert late.returncode == 2, late.stdout
            assert "interrupted" in late.stderr and "--after-interruption" in late.stderr
        assert len(pve.tasks) == tasks_at_crash and reboots(pve) == []  # nothing ran again

        pve.task_polls = 2
        rerun = aiops(tmp_path, "approve", plan_id, "--by", "alice", "--after-interruption", "--json", env=env)
        assert rerun.returncode == 0, rerun.stderr
        assert len(reboots(pve)) == 1
        shown = show(tmp_path, incident_id, env)
        assert shown["status"] == "resolved" and shown["approval"]["comment"].startswith("after interruption")
        assert [d["outcome"] for d in shown["decisions"]] == ["won", "interrupted", "refused", "refused", "won"]
        again = aiops(tmp_path, "approve", plan_id, "--by", "alice", "--after-interruption", env=env)
        assert again.returncode == 2 and "was not interrupted" in again.stderr


def test_reject_after_interruption_closes_without_executing(tmp_path):
    with ProxmoxSim(task_polls=40) as pve:
        pve.heat(101)
        env = pve_env(pve)
        paused = paused_reboot_plan(tmp_path, env)
        approving = spawn(tmp_path, "approve", paused["plan_id"], "--by", "alice", env=env)
        wait_for(lambda: any(m == "POST" and p.endswith("/snapshot") for m, p in pve.requests), 120, "execution")
        os.kill(approving.pid, signal.SIGKILL)
        approving.communicate(timeout=30)
        out = aiops(tmp_path, "reject", paused["plan_id"], "--by", "bob", "--after-interruption", "--json", env=env)
        assert out.returncode == 0, out.stderr
        assert reboots(pve) == []
        shown = show(tmp_path, paused["incident_id"], env)
        assert shown["status"] == "rejected" and shown["approval"]["approver"] == "bob"
        # closed: the next alert of the same fingerprint is a new incident, not a duplicate of the old one
        assert [(i["status"], i["decision_state"]) for i in incidents(tmp_path, env)] == [("rejected", "done")]


def test_owner_liveness_pid_reuse_and_lease():
    now = utcnow()
    me = this_owner()
    assert owner_alive(me, now)
    host, pid, started = me.split(":")
    assert not owner_alive(f"{host}:{pid}:{int(started) + 1}", now)  # same pid, another process: dead
    assert not owner_alive(f"{host}:999999999:1", now)  # no such pid
    other = f"not-{socket.gethostname()}:1234:1"
    assert owner_alive(other, now)  # another machine: trusted while its heartbeat is fresh
    assert not owner_alive(other, now - timedelta(seconds=LEASE_SECONDS + 1))  # lease ran out
    assert not owner_alive(me, None)


def _analyze(settings, name: str, factory=None):
    import asyncio

    from service.runner import IncidentRunner
    from service.toolbox_factory import make_toolbox_factory, replay_spec
    from tests.conftest import recording
    from tools.replay.recording import load_recorded

    async def run():
        async with IncidentRunner(settings, factory or make_toolbox_factory(settings)) as runner:
            return await runner.analyze(load_recorded(recording(name)).webhook, replay_spec(recording(name), settings))

    return asyncio.run(run())


def test_a_policy_approved_execution_that_fails_is_interrupted_and_blocks_its_fingerprint(settings, tmp_path):
    """Auto-approval never pauses: the claim still moves to `executing` before the first action, so a
    crash mid-execution is an interrupted incident (open: a re-sent alert is its duplicate), and only an
    explicit decision re-runs it."""
    from service.toolbox_factory import make_toolbox_factory
    from store.registry import IncidentRegistry

    inner = make_toolbox_factory(settings)

    def crashing(spec):
        toolbox = inner(spec)

        def execute(action, plan_id=""):
            raise OSError("controller lost its disk mid-playbook")

        toolbox.executor.execute = execute  # the real executor (its preflight ran), failing as it acts
        return toolbox

    with pytest.raises(OSError, match="mid-playbook"):
        _analyze(settings, "disk-full", crashing)
    registry = IncidentRegistry(settings)
    [row] = registry.list()
    assert (row.status, row.decision_state, row.decided_by, row.owner) == ("interrupted", "interrupted", "policy", None)
    assert [d.outcome for d in registry.decisions(row.incident_id)] == ["interrupted"]
    again = _analyze(settings, "disk-full")
    assert again.status.value == "duplicate" and again.report.triage.duplicate_of == row.incident_id

    import asyncio

    from service.runner import IncidentRunner, PlanNotPending

    async def decide(**kw):
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            return await runner.decide(row.plan_id, approver="alice", decision="approve", **kw)

    with pytest.raises(PlanNotPending, match="--after-interruption"):
        asyncio.run(decide())
    done = asyncio.run(decide(after_interruption=True))
    assert done.status.value == "resolved" and [e.status for e in done.report.executions] == ["ok"]


def test_an_analysis_that_fails_before_any_decision_is_handed_to_a_human(settings, monkeypatch):
    """Issue 16: a step that fails before anything acted is not left `interrupted` with no plan; the
    incident escalates, naming the step (open: a human has it, so the same alert again is its duplicate)."""
    import graphs.incident as incident_graph

    async def broken(*args, **kw):
        raise RuntimeError("diagnosis crashed")

    with monkeypatch.context() as m:
        m.setattr(incident_graph.diagnosis_agent, "diagnose", broken)
        crashed = _analyze(settings, "crashloop")
    assert crashed.status.value == "escalated" and crashed.report.escalation.failed_step == "diagnosis"
    assert "RuntimeError: diagnosis crashed" in crashed.report.escalation.reason
    from store.registry import IncidentRegistry

    [row] = IncidentRegistry(settings).list()
    assert (row.status, row.owner) == ("escalated", None) and row.decision_state != "interrupted"
    again = _analyze(settings, "crashloop")
    assert again.status.value == "duplicate" and again.report.triage.duplicate_of == row.incident_id


def test_a_failing_escalation_step_is_still_handed_to_a_human(settings, monkeypatch):
    """The escalation step itself fails once after a crash: the runner escalates directly, with a report."""
    import graphs.incident as incident_graph

    real = incident_graph.escalation_agent.escalate
    calls: list[str] = []

    async def broken(*args, **kw):
        raise RuntimeError("diagnosis crashed")

    async def flaky(*args, **kw):
        calls.append("escalate")
        if len(calls) == 1:
            raise RuntimeError("notifier crashed")
        return await real(*args, **kw)

    with monkeypatch.context() as m:
        m.setattr(incident_graph.diagnosis_agent, "diagnose", broken)
        m.setattr(incident_graph.escalation_agent, "escalate", flaky)
        crashed = _analyze(settings, "crashloop")
    assert calls == ["escalate", "escalate"]  # the graph's escalation failed; the runner's own went through
    assert crashed.status.value == "escalated" and crashed.report.escalation.failed_step == "escalate"
    assert "RuntimeError: notifier crashed" in crashed.report.escalation.reason

"""Exactly-once decisions: of concurrent decisions on one plan exactly one wins and the action runs once.

Two real `aiops approve` processes (SQLite registry, then the Postgres one) race on a reboot plan for a
Proxmox guest; the PVE simulator counts the reboot tasks it was asked to run. A reject arriving while
the winner executes is refused too. The registry's compare-and-set is also raced directly by threads.
"""

from __future__ import annotations

import contextlib
import threading

import pytest

from core.models import utcnow
from core.settings import load_settings
from store.registry import DecisionState, IncidentRegistry, IncidentRow
from tests.security.decision_helpers import (
    aiops,
    paused_reboot_plan,
    pg_database,
    pve_env,
    reboots,
    show,
    spawn,
    wait_for,
)
from tests.sim.proxmox import ProxmoxSim

pytestmark = pytest.mark.e2e


def _race_two_approvals(tmp_path, env: dict[str, str], pve: ProxmoxSim) -> None:
    paused = paused_reboot_plan(tmp_path, env)
    assert reboots(pve) == []
    procs = {name: spawn(tmp_path, "approve", paused["plan_id"], "--by", name, "--json", env=env)
             for name in ("alice", "bob")}
    results = {name: (p.communicate(timeout=180), p.returncode) for name, p in procs.items()}
    codes = sorted(rc for _, rc in results.values())
    assert codes == [0, 2], results
    winner = next(n for n, (_, rc) in results.items() if rc == 0)
    loser = next(n for n, (_, rc) in results.items() if rc != 0)
    err = results[loser][0][1]
    assert f"already decided by {winner}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert len(reboots(pve)) == 1  # the action ran once
    assert pve.guest(101)[1].events.count("reboot") == 1
    shown = show(tmp_path, paused["incident_id"], env)
    assert shown["status"] == "resolved" and shown["approval"]["approver"] == winner
    outcomes = sorted((d["approver"], d["outcome"]) for d in shown["decisions"])
    assert outcomes == sorted([(winner, "won"), (loser, "lost")])


def test_two_concurrent_approve_processes_run_the_action_once(tmp_path):
    with ProxmoxSim(task_polls=6) as pve:
        pve.heat(101)
        _race_two_approvals(tmp_path, pve_env(pve), pve)


def test_two_concurrent_approve_processes_on_postgres(tmp_path):
    with pg_database() as url, ProxmoxSim(task_polls=6) as pve:
        pve.heat(101)
        _race_two_approvals(tmp_path, pve_env(pve, DATABASE_URL=url), pve)
        assert not (tmp_path / "var" / "incidents.sqlite").exists()  # the decision lived in Postgres


def test_reject_during_execution_is_refused_and_runs_nothing(tmp_path):
    with ProxmoxSim(task_polls=10) as pve:
        pve.heat(101)
        env = pve_env(pve)
        paused = paused_reboot_plan(tmp_path, env)
        approving = spawn(tmp_path, "approve", paused["plan_id"], "--by", "alice", "--json", env=env)
        wait_for(lambda: any(m == "POST" and p.endswith("/snapshot") for m, p in pve.requests), 120,
                 "the approved plan to start executing")
        rejected = aiops(tmp_path, "reject", paused["plan_id"], "--by", "bob", env=env)
        assert rejected.returncode == 2 and "already decided by alice" in rejected.stderr, rejected.stderr
        out, err = approving.communicate(timeout=180)
        assert approving.returncode == 0, err
        assert len(reboots(pve)) == 1
        listed = aiops(tmp_path, "incidents", env=env).stdout
        assert "resolved" in listed and "done" in listed


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_compare_and_set_has_exactly_one_winner(tmp_path, backend):
    with pg_database() if backend == "postgres" else contextlib.nullcontext() as url:
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", DATABASE_URL=url)
        registry = IncidentRegistry(settings)
        now = utcnow()
        registry.upsert(IncidentRow(incident_id="inc-1", fingerprint="fp", status="awaiting_approval", title="t",
                                    mode="rules", plan_id="plan-1", plan_hash="h", source={}, created_at=now,
                                    updated_at=now))
        registry.set_pending("inc-1", "plan-1", "nobody")
        wins: list[str] = []
        start = threading.Barrier(8)

        def decide(i: int) -> None:
            start.wait()
            r = IncidentRegistry(settings)
            if r.claim_decision("plan-1", decision="approve" if i % 2 else "reject", approver=f"a{i}", owner=f"o{i}"):
                wins.append(f"a{i}")

        threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        row = registry.get("inc-1")
        assert row.decided_by == wins[0] and row.decision_state in (DecisionState.APPROVED, DecisionState.REJECTED)

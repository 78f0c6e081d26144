"""The CLI beside a running `aiops serve` (memory on: the milvus-lite file is the service's, which one
process may open): `aiops approve`, `analyze`, `incidents` and `show` go through the running service, a
second `aiops serve` on the same data dir is refused, and the CLI shows what it shows without the
service: the same `aiops incidents` rows (DECISION column), the same `aiops show` (decision trail,
expiry, approve hint); `aiops memory` says in one line that the service holds the store.

One test, one service: starting it (the embedding model, milvus-lite, a disk-full analysis with its
Ansible `--check`) is most of the cost, and each step reads what the one before left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, cli_env, recording
from tests.servers import aiops_serve

pytestmark = pytest.mark.e2e


def aiops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interfaces.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def wait_awaiting(url: str, incident_id: str, timeout: float = 180) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(f"{url}/api/v1/incidents", timeout=10).json()["incidents"]
        row = next((r for r in rows if r["incident_id"] == incident_id), None)
        if row and row["status"] == "awaiting_approval":
            return dict(row)
        time.sleep(0.2)
    raise AssertionError(f"{incident_id} never awaited approval")


def test_cli_beside_the_service_decides_through_it_and_shows_what_it_shows_without(tmp_path: Path) -> None:
    """One service (memory on: the embedding model and milvus-lite start in it) for both halves: the CLI
    beside it decides and analyzes through it (a second `aiops serve` is refused), and shows what it
    shows once the service is gone, for a plan awaiting approval and for one approved and executed."""
    env = cli_env(tmp_path, LLM_MODE="rules", ENABLE_MEMORY="true", APPROVERS="alice")
    body = json.loads(recording("disk-full").read_text())["webhook"]
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        incident_id = httpx.post(f"{svc.url}/webhook/alertmanager", json=body).json()["incident_id"]
        row = wait_awaiting(svc.url, incident_id)
        assert row["decision_state"] == "pending"
        listed = aiops(env, "incidents", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [i["incident_id"] for i in json.loads(listed.stdout)["incidents"]] == [incident_id]
        second = aiops(env, "serve", "--port", "1")
        assert second.returncode == 2 and "another aiops serve owns" in second.stderr
        refused = aiops(env, "approve", row["plan_id"], "--by", "mallory")
        assert refused.returncode == 2 and "not an authorised approver" in refused.stderr
        pending = aiops(env, "show", incident_id)
        assert pending.returncode == 0, pending.stderr
        assert "AWAITING a human" in pending.stdout and "expires 20" in pending.stdout
        assert f"aiops approve {row['plan_id']} --by NAME" in pending.stdout
        assert "DECISIONS" in pending.stdout and "mallory" in pending.stdout and "refused" in pending.stdout
        memory = aiops(env, "memory", "stats")
        # one line, no traceback from the milvus-lite lock
        assert memory.returncode == 2 and "Traceback" not in memory.stderr
        assert len(memory.stderr.strip().splitlines()) == 1 and "stop the service first" in memory.stderr

        done = aiops(env, "approve", row["plan_id"], "--by", "alice", "--json")
        assert done.returncode == 0, done.stderr + svc.output()[-2000:]
        result = json.loads(done.stdout)
        assert result["incident_id"] == incident_id and result["approval"]["approver"] == "alice"
        assert result["status"] in ("executed", "resolved")
        again = aiops(env, "approve", row["plan_id"], "--by", "alice")
        assert again.returncode == 2 and "not awaiting approval" in again.stderr
        # the CLI's own analyze runs through the service too (its replay source included)
        alert = tmp_path / "flap.json"
        alert.write_text(json.dumps(json.loads(recording("router-uplink-flap").read_text())["webhook"]))
        analyzed = aiops(env, "analyze", "--alert", str(alert), "--replay", str(recording("router-uplink-flap")),
                         "--json")
        assert analyzed.returncode == 0, analyzed.stderr
        flap = json.loads(analyzed.stdout)
        assert flap["status"] == "awaiting_approval"

        beside = {"incidents": aiops(env, "incidents"), "executed": aiops(env, "show", incident_id),
                  "awaiting": aiops(env, "show", flap["incident_id"])}
        json_beside = json.loads(aiops(env, "show", incident_id, "--json").stdout)
        assert "could not remember" not in svc.output()
    assert all(r.returncode == 0 for r in beside.values()), [r.stderr for r in beside.values()]
    lines = {ln.split()[0]: ln for ln in beside["incidents"].stdout.splitlines() if ln.startswith("inc-")}
    assert set(lines) == {incident_id, flap["incident_id"]}
    assert " pending " in lines[flap["incident_id"]]  # not "-"
    assert "approved by alice via cli" in beside["executed"].stdout
    assert "AWAITING a human" in beside["awaiting"].stdout and "expires 20" in beside["awaiting"].stdout
    assert f"aiops approve {flap['plan_id']} --by NAME" in beside["awaiting"].stdout
    assert [(d["approver"], d["outcome"]) for d in json_beside["decisions"]] == [
        ("mallory", "refused"), ("alice", "won"), ("alice", "lost")]
    # the service is gone: the CLI opens the stores itself, and says exactly the same
    alone = {"incidents": aiops(env, "incidents"), "executed": aiops(env, "show", incident_id),
             "awaiting": aiops(env, "show", flap["incident_id"])}
    for what, shown in beside.items():
        assert alone[what].stdout == shown.stdout, what
    json_alone = json.loads(aiops(env, "show", incident_id, "--json").stdout)
    assert json_alone == json_beside
    stats = aiops(env, "memory", "stats")
    assert stats.returncode == 0 and json.loads(stats.stdout)["incidents"] >= 0, stats.stderr

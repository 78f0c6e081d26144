"""The CLI beside a running `aiops serve` (memory on: the milvus-lite file is the service's) shows what
it shows without the service: the same `aiops incidents` rows (DECISION column), the same `aiops show`
(decision trail, expiry, approve hint); `aiops memory` says in one line that the service holds the store."""

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


def test_cli_beside_the_service_shows_what_it_shows_without(tmp_path: Path) -> None:
    env = cli_env(tmp_path, LLM_MODE="rules", ENABLE_MEMORY="true", APPROVERS="alice")
    body = json.loads(recording("disk-full").read_text())["webhook"]
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        incident_id = httpx.post(f"{svc.url}/webhook/alertmanager", json=body).json()["incident_id"]
        row = wait_awaiting(svc.url, incident_id)
        assert row["decision_state"] == "pending"
        refused = aiops(env, "approve", row["plan_id"], "--by", "mallory")
        assert refused.returncode == 2 and "not an authorised approver" in refused.stderr
        listed_beside = aiops(env, "incidents")
        shown_beside = aiops(env, "show", incident_id)
        json_beside = json.loads(aiops(env, "show", incident_id, "--json").stdout)
        memory = aiops(env, "memory", "stats")
    assert listed_beside.returncode == 0 and shown_beside.returncode == 0, listed_beside.stderr + shown_beside.stderr
    line = next(ln for ln in listed_beside.stdout.splitlines() if ln.startswith(incident_id))
    assert " pending " in line  # not "-"
    out = shown_beside.stdout
    assert "AWAITING a human" in out and "expires 20" in out
    assert f"aiops approve {row['plan_id']} --by NAME" in out
    assert "DECISIONS" in out and "mallory" in out and "refused" in out
    assert [d["approver"] for d in json_beside["decisions"]] == ["mallory"]
    # one line, no traceback from the milvus-lite lock
    assert memory.returncode == 2 and "Traceback" not in memory.stderr
    assert len(memory.stderr.strip().splitlines()) == 1 and "stop the service first" in memory.stderr
    # the service is gone: the CLI opens the stores itself, and says exactly the same
    listed_alone, shown_alone = aiops(env, "incidents"), aiops(env, "show", incident_id)
    assert listed_alone.stdout == listed_beside.stdout
    assert shown_alone.stdout == shown_beside.stdout
    json_alone = json.loads(aiops(env, "show", incident_id, "--json").stdout)
    assert json_alone == json_beside
    stats = aiops(env, "memory", "stats")
    assert stats.returncode == 0 and json.loads(stats.stdout)["incidents"] >= 0, stats.stderr

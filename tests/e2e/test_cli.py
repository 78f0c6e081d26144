"""The CLI end to end, as separate processes: a plan paused by one process is approved by another."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env, recording

pytestmark = pytest.mark.e2e


def aiops(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interfaces.cli", *args], cwd=REPO, env=cli_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=300)


def webhook_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}-alert.json"
    path.write_text(json.dumps(json.loads(recording(name).read_text())["webhook"]))
    return path


def test_approval_survives_a_restart(tmp_path):
    alert = webhook_file(tmp_path, "crashloop")
    first = aiops(tmp_path, "analyze", "--alert", str(alert), "--replay", str(recording("crashloop")), "--json")
    assert first.returncode == 0, first.stderr
    paused = json.loads(first.stdout)
    assert paused["status"] == "awaiting_approval" and paused["mode"] == "rules" and paused["plan_id"]
    # the first process is gone; a second one lists and resumes it from the SQLite checkpoint
    listed = json.loads(aiops(tmp_path, "incidents", "--json").stdout)["incidents"]
    assert [(i["incident_id"], i["status"]) for i in listed] == [(paused["incident_id"], "awaiting_approval")]
    done = aiops(tmp_path, "approve", paused["plan_id"], "--by", "alice", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["incident_id"] == paused["incident_id"] and result["status"] == "resolved"
    assert result["approval"]["approver"] == "alice"
    again = aiops(tmp_path, "approve", paused["plan_id"], "--by", "alice")
    assert again.returncode == 2 and "not awaiting approval" in again.stderr
    shown = aiops(tmp_path, "show", paused["incident_id"])
    assert shown.returncode == 0 and "RECOVERED" in shown.stdout and "rollback_config" in shown.stdout


def test_reject_from_another_process(tmp_path):
    alert = webhook_file(tmp_path, "router-uplink-flap")
    paused = json.loads(aiops(tmp_path, "analyze", "--alert", str(alert), "--replay",
                              str(recording("router-uplink-flap")), "--json").stdout)
    out = aiops(tmp_path, "reject", paused["plan_id"], "--by", "bob", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "rejected"


@pytest.mark.parametrize("content, message", [
    (None, "cannot read alert file"),
    ("{not json", "is not JSON"),
    ('{"version": "4", "status": "firing"}', "is not an Alertmanager v4 webhook payload"),
    ('{"version": "4", "groupKey": "g", "status": "firing", "alerts": [{"status": "firing", "labels": {}, '
     '"startsAt": "2026-01-01T00:00:00Z"}]}', "alertname"),
])
def test_bad_input_is_one_line_and_non_zero(tmp_path, content, message):
    path = tmp_path / "alert.json"
    if content is not None:
        path.write_text(content)
    out = aiops(tmp_path, "analyze", "--alert", str(path))
    assert out.returncode == 2 and message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unknown_plan_and_bad_settings(tmp_path):
    out = aiops(tmp_path, "approve", "plan-nope", "--by", "alice")
    assert out.returncode == 2 and "unknown plan id" in out.stderr and "Traceback" not in out.stderr
    bad = aiops(tmp_path, "incidents", REDIS_URL="localhost:6379")
    assert bad.returncode == 2 and "REDIS_URL must start with" in bad.stderr and "Traceback" not in bad.stderr


def test_live_analyze_without_backends_still_diagnoses(tmp_path):
    """No telemetry configured at all: the alert itself is the evidence, and the plan is still typed."""
    alert = webhook_file(tmp_path, "vm-high-cpu")
    out = aiops(tmp_path, "analyze", "--alert", str(alert), "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["status"] == "awaiting_approval" and res["root_cause"] == "web-01" and res["risk"] == "high"
    shown = aiops(tmp_path, "show", res["incident_id"])
    assert "proxmox_vm_reboot on pve-01" in shown.stdout and "vmid=101" in shown.stdout


def test_demo_runs_all_recordings(tmp_path):
    out = aiops(tmp_path, "demo", "--json", ENABLE_MEMORY="true")  # the demo's real default: memory on
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    by_name = {i["name"]: i for i in res["incidents"]}
    failed = [i["incident_id"] for i in res["incidents"] if i["status"] == "failed"]
    if failed:  # say why, not just that
        shown = aiops(tmp_path, "show", failed[0], AIOPS_DATA_DIR=str(tmp_path / "var" / "demo"))
        pytest.fail(f"demo incident failed: {res}\n{shown.stdout}{shown.stderr}")
    assert by_name["disk-full"]["status"] == "resolved" and by_name["disk-full"]["approval"]["approver"] == "policy"
    assert by_name["crashloop"]["status"] == "resolved"
    assert by_name["crashloop (re-sent)"]["status"] == "duplicate"
    assert by_name["router-uplink-flap"]["status"] == "rejected"
    assert by_name["vm-high-cpu"]["status"] == "executed"  # approved, but web-01 is not reachable: dry run
    assert by_name["vm-high-cpu"]["root_cause"] == "php-fpm" and by_name["disk-full"]["root_cause"] == "backup-01"
    assert by_name["crashloop (again, the next week)"]["status"] == "resolved"  # recognised from memory
    assert res["seconds"] < 600

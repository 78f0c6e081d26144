"""Helpers for the exactly-once decision tests: the CLI as real processes sharing one AIOPS_DATA_DIR,
the Proxmox VE simulator as an action whose runs can be counted (its tasks), and a fresh database on
the local PostgreSQL server."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests import servers
from tests.conftest import REPO, cli_env
from tests.sim.proxmox import ProxmoxSim


def aiops(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interfaces.cli", *args], cwd=REPO,
                          env=cli_env(tmp_path, **(env or {})), capture_output=True, text=True, timeout=timeout)


def spawn(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "interfaces.cli", *args], cwd=REPO,
                            env=cli_env(tmp_path, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def pve_env(pve: ProxmoxSim, **extra: str) -> dict[str, str]:
    """Live settings pointing at the simulator; verification does not wait for the cluster to settle."""
    return {"PROXMOX_HOST": pve.host, "PROXMOX_USER": pve.user, "PROXMOX_TOKEN_NAME": pve.token_name,
            "PROXMOX_TOKEN_VALUE": pve.token_value, "PROXMOX_CA_BUNDLE": pve.ca_file, "PROXMOX_TASK_TIMEOUT": "60",
            "VERIFY_SETTLE_SECONDS": "0", **extra}


def hot_vm_alert(tmp_path: Path, status: str = "firing", fingerprint: str = "web01cpu") -> Path:
    """HostHighCpuLoad on Proxmox guest web-01 (vmid 101): a high-risk reboot plan that waits for a human."""
    start = datetime.now(UTC) - timedelta(minutes=8)
    alert: dict[str, Any] = {
        "status": status, "fingerprint": fingerprint, "startsAt": start.isoformat(),
        "labels": {"alertname": "HostHighCpuLoad", "host": "web-01", "instance": "web-01:9100", "pve_node": "pve-01",
                   "vmid": "101", "severity": "warning"},
        "annotations": {"summary": "Host high CPU load on web-01"}}
    if status == "resolved":
        alert["endsAt"] = datetime.now(UTC).isoformat()
    path = tmp_path / f"web-01-{status}.json"
    path.write_text(json.dumps({"version": "4", "groupKey": "{}:{alertname=\"HostHighCpuLoad\"}", "status": status,
                                "receiver": "aiops", "alerts": [alert]}))
    return path


def reboots(pve: ProxmoxSim) -> list[str]:
    """UPIDs of the reboot tasks the cluster was asked to run."""
    return [t.upid for t in pve.tasks.values() if t.type == "qmreboot"]


def wait_for(cond: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def paused_reboot_plan(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    out = aiops(tmp_path, "analyze", "--alert", str(hot_vm_alert(tmp_path)), "--json", env=env)
    assert out.returncode == 0, out.stderr
    paused = json.loads(out.stdout)
    assert paused["status"] == "awaiting_approval" and paused["plan_id"], paused
    return paused


def show(tmp_path: Path, incident_id: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = aiops(tmp_path, "show", incident_id, "--json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def incidents(tmp_path: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out = aiops(tmp_path, "incidents", "--json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["incidents"]  # type: ignore[no-any-return]


def pg_database() -> contextlib.AbstractContextManager[str]:
    """A throw-away database on the local PostgreSQL server (skips when there is none)."""
    return servers.pg_database("aiops_sec")

"""The self-healing kill switch over HTTP, and the anomaly watcher inside `aiops serve` (WATCH_SERVICES)
raising into the service's queue: in-process app, real runner, embedded SQLite queue."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.test_autonomy_cli import syslog
from tests.integration.test_api import ALICE, SERVICE, auth, client

pytestmark = pytest.mark.integration


def test_kill_switch_over_http(tmp_path: Path) -> None:
    env = {"API_TOKENS": f"alice:{ALICE}", "APPROVERS": "alice", "AIOPS_API_TOKEN": SERVICE}
    with client(tmp_path, **env) as c:
        assert c.get("/api/v1/self-healing", headers=auth(SERVICE)).json()["enabled"] is True
        assert c.post("/api/v1/self-healing", json={"enabled": False}).status_code == 401
        refused = c.post("/api/v1/self-healing", json={"enabled": False}, headers=auth(SERVICE))
        assert refused.status_code == 403 and set(refused.json()) == {"detail"}
        assert c.post("/api/v1/self-healing", json={"enabled": "nope"}, headers=auth(ALICE)).status_code == 422
        off = c.post("/api/v1/self-healing", json={"enabled": False}, headers=auth(ALICE))
        assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["changed_by"] == "alice"
        # the graph's gate reads the same switch: the disk-full fix now waits for a human
        from agents.self_healing import store_for
        from core.settings import load_settings

        assert store_for(load_settings(AIOPS_DATA_DIR=tmp_path / "var")).switch().enabled is False


def test_watcher_inside_serve_raises_into_the_queue(tmp_path: Path) -> None:
    log = tmp_path / "payments.log"
    syslog(log, errors_since_minutes=3)
    with client(tmp_path, WATCH_SERVICES="payments", WATCH_INTERVAL_SECONDS=5, LOG_FILES=str(log)) as c:
        deadline = time.monotonic() + 60
        rows: list = []
        while time.monotonic() < deadline:
            rows = [r for r in c.get("/api/v1/incidents").json()["incidents"] if "AiopsAnomalyDetected" in r["title"]]
            if rows:
                break
            time.sleep(0.2)
        assert len(rows) == 1 and rows[0]["title"].startswith("AiopsAnomalyDetected: payments")
        time.sleep(6)  # another scan: its incident is open, nothing new
        again = [r for r in c.get("/api/v1/incidents").json()["incidents"] if "AiopsAnomalyDetected" in r["title"]]
        assert len(again) == 1

"""Issue 16, finding 6a: the webhook's 202 names the incident each alert actually landed in.

A notification that joins an open incident (storm correlation) used to be answered with the id it
would have opened, which `GET /api/v1/incidents/{id}` never found (404 for ever). Now the join is
decided, and recorded, when the notification is accepted: the 202 names the open incident it joined,
the worker's run lands there too (however long it waits in the queue), and the GET finds it. A
resolved notification lands in the incident it closes. Real app, real queue and worker (SQLite and a
real redis-server).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from tests.conftest import LOCAL_CLIENT, recording
from tests.servers import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.integration


def disk_full() -> dict[str, Any]:
    return dict(json.loads(recording("disk-full").read_text())["webhook"])


def cpu_on_the_same_host() -> dict[str, Any]:
    """Another alert about backup-01, in its own Alertmanager group: related by host, not a re-send."""
    hook = copy.deepcopy(disk_full())
    alert = hook["alerts"][0]
    alert["labels"].update(alertname="HostHighCpuLoad", severity="warning")
    alert["labels"].pop("mountpoint"), alert["labels"].pop("device"), alert["labels"].pop("fstype")
    alert["annotations"] = {"summary": "CPU load is > 80% on backup-01"}
    alert["fingerprint"] = "77aa00cpu0backup"
    hook["groupKey"] = '{}:{alertname="HostHighCpuLoad", instance="backup-01:9100"}'
    hook["groupLabels"] = {"alertname": "HostHighCpuLoad", "instance": "backup-01:9100"}
    hook["commonLabels"] = dict(alert["labels"])
    return hook


@pytest.fixture(params=["sqlite", "redis"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    env: dict[str, Any] = {}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = server.url
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, LLM_MODE="rules",
                             VERIFY_SETTLE_SECONDS=0, **env)
    with TestClient(create_app(settings, worker=True, concurrency=1), client=LOCAL_CLIENT) as c:
        yield c


def found(c: TestClient, incident_id: str, status: str | None = None, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = c.get(f"/api/v1/incidents/{incident_id}")
        if resp.status_code == 200 and (status is None or resp.json()["status"] == status):
            return dict(resp.json())
        time.sleep(0.1)
    raise AssertionError(f"GET /api/v1/incidents/{incident_id}: {resp.status_code} {resp.text[:300]}")


def test_a_joined_alert_is_answered_with_the_incident_it_joined(api: TestClient) -> None:
    opened = api.post("/webhook/alertmanager", json=disk_full())
    joined = api.post("/webhook/alertmanager", json=cpu_on_the_same_host())  # before the worker ran either
    assert opened.status_code == joined.status_code == 202
    assert joined.json()["incident_id"] == opened.json()["incident_id"]
    assert joined.json()["message_id"] != opened.json()["message_id"]  # its own message, its own run
    report = found(api, joined.json()["incident_id"], "awaiting_approval")
    assert report["title"].startswith("HostOutOfDiskSpace")
    deadline = time.monotonic() + 30
    while not report["related_alerts"] and time.monotonic() < deadline:  # the joined alert's run records it
        time.sleep(0.1)
        report = found(api, joined.json()["incident_id"])
    assert [a["alertname"] for a in report["related_alerts"]] == ["HostHighCpuLoad"]
    # the same notification re-sent later lands in the same incident; still one incident in all
    assert api.post("/webhook/alertmanager", json=cpu_on_the_same_host()).json()["incident_id"] == \
        opened.json()["incident_id"]
    assert [r["incident_id"] for r in api.get("/api/v1/incidents").json()["incidents"]] == [opened.json()["incident_id"]]


def test_every_answered_id_is_found(api: TestClient) -> None:
    answered = [api.post("/webhook/alertmanager", json=hook).json()["incident_id"]
                for hook in (disk_full(), cpu_on_the_same_host())]
    for incident_id in answered:
        found(api, incident_id)
    resolved = copy.deepcopy(disk_full())
    resolved["status"] = "resolved"
    resolved["alerts"][0].update(status="resolved", endsAt="2026-03-10T05:00:00Z")
    closing = api.post("/webhook/alertmanager", json=resolved).json()["incident_id"]
    assert closing == answered[0]  # the incident the resolved alert belongs to
    found(api, closing)

"""`aiops serve` as a real process: a bare machine (no config), Redis, a plan the CLI created approved
over HTTP, intake processes. The CLI beside the service: tests/e2e/test_cli_beside_service.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, cli_env, recording
from tests.servers import RedisServer, aiops_serve, redis_server  # noqa: F401

pytestmark = pytest.mark.e2e


def webhook(name: str = "disk-full") -> dict[str, Any]:
    return dict(json.loads(recording(name).read_text())["webhook"])


def wait_incident(url: str, incident_id: str, status: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = httpx.get(f"{url}/api/v1/incidents", timeout=10).json()["incidents"]
        row = next((r for r in rows if r["incident_id"] == incident_id), None)
        if row and row["status"] == status:
            return row
        time.sleep(0.2)
    raise AssertionError(f"{incident_id} not {status}: {rows}")


def aiops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interfaces.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("queue", ["embedded", "redis"])
def test_bare_service_takes_a_webhook(queue: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    extra = {"LLM_MODE": "rules"}
    if queue == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        extra["REDIS_URL"] = server.url
    env = cli_env(tmp_path, **extra)
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        health = httpx.get(f"{svc.url}/health").json()
        assert health["status"] == "healthy"
        assert health["components"]["queue"]["detail"].startswith("sqlite" if queue == "embedded" else "redis")
        events: list[str] = []
        listening = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{svc.url}/api/v1/events", timeout=60) as resp:
                for line in resp.iter_lines():
                    listening.set()
                    if line.startswith("data: "):
                        events.append(line[6:])
                        return

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert listening.wait(10)
        accepted = httpx.post(f"{svc.url}/webhook/alertmanager", json=webhook())
        assert accepted.status_code == 202 and accepted.json()["accepted"] == 1
        incident_id = accepted.json()["incident_id"]
        row = wait_incident(svc.url, incident_id, "awaiting_approval")
        assert row["title"].startswith("HostOutOfDiskSpace")
        reader.join(15)
        assert events and json.loads(events[0])["incident_id"] == incident_id
        openapi = httpx.get(f"{svc.url}/openapi.json").json()
        assert {"/webhook/alertmanager", "/api/v1/plans/{plan_id}/approve", "/api/v1/events"} <= set(openapi["paths"])
    assert not (tmp_path / "var" / "service.json").exists()  # SIGTERM: the data dir is released


def test_http_approval_resumes_a_plan_the_cli_created(tmp_path: Path) -> None:
    token = "alice-http-token-0123456789"
    env = cli_env(tmp_path, LLM_MODE="rules", API_TOKENS=f"alice:{token}")
    alert = tmp_path / "flap.json"
    alert.write_text(json.dumps(webhook("router-uplink-flap")))
    paused = aiops(env, "analyze", "--alert", str(alert), "--replay", str(recording("router-uplink-flap")), "--json")
    assert paused.returncode == 0, paused.stderr
    plan = json.loads(paused.stdout)
    assert plan["status"] == "awaiting_approval"
    with aiops_serve(env, tmp_path / "serve.log") as svc:  # a later process, over HTTP
        done = httpx.post(f"{svc.url}/api/v1/plans/{plan['plan_id']}/approve", timeout=120,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"plan_hash": plan["plan_hash"], "comment": "from the API"})
        assert done.status_code == 200, done.text
        result = done.json()
        assert result["incident_id"] == plan["incident_id"] and result["approval"]["approver"] == "alice"
        assert result["report"]["approval"]["channel"] == "http" and result["report"]["executions"]


def test_intake_processes_share_the_port_the_queue_and_the_figures(tmp_path: Path) -> None:
    """`aiops serve --intake-processes 1`: a second process accepts on the same port. With the service
    process stopped (SIGSTOP), only the intake process can accept: it takes webhooks on its own, and passes
    other requests to the service, which answers them once it runs again."""
    import os
    import signal

    env = cli_env(tmp_path, LLM_MODE="rules", WEBHOOK_TOKEN="wh-token-0123456789abcdef")
    hook = {"Authorization": "Bearer wh-token-0123456789abcdef"}
    with aiops_serve(env, tmp_path / "serve.log", "--no-worker", "--intake-processes", "1") as svc:
        assert "1 more intake processes" in svc.output()
        children = subprocess.run(["pgrep", "-P", str(svc.proc.pid), "-f", "spawn_main"], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) == 1, svc.output()
        os.kill(svc.proc.pid, signal.SIGSTOP)
        try:
            with httpx.Client(timeout=30) as c:  # each request on a new connection: any process may take it
                for n in range(3):
                    body = webhook()
                    body["groupKey"] = f"intake-{n}"
                    accepted = c.post(f"{svc.url}/webhook/alertmanager", json=body, headers=hook,
                                      extensions={"timeout": {"pool": 5}})
                    assert accepted.status_code == 202, accepted.text
                assert c.post(f"{svc.url}/webhook/alertmanager", json=webhook()).status_code == 401

            def resume() -> None:
                time.sleep(1.0)
                os.kill(svc.proc.pid, signal.SIGCONT)

            threading.Thread(target=resume).start()
            # taken by the intake process (the service is stopped), answered by the service once it runs
            listed = httpx.get(f"{svc.url}/api/v1/incidents", timeout=30, headers={"Host": "aiops.example:8000"})
        finally:
            os.kill(svc.proc.pid, signal.SIGCONT)
        assert listed.status_code == 200 and listed.json() == {"incidents": []}  # no worker: nothing ran yet
        metrics = httpx.get(f"{svc.url}/metrics").text  # the intake process's counts, summed by the service
        assert "aiops_alerts_received_total 3.0" in metrics
        assert 'aiops_alerts_rejected_total{reason="unauthorized"} 1.0' in metrics
        assert "depth 3" in httpx.get(f"{svc.url}/health").json()["components"]["queue"]["detail"]
        with httpx.stream("GET", f"{svc.url}/api/v1/events", timeout=30) as events:  # streamed through either
            assert events.status_code == 200 and next(events.iter_lines()) == ": connected"
    alive = subprocess.run(["ps", "-p", children[0]], capture_output=True, text=True)
    assert alive.returncode != 0, "the intake process outlived the service"

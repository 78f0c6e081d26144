"""Faults, with real processes: a worker SIGKILLed mid-run, and Redis stopped under the service.

The mid-run kill is made deterministic with the OpenAI wire simulator: its first chat completion hangs,
so worker A is provably inside the diagnosis node when it is killed. Worker B must reclaim the message
after WORKER_CLAIM_IDLE_SECONDS and finish the *same* incident (one incident, nothing dead-lettered).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cli_env, recording
from tests.servers import AiopsProcess, RedisServer, aiops_serve, redis_server  # noqa: F401
from tests.sim.openai_server import OpenAISim, serve

pytestmark = pytest.mark.e2e


def webhook() -> dict[str, Any]:
    return dict(json.loads(recording("disk-full").read_text())["webhook"])


def incidents(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/api/v1/incidents", timeout=10).json()["incidents"])


@pytest.mark.parametrize("queue", ["embedded", "redis"])
def test_worker_killed_mid_run_is_finished_by_another(queue: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    release = threading.Event()
    first_call = threading.Event()

    def responder(body: dict[str, Any]) -> dict[str, Any]:
        if not first_call.is_set():
            first_call.set()
            release.wait(60)  # worker A hangs here until it is killed
        return {"role": "assistant", "content": "No further findings."}

    sim = OpenAISim(responder)
    with serve(sim) as base_url:
        extra = {"LLM_MODE": "auto", "OPENAI_BASE_URL": base_url, "LLM_TIMEOUT": "120",
                 "WORKER_CLAIM_IDLE_SECONDS": "2", "WORKER_MAX_DELIVERIES": "3"}
        if queue == "redis":
            server: RedisServer = request.getfixturevalue("redis_server")
            extra["REDIS_URL"] = server.url
        env = cli_env(tmp_path, **extra)
        with aiops_serve(env, tmp_path / "serve.log", "--no-worker") as svc:
            worker_a = AiopsProcess(["worker", "--concurrency", "1"], env, tmp_path / "worker-a.log")
            worker_b: AiopsProcess | None = None
            try:
                accepted = httpx.post(f"{svc.url}/webhook/alertmanager", json=webhook()).json()
                assert first_call.wait(90), worker_a.output()
                worker_a.stop(kill=True)  # SIGKILL, mid-diagnosis: the message is not acknowledged
                # claimed at the start of the run, so the dead run is visible (its owner pid is gone)
                assert [(r["incident_id"], r["status"]) for r in incidents(svc.url)] == [
                    (accepted["incident_id"], "interrupted")]
                worker_b = AiopsProcess(["worker", "--concurrency", "1"], env, tmp_path / "worker-b.log")
                deadline = time.monotonic() + 90
                rows: list[dict[str, Any]] = []
                while time.monotonic() < deadline:
                    rows = incidents(svc.url)
                    if rows and rows[0]["status"] == "awaiting_approval":
                        break
                    time.sleep(0.3)
                assert [(r["incident_id"], r["status"]) for r in rows] == [
                    (accepted["incident_id"], "awaiting_approval")], worker_b.output()
                report = httpx.get(f"{svc.url}/api/v1/incidents/{accepted['incident_id']}").json()
                assert report["plan"] and report["triage"]["kind"] == "incident"
                assert len(sim.requests) >= 2  # A's hung call, then B's diagnosis
                health = httpx.get(f"{svc.url}/health").json()
                assert "depth 0" in health["components"]["queue"]["detail"]
                assert httpx.get(f"{svc.url}/api/v1/dead-letters").json()["dead_letters"] == []
                # the same notification re-sent now is still that one incident
                again = httpx.post(f"{svc.url}/webhook/alertmanager", json=webhook()).json()
                assert again["incident_id"] == accepted["incident_id"]
                time.sleep(3)
                assert [r["incident_id"] for r in incidents(svc.url)] == [accepted["incident_id"]]
            finally:
                release.set()
                worker_a.stop(kill=True)
                if worker_b is not None:
                    worker_b.stop()


def test_redis_stopped_webhook_503_then_recovers(redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    # CB_TIMEOUT=1: the "redis" breaker opens during the outage; it lets a trial through a second later
    env = cli_env(tmp_path, LLM_MODE="rules", REDIS_URL=redis_server.url, CB_TIMEOUT="1", RETRY_BASE_DELAY="0.01")
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        redis_server.stop(kill=True)
        refused = httpx.post(f"{svc.url}/webhook/alertmanager", json=webhook(), timeout=20)
        assert refused.status_code == 503, refused.text
        assert list(refused.json()) == ["detail"] and "queue unavailable" in refused.json()["detail"]
        health = httpx.get(f"{svc.url}/health", timeout=20)
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        assert health.json()["components"]["queue"]["status"] == "error"
        metrics = httpx.get(f"{svc.url}/metrics").text
        assert 'aiops_alerts_rejected_total{reason="queue_unavailable"} 1.0' in metrics
        assert "aiops_alerts_received_total 0.0" in metrics  # nothing was acknowledged
        redis_server.start()  # back (empty: it had no persistence), on the same port
        deadline = time.monotonic() + 30
        while (resp := httpx.post(f"{svc.url}/webhook/alertmanager", json=webhook())).status_code != 202:
            assert time.monotonic() < deadline, resp.text
            time.sleep(0.5)
        incident_id = resp.json()["incident_id"]
        deadline = time.monotonic() + 60
        while not any(r["incident_id"] == incident_id for r in incidents(svc.url)):
            assert time.monotonic() < deadline, svc.output()[-3000:]
            time.sleep(0.3)
        assert httpx.get(f"{svc.url}/health").json()["status"] == "healthy"

"""The HTTP API in-process (real app, real runner, real queue: SQLite file, or a real redis-server).

Rule mode and recorded/absent telemetry, so each run takes about a second; the embedded worker runs the
incidents exactly as `aiops serve` does.
"""

from __future__ import annotations

import contextlib
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

ALICE, BOB, SERVICE = "alice-token-0123456789", "bob-token-0123456789ab", "service-token-0123456789"


def webhook(name: str = "disk-full") -> dict[str, Any]:
    return dict(json.loads(recording(name).read_text())["webhook"])


def client(tmp_path: Path, **env: Any) -> TestClient:
    base: dict[str, Any] = {"AIOPS_DATA_DIR": tmp_path / "var", "VERIFY_SETTLE_SECONDS": 0, "ENABLE_MEMORY": False,
                            "LLM_MODE": "rules", "WORKER_CLAIM_IDLE_SECONDS": 30}
    settings = load_settings(**{**base, **env})
    return TestClient(create_app(settings, worker=True, concurrency=1), client=LOCAL_CLIENT)


def wait_for(c: TestClient, incident_id: str, status: str | None = None, timeout: float = 60,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = c.get("/api/v1/incidents", headers=auth(ALICE) if headers is None else headers).json()["incidents"]
        row = next((r for r in rows if r["incident_id"] == incident_id), None)
        if row and (status is None or row["status"] == status):
            return row
        time.sleep(0.1)
    raise AssertionError(f"incident {incident_id} did not reach {status or 'the registry'}: {rows}")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "redis"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    env: dict[str, Any] = {"API_TOKENS": f"alice:{ALICE},bob:{BOB}", "APPROVERS": "alice",
                           "AIOPS_API_TOKEN": SERVICE}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = server.url
    with client(tmp_path, **env) as c:
        yield c


def test_webhook_to_incident_and_approval_over_http(api: TestClient) -> None:
    resp = api.post("/webhook/alertmanager", json=webhook())
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] == 1 and body["queued"] is True
    row = wait_for(api, body["incident_id"], "awaiting_approval")
    assert row["title"].startswith("HostOutOfDiskSpace") and row["plan_id"]
    plans = api.get("/api/v1/plans", headers=auth(SERVICE)).json()["plans"]
    assert [(p["plan_id"], p["plan_hash"]) for p in plans] == [(row["plan_id"], row["plan_hash"])]
    url = f"/api/v1/plans/{row['plan_id']}/approve"
    good = {"plan_hash": row["plan_hash"], "comment": "looks right"}
    # who may decide: nobody anonymous, no forged token, not the service token, not a non-approver
    assert api.post(url, json=good).status_code == 401
    assert api.post(url, json=good, headers=auth("x" * 30)).status_code == 401
    assert api.post(url, json=good, headers=auth(SERVICE)).status_code == 403
    refused = api.post(url, json=good, headers=auth(BOB))
    assert refused.status_code == 403 and "not an authorised approver" in refused.json()["detail"]
    stale = api.post(url, json={"plan_hash": "0" * 64}, headers=auth(ALICE))
    assert stale.status_code == 409 and list(stale.json()) == ["detail"]
    assert api.post("/api/v1/plans/plan-nope/approve", json=good, headers=auth(ALICE)).status_code == 404
    # none of the refusals consumed the request: alice's approval runs it
    done = api.post(url, json=good, headers=auth(ALICE))
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["incident_id"] == body["incident_id"] and result["approval"]["approver"] == "alice"
    assert result["status"] in ("executed", "resolved") and result["report"]["executions"]
    again = api.post(url, json=good, headers=auth(ALICE))
    assert again.status_code == 409 and "not awaiting approval" in again.json()["detail"]
    shown = api.get(f"/api/v1/incidents/{body['incident_id']}", headers=auth(BOB)).json()
    assert shown["approval"]["approver"] == "alice" and shown["approval"]["channel"] == "http"
    assert api.get("/api/v1/incidents/inc-unknown", headers=auth(BOB)).status_code == 404


def test_redelivered_notification_is_one_incident(api: TestClient) -> None:
    first = api.post("/webhook/alertmanager", json=webhook()).json()
    second = api.post("/webhook/alertmanager", json=webhook()).json()  # Alertmanager retried: same content
    assert first["incident_id"] == second["incident_id"]
    wait_for(api, first["incident_id"], "awaiting_approval")
    third = api.post("/webhook/alertmanager", json=webhook()).json()  # and once more after it was processed
    time.sleep(1.5)
    assert third["incident_id"] == first["incident_id"]
    rows = api.get("/api/v1/incidents", headers=auth(ALICE)).json()["incidents"]
    assert [r["incident_id"] for r in rows] == [first["incident_id"]]


def test_reads_need_a_token_when_tokens_are_configured(api: TestClient) -> None:
    assert api.get("/api/v1/incidents").status_code == 401
    assert api.get("/api/v1/incidents", headers=auth("nope" * 5)).status_code == 401
    assert api.get("/api/v1/incidents", headers=auth(SERVICE)).status_code == 200
    assert api.get("/health").status_code == 200 and api.get("/metrics").status_code == 200


def test_analyze_on_demand(api: TestClient) -> None:
    queued = api.post("/api/v1/analyze", json={"service_name": "checkout", "time_range": "30m"},
                      headers=auth(SERVICE))
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    done = api.post("/api/v1/analyze?wait=true", json={"service_name": "checkout", "time_range": "1h"},
                    headers=auth(SERVICE))
    assert done.status_code == 200, done.text
    report = done.json()["report"]
    assert report["title"].startswith("OnDemandAnalysis") and report["triage"]["kind"] == "incident"
    assert done.json()["incident_id"] != queued.json()["incident_id"]  # every request investigates anew
    bad = api.post("/api/v1/analyze", json={"service_name": "x; rm -rf /", "time_range": "1h"},
                   headers=auth(SERVICE))
    assert bad.status_code == 422 and bad.json()["detail"].startswith("service_name")
    assert api.post("/api/v1/analyze", json={"service_name": "checkout", "time_range": "99999d"},
                    headers=auth(SERVICE)).status_code == 422


def test_webhook_limits_and_errors(tmp_path: Path) -> None:
    with client(tmp_path, WEBHOOK_TOKEN="am-secret-0123456789", WEBHOOK_MAX_BYTES=4096) as c:
        ok = {"Authorization": "Bearer am-secret-0123456789"}
        assert c.post("/webhook/alertmanager", json=webhook()).status_code == 401
        assert c.post("/webhook/alertmanager", json=webhook(), headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/webhook/alertmanager", json=webhook(), headers=ok).status_code == 202
        big = webhook()
        big["commonAnnotations"] = {"description": "x" * 5000}
        too_big = c.post("/webhook/alertmanager", json=big, headers=ok)
        assert too_big.status_code == 413 and "WEBHOOK_MAX_BYTES" in too_big.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: limited while streaming
            yield json.dumps(big).encode()[:3000]
            yield json.dumps(big).encode()[3000:]

        assert c.post("/webhook/alertmanager", content=chunks(), headers={**ok, "content-type": "application/json"}
                      ).status_code == 413
        not_json = c.post("/webhook/alertmanager", content=b"{nope", headers={**ok, "content-type": "application/json"})
        assert not_json.status_code == 400 and list(not_json.json()) == ["detail"]
        no_name = webhook()
        no_name["alerts"][0]["labels"].pop("alertname")
        bad = c.post("/webhook/alertmanager", json=no_name, headers=ok)
        assert bad.status_code == 422 and "alertname" in bad.json()["detail"] and "\n" not in bad.json()["detail"]
        metrics = c.get("/metrics").text
        for line in ('aiops_alerts_rejected_total{reason="unauthorized"} 2.0',
                     'aiops_alerts_rejected_total{reason="too_large"} 2.0',
                     'aiops_alerts_rejected_total{reason="invalid"} 2.0', "aiops_alerts_received_total 1.0"):
            assert line in metrics
        # no token configured for reads: open; approvals: nobody can be identified
        assert c.get("/api/v1/incidents").status_code == 200
        no_users = c.post("/api/v1/plans/plan-x/approve", json={"plan_hash": "0" * 64})
        assert no_users.status_code == 401 and "API_TOKENS" in no_users.json()["detail"]


def test_health_and_a_failing_run_dead_lettered(tmp_path: Path) -> None:
    with client(tmp_path, PROMETHEUS_URL="http://127.0.0.1:9", WORKER_MAX_DELIVERIES=2) as c:
        health = c.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded" and body["components"]["queue"]["status"] == "ok"
        assert body["components"]["prometheus"]["status"] == "error"
        assert body["components"]["redis"]["status"] == "not configured"
        # Prometheus is down: the run degrades (diagnosis without metrics, said in the report), not dead-lettered
        accepted = c.post("/webhook/alertmanager", json=webhook()).json()
        row = wait_for(c, accepted["incident_id"], "awaiting_approval", headers={})
        report = c.get(f"/api/v1/incidents/{row['incident_id']}").json()
        assert any(e["excerpt"].startswith("metrics unavailable: prometheus breaker open")
                   for e in report["evidence"])
        assert c.get("/api/v1/dead-letters").json()["dead_letters"] == []
        # a run that cannot succeed (its recording is gone): retried once, then dead-lettered with the reason
        svc = c.app.state.svc  # type: ignore[attr-defined]
        gone = {"kind": "replay", "path": str(tmp_path / "deleted.json"), "standins": str(tmp_path / "standins")}
        c.portal.call(svc.queue.enqueue, {"incident_id": "inc-gone", "webhook": webhook("crashloop"), "source": gone},  # type: ignore[union-attr]
                      "gone-key")
        deadline = time.monotonic() + 30
        while not (dead := c.get("/api/v1/dead-letters").json()["dead_letters"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [(d["body"]["incident_id"], d["deliveries"]) for d in dead] == [("inc-gone", 2)]
        assert dead[0]["reason"].startswith("run failed 2 times")
        # a message the worker cannot parse goes straight there
        c.portal.call(svc.queue.enqueue, {"incident_id": "inc-x", "webhook": {"version": "4"}}, "bad-key")  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while len(dead := c.get("/api/v1/dead-letters").json()["dead_letters"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dead[0]["key"] == "bad-key" and dead[0]["reason"].startswith("invalid message")
        assert 'aiops_queue_dead_letters{queue="alerts"} 2.0' in c.get("/metrics").text


def test_breakers_and_llm_metrics(tmp_path: Path) -> None:
    import gc

    gc.collect()  # breakers of earlier tests' chains are listed while alive: this test wants only its own
    dead_port = "http://127.0.0.1:9"
    with client(tmp_path, OPENAI_BASE_URL=f"{dead_port}/v1", LLM_MODE="auto", CB_FAILURE_THRESHOLD=1) as c:
        assert c.get("/health").json()["components"]["llm_openai"]["status"] == "error"
        breakers = {b["name"]: b for b in c.get("/api/v1/circuit-breakers").json()["circuit_breakers"]}
        assert breakers["llm-openai"]["state"] == "closed" and breakers["llm-openai"]["opened_at"] is None
        # the LLM is down: the run falls back to rules, and the breaker opens
        accepted = c.post("/webhook/alertmanager", json=webhook()).json()
        wait_for(c, accepted["incident_id"], "awaiting_approval", headers={})
        breakers = {b["name"]: b for b in c.get("/api/v1/circuit-breakers").json()["circuit_breakers"]}
        assert breakers["llm-openai"]["state"] == "open" and breakers["llm-openai"]["failures"] >= 1
        assert breakers["llm-openai"]["opened_at"] is not None
        metrics = c.get("/metrics").text
        assert 'aiops_circuit_breaker_state{name="llm-openai"} 2.0' in metrics
        assert 'aiops_llm_calls_total{model="gpt-4.1-mini",ok="false",provider="openai"}' in metrics
        assert 'aiops_incidents{status="awaiting_approval"} 1.0' in metrics
        assert "aiops_http_request_duration_seconds_bucket" in metrics


def test_resolved_notification_closes_the_open_incident(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        firing = webhook()
        opened = c.post("/webhook/alertmanager", json=firing).json()
        wait_for(c, opened["incident_id"], "awaiting_approval", headers={})
        resolved = json.loads(json.dumps(firing))
        resolved["status"] = "resolved"
        for alert in resolved["alerts"]:
            alert["status"] = "resolved"
            alert["endsAt"] = "2026-03-11T10:30:00Z"
        closing = c.post("/webhook/alertmanager", json=resolved).json()
        # a changed notification: its own message (run), landing in the incident its alert belongs to
        assert closing["message_id"] != opened["message_id"] and closing["incident_id"] == opened["incident_id"]
        wait_for(c, opened["incident_id"], "resolved", headers={})


def sample(exposition: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus exposition (labels in any order); KeyError when absent."""
    for line in exposition.splitlines():
        metric, _, value = line.rpartition(" ")
        base, _, rest = metric.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return float(value)
    raise KeyError(f"{name}{labels} not in the exposition")


def test_metrics_that_watch_aiops_itself(tmp_path: Path) -> None:
    """Alert-to-plan, the oldest pending approval, notification outcomes and queues (docs/deploy/monitoring)."""
    from tests.sim.webhooks import slack_double

    with slack_double() as slack, client(tmp_path, API_TOKENS=f"alice:{ALICE}", APPROVERS="alice",
                                         ENABLE_SLACK_NOTIFICATIONS=True, SLACK_WEBHOOK_URL=slack.url) as c:
        text = c.get("/metrics").text
        assert sample(text, "aiops_pending_approval_oldest_age_seconds") == 0.0
        accepted = c.post("/webhook/alertmanager", json=webhook()).json()
        row = wait_for(c, accepted["incident_id"], "awaiting_approval")
        time.sleep(0.05)
        text = c.get("/metrics").text
        assert sample(text, "aiops_alert_to_plan_seconds_count", outcome="awaiting_approval") == 1.0
        assert sample(text, "aiops_pending_approval_oldest_age_seconds") > 0.0
        assert sample(text, "aiops_webhook_request_duration_seconds_count", status="202") == 1.0
        assert sample(text, "aiops_queue_depth", queue="alerts") == 0.0
        assert sample(text, "aiops_queue_dead_letters", queue="notify.slack") == 0.0
        assert sample(text, "aiops_notifications_spilled") == 0.0
        decided = c.post(f"/api/v1/plans/{row['plan_id']}/approve", headers=auth(ALICE),
                         json={"plan_hash": row["plan_hash"]})
        assert decided.status_code == 200, decided.text
        deadline = time.monotonic() + 20
        delivered = 0.0
        while delivered < 3 and time.monotonic() < deadline:  # opened, awaiting approval, decision, ...
            text = c.get("/metrics").text
            with contextlib.suppress(KeyError):
                delivered = sample(text, "aiops_notifications_total", channel="slack", outcome="delivered")
            time.sleep(0.05)
        assert delivered >= 3 and len(slack.received) >= 3
        assert sample(text, "aiops_pending_approval_oldest_age_seconds") == 0.0
        assert sample(text, "aiops_alert_to_plan_seconds_count", outcome="awaiting_approval") == 1.0  # not again


def test_webhook_hot_path_crash_is_one_line_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook is served ahead of FastAPI's routing: an unexpected error still ends as the app's 500."""
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, LLM_MODE="rules")
    with TestClient(create_app(settings, worker=False), raise_server_exceptions=False, client=LOCAL_CLIENT) as c:
        async def broken(*_args: Any, **_kw: Any) -> str:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(c.app.state.svc.queue, "enqueue", broken)  # type: ignore[attr-defined]
        resp = c.post("/webhook/alertmanager", json=webhook())
        assert resp.status_code == 500
        assert resp.json() == {"detail": "internal error (RuntimeError); see the service log"}
        assert c.get("/webhook/alertmanager").status_code == 405  # other methods still go through the router

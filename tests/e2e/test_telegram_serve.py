"""`aiops serve` with TELEGRAM_TOKEN set: the service runs the bot and the notification outbox. An alert
posted to the webhook reaches the admins' chat as a card; a press approves it through the same gate."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from service.toolbox_factory import replay_spec
from tests.conftest import LOCAL_CLIENT, recording
from tests.sim.telegram import TelegramSim, telegram_sim
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.e2e
ADMIN = 111
TOKEN = "alice-token-0123456789"


def wait(predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_serve_runs_the_bot_and_the_outbox(tmp_path: Path) -> None:
    sim: TelegramSim
    with telegram_sim() as sim:
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
                                 LLM_MODE="rules", TELEGRAM_TOKEN=sim.token, TELEGRAM_API_URL=sim.url,
                                 ADMIN_CHAT_ID=str(ADMIN), TELEGRAM_POLL_TIMEOUT=1, API_TOKENS=f"alice:{TOKEN}")
        body = json.loads(recording("crashloop").read_text())["webhook"]
        with TestClient(create_app(settings, worker=True, concurrency=1), client=LOCAL_CLIENT) as api:
            # 1. the recorded incident (telemetry + stand-in hosts) through the service's own runner, as
            #    `aiops analyze --replay` does via the service: a plan that waits for a human
            runner = api.app.state.svc.runner  # type: ignore[attr-defined]
            rec = load_recorded(recording("crashloop"))
            spec = replay_spec(recording("crashloop"), settings)
            outcome = api.portal.call(runner.analyze, rec.webhook, spec)  # type: ignore[union-attr]
            card = wait(lambda: next((m for m in sim.messages.get(ADMIN, []) if any(
                b["callback_data"].startswith("plan:approve") for b in m.buttons())), None))
            approve = next(b["callback_data"] for b in card.buttons() if b["callback_data"].startswith("plan:approve"))
            sim.press(sim.user(ADMIN, "Alice", "alice"), card, approve)
            wait(lambda: "RECOVERED" in card.text)
            # 2. Alertmanager posts it again later; on this bare machine (no telemetry, no inventory) the
            #    service escalates it to a human
            assert api.post("/webhook/alertmanager", json=body).status_code == 202
            ping = wait(lambda: next((m for m in sim.messages.get(ADMIN, []) if m.text.startswith("🔥 Escalation")),
                                     None))
            escalated = sim.messages[ADMIN][sim.messages[ADMIN].index(ping) - 1]
            rows = api.get("/api/v1/incidents", headers={"Authorization": f"Bearer {TOKEN}"}).json()["incidents"]
            dead = api.get("/api/v1/notifications/dead-letters", headers={"Authorization": f"Bearer {TOKEN}"})
        assert sim.calls_of("setMyCommands") and sim.calls_of("getUpdates")
        assert "needs a human" in ping.text and [b["text"] for b in escalated.buttons()] == [
            "🔎 Details", "👀 Ack", "🙋 Take it"]  # nothing to approve on an escalation: somebody takes it
        row = next(r for r in rows if r["plan_id"] == outcome.plan_id)
        assert row["status"] == "resolved" and approve.split(":")[2] == outcome.plan_id
        assert dead.status_code == 200 and dead.json() == {"dead_letters": []}
        assert "Approved by 111 via telegram" in card.text and "Execute done: rollback_config" in card.text


def test_changes_over_http_redraw_the_card_and_snooze_from_telegram(tmp_path: Path) -> None:
    """The card follows the incident whichever interface changes it: acknowledged over HTTP, the card
    says by whom; closed over HTTP, the card says closed with the reason and its Approve / Reject buttons
    are gone (the plan is withdrawn). /snooze ID UNTIL holds notifications from Telegram, bounded like HTTP."""
    sim: TelegramSim
    with telegram_sim() as sim:
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
                                 LLM_MODE="rules", TELEGRAM_TOKEN=sim.token, TELEGRAM_API_URL=sim.url,
                                 ADMIN_CHAT_ID=str(ADMIN), TELEGRAM_APPROVER_IDS=f"carol:{ADMIN}",
                                 TELEGRAM_POLL_TIMEOUT=1, API_TOKENS=f"alice:{TOKEN}")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with TestClient(create_app(settings, worker=True, concurrency=1), client=LOCAL_CLIENT) as api:
            runner = api.app.state.svc.runner  # type: ignore[attr-defined]
            spec = replay_spec(recording("crashloop"), settings)

            def analyze() -> Any:
                return api.portal.call(runner.analyze, load_recorded(recording("crashloop")).webhook, spec)  # type: ignore[union-attr]

            def card_of(plan_id: str) -> Any:
                return wait(lambda: next((m for m in sim.messages.get(ADMIN, []) if any(
                    b["callback_data"].startswith(f"plan:approve:{plan_id}") for b in m.buttons())), None))

            first = analyze()
            card = card_of(first.plan_id)
            assert api.post(f"/api/v1/incidents/{first.incident_id}/ack", headers=auth).status_code == 200
            wait(lambda: "Acknowledged by alice" in card.text)
            assert "👀 Ack" not in [b["text"] for b in card.buttons()]
            closed = api.post(f"/api/v1/incidents/{first.incident_id}/close", headers=auth,
                              json={"reason": "rolled back by hand"})
            assert closed.status_code == 200 and closed.json()["decision_state"] == "withdrawn", closed.text
            wait(lambda: "Closed by alice: rolled back by hand" in card.text)
            buttons = [b["text"] for b in card.buttons()]
            # /snooze from Telegram on a new incident (the closed one takes no more alerts): a time out of
            # bounds is refused like over HTTP, a duration holds its notifications
            second = analyze()
            assert second.incident_id != first.incident_id
            card_of(second.plan_id)
            carol = sim.user(ADMIN, "Carol", "carol")
            sim.send_text(carol, f"/snooze {second.incident_id} 30d")
            refused = wait(lambda: next((m for m in sim.messages[ADMIN] if m.text.startswith("⛔")), None))
            sim.send_text(carol, f"/snooze {second.incident_id} 2h")
            held = wait(lambda: next((m for m in sim.messages[ADMIN] if m.text.startswith("Notifications held")), None))
            on_call = api.get(f"/api/v1/incidents/{second.incident_id}", headers=auth).json()["on_call"]
            trail = api.get(f"/api/v1/incidents/{second.incident_id}/audit", headers=auth).json()["decisions"]
        assert buttons == ["🔎 Details"]  # no Approve / Reject (withdrawn), no Ack / Take it (closed)
        assert "next 7 days" in refused.text
        assert second.incident_id in held.text and "carol" in held.text and on_call["snoozed_until"]
        assert [(d["approver"], d["decision"], d["outcome"]) for d in trail] == [
            ("carol", "snooze", "refused"), ("carol", "snooze", "done")]

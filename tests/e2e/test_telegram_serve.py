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
from tests.conftest import recording
from tests.sim.telegram import TelegramSim, telegram_sim

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
        with TestClient(create_app(settings, worker=True, concurrency=1)) as api:
            assert api.post("/webhook/alertmanager", json=body).status_code == 202
            card = wait(lambda: next((m for m in sim.messages.get(ADMIN, []) if m.buttons()), None))
            approve = next(b["callback_data"] for b in card.buttons() if b["callback_data"].startswith("plan:approve"))
            sim.press(sim.user(ADMIN, "Alice", "alice"), card, approve)
            wait(lambda: "Execute" in card.text)
            wait(lambda: not any(c.method == "editMessageText" and c.at > time.time() - 1 for c in sim.calls), 10)
            plan_id = approve.split(":")[2]
            rows = api.get("/api/v1/incidents", headers={"Authorization": f"Bearer {TOKEN}"}).json()["incidents"]
            dead = api.get("/api/v1/notifications/dead-letters", headers={"Authorization": f"Bearer {TOKEN}"})
        assert sim.calls_of("setMyCommands") and sim.calls_of("getUpdates")
        row = next(r for r in rows if r["plan_id"] == plan_id)
        assert row["status"] in ("executed", "resolved")
        assert dead.status_code == 200 and dead.json() == {"dead_letters": []}
        assert "Approved by 111 via telegram" in card.text
        # no inventory on this bare service: the restart is a dry run, and the card says so
        assert "Execute DRY RUN: restart_service on app-02" in card.text

"""Issue 16, finding 3: no crash without a human.

A model proposes a generated playbook nested deep enough that parsing it raises RecursionError inside
the planning step. Before, the run died: the incident stayed `interrupted` with no plan, the alert's
message was retried and dead-lettered, and nobody was told. Now the failed step becomes an escalation
that names it: the incident ends `escalated` with an escalate-to-on-call plan, the report says which
step failed and how, a notification goes out, and the message is acknowledged (not dead-lettered).

Real pieces: the service in-process (API, queue, worker), the OpenAI wire simulator as the model, the
Slack simulator as the notification channel.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from tests.conftest import LOCAL_CLIENT, recording
from tests.sim.openai_server import OpenAISim, function_call, serve
from tests.sim.webhooks import slack_double

pytestmark = pytest.mark.integration

DEEP = "- " + "[" * 3000 + "]" * 3000  # 6 KB of YAML, far below MAX_PLAYBOOK_BYTES, and 3,000 levels deep


def model(body: dict[str, Any]) -> dict[str, Any]:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("function", {}).get("name") == "RemediationPlan":
        return function_call("RemediationPlan", {"rationale": "my own playbook", "steps": [
            {"action": "run_generated_playbook", "target": "backup-01", "parameters": {"playbook": DEEP}}]})
    return {"role": "assistant", "content": "No further findings."}


def test_a_step_that_crashes_escalates_to_a_human(tmp_path: Path) -> None:
    with serve(OpenAISim(model)) as base_url, slack_double() as slack:
        settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, VERIFY_SETTLE_SECONDS=0,
                                 LLM_MODE="auto", OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-sim",
                                 WORKER_MAX_DELIVERIES=1, ENABLE_SLACK_NOTIFICATIONS=True,
                                 SLACK_WEBHOOK_URL=slack.url)
        with TestClient(create_app(settings, worker=True, concurrency=1), client=LOCAL_CLIENT) as c:
            webhook = json.loads(recording("disk-full").read_text())["webhook"]
            incident_id = c.post("/webhook/alertmanager", json=webhook).json()["incident_id"]
            deadline = time.monotonic() + 90
            row: dict[str, Any] = {}
            while time.monotonic() < deadline:
                rows = c.get("/api/v1/incidents").json()["incidents"]
                row = next((r for r in rows if r["incident_id"] == incident_id), {})
                if row.get("status") not in (None, "running"):
                    break
                time.sleep(0.2)
            assert row.get("status") == "escalated", row
            report = c.get(f"/api/v1/incidents/{incident_id}").json()
            assert report["escalation"]["failed_step"] == "plan"
            assert "RecursionError" in report["escalation"]["reason"]
            assert [a["name"] for a in report["plan"]["actions"]] == ["escalate_to_oncall"]
            assert report["plan"]["rationale"].startswith("the plan step failed unexpectedly (RecursionError")
            assert report["triage"]["kind"] == "incident" and report["hypotheses"]  # what ran before is kept
            assert c.get("/api/v1/dead-letters").json()["dead_letters"] == []  # acknowledged, not dead
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any("RecursionError" in json.dumps(b) for b in slack.received):
                time.sleep(0.2)
            texts = [json.dumps(b) for b in slack.received]
            assert any("needs a human" in t and "plan step failed" in t for t in texts), texts

"""The service says what it does: running the incident pipeline (recorded crash-loop, real Ansible on a
stand-in host, a human approval) writes one JSON line per event, with its ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.events import EVENTS, JsonFormatter
from core.settings import Settings
from graphs.runner import IncidentRunner
from interfaces.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(EVENTS)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def parsed(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def _pipeline(settings: Settings) -> tuple[str, str]:
    rec = load_recorded(recording("crashloop"))
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        outcome = await runner.analyze(rec.webhook, replay_spec(recording("crashloop"), settings))
        assert outcome.status.value == "awaiting_approval" and outcome.plan_id
        done = await runner.decide(outcome.plan_id, approver="alice", decision="approve")
        assert done.status.value == "resolved"
        return outcome.incident_id, outcome.plan_id


def test_one_json_line_per_event_with_ids(settings: Settings, lines: io.StringIO) -> None:
    incident_id, plan_id = asyncio.run(_pipeline(settings))
    events = parsed(lines)
    kinds = [e["event"] for e in events]
    assert kinds == ["incident.opened", "plan.proposed", "decision", "action.executed", "verification",
                     "incident.closed"], kinds
    assert all(e["incident_id"] == incident_id and e["level"] == "INFO" and e["logger"] == EVENTS for e in events)
    opened, proposed, decision, executed, verified, closed = events
    assert opened["alertname"] == "ServiceCrashLooping" and opened["target"] == "payments-api"
    assert proposed["plan_id"] == plan_id and len(proposed["plan_hash"]) == 12 and proposed["expires_at"]
    assert proposed["actions"] and proposed["actions"][0].startswith("rollback_config ")
    assert decision["decision"] == "approve" and decision["approver"] == "alice" and decision["valid"] is True
    assert executed["plan_id"] == plan_id and executed["action"] == "rollback_config" and executed["status"] == "ok"
    assert verified["recovered"] is True
    assert closed["status"] == "resolved"

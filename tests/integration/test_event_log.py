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
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
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


def test_on_call_changes_and_refusals_are_event_lines(tmp_path, lines: io.StringIO) -> None:
    """Each on-call change (ack, assign, comment, snooze, close) is one line naming the incident, who and
    through which channel (the close with its reason); a refused change or decision is one line too."""
    from datetime import timedelta

    from core.models import utcnow
    from core.settings import load_settings
    from service.refusals import DecisionRefused

    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
                             APPROVERS="alice,bob")

    async def main() -> tuple[str, str]:
        rec = load_recorded(recording("crashloop"))
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            out = await runner.analyze(rec.webhook, replay_spec(recording("crashloop"), settings))
            iid, life = out.incident_id, runner.lifecycle
            await life.acknowledge(iid, by="alice", channel="http")
            await life.assign(iid, "bob", by="alice", channel="cli")
            await life.comment(iid, "looking at the deploy", by="bob", channel="cli")
            await life.snooze(iid, utcnow() + timedelta(hours=2), by="bob", channel="http")
            with pytest.raises(DecisionRefused):
                await life.acknowledge(iid, by="mallory", channel="http")
            with pytest.raises(DecisionRefused):
                await runner.decide(out.plan_id or "", approver="alice", decision="approve", channel="http",
                                    plan_hash="0" * 12)
            await life.close(iid, "rolled back by hand", by="alice", channel="http")
            return iid, out.plan_id or ""

    iid, plan_id = asyncio.run(main())
    events = [e for e in parsed(lines) if e["event"] not in ("incident.opened", "plan.proposed")]
    assert [e["event"] for e in events] == [
        "incident.acknowledged", "incident.assigned", "incident.commented", "incident.snoozed",
        "incident.change_refused", "decision.refused", "incident.closed"], events
    assert all(e["incident_id"] == iid for e in events)
    ack, assign, comment, snooze, refused, bad_hash, closed = events
    assert (ack["by"], ack["channel"]) == ("alice", "http")
    assert (assign["by"], assign["channel"], assign["assignee"]) == ("alice", "cli", "bob")
    assert (comment["by"], comment["channel"]) == ("bob", "cli") and "looking" not in json.dumps(comment)
    assert snooze["until"] and snooze["channel"] == "http"
    assert (refused["operation"], refused["by"], refused["refusal"]) == ("ack", "mallory", "not_authorised")
    assert (bad_hash["plan_id"], bad_hash["by"], bad_hash["decision"], bad_hash["refusal"]) == (
        plan_id, "alice", "approve", "hash_mismatch")
    assert (closed["by"], closed["channel"], closed["reason"], closed["status"]) == (
        "alice", "http", "rolled back by hand", "closed")
    assert closed["plan_withdrawn"] == plan_id

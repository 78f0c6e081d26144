"""Issue 16, finding 5: the self-healing guards key on what was executed, not on what a sender says.

The flap guard, the failed-verification guard, the cool-down and the rate limits used to compare the
Alertmanager `fingerprint` the sender supplies: four alerts about one host that differed only in that
field got three automatic cleanups (one per fingerprint, until the per-target budget ran out). They now
compare (action, target, object) as executed: the second identical fix within FLAP_WINDOW_SECONDS goes
to a human, whatever fingerprint the alert carries.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.self_healing import store_for
from core.models import AlertmanagerWebhook
from core.settings import Settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _with(webhook: AlertmanagerWebhook, fingerprint: str, status: str = "firing") -> AlertmanagerWebhook:
    data = webhook.model_dump(mode="json", by_alias=True)
    data["status"] = status
    for a in data["alerts"]:
        a.update(fingerprint=fingerprint, status=status)
        if status == "resolved":
            a["endsAt"] = "2026-03-10T04:30:00Z"
    return AlertmanagerWebhook.model_validate(data)


def test_four_alerts_differing_only_in_fingerprint_get_one_automatic_attempt(settings: Settings):
    now = [T0]
    path = recording("disk-full")
    rec = load_recorded(path)
    inner = make_toolbox_factory(settings)

    def factory(spec: dict[str, Any]):  # type: ignore[no-untyped-def]
        box = inner(spec)
        box.clock = lambda: now[0]  # the guards' wall clock: 6 minutes between alerts, past the cool-down
        return box

    async def scenario() -> list[Any]:
        out = []
        async with IncidentRunner(settings, factory) as runner:
            for i in range(4):
                hook = _with(rec.webhook, f"forged-{i:02d}")
                outcome = await runner.analyze(hook, replay_spec(path, settings))  # the disk is full again
                out.append(outcome)
                if outcome.status.value in ("awaiting_approval", "escalated"):
                    await runner.analyze(_with(rec.webhook, f"forged-{i:02d}", "resolved"))
                now[0] += timedelta(minutes=6)
        return out

    outcomes = asyncio.run(scenario())
    automatic = [o for o in outcomes if o.report.approval is not None and o.report.approval.channel == "policy"]
    assert len(automatic) == 1, [(o.status.value, (o.pending or {}).get("self_healing")) for o in outcomes]
    assert outcomes[0].report.approval.approver == "policy"
    for o in outcomes[1:]:
        assert o.status.value == "awaiting_approval" and o.report.executions == []
        heal = o.pending["self_healing"]
        assert heal["rule"] == "flap-guard" and "cleanup_rotated_logs on backup-01 (path=/var/log)" in heal["reason"]
    history = store_for(settings).history(T0 + timedelta(hours=1))
    assert [(h.action, h.target, h.object) for h in history] == [("cleanup_rotated_logs", "backup-01",
                                                                  "path=/var/log")]

"""Loop safety through the real graph in rule mode: the same disk-full fault recurs 10 times in an hour.

Each recurrence is the bundled `disk-full` recording replayed with fresh stand-in files; the fix is
the real `cleanup_rotated_logs` playbook run by ansible-runner against the recording's local
inventory. The clock the guards read advances 6 minutes per recurrence. A human "resolves" each
escalated incident (the resolved webhook) so the next recurrence is a new incident. Here each policy
runs as few recurrences as show its guard (every recurrence after the first is the same decision, and
each costs a real Ansible run); `benchmarks/loop_safety.py` runs the ten-times scenario for every policy
variant and prints the figures (CI runs its --smoke).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.self_healing import set_self_healing, store_for
from core.models import AlertmanagerWebhook
from core.settings import Settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _factory(settings: Settings, clock: Clock):  # type: ignore[no-untyped-def]
    inner = make_toolbox_factory(settings)

    def factory(spec: dict[str, Any]):  # type: ignore[no-untyped-def]
        box = inner(spec)
        box.clock = clock
        return box

    return factory


def _resolved(webhook: AlertmanagerWebhook) -> AlertmanagerWebhook:
    payload = webhook.model_dump(mode="json", by_alias=True)
    payload["status"] = "resolved"
    for a in payload["alerts"]:
        a.update(status="resolved", endsAt="2026-03-10T04:30:00Z")
    return AlertmanagerWebhook.model_validate(payload)


async def _recur(settings: Settings, path: Path, times: int = 10) -> list[dict[str, Any]]:
    """Fire the recording's alert `times` times, 6 minutes apart; return what happened each time."""
    clock = Clock()
    rec = load_recorded(path)
    out = []
    async with IncidentRunner(settings, _factory(settings, clock)) as runner:
        for _ in range(times):
            spec = replay_spec(path, settings)  # the fault is back: the stand-in disk is full again
            outcome = await runner.analyze(rec.webhook, spec)
            r = outcome.report
            auto = [e for e in r.executions if r.approval and r.approval.channel == "policy" and e.status == "ok"]
            heal = (outcome.pending or {}).get("self_healing") or (r.self_healing.model_dump() if r.self_healing else {})
            out.append({"status": outcome.status.value, "auto_actions": len(auto), "rule": heal.get("rule"),
                        "reason": heal.get("reason"), "left": sorted(p.name for p in
                                                                     (Path(spec["standins"]) / "backup-01/var/log/app").iterdir())})
            if outcome.status.value in ("awaiting_approval", "escalated"):
                await runner.analyze(_resolved(rec.webhook))  # a human fixed it; the alert resolves
            clock.now += timedelta(minutes=6)
    return out


def test_recurring_fault_flap_guard_sends_the_second_one_to_a_human(settings: Settings):
    runs = asyncio.run(_recur(settings, recording("disk-full"), times=4))  # 18 minutes: all in the flap window
    assert [r["auto_actions"] for r in runs] == [1] + [0] * 3
    assert runs[0]["status"] == "resolved" and runs[0]["rule"] == "rotated-log-cleanup"
    assert runs[0]["left"] == ["app.log", "app.log.1"]  # the real playbook ran
    assert all(r["status"] == "awaiting_approval" and r["rule"] == "flap-guard" for r in runs[1:])
    assert all(len(r["left"]) > 2 for r in runs[1:])  # nothing was deleted on the escalated recurrences
    assert len(store_for(settings).history(T0 + timedelta(hours=2))) == 1


def test_recurring_fault_without_flap_guard_stops_at_the_rate_limit(settings: Settings, tmp_path: Path):
    # One automatic action per target and hour: the end-to-end path of the rate limit in two recurrences
    # (the default's 3 per target is tests/unit/test_policy.py's; the benchmark runs it ten times).
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {name: rotated-log-cleanup, actions: [cleanup_rotated_logs], targets: ['*'], "
                      "max_risk: low}\nlimits: {per_target: 1, global: 20, period_seconds: 3600, cooldown_seconds: 0}\n")
    no_flap = settings.model_copy(update={"FLAP_WINDOW_SECONDS": 0, "POLICY_FILE": policy})
    runs = asyncio.run(_recur(no_flap, recording("disk-full"), times=2))
    autos = [r["auto_actions"] for r in runs]
    assert autos == [1, 0]
    assert runs[1]["status"] == "awaiting_approval" and runs[1]["rule"] == "rate-limit-target"
    history = store_for(no_flap).history(T0 + timedelta(hours=2))
    assert [h.verified for h in history] == [True]


def test_kill_switch_off_means_zero_actions(settings: Settings):
    set_self_healing(settings, False, "alice")
    runs = asyncio.run(_recur(settings, recording("disk-full"), times=2))
    assert sum(r["auto_actions"] for r in runs) == 0
    assert all(r["status"] == "awaiting_approval" and r["rule"] == "kill-switch" for r in runs)
    assert store_for(settings).history(T0 + timedelta(hours=2)) == []


def test_env_kill_switch(settings: Settings):
    off = settings.model_copy(update={"SELF_HEALING": False})
    runs = asyncio.run(_recur(off, recording("disk-full"), times=1))
    assert [r["rule"] for r in runs] == ["kill-switch"] and runs[0]["auto_actions"] == 0


def _unrecovering_copy(tmp_path: Path) -> Path:
    """disk-full, but the disk stays full after the cleanup: verification must fail."""
    data = json.loads(recording("disk-full").read_text())
    alert = datetime.fromisoformat(data["alert_time"].replace("Z", "+00:00"))
    for s in data["metrics"]:
        start = datetime.fromisoformat(s["start"].replace("Z", "+00:00"))
        at_alert = int((alert - start).total_seconds() // s["step_seconds"])
        peak = max((v for v in s["values"][:at_alert + 1] if v is not None), default=None)
        s["values"] = [v if i <= at_alert else peak for i, v in enumerate(s["values"])]
    out = tmp_path / "disk-full-unrecovered.json"
    out.write_text(json.dumps(data))
    return out


def test_failed_verification_escalates_with_a_follow_up_plan_and_is_never_retried(settings: Settings, tmp_path: Path):
    path = _unrecovering_copy(tmp_path)
    runs = []

    async def scenario() -> None:
        clock = Clock()
        rec = load_recorded(path)
        async with IncidentRunner(settings, _factory(settings, clock)) as runner:
            first = await runner.analyze(rec.webhook, replay_spec(path, settings))
            runs.append(first)
            await runner.analyze(_resolved(rec.webhook))
            clock.now += timedelta(hours=3)  # long past the flap window: the failed fix still is not retried
            runs.append(await runner.analyze(rec.webhook, replay_spec(path, settings)))

    asyncio.run(scenario())
    first, later = runs
    r = first.report
    assert first.status.value == "escalated"  # cleanup has no inverse: a human takes over, nothing waits
    assert len(r.attempts) == 1 and r.attempts[0].verification.recovered is False
    assert r.attempts[0].approval.channel == "policy" and [e.status for e in r.attempts[0].executions] == ["ok"]
    assert [a.name for a in r.plan.actions] == ["escalate_to_oncall"] and first.pending is None
    assert "verification failed" in r.plan.rationale and r.escalation and "verification failed" in r.escalation.reason
    assert [h.verified for h in store_for(settings).history(T0 + timedelta(hours=4))] == [False]
    assert later.status.value == "awaiting_approval" and later.report.executions == []
    assert later.pending["self_healing"]["rule"] == "failed-verification"

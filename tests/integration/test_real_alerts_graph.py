"""Real catalogue rules through the real incident graph in rule mode (SQLite checkpointer, registry,
approval gate): the three alerts of issue 12 escalate and end, nothing is auto-approved or executed,
and a failed systemd unit gets a restart proposal that waits for a human."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from core.models import Escalation
from core.settings import Settings
from evals.alert_catalogue import load_catalogue, render
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory

DATA = Path(os.environ.get("DATASETS_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"))


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    try:
        return {r.alertname: r for r in load_catalogue(DATA)}
    except FileNotFoundError:
        pytest.skip(f"awesome-prometheus-alerts not found under {DATA} (set DATASETS_DIR)")


async def _run(settings: Settings, webhooks: list[Any]) -> tuple[list[Any], list[Escalation]]:
    events: list[Escalation] = []
    base = make_toolbox_factory(settings)

    def factory(spec: dict[str, Any]) -> Any:
        toolbox = base(spec)
        toolbox.on_escalation = events.append
        return toolbox

    async with IncidentRunner(settings, factory) as runner:
        return [await runner.analyze(wh) for wh in webhooks], events


def test_issue_12_alerts_escalate_and_end_without_any_action(settings, rules):
    names = ["SmartCriticalWarning", "CephOsdNearFull", "MinioNodeDiskOffline"]
    outcomes, events = asyncio.run(_run(settings, [render(rules[n]) for n in names]))
    for name, out in zip(names, outcomes, strict=True):
        r = out.report
        assert out.status.value == "escalated" and out.pending is None, (name, out.status)
        assert r.approval is None and r.executions == []
        assert [a.name for a in r.plan.actions] == ["escalate_to_oncall"]
        assert not any(a.name == "cleanup_rotated_logs" for a in r.plan.actions)
        assert r.escalation is not None and r.escalation.incident_id == out.incident_id
        assert r.hypotheses[0].confidence <= 0.3  # one uncorroborated alert
    assert [e.incident_id for e in events] == [o.incident_id for o in outcomes]
    ceph = outcomes[1].report
    assert ceph.triage.category == "disk" and ceph.triage.domain == "storage_cluster"
    assert any("cleanup_rotated_logs: refused" in f for f in ceph.plan.fit)


def test_escalated_incident_stays_open_so_a_resend_is_a_duplicate(settings, rules):
    wh = render(rules["SmartCriticalWarning"])
    (first, again), events = asyncio.run(_run(settings, [wh, wh]))
    assert first.status.value == "escalated" and again.status.value == "duplicate"
    assert len(events) == 1  # one notification, not one per re-send


def test_failed_unit_gets_a_restart_proposal_for_a_human(settings, rules):
    (out,), events = asyncio.run(_run(settings, [render(rules["HostSystemdServiceCrashed"])]))
    r = out.report
    assert out.status.value == "awaiting_approval" and out.pending is not None and events == []
    (action,) = r.plan.actions
    assert (action.name, action.target, action.parameters) == ("restart_service", "web-01", {"service": "nginx"})
    assert not r.plan.known_fix and r.approval is None  # a suggestion: a human decides
    assert r.triage.category == "service_down" and r.hypotheses[0].component == "nginx"

"""An alert storm through the real runner with the real langchain-openai client against the OpenAI
simulator, which counts every request: one incident, the LLM paid for once, every other alert joined
with its reason, and resolved alerts closing only what they belong to."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from pathlib import Path

from core.models import AlertmanagerWebhook
from core.settings import Settings
from interfaces.render import render_report
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory
from tests.sim.openai_server import OpenAISim, function_call, serve

CALLERS = {"checkout": ["payments", "pg-primary"], "payments": ["pg-primary"], "orders": ["pg-primary"],
           "frontend": ["checkout", "orders"], "search": ["elastic"]}


def note(name: str, service: str, instance: str, status: str = "firing") -> AlertmanagerWebhook:
    labels = {"alertname": name, "service": service, "instance": instance, "severity": "critical"}
    alert = {"status": status, "labels": labels, "startsAt": datetime.now(UTC).isoformat(),
             "annotations": {"summary": f"{name} on {instance}"}}
    if status == "resolved":
        alert["endsAt"] = datetime.now(UTC).isoformat()
    return AlertmanagerWebhook.model_validate({"groupKey": f'{{}}:{{alertname="{name}", service="{service}"}}',
                                               "status": status, "alerts": [alert]})


def _responder(body):  # type: ignore[no-untyped-def]
    names = [t["function"]["name"] for t in body.get("tools", [])]
    if "Diagnosis" in names:
        return function_call("Diagnosis", {"summary": "database down", "hypotheses": [
            {"component": "pg-primary", "cause": "PostgreSQL is down", "confidence": 0.7, "evidence_ids": ["ev-1"]}]})
    if "RemediationPlan" in names:
        return function_call("RemediationPlan", {"rationale": "a human must look at the database", "steps": [
            {"action": "escalate_to_oncall", "target": "pg-primary", "parameters": {}}]})
    return {"role": "assistant", "content": "ok"}


def test_storm_one_incident_llm_paid_once(settings: Settings, tmp_path: Path):
    topo = tmp_path / "topology.yaml"
    topo.write_text(json.dumps(CALLERS))
    storm = [note("PostgresDown", "pg-primary", "pg-1:9187")]
    for svc in ("checkout", "payments", "orders", "frontend"):
        for i in range(25):
            for name in ("HighErrorRate", "HighLatencyP99"):
                storm.append(note(name, svc, f"{svc}-{i:02d}:8080"))
    storm = storm * 2  # Alertmanager re-sends: 402 notifications, 201 distinct alerts
    random.Random(5).shuffle(storm)
    sim = OpenAISim(_responder)
    storm_calls: list[int] = []

    async def scenario(url: str) -> tuple[list, object, object, object]:  # type: ignore[type-arg]
        s = settings.model_copy(update={"OPENAI_API_KEY": "sk-sim", "OPENAI_BASE_URL": url, "TOPOLOGY_FILE": topo,
                                        "ENABLE_LLM_FALLBACK": False, "ENABLE_CACHING": False})
        from core.llm import build_llm_chain

        async with IncidentRunner(s, make_toolbox_factory(s, llm=build_llm_chain(s))) as runner:
            queue: asyncio.Queue[AlertmanagerWebhook] = asyncio.Queue()
            for n in storm:
                queue.put_nowait(n)
            outcomes = []

            async def worker() -> None:
                while not queue.empty():
                    outcomes.append(await runner.analyze(queue.get_nowait()))

            await asyncio.gather(*(worker() for _ in range(6)))
            storm_calls.append(len(sim.requests))
            unrelated = await runner.analyze(note("EsDown", "search", "es-1:9200"))
            incident_id = next(o.incident_id for o in outcomes if o.report.triage.kind != "duplicate")
            # one related alert resolves: the incident stays open; an unrelated one is untouched
            partial = await runner.analyze(note("HighErrorRate", "checkout", "checkout-00:8080", "resolved"))
            report = await runner.report(incident_id)
            return outcomes, unrelated, partial, report

    with serve(sim) as url:
        outcomes, unrelated, partial, report = asyncio.run(scenario(url))
    opened = [o for o in outcomes if o.report.triage.kind != "duplicate"]
    assert len(opened) == 1
    assert storm_calls[0] <= 3  # diagnosis + remediation of the one incident; nothing per joined alert
    assert len(sim.requests) > storm_calls[0]  # the unrelated incident is diagnosed on its own
    assert all(o.report.llm_calls == [] for o in outcomes if o.report.triage.kind == "duplicate")
    assert unrelated.incident_id != opened[0].incident_id and unrelated.report.triage.kind == "incident"
    assert partial.incident_id == opened[0].incident_id and partial.status.value != "resolved"
    assert report.related_total == 200  # 201 distinct alerts, one opened the incident
    reasons = {r.reason for r in report.related_alerts}
    assert any(r.startswith("topology:") for r in reasons) or any(r.startswith("same service") for r in reasons)
    assert any(r.status == "resolved" for r in report.related_alerts)
    text = render_report(report)
    assert "RELATED    200 more alerts joined this incident" in text and "... and 190 more" in text


def test_resolving_every_alert_closes_the_incident(settings: Settings):
    async def scenario():  # type: ignore[no-untyped-def]
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            first = await runner.analyze(note("HighErrorRate", "checkout", "c-1:80"))
            joined = await runner.analyze(note("HighLatencyP99", "checkout", "c-2:80"))
            assert joined.incident_id == first.incident_id and joined.status.value == "duplicate"
            one = await runner.analyze(note("HighErrorRate", "checkout", "c-1:80", "resolved"))
            row_after_one = runner.registry.get(first.incident_id)
            two = await runner.analyze(note("HighLatencyP99", "checkout", "c-2:80", "resolved"))
            return first, one, row_after_one, two, runner.registry.get(first.incident_id)

    first, one, row_after_one, two, row = asyncio.run(scenario())
    assert first.status.value == "escalated"  # no catalog action fits an error-rate alert: a human has it
    assert row_after_one.status == "escalated" and "still has firing alerts" in one.report.triage.reason
    assert two.status.value == "resolved" and row.status == "resolved"


def test_group_update_with_a_cleared_alert_resolves_it(settings: Settings):
    """Alertmanager re-sends a group as firing with some alerts now resolved: those leave the incident."""
    async def scenario():  # type: ignore[no-untyped-def]
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            first = await runner.analyze(note("HighErrorRate", "checkout", "c-1:80"))
            await runner.analyze(note("HighErrorRate", "checkout", "c-2:80"))
            update = note("HighErrorRate", "checkout", "c-3:80").model_dump(mode="json", by_alias=True)
            update["alerts"].append(note("HighErrorRate", "checkout", "c-2:80", "resolved").model_dump(
                mode="json", by_alias=True)["alerts"][0])
            joined = await runner.analyze(AlertmanagerWebhook.model_validate(update))
            return first, joined, await runner.report(first.incident_id)

    first, joined, report = asyncio.run(scenario())
    assert joined.incident_id == first.incident_id
    assert {(r.target, r.status) for r in report.related_alerts} == {("checkout", "resolved"), ("checkout", "firing")}
    assert report.related_total == 2

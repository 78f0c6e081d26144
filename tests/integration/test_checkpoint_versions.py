"""Checkpoints stay readable across the typed state (issue 18): incidents checkpointed by the code
before it (schema version 1, dict values; tests/fixtures/checkpoints-v1, written by that code) are
resumed and read by today's runner, and today's checkpoints hold the models themselves, rebuilt on
read without LangGraph's serializer warning about, or refusing, any class."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener

from core.models import Action, Alert, AlertmanagerWebhook, Evidence, Incident, IncidentReport, Plan
from core.settings import Settings, load_settings
from graphs.state import CHECKPOINT_TYPES, SCHEMA_VERSION, typed, version
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from store.registry import IncidentRow
from tests.conftest import recording
from tools.replay.recording import load_recorded

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints-v1"


@pytest.fixture
def serde_events() -> Iterator[list[SerdeEvent]]:
    """Every class the checkpoint serializer rebuilt without being allowed to, or refused to rebuild."""
    seen: list[SerdeEvent] = []
    unregister = register_serde_event_listener(seen.append)
    yield seen
    unregister()


@pytest.fixture
def v1(tmp_path: Path) -> tuple[Settings, dict[str, Any]]:
    """A data directory holding the version-1 checkpoints and their registry rows (source: fresh stand-ins)."""
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False)
    settings.checkpoint_path.parent.mkdir(parents=True)
    shutil.copy(FIXTURE / "checkpoints.sqlite", settings.checkpoint_path)
    fixture: dict[str, Any] = json.loads((FIXTURE / "incidents.json").read_text())

    async def register() -> None:
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            for case in fixture.values():
                row = IncidentRow(**case["row"], source=replay_spec(recording(case["recording"]), settings))
                runner.registry.upsert(row)
                if case["status"] == "awaiting_approval":
                    runner.registry.set_pending(row.incident_id, str(row.plan_id), runner.owner)

    asyncio.run(register())
    return settings, fixture


def _runner(settings: Settings) -> IncidentRunner:
    return IncidentRunner(settings, make_toolbox_factory(settings))


def test_the_fixture_is_version_1(v1: tuple[Settings, dict[str, Any]]) -> None:
    """What the other tests resume really is the old format: dicts, no schema_version."""
    settings, fixture = v1

    async def raw() -> list[dict[str, Any]]:
        async with _runner(settings) as runner:
            return [dict((await runner.graph.aget_state({"configurable": {"thread_id": c["row"]["incident_id"]}})).values)
                    for c in fixture.values()]

    for values in asyncio.run(raw()):
        assert version(values) == 1 and "schema_version" not in values
        assert isinstance(values["incident"], dict) and isinstance(values["plan"], dict)
        assert all(isinstance(e, dict) for e in values["evidence"])


def test_a_finished_version_1_incident_reads_as_it_did(v1: tuple[Settings, dict[str, Any]],
                                                        serde_events: list[SerdeEvent]) -> None:
    settings, fixture = v1
    case = fixture["finished"]

    async def read() -> tuple[IncidentReport | None, tuple[Incident, str] | None]:
        async with _runner(settings) as runner:
            return await runner.report(case["row"]["incident_id"]), await runner.incident_record(case["row"]["incident_id"])

    report, record = asyncio.run(read())
    assert report is not None and report.model_dump(mode="json") == case["report"]
    assert report.status.value == "resolved" and report.verification and report.verification.recovered
    assert record is not None and isinstance(record[0], Incident) and record[0].id == case["row"]["incident_id"]
    assert serde_events == []


def test_a_paused_version_1_incident_is_approved_and_verified_by_todays_code(
        v1: tuple[Settings, dict[str, Any]], serde_events: list[SerdeEvent]) -> None:
    settings, fixture = v1
    case = fixture["paused"]
    incident_id, plan_id = case["row"]["incident_id"], case["row"]["plan_id"]
    config = replay_spec(recording(case["recording"]), settings)
    cfg = Path(config["standins"]) / "app-02/etc/payments-api/config.yaml"

    async def scenario() -> tuple[IncidentReport | None, Any, Any]:
        async with _runner(settings) as runner:
            before = await runner.report(incident_id)
            done = await runner.decide(plan_id, approver="alice", decision="approve", plan_hash=case["row"]["plan_hash"])
            after = (await runner.graph.aget_state({"configurable": {"thread_id": incident_id}})).values
            return before, done, after

    assert "pool: max" in cfg.read_text()  # the stand-in as the recording has it: nothing ran yet
    before, done, after = asyncio.run(scenario())
    assert before is not None and before.model_dump(mode="json") == case["report"]  # read as it was written
    assert before.status.value == "awaiting_approval" and before.plan and before.plan.id == plan_id
    assert done.status.value == "resolved" and done.report.approval.approver == "alice"
    assert done.report.plan.content_hash == case["row"]["plan_hash"]  # the very plan that was reviewed
    assert [e.status for e in done.report.executions] == ["ok"]
    assert done.report.verification and done.report.verification.recovered is True
    assert "pool: max" not in cfg.read_text() and list(cfg.parent.glob("config.yaml.failed-*"))
    # The old thread went on in the old layout's keys, its new values written as models.
    assert version(after) == 1 and isinstance(after["report"], IncidentReport) and isinstance(after["plan"], dict)
    assert serde_events == []


def test_todays_checkpoints_hold_the_models(settings: Settings, serde_events: list[SerdeEvent]) -> None:
    """A new run checkpoints models (schema version 2), and reading them back rebuilds every class,
    nested ones included, without a warning and without falling back to dicts."""
    rec = load_recorded(recording("crashloop"))

    async def scenario() -> tuple[dict[str, Any], IncidentReport | None]:
        async with _runner(settings) as runner:
            outcome = await runner.analyze(rec.webhook, replay_spec(recording("crashloop"), settings))
            values = dict((await runner.graph.aget_state({"configurable": {"thread_id": outcome.incident_id}})).values)
            return values, await runner.report(outcome.incident_id)

    values, report = asyncio.run(scenario())
    assert version(values) == SCHEMA_VERSION == 2
    assert isinstance(values["webhook"], AlertmanagerWebhook) and isinstance(values["webhook"].alerts[0], Alert)
    assert isinstance(values["incident"], Incident) and isinstance(values["plan"], Plan)
    assert isinstance(values["plan"].actions[0], Action) and values["plan"].actions[0].risk.value == "medium"
    assert values["evidence"] and all(isinstance(e, Evidence) for e in values["evidence"])
    assert typed(values) == values  # nothing left for the reader to convert
    assert values["webhook"] == rec.webhook  # rebuilt equal to what went in
    assert report is not None and report.status.value == "awaiting_approval"
    assert serde_events == []


def test_every_class_of_the_state_is_allowed() -> None:
    """The allow-list the checkpointer gets covers the nested classes too (an enum inside a plan's actions)."""
    names = {c.__name__ for c in CHECKPOINT_TYPES}
    assert {"Plan", "Action", "Risk", "IncidentStatus", "Alert", "MetricSeries", "IncidentReport", "Attempt"} <= names

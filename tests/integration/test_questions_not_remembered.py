"""A question is not an incident: on-demand investigations (`/analyze`, HTTP analyze, the chat's
read-only `analyze_service`) are never stored in incident memory and never cited as past incidents.
Real milvus-lite and embeddings, the recorded crash-loop as the live data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from core.models import ON_DEMAND_ALERT
from graphs.incident import investigate
from memory.records import IncidentRecord
from service.intake import on_demand_webhook
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration


@pytest.fixture
def mem_settings(settings):
    pytest.importorskip("pymilvus")
    return settings.model_copy(update={"ENABLE_MEMORY": True, "ENABLE_CACHING": False})


def test_questions_are_not_remembered_nor_cited(mem_settings) -> None:
    s = mem_settings
    spec = replay_spec(recording("crashloop"), s)

    async def go():
        async with IncidentRunner(s, make_toolbox_factory(s)) as runner:
            toolbox = runner.toolbox_factory(spec)
            assert toolbox.memory is not None
            # A question asked twice through the runner (POST /api/v1/analyze, Telegram /analyze) and once
            # through the chat's read-only investigation.
            asked = await runner.analyze(on_demand_webhook("payments-api", "1h")[0], spec)
            assert asked.report.triage.kind == "incident" and asked.report.hypotheses
            await runner.analyze(on_demand_webhook("payments-api", "1h")[0], spec)
            chat = await investigate(on_demand_webhook("payments-api", "1h")[0], toolbox)
            assert chat.hypotheses
            counts_after_questions = toolbox.memory.counts()  # type: ignore[attr-defined]
            # An investigation remembered by an older version, before questions were told apart.
            toolbox.memory.remember(IncidentRecord(
                id="inc-question0001", signature=f"{ON_DEMAND_ALERT}|payments-api|app", alertname=ON_DEMAND_ALERT,
                service="payments-api", symptoms=asked.report.title, root_cause_component="payments-api",
                root_cause="asked by someone", recovered=None, occurred_at=datetime.now(UTC)))
            again = await runner.analyze(on_demand_webhook("payments-api", "1h")[0], spec)
            # The real incident: nothing known yet, so no past incident is cited.
            real = await runner.analyze(load_recorded(recording("crashloop")).webhook, spec)
            return counts_after_questions, asked, again, real

    counts, asked, again, real = asyncio.run(go())
    assert counts["incidents"] == 0, counts
    for report in (again.report, real.report):
        cited = [e.excerpt for e in report.evidence if e.tool == "memory"]
        assert not cited, cited
        assert asked.incident_id not in str(report.model_dump())

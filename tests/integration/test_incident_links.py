"""Links reach the report through the real pipeline: the alert's runbook_url and generatorURL, the
notification's externalURL (silence form), and a runbook memory recalled (real milvus-lite)."""

from __future__ import annotations

import asyncio

import pytest

from interfaces.render import render_report
from memory.records import RunbookDoc
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration
RUNBOOK = "https://runbooks.example/payments-api/crashloop"
RECALLED = "https://runbooks.prometheus-operator.dev/runbooks/general/servicecrashlooping"


def test_report_links_back_to_runbook_rule_silence_and_recalled_runbook(settings) -> None:
    pytest.importorskip("pymilvus")
    s = settings.model_copy(update={"ENABLE_MEMORY": True, "ENABLE_CACHING": False})
    rec = load_recorded(recording("crashloop"))
    alert = rec.webhook.alerts[0]
    alert = alert.model_copy(update={"annotations": {**alert.annotations, "runbook_url": RUNBOOK,
                                                     "dashboard_url": "javascript:alert(1)"},
                                     "generator_url": "http://prometheus.example:9090/graph?g0.expr=crashloop"})
    webhook = rec.webhook.model_copy(update={"alerts": [alert], "external_url": "http://alertmanager.example:9093"})

    async def go():
        async with IncidentRunner(s, make_toolbox_factory(s)) as runner:
            spec = replay_spec(recording("crashloop"), s)
            memory = runner.toolbox_factory(spec).memory
            assert memory is not None
            memory.add_runbooks([RunbookDoc(  # type: ignore[attr-defined]
                id="rb:crashloop", alertname="ServiceCrashLooping", component="payments-api",
                meaning="ServiceCrashLooping: payments-api restarts over and over (crash loop) on app-02",
                diagnosis="read the unit's journal for the crash after each restart; a bad config is typical",
                mitigation="roll back the last config change of payments-api and restart it", source=RECALLED)])
            out = await runner.analyze(webhook, spec)
            return out, await runner.report(out.incident_id)

    out, stored = asyncio.run(go())
    by_kind = {lk.kind: lk.url for lk in out.report.links}
    assert by_kind["runbook"] == RUNBOOK and "javascript" not in str(out.report.links)
    assert by_kind["rule"] == "http://prometheus.example:9090/graph?g0.expr=crashloop"
    assert by_kind["silence"].startswith("http://alertmanager.example:9093/#/silences/new?filter=")
    assert by_kind["alertmanager"] == "http://alertmanager.example:9093"
    assert by_kind.get("recalled_runbook") == RECALLED, [e.excerpt for e in out.report.evidence if e.tool == "runbooks"]
    assert stored is not None and stored.links == out.report.links  # what the API and `aiops show --json` give
    assert f"LINK       runbook: {RUNBOOK}" in render_report(stored)

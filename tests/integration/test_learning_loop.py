"""The learning loop on real milvus-lite and real embeddings: a finished incident is remembered with its
verified outcome; the same incident again is recognised, its cause ranked first and its fix proposed
first, and in LLM mode the model is not asked again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording, scripted_chain
from tests.scripted_model import crashloop_model
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.integration


@pytest.fixture
def mem_settings(settings):
    pytest.importorskip("pymilvus")
    return settings.model_copy(update={"ENABLE_MEMORY": True, "ENABLE_CACHING": False})


def _cycle(s, name, llm=None, decision="approve"):
    rec = load_recorded(recording(name))

    async def go():
        async with IncidentRunner(s, make_toolbox_factory(s, llm=llm)) as runner:
            out = await runner.analyze(rec.webhook, replay_spec(recording(name), s))
            if out.status.value == "awaiting_approval":
                out = await runner.decide(out.plan_id, approver="alice", decision=decision)
            return out
    return asyncio.run(go())


def test_replaying_an_incident_twice_reuses_what_was_learned(mem_settings):
    first = _cycle(mem_settings, "crashloop")
    assert first.status.value == "resolved" and first.report.verification.recovered is True
    assert not [e for e in first.report.evidence if e.tool == "memory"]  # nothing known yet

    second = _cycle(mem_settings, "crashloop")
    r = second.report
    memory_ev = [e for e in r.evidence if e.tool == "memory"]
    assert memory_ev and first.incident_id in memory_ev[0].excerpt and "recovered" in memory_ev[0].excerpt
    assert r.hypotheses[0].component == "payments-api"
    assert memory_ev[0].id in r.hypotheses[0].evidence_ids  # the past incident is cited
    assert r.plan.known_fix and first.incident_id in r.plan.rationale
    assert [a.name for a in r.plan.actions] == [a.name for a in first.report.plan.actions]


def test_second_run_uses_fewer_llm_calls(mem_settings):
    m1 = crashloop_model()
    first = _cycle(mem_settings, "crashloop", llm=scripted_chain(m1))
    assert len(m1.requests) == 2 and first.status.value == "resolved"
    m2 = crashloop_model()
    second = _cycle(mem_settings, "crashloop", llm=scripted_chain(m2))
    assert len(m2.requests) == 0 and second.report.llm_calls == []
    assert second.report.hypotheses[0].cause == "config.yaml fails to parse"
    assert second.status.value == "resolved"


def test_known_cause_ranks_first_in_rule_mode(mem_settings):
    """A past incident with this signature was fixed by acting on php-fpm: rules now rank php-fpm first,
    citing it, even where the metrics alone are ambiguous between php-fpm and its caller nginx."""
    from memory.incidents import IncidentMemory
    from memory.records import IncidentRecord

    mem = IncidentMemory.from_settings(mem_settings)
    rec = load_recorded(recording("vm-high-cpu"))
    alert = rec.webhook.alerts[0]
    mem.remember(IncidentRecord(
        id="inc-earlier", signature=f"{alert.name}|{alert.target}|cpu", alertname=alert.name, service=alert.target,
        symptoms="HostHighCpuLoad: Host high CPU load (instance web-01:9100)\nphp-fpm: cpu_usage_percent up to 95; "
                 "[pool www] server reached pm.max_children setting (50)\nnginx: upstream timed out",
        labels=alert.labels, root_cause_component="php-fpm", root_cause="slow search queries exhaust PHP-FPM workers",
        actions=[{"name": "restart_service", "target": "web-01", "parameters": {"service": "php-fpm"}}],
        recovered=True, occurred_at=datetime(2026, 2, 1, tzinfo=UTC)))
    mem.close()
    out = _cycle(mem_settings, "vm-high-cpu")
    top = out.report.hypotheses[0]
    assert top.component == "php-fpm"
    cited = {e.id: e for e in out.report.evidence}
    assert any(cited[i].tool == "memory" and "inc-earlier" in cited[i].excerpt for i in top.evidence_ids)

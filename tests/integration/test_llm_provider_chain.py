"""The provider chain with the real langchain-openai client against a local OpenAI-protocol simulator:
structured output through forced tool calls, token accounting, and fallback to rules on failure."""

from __future__ import annotations

import asyncio

from agents.remediation import RemediationPlan
from core.llm import build_llm_chain
from core.settings import load_settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tests.sim.openai_server import OpenAISim, function_call, serve
from tools.replay.recording import load_recorded


def _responder(body):
    names = [t["function"]["name"] for t in body.get("tools", [])]
    forced = (body.get("tool_choice") or {}).get("function", {}).get("name") if isinstance(body.get("tool_choice"), dict) else None
    if forced == "RemediationPlan" or (not forced and "RemediationPlan" in names):
        return function_call("RemediationPlan", {"rationale": "restore the last good config", "steps": [
            {"action": "rollback_config", "target": "app-02",
             "parameters": {"service": "payments-api", "config_path": "/etc/payments-api/config.yaml"}}]})
    if "Diagnosis" in names:
        return function_call("Diagnosis", {"summary": "bad config", "hypotheses": [
            {"component": "payments-api", "cause": "config.yaml fails to parse", "confidence": 0.85,
             "evidence_ids": ["ev-1"]}]})
    return {"role": "assistant", "content": "ok"}


def test_chain_order_from_settings(tmp_path):
    assert build_llm_chain(load_settings()).mode == "rules"
    chain = build_llm_chain(load_settings(OPENAI_BASE_URL="http://127.0.0.1:1/v1", OLLAMA_BASE_URL="http://127.0.0.1:2"))
    assert [p.name for p in chain.providers] == ["openai", "ollama"]
    no_fallback = build_llm_chain(load_settings(OPENAI_API_KEY="k", OLLAMA_BASE_URL="http://127.0.0.1:2",
                                                ENABLE_LLM_FALLBACK=False))
    assert [p.name for p in no_fallback.providers] == ["openai"]
    assert build_llm_chain(load_settings(OPENAI_API_KEY="k", LLM_MODE="rules")).providers == []


def test_real_openai_client_structured_output(tmp_path):
    sim = OpenAISim(_responder)
    with serve(sim) as url:
        chain = build_llm_chain(load_settings(OPENAI_BASE_URL=url, OPENAI_MODEL="sim-model"))
        calls = []
        out = asyncio.run(chain.structured("remediation", [("human", "plan it")], RemediationPlan, calls))
    assert isinstance(out, RemediationPlan) and out.steps[0].action == "rollback_config"
    req = sim.requests[0]
    assert req["model"] == "sim-model" and req["tool_choice"]["function"]["name"] == "RemediationPlan"
    assert calls[0].provider == "openai" and calls[0].input_tokens > 0 and calls[0].output_tokens > 0


def test_graph_with_openai_protocol_and_fallback_to_rules(tmp_path, settings):
    rec = load_recorded(recording("crashloop"))

    async def analyze(s):
        async with IncidentRunner(s, make_toolbox_factory(s)) as runner:
            return await runner.analyze(rec.webhook, replay_spec(recording("crashloop"), s))

    sim = OpenAISim(_responder)
    with serve(sim) as url:
        out = asyncio.run(analyze(settings.model_copy(update={"OPENAI_BASE_URL": url, "OPENAI_MODEL": "sim-model"})))
    assert out.report.mode == "sim-model"
    assert [c.node for c in out.report.llm_calls] == ["diagnosis", "remediation"]
    assert out.report.hypotheses[0].component == "payments-api"

    broken = OpenAISim(_responder, fail_with=500)
    with serve(broken) as url:
        s = settings.model_copy(update={"OPENAI_BASE_URL": url, "OPENAI_MODEL": "sim-model",
                                        "AIOPS_DATA_DIR": settings.AIOPS_DATA_DIR / "b"})
        out = asyncio.run(analyze(s))
    assert out.report.mode == "rules" and out.report.hypotheses
    assert out.report.llm_calls and not any(c.ok for c in out.report.llm_calls)


def test_refusal_400_is_not_retried_nor_charged_and_5xx_is_retried_by_one_layer(tmp_path):
    """guarded() is the one retry layer (the openai SDK's max_retries is 0): a 400 reaches the server
    once and leaves the breaker closed; a 500 is tried RETRY_ATTEMPTS times, each one an LLMCall."""
    from core import resilience

    s = load_settings(RETRY_BASE_DELAY=0.01, RETRY_ATTEMPTS=2, CB_FAILURE_THRESHOLD=5)
    refused = OpenAISim(_responder, fail_with=400)
    with serve(refused) as url:
        chain = build_llm_chain(s.model_copy(update={"OPENAI_BASE_URL": url, "OPENAI_MODEL": "sim-model"}))
        calls = []
        assert asyncio.run(chain.structured("remediation", [("human", "plan")], RemediationPlan, calls)) is None
    assert len(refused.requests) == 1 and len(calls) == 1 and not calls[0].ok
    assert resilience.breaker("llm-openai").failures == 0

    broken = OpenAISim(_responder, fail_with=500)
    with serve(broken) as url:
        chain = build_llm_chain(s.model_copy(update={"OPENAI_BASE_URL": url, "OPENAI_MODEL": "sim-model"}))
        calls = []
        assert asyncio.run(chain.structured("remediation", [("human", "plan")], RemediationPlan, calls)) is None
    assert len(broken.requests) == 2 and [c.ok for c in calls] == [False, False]
    assert resilience.breaker("llm-openai").failures == 2
